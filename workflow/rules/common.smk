import difflib
import inspect
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

from experiments.tuning import BASELINE_SPACES, study_setup
from experiments.tuning import _check_fixed_and_space as check_fixed_and_space
from gru4rec.baselines import BASELINES, baseline_class
from gru4rec.errors import GRU4RecError
from gru4rec.params import PARAMETERS, validate_params
from gru4rec.evaluation import TIE_MODES
from gru4rec.losses import LOSSES
from gru4rec.model import EMBEDDING_MODES
from preprocessing import DATASETS, PUBLIC_DATASETS, custom, synthetic

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


def config_sources():
    """Where the config came from: the config files, and --config when it was given."""
    files = [str(f) for f in workflow.configfiles]
    if any(a in ("--config", "-C") or a.startswith("--config=") for a in sys.argv):
        files.append("--config")
    return ", ".join(files) or "the config"


def config_error(message):
    """A user's mistake in the config: one line, exit code 1, before any job starts."""
    print(f"config error ({config_sources()}): {message}", file=sys.stderr)
    sys.exit(1)


def did_you_mean(name, valid):
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


TYPE_NAMES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "object": "a mapping (key: value)",
    "array": "a list",
    "boolean": "true or false",
    "null": "null",
}


def _expected_type(types):
    types = [types] if isinstance(types, str) else list(types)
    return " or ".join(TYPE_NAMES.get(t, t) for t in types)


def _describe(error):
    """One line for a jsonschema error: where (a.b.c) and what was expected."""
    where = ".".join(str(p) for p in error.absolute_path) or "top level"
    got = error.instance
    if (
        "propertyNames" in error.absolute_schema_path
    ):  # a key of a mapping: `got` is the key
        names = error.schema.get("enum")
        if names is not None:
            return f"{where}: unknown key {got!r}{did_you_mean(got, names)}; expected one of {', '.join(names)}"
        if where == "datasets":
            return (
                f"datasets: the dataset name {got!r} may use letters, digits, '_', '.' and '-' only, "
                "starting with a letter or digit (it names the dataset's directories)"
            )
        return (
            f"{where}: the key {got!r} does not match {error.schema.get('pattern')!r}"
        )
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(got) - set(allowed))
        hints = "".join(did_you_mean(u, allowed) for u in unknown[:1])
        known = f"; known keys: {', '.join(allowed)}" if allowed else ""
        plural = "s" if len(unknown) > 1 else ""
        return f"{where}: unknown key{plural} {', '.join(map(repr, unknown))}{hints}{known}"
    if error.validator == "required":
        return (
            f"{where}: {error.message.replace('is a required property', 'is missing')}"
        )
    if error.validator == "type":
        hint = ""
        if isinstance(got, str) and {"integer", "number"} & set(
            [error.validator_value]
            if isinstance(error.validator_value, str)
            else error.validator_value
        ):
            try:
                float(got)
                hint = (
                    " (a number in quotes is text: remove the quotes; so is one nested"
                    " in --config KEY={...}: give it in a config file)"
                )
            except ValueError:
                pass
        return f"{where}: expected {_expected_type(error.validator_value)}, got {got!r}{hint}"
    if (
        error.validator == "enum"
    ):  # jsonschema's "'x' is not one of ['a', 'b']", and a hint
        names = [str(v) for v in error.validator_value]
        return f"{where}: {error.message}{did_you_mean(got, names)}"
    if error.validator in ("minimum", "exclusiveMinimum"):
        op = ">=" if error.validator == "minimum" else ">"
        kind = "an integer" if error.schema.get("type") == "integer" else "a number"
        return f"{where}: expected {kind} {op} {error.validator_value}, got {got!r}"
    if error.validator == "minProperties" and where == "datasets":
        return (
            "datasets: is empty; expected at least one dataset, e.g. "
            "'demo: {source: synthetic}' (see config/README.md)"
        )
    if error.validator in ("minProperties", "minItems"):
        return f"{where}: is empty; expected at least {error.validator_value} entry"
    if error.validator == "uniqueItems":
        return f"{where}: has repeated entries, got {got!r}"
    if error.validator == "pattern" and error.schema.get("description"):
        return f"{where}: expected {error.schema['description']}, got {got!r}"
    return f"{where}: {error.message}"


def schema_errors():
    """Every problem of the config against the schema, with the lists of names filled in."""
    schema = yaml.safe_load(open(workflow.source_path(SCHEMA)))
    for name, values in NAMES.items():
        schema["$defs"][name] = {"enum": list(values)}
    errors = jsonschema.Draft202012Validator(schema).iter_errors(config)
    return sorted(errors, key=lambda e: list(map(str, e.absolute_path)))


def space_problems(where, space, valid):
    """The checks of a search space that need no data: known names, low <= high, log > 0."""
    out = []
    for name, spec in (space or {}).items():
        at = f"{where}.{name}"
        if name not in valid:
            out.append(
                f"{at}: unknown parameter{did_you_mean(name, valid)}; valid: {', '.join(valid)}"
            )
            continue
        if spec["type"] == "categorical":
            continue
        low, high = spec["low"], spec["high"]
        if spec["type"] == "int" and not all(
            isinstance(v, int) for v in (low, high, spec.get("step", 1))
        ):
            out.append(
                f"{at}: an int range needs integer low, high and step, got {spec}"
            )
        elif low > high:
            out.append(f"{at}: low must be <= high, got low={low}, high={high}")
        elif spec.get("log") and low <= 0:
            out.append(f"{at}: a log range needs low > 0, got low={low}")
        elif spec.get("log") and spec.get("step") is not None:
            out.append(f"{at}: give either log or step, not both")
    return out


def name_problems(where, params, valid):
    """Unknown parameter names of an overrides mapping, with a did-you-mean hint."""
    return [
        f"{where}: unknown parameter '{k}'{did_you_mean(k, valid)}; valid: {', '.join(valid)}"
        for k in (params or {})
        if k not in valid
    ]


def study_problem(name, ds, loss, emb):
    """(where, message) or None: a GRU4Rec study's parameters (its fixed settings and overrides with either end of every
    range of its space, then the final run's overrides) as the jobs will check them."""
    tuning, final = config["tuning"], config["final"]
    if ds["mode"] == "reproduce":
        base = dict(PUBLISHED["params"][ds["paper"]])
    else:
        space, fixed, check = study_setup(
            "gru4rec", tuning, loss, emb, ds.get("tuning_overrides")
        )
        try:
            check_fixed_and_space(fixed, space, check)
        except GRU4RecError as e:
            parts = [
                (
                    f"tuning.space.{loss}"
                    if (tuning["space"] or {}).get(loss)
                    else f"the default search space of {loss}"
                ),
                *(["tuning.overrides"] if tuning["overrides"] else []),
                *(
                    [f"datasets.{name}.tuning_overrides"]
                    if ds.get("tuning_overrides")
                    else []
                ),
            ]
            return " with ".join(parts), str(e)
        low = {
            k: v.get("low", (v.get("choices") or [None])[0]) for k, v in space.items()
        }
        if "layers" in low and not isinstance(low["layers"], list):
            low["layers"] = [low["layers"]]
        base = dict(fixed, **low)
    try:
        validate_params(dict(base, **(final["overrides"] or {})))
    except GRU4RecError as e:
        return "final.overrides", str(e)
    return None


def parameter_problems():
    """The GRU4Rec and baseline parameters of the config (overrides, search spaces), checked as
    the jobs will check them, so that a typo fails now and not after the preprocessing.
    """
    tuning, valid = config["tuning"], list(PARAMETERS)
    out = name_problems("tuning.overrides", tuning["overrides"], valid)
    out += name_problems("final.overrides", config["final"]["overrides"], valid)
    for name, ds in config["datasets"].items():
        where = f"datasets.{name}.tuning_overrides"
        out += name_problems(where, ds.get("tuning_overrides"), valid)
    for loss, space in (tuning["space"] or {}).items():
        out += space_problems(f"tuning.space.{loss}", space, valid)
    for base, space in (tuning["baseline_space"] or {}).items():
        where = f"tuning.baseline_space.{base}"
        out += space_problems(where, space, list(baseline_class(base).PARAMS))
    if out:
        return out
    failing = {}  # (where, message) -> the studies it concerns
    for name, ds in config["datasets"].items():
        if "gru4rec" in ds["models"]:
            pairs = (
                [(PUBLISHED["params"][ds["paper"]]["loss"], "shared")]
                if ds["mode"] == "reproduce"
                else [(l, e) for l in ds["losses"] for e in ds["embeddings"]]
            )
            for loss, emb in pairs:
                problem = study_problem(name, ds, loss, emb)
                if problem:
                    failing.setdefault(problem, []).append(f"{name}/{loss}-{emb}")
    out += [
        f"{where}: {message} (study {', '.join(studies)})"
        for (where, message), studies in failing.items()
    ]
    for base in dict.fromkeys(
        b for ds in config["datasets"].values() for b in ds["models"]
    ):
        if base in BASELINE_SPACES:
            space, fixed, check = study_setup(base, tuning)
            try:
                check_fixed_and_space(fixed, space, check)
            except GRU4RecError as e:
                out.append(f"tuning.baseline_space.{base}: {e}")
    return list(dict.fromkeys(out))


def options_problems(name, ds):
    """A dataset's options, as preprocessing will check them."""
    options, source, at = ds.get("options"), ds["source"], f"datasets.{name}.options"
    if not options:
        return []
    if source == "synthetic":
        valid = [*inspect.signature(synthetic.generate_events).parameters, "test_days"]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            return [
                f"{at}: unknown synthetic option(s) {', '.join(map(repr, unknown))}"
                f"{did_you_mean(unknown[0], valid)}; valid: {', '.join(valid)}"
            ]
        return []
    if source == "custom":
        if set(options) == {"config"} and isinstance(options["config"], str):
            return []  # a file, read by the preprocessing job
        try:
            custom.load_config(dict(options))
        except GRU4RecError as e:
            return [f"{at}: {e}"]
        return []
    return [
        f"{at}: dataset source '{source}' takes no options (only synthetic and custom do)"
    ]


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
    problems = []
    if max(config["final"]["cutoffs"]) < 20:
        problems.append(
            f"final.cutoffs: the tables compare Recall@20 and MRR@20, as the papers do; "
            f"include a cut-off of 20 or more, got {config['final']['cutoffs']}"
        )
    for name, ds in config["datasets"].items():
        ds.setdefault("mode", config["mode"])
        ds.setdefault("models", list(MODELS))
        if ds["mode"] == "reproduce" and ds.get("paper") not in PUBLISHED["params"]:
            problems.append(
                f"datasets.{name}: mode 'reproduce' needs 'paper' set to one of "
                f"{', '.join(PUBLISHED['params'])} (the published parameter sets)"
            )
        if ds["source"] == "custom" and not ds.get("options"):
            problems.append(
                f"datasets.{name}: a custom dataset needs 'options' (its preprocessing config, "
                "see preprocessing/README.md)"
            )
        if ds["source"] in ("synthetic", "custom") and ds["mode"] == "reproduce":
            problems.append(
                f"datasets.{name}: mode 'reproduce' is for the public datasets only (source is "
                f"'{ds['source']}')"
            )
        problems += options_problems(name, ds)
    if not problems:
        problems = parameter_problems()
    if problems:
        config_error("; ".join(problems))


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
