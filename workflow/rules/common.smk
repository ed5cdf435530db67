import os
import sys
from pathlib import Path

import jsonschema
import yaml
from snakemake.utils import validate

# The jobs' scripts import the repository's packages, whichever environment runs them (this
# one, or a rule's conda environment): Snakemake passes its module search path on to them.
sys.path.insert(0, str(Path(workflow.basedir).parent))

from experiments.runs import seeds_for

from experiments.tuning import BASELINE_SPACES
from gru4rec.baselines import BASELINES
from gru4rec.evaluation import TIE_MODES
from gru4rec.losses import LOSSES
from gru4rec.model import EMBEDDING_MODES
from preprocessing import DATASETS, PUBLIC_DATASETS

SCHEMA = "../schemas/config.schema.yaml"
# What `datasets.<name>.models` chooses from: the GRU4Rec studies (losses x embeddings) and every
# baseline of the registry; the default is all of them. Baselines with a search space are tuned.
MODELS = ("gru4rec", *BASELINES)
# The schema's lists of names, from the code that defines them.
NAMES = {
    "loss": LOSSES,
    "embedding": EMBEDDING_MODES,
    "source": DATASETS,
    "paper": PUBLIC_DATASETS,
    "model": MODELS,
    "tie_mode": TIE_MODES,
    "tuned_baseline": tuple(BASELINE_SPACES),
}
PUBLISHED = yaml.safe_load(open(workflow.source_path("../../config/published.yaml")))


def config_error(message):
    """A user's mistake in the config: one line, exit code 1, before any job starts."""
    files = ", ".join(str(f) for f in workflow.configfiles) or "the config"
    print(f"config error ({files}): {message}", file=sys.stderr)
    sys.exit(1)


def _describe(error):
    """One line for a jsonschema error: where (a.b.c) and what was expected."""
    where = ".".join(str(p) for p in error.absolute_path) or "top level"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        known = f"; known keys: {', '.join(allowed)}" if allowed else ""
        plural = "s" if len(unknown) > 1 else ""
        return f"{where}: unknown key{plural} {', '.join(map(repr, unknown))}{known}"
    if error.validator == "required":
        return (
            f"{where}: {error.message.replace('is a required property', 'is missing')}"
        )
    if error.validator == "propertyNames" and "enum" in error.schema.get(
        "propertyNames", {}
    ):
        return f"{where}: {error.instance!r} is not one of {', '.join(error.schema['propertyNames']['enum'])}"
    if error.validator == "propertyNames":
        return f"{where}: the name {error.instance!r} may use letters, digits, '_', '.', '-' only"
    return f"{where}: {error.message}"


def schema_errors():
    """Every problem of the config against the schema, with the lists of names filled in."""
    schema = yaml.safe_load(open(workflow.source_path(SCHEMA)))
    for name, values in NAMES.items():
        schema["$defs"][name] = {"enum": list(values)}
    errors = jsonschema.Draft202012Validator(schema).iter_errors(config)
    return sorted(errors, key=lambda e: list(map(str, e.absolute_path)))


def validate_config():
    """Check the config (every problem on one line), then fill in the schema's defaults."""
    errors = schema_errors()
    if errors:
        config_error("; ".join(_describe(e) for e in errors))
    validate(config, schema=SCHEMA)  # Snakemake's validation: fills in every default
    if not config["mlflow"]["tracking_uri"]:
        config["mlflow"][
            "tracking_uri"
        ] = f"sqlite:///{config['results_dir'].rstrip('/')}/mlflow.db"
    if max(config["final"]["cutoffs"]) < 20:
        config_error(
            f"final.cutoffs: the tables compare Recall@20 and MRR@20, as the papers do; "
            f"include a cut-off of 20 or more, got {config['final']['cutoffs']}"
        )
    for name, ds in config["datasets"].items():
        ds.setdefault("mode", config["mode"])
        ds.setdefault("models", list(MODELS))
        if ds["mode"] == "reproduce" and ds.get("paper") not in PUBLISHED["params"]:
            config_error(
                f"datasets.{name}: mode 'reproduce' needs 'paper' set to one of "
                f"{', '.join(PUBLISHED['params'])} (the published parameter sets)"
            )
        if ds["source"] == "custom" and not ds.get("options"):
            config_error(
                f"datasets.{name}: a custom dataset needs 'options' (its preprocessing config, "
                "see preprocessing/README.md)"
            )
        if ds["source"] in ("synthetic", "custom") and ds["mode"] == "reproduce":
            config_error(
                f"datasets.{name}: mode 'reproduce' is for the public datasets only (source is "
                f"'{ds['source']}')"
            )


validate_config()
RESULTS = config["results_dir"].rstrip("/")
RAW = config["raw_dir"].rstrip("/")


wildcard_constraints:
    dataset="[^/]+",
    loss="|".join(LOSSES),
    embedding="|".join(EMBEDDING_MODES),
    baseline="|".join(BASELINES),
    tuned="|".join(BASELINE_SPACES),


def tracking_uri():
    uri = config["mlflow"]["tracking_uri"]
    return None if uri.lower() == "none" else uri


def dataset_config(wildcards):
    return config["datasets"][wildcards.dataset]


def studies():
    """(dataset, loss, embedding) of every final GRU4Rec run: every configured study, or the published one."""
    out = []
    for dataset, ds in config["datasets"].items():
        if "gru4rec" not in ds["models"]:
            continue
        if ds["mode"] == "reproduce":
            out.append((dataset, PUBLISHED["params"][ds["paper"]]["loss"], "shared"))
        else:
            out += [
                (dataset, loss, emb)
                for loss in ds["losses"]
                for emb in ds["embeddings"]
            ]
    return out


def baselines(dataset):
    """The baselines (registry keys) a dataset runs, in the registry's order."""
    return [b for b in BASELINES if b in config["datasets"][dataset]["models"]]


def study_dirs():
    """(dataset, directory name) of every Optuna study: GRU4Rec's loss-embedding, the tuned baselines."""
    out = [
        (d, f"{loss}-{emb}")
        for d, loss, emb in studies()
        if config["datasets"][d]["mode"] != "reproduce"
    ]
    return out + [
        (d, b) for d in config["datasets"] for b in baselines(d) if b in BASELINE_SPACES
    ]


def all_metrics():
    """metrics.json of every final run: GRU4Rec's (train_final) and the baselines' (train_baseline)."""
    runs = studies()
    gru = (
        expand(
            rules.train_final.output.metrics,
            zip,
            dataset=[r[0] for r in runs],
            loss=[r[1] for r in runs],
            embedding=[r[2] for r in runs],
        )
        if runs
        else []
    )
    base = [
        f"{RESULTS}/{d}/final/{b}/metrics.json"
        for d in config["datasets"]
        for b in baselines(d)
    ]
    return gru + base


def seeds(model):
    """The seeds of a final run of `model` ('gru4rec' or a baseline key)."""
    return seeds_for(model, config["final"]["seed"], config["final"]["seeds"])


def eval_cutoffs():
    """The final evaluation's cut-offs: the configured ones and every N up to the largest (the curves)."""
    cut = config["final"]["cutoffs"]
    return sorted(set(cut) | set(range(1, max(cut) + 1)))


def all_outputs():
    """Everything `all` builds: the rules' outputs for every dataset and study."""
    return [
        *expand(rules.preprocess.output.stats, dataset=config["datasets"]),
        *all_metrics(),
        *rules.tables.output,
        *rules.plots.output,
        *expand(rules.curves.output, dataset=config["datasets"]),
        *[f"{RESULTS}/plots/studies/{d}/{s}/history.png" for d, s in study_dirs()],
    ]


def raw_dir(dataset):
    return config["datasets"][dataset].get("raw") or f"{RAW}/{dataset}"


def split_file(split):
    """Input function: a split of the job's dataset."""
    return lambda wildcards: f"{RESULTS}/{wildcards.dataset}/splits/{split}.parquet"


def preprocess_input(wildcards):
    """The raw files of a public dataset (synthetic data is generated, custom files checked by preprocess)."""
    source = dataset_config(wildcards)["source"]
    return (
        []
        if source in ("synthetic", "custom")
        else [f"{RAW}/{wildcards.dataset}/.complete"]
    )


def best_params(wildcards):
    """The parameters a final run trains: its study's best, or the published ones (mode reproduce)."""
    kind = "published" if dataset_config(wildcards)["mode"] == "reproduce" else "tuning"
    return f"{RESULTS}/{wildcards.dataset}/{kind}/{wildcards.loss}-{wildcards.embedding}/best_params.json"


def mlflow_ready():
    return [f"{RESULTS}/.mlflow_ready"] if tracking_uri() else []


def storage_of(dataset, study):
    """A database URL from the config (one database holds every study), or the study's journal file."""
    return (
        config["optuna"]["storage"]
        or f"{RESULTS}/{dataset}/tuning/{study}/study.journal"
    )


def study_storage(wildcards):
    """The storage of a GRU4Rec study (loss-embedding) or a baseline's (tuned)."""
    study = (
        getattr(wildcards, "tuned", None) or f"{wildcards.loss}-{wildcards.embedding}"
    )
    return storage_of(wildcards.dataset, study)


def uses_gpu(device):
    """gpu=1 for a job that may take the GPU: `--resources gpu=1` then runs one such job at a time."""
    return 0 if device == "cpu" else 1


def baseline_params(wildcards):
    """A tuned baseline's best parameters; nothing for the untuned ones (their defaults)."""
    if wildcards.baseline in BASELINE_SPACES:
        return f"{RESULTS}/{wildcards.dataset}/tuning/{wildcards.baseline}/best_params.json"
    return []


def table_outputs():
    """Per dataset: the ICLR 2016 comparison and every metric, each as Markdown, CSV and LaTeX."""
    return expand(
        f"{RESULTS}/tables/{{dataset}}/{{table}}.{{ext}}",
        dataset=config["datasets"],
        table=("comparison", "all_metrics"),
        ext=("csv", "tex"),
    )


def study_plot_files(kind):
    """history.png or importance.png of every study of the config."""
    return [f"{RESULTS}/plots/studies/{d}/{s}/{kind}.png" for d, s in study_dirs()]
