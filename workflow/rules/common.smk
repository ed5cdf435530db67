import os  # noqa: F401 (the rules use it)
import sys
from pathlib import Path

import yaml

# The jobs' scripts import the repository's packages, whichever environment runs them (this
# one, or a rule's conda environment): Snakemake passes its module search path on to them.
sys.path.insert(0, str(Path(workflow.basedir).parent))

# Parsing the DAG needs neither torch, Optuna nor MLflow: these modules import none of them.
from experiments.config import ConfigError, check_config, seeds_for
from experiments.spaces import BASELINE_SPACES
from gru4rec.baselines.specs import SPECS as BASELINES
from gru4rec.params import EMBEDDING_MODES, LOSSES

SCHEMA = "../schemas/config.schema.yaml"
PUBLISHED = yaml.safe_load(open(workflow.source_path("../../config/published.yaml")))


def config_sources():
    """Where the config came from: the config files, and --config when it was given."""
    files = [str(f) for f in workflow.configfiles]
    if any(a in ("--config", "-C") or a.startswith("--config=") for a in sys.argv):
        files.append("--config")
    return ", ".join(files) or "the config"


def check():
    """Check the config and fill in its defaults; a problem is one line and exit code 1, before any job starts."""
    try:
        check_config(config, workflow.source_path(SCHEMA), PUBLISHED)
    except ConfigError as e:
        print(f"config error ({config_sources()}): {e}", file=sys.stderr)
        sys.exit(1)


check()
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


def all_ranks():
    """ranks.parquet beside every final run's metrics.json: the per-event ranks of the significance tests."""
    return [os.path.join(os.path.dirname(m), "ranks.parquet") for m in all_metrics()]


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


def published_statistics(source):
    """The published statistics of one dataset only (a change to another's reruns nothing here)."""
    return {"statistics": {source: (PUBLISHED.get("statistics") or {}).get(source)}}


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
