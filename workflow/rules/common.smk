import sys
from pathlib import Path

import jsonschema
import yaml
from snakemake.utils import validate

# The jobs' scripts import the repository's packages, whichever environment runs them (this
# one, or a rule's conda environment): Snakemake passes its module search path on to them.
sys.path.insert(0, str(Path(workflow.basedir).parent))

from gru4rec.losses import LOSSES
from gru4rec.model import EMBEDDING_MODES
from preprocessing import DATASETS, PUBLIC_DATASETS

SCHEMA = "../schemas/config.schema.yaml"
# The schema's lists of names, from the code that defines them.
NAMES = {
    "loss": LOSSES,
    "embedding": EMBEDDING_MODES,
    "source": DATASETS,
    "paper": PUBLIC_DATASETS,
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
    for name, ds in config["datasets"].items():
        ds.setdefault("mode", config["mode"])
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


def tracking_uri():
    uri = config["mlflow"]["tracking_uri"]
    return None if uri.lower() == "none" else uri


def dataset_config(wildcards):
    return config["datasets"][wildcards.dataset]


def studies():
    """(dataset, loss, embedding) of every final run: every configured study, or the published one."""
    out = []
    for dataset, ds in config["datasets"].items():
        if ds["mode"] == "reproduce":
            out.append((dataset, PUBLISHED["params"][ds["paper"]]["loss"], "shared"))
        else:
            out += [
                (dataset, loss, emb)
                for loss in ds["losses"]
                for emb in ds["embeddings"]
            ]
    return out


def all_metrics():
    """metrics.json of every final run (the train_final rule's output)."""
    dataset, loss, embedding = zip(*studies())
    return expand(
        rules.train_final.output.metrics,
        zip,
        dataset=dataset,
        loss=loss,
        embedding=embedding,
    )


def all_outputs():
    """Everything `all` builds: the rules' outputs for every dataset and study."""
    return [
        *expand(rules.preprocess.output.stats, dataset=config["datasets"]),
        *all_metrics(),
        *rules.tables.output,
        *rules.plots.output,
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


def study_storage(wildcards):
    """A database URL from the config (one database holds every study), or a journal file per study."""
    url = config["optuna"]["storage"]
    if url:
        return url
    return f"{RESULTS}/{wildcards.dataset}/tuning/{wildcards.loss}-{wildcards.embedding}/study.journal"


def uses_gpu(device):
    """gpu=1 for a job that may take the GPU: `--resources gpu=1` then runs one such job at a time."""
    return 0 if device == "cpu" else 1
