import json
from pathlib import Path

import yaml
from snakemake.utils import validate

# One clear error before any job starts: the config against its schema, then the cross-checks
# a schema cannot express.
validate(config, schema="../schemas/config.schema.yaml")

RESULTS = config["results_dir"]
RAW = config["raw_dir"]
LOSSES = ("cross-entropy", "bpr-max")
EMBEDDINGS = ("none", "separate", "shared")
PUBLISHED = yaml.safe_load(open(workflow.source_path("../../config/published.yaml")))


def _check_datasets():
    for name, ds in config["datasets"].items():
        if ds["mode"] == "reproduce" and ds.get("paper") not in PUBLISHED["params"]:
            raise ValueError(
                f"config: datasets.{name}: mode 'reproduce' needs 'paper' set to one of "
                f"{', '.join(PUBLISHED['params'])} (the published parameter sets)"
            )
        if ds["source"] == "custom" and not ds.get("options"):
            raise ValueError(f"config: datasets.{name}: a custom dataset needs 'options' (its preprocessing config)")


_check_datasets()

wildcard_constraints:
    dataset="[^/]+",
    loss="cross-entropy|bpr-max",
    embedding="none|separate|shared",


def tracking_uri():
    uri = config["mlflow"]["tracking_uri"]
    return None if uri in (None, "none") else uri


def combos(dataset):
    """(loss, embedding) pairs run for a dataset: all configured ones, or the published one to reproduce."""
    ds = config["datasets"][dataset]
    if ds["mode"] == "reproduce":
        return [(PUBLISHED["params"][ds["paper"]]["loss"], "shared")]
    return [(loss, emb) for loss in ds["losses"] for emb in ds["embeddings"]]


def final_dir(dataset, loss, embedding):
    return f"{RESULTS}/{dataset}/final/{loss}-{embedding}"


def all_metrics():
    return [f"{final_dir(d, l, e)}/metrics.json" for d in config["datasets"] for l, e in combos(d)]


def all_outputs():
    return [
        *[f"{RESULTS}/{d}/splits/stats.tsv" for d in config["datasets"]],
        *all_metrics(),
        f"{RESULTS}/tables/summary.md",
        f"{RESULTS}/tables/summary.csv",
        f"{RESULTS}/tables/paper_comparison.md",
        f"{RESULTS}/tables/paper_comparison.csv",
        f"{RESULTS}/plots/metrics.png",
        f"{RESULTS}/plots/speed.png",
    ]


def raw_dir(dataset):
    return config["datasets"][dataset].get("raw") or f"{RAW}/{dataset}"


def split_file(dataset, split):
    return f"{RESULTS}/{dataset}/splits/{split}.parquet"


def mlflow_ready():
    return [f"{RESULTS}/.mlflow_ready"] if tracking_uri() else []


def study_storage(wildcards):
    """The study's storage: a shared database URL from the config, or a journal file beside its results."""
    url = config["optuna"].get("storage")
    if url:
        return url
    return f"{RESULTS}/{wildcards.dataset}/tuning/{wildcards.loss}-{wildcards.embedding}/study.journal"
