import sys

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

LOSSES = ("cross-entropy", "bpr-max")
EMBEDDINGS = ("none", "separate", "shared")
SCHEMA = "../schemas/config.schema.yaml"
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
        return f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}{known}"
    if error.validator == "required":
        return f"{where}: {error.message.replace('is a required property', 'is missing')}"
    if error.validator == "propertyNames":
        return f"{where}: the name {error.instance!r} may use letters, digits, '_', '.', '-' only"
    return f"{where}: {error.message}"


def validate_config():
    """Snakemake's validate (fills the schema's defaults); on failure, every problem as one line."""
    try:
        validate(config, schema=SCHEMA)
    except WorkflowError:
        import jsonschema
        schema = yaml.safe_load(open(workflow.source_path(SCHEMA)))
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.path))
        config_error("; ".join(_describe(e) for e in errors) or "does not match workflow/schemas/config.schema.yaml")
    for name, ds in config["datasets"].items():
        ds.setdefault("mode", config["mode"])
        if ds["mode"] == "reproduce" and ds.get("paper") not in PUBLISHED["params"]:
            config_error(f"datasets.{name}: mode 'reproduce' needs 'paper' set to one of "
                         f"{', '.join(PUBLISHED['params'])} (the published parameter sets)")
        if ds["source"] == "custom" and not ds.get("options"):
            config_error(f"datasets.{name}: a custom dataset needs 'options' (its preprocessing config, "
                         "see preprocessing/README.md)")
        if ds["source"] in ("synthetic", "custom") and ds["mode"] == "reproduce":
            config_error(f"datasets.{name}: mode 'reproduce' is for the public datasets only (source is "
                         f"'{ds['source']}')")


validate_config()
RESULTS = config["results_dir"].rstrip("/")
RAW = config["raw_dir"].rstrip("/")


wildcard_constraints:
    dataset="[^/]+",
    loss="|".join(LOSSES),
    embedding="|".join(EMBEDDINGS),


def tracking_uri():
    uri = config["mlflow"]["tracking_uri"]
    return None if uri in (None, "none", "") else uri


def dataset_config(wildcards):
    return config["datasets"][wildcards.dataset]


def combos(dataset):
    """(loss, embedding) pairs trained for a dataset: every configured study, or the published one."""
    ds = config["datasets"][dataset]
    if ds["mode"] == "reproduce":
        return [(PUBLISHED["params"][ds["paper"]]["loss"], "shared")]
    return [(loss, emb) for loss in ds["losses"] for emb in ds["embeddings"]]


def final_dir(dataset, loss, embedding):
    return f"{RESULTS}/{dataset}/final/{loss}-{embedding}"


def all_metrics():
    return [f"{final_dir(d, l, e)}/metrics.json" for d in config["datasets"] for l, e in combos(d)]


def all_stats():
    return [f"{RESULTS}/{d}/splits/stats.tsv" for d in config["datasets"]]


def all_outputs():
    return [
        *all_stats(),
        *all_metrics(),
        *[f"{RESULTS}/tables/{name}" for name in ("summary.md", "summary.csv", "paper_comparison.md", "paper_comparison.csv")],
        f"{RESULTS}/plots/metrics.png",
        f"{RESULTS}/plots/speed.png",
    ]


def raw_dir(dataset):
    return config["datasets"][dataset].get("raw") or f"{RAW}/{dataset}"


def split_file(split):
    """Input function: a split of the job's dataset."""
    return lambda wildcards: f"{RESULTS}/{wildcards.dataset}/splits/{split}.parquet"


def preprocess_input(wildcards):
    """The raw files of a public dataset (synthetic data is generated, custom files checked by preprocess)."""
    source = dataset_config(wildcards)["source"]
    return [] if source in ("synthetic", "custom") else [f"{RAW}/{wildcards.dataset}/.complete"]


def best_params(wildcards):
    """The parameters a final run trains: its study's best, or the published ones (mode reproduce)."""
    kind = "published" if dataset_config(wildcards)["mode"] == "reproduce" else "tuning"
    return f"{RESULTS}/{wildcards.dataset}/{kind}/{wildcards.loss}-{wildcards.embedding}/best_params.json"


def mlflow_ready():
    return [f"{RESULTS}/.mlflow_ready"] if tracking_uri() else []


def study_storage(wildcards):
    """A database URL from the config (one database holds every study), or a journal file per study."""
    url = config["optuna"].get("storage")
    if url:
        return url
    return f"{RESULTS}/{wildcards.dataset}/tuning/{wildcards.loss}-{wildcards.embedding}/study.journal"


def uses_gpu(device):
    """gpu=1 for a job that may take the GPU: `--resources gpu=1` then runs one such job at a time."""
    return 0 if device == "cpu" else 1
