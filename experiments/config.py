"""The workflow's config checked before any job starts: the schema (workflow/schemas/), with the
lists of names filled in from the code that defines them, then what a schema cannot say (a
published parameter set for mode reproduce, a dataset's options, every search space and override
as the jobs will check them). Every problem is one line of a ConfigError, with a did-you-mean hint
for a typo.

Snakemake calls `check_config` when it parses the DAG (workflow/rules/common.smk), so this module
needs neither torch, Optuna nor MLflow.
"""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path

import jsonschema
import yaml
from snakemake.utils import validate

from gru4rec.baselines.specs import SPECS, baseline_key
from gru4rec.errors import GRU4RecError
from gru4rec.params import EMBEDDING_MODES, LOSSES, PARAMETERS, TIE_MODES, validate_params
from preprocessing import DATASETS, PUBLIC_DATASETS, custom, synthetic

from .spaces import BASELINE_SPACES, check_fixed_and_space, study_setup

# What `datasets.<name>.models` chooses from: the GRU4Rec studies (losses x embeddings) and every
# baseline of the registry; the default is all of them. Baselines with a search space are tuned.
MODELS = ("gru4rec", *SPECS)
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


# Where people ask for sampled-negative evaluation (the target ranked among N sampled items): the
# keys are refused with the reason, before the schema would call them merely unknown.
SAMPLED_EVALUATION_KEYS = (
    "eval_negatives",
    "eval_n_negatives",
    "n_negatives",
    "num_negatives",
    "negative_samples",
    "sampled_metrics",
    "sampled_evaluation",
    "eval_sampling",
)
SAMPLED_EVALUATION = (
    "sampled-negative evaluation is refused: ranking the target among a sample of items instead of all "
    "of them inflates the metrics and can reverse which model wins (Krichene & Rendle, 'On sampled "
    "metrics for item recommendation', KDD 2020; Hidasi & Czapp, 'Widespread flaws in offline evaluation "
    "of recommender systems', RecSys 2023); every evaluation here ranks the target against every item "
    "(n_sample in the parameters is the training's negative sampling, which is fine)"
)


class ConfigError(GRU4RecError):
    """A user's mistake in the workflow config: the message is one line."""


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
    if "propertyNames" in error.absolute_schema_path:  # a key of a mapping: `got` is the key
        names = error.schema.get("enum")
        if names is not None:
            return f"{where}: unknown key {got!r}{did_you_mean(got, names)}; expected one of {', '.join(names)}"
        if where == "datasets":
            return (
                f"datasets: the dataset name {got!r} may use letters, digits, '_', '.' and '-' only, "
                "starting with a letter or digit (it names the dataset's directories)"
            )
        return f"{where}: the key {got!r} does not match {error.schema.get('pattern')!r}"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(got) - set(allowed))
        hints = "".join(did_you_mean(u, allowed) for u in unknown[:1])
        known = f"; known keys: {', '.join(allowed)}" if allowed else ""
        plural = "s" if len(unknown) > 1 else ""
        return f"{where}: unknown key{plural} {', '.join(map(repr, unknown))}{hints}{known}"
    if error.validator == "required":
        return f"{where}: {error.message.replace('is a required property', 'is missing')}"
    if error.validator == "type":
        hint = ""
        if isinstance(got, str) and {"integer", "number"} & set(
            [error.validator_value] if isinstance(error.validator_value, str) else error.validator_value
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
    if error.validator == "enum":  # jsonschema's "'x' is not one of ['a', 'b']", and a hint
        names = [str(v) for v in error.validator_value]
        return f"{where}: {error.message}{did_you_mean(got, names)}"
    if error.validator in ("minimum", "exclusiveMinimum"):
        op = ">=" if error.validator == "minimum" else ">"
        kind = "an integer" if error.schema.get("type") == "integer" else "a number"
        return f"{where}: expected {kind} {op} {error.validator_value}, got {got!r}"
    if error.validator == "minProperties" and where == "datasets":
        return (
            "datasets: is empty; expected at least one dataset, e.g. 'demo: {source: synthetic}' (see config/README.md)"
        )
    if error.validator in ("minProperties", "minItems"):
        return f"{where}: is empty; expected at least {error.validator_value} entry"
    if error.validator == "uniqueItems":
        return f"{where}: has repeated entries, got {got!r}"
    if error.validator == "pattern" and error.schema.get("description"):
        return f"{where}: expected {error.schema['description']}, got {got!r}"
    return f"{where}: {error.message}"


def schema_errors(config: dict, schema_path) -> list:
    """Every problem of the config against the schema, with the lists of names filled in."""
    schema = yaml.safe_load(Path(schema_path).read_text())
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
            out.append(f"{at}: unknown parameter{did_you_mean(name, valid)}; valid: {', '.join(valid)}")
            continue
        if spec["type"] == "categorical":
            continue
        low, high = spec["low"], spec["high"]
        if spec["type"] == "int" and not all(isinstance(v, int) for v in (low, high, spec.get("step", 1))):
            out.append(f"{at}: an int range needs integer low, high and step, got {spec}")
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


def study_problem(config, published, name, ds, loss, emb):
    """(where, message) or None: a GRU4Rec study's parameters (its fixed settings and overrides with either end of every
    range of its space, then the final run's overrides) as the jobs will check them."""
    tuning, final = config["tuning"], config["final"]
    if ds["mode"] == "reproduce":
        base = dict(published["params"][ds["paper"]])
    else:
        space, fixed, check = study_setup("gru4rec", tuning, loss, emb, ds.get("tuning_overrides"))
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
                *([f"datasets.{name}.tuning_overrides"] if ds.get("tuning_overrides") else []),
            ]
            return " with ".join(parts), str(e)
        low = {k: v.get("low", (v.get("choices") or [None])[0]) for k, v in space.items()}
        if "layers" in low and not isinstance(low["layers"], list):
            low["layers"] = [low["layers"]]
        base = dict(fixed, **low)
    try:
        validate_params(dict(base, **(final["overrides"] or {})))
    except GRU4RecError as e:
        return "final.overrides", str(e)
    return None


def parameter_problems(config, published):
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
        out += space_problems(where, space, list(SPECS[base].params))
    if out:
        return out
    failing = {}  # (where, message) -> the studies it concerns
    for name, ds in config["datasets"].items():
        if "gru4rec" in ds["models"]:
            pairs = (
                [(published["params"][ds["paper"]]["loss"], "shared")]
                if ds["mode"] == "reproduce"
                else [(l, e) for l in ds["losses"] for e in ds["embeddings"]]
            )
            for loss, emb in pairs:
                problem = study_problem(config, published, name, ds, loss, emb)
                if problem:
                    failing.setdefault(problem, []).append(f"{name}/{loss}-{emb}")
    out += [f"{where}: {message} (study {', '.join(studies)})" for (where, message), studies in failing.items()]
    for base in dict.fromkeys(b for ds in config["datasets"].values() for b in ds["models"]):
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
    return [f"{at}: dataset source '{source}' takes no options (only synthetic and custom do)"]


def sampled_evaluation_problems(config: dict) -> list:
    """Any key asking for sampled-negative evaluation, at the top level, in tuning, final or a dataset."""
    places = [("", config), ("tuning.", config.get("tuning")), ("final.", config.get("final"))]
    datasets = config.get("datasets")
    if isinstance(datasets, dict):
        places += [(f"datasets.{name}.", ds) for name, ds in datasets.items()]
    return [
        f"{prefix}{key}: {SAMPLED_EVALUATION}"
        for prefix, node in places
        if isinstance(node, dict)
        for key in node
        if key in SAMPLED_EVALUATION_KEYS
    ]


def window_problems(name, ds) -> list:
    """A training window needs a time split: a custom dataset with split mode 'last' has none."""
    days, options = ds.get("train_window_days"), ds.get("options")
    if not days or ds["source"] != "custom" or not options or set(options) == {"config"}:
        return []
    from preprocessing import recipes

    try:
        recipes.check_window(custom.recipe(custom.load_config(dict(options))), days)
    except GRU4RecError as e:
        return [f"datasets.{name}.train_window_days: {e}"]
    return []


def published_statistics_problems(config: dict, published: dict) -> list:
    """A published statistic of a dataset the config uses that is not null or a positive integer:
    said before any job, not when its preprocessing job runs."""
    from preprocessing import checks

    problems = []
    for source in dict.fromkeys(ds["source"] for ds in config["datasets"].values()):
        try:
            checks.load_published(source, published)
        except GRU4RecError as e:
            problems.append(str(e))
    return problems


def check_config(config: dict, schema_path, published: dict) -> None:
    """Check the config (every problem on one line, as a ConfigError), then fill in the schema's
    defaults and the per-dataset ones, in place."""
    refused = sampled_evaluation_problems(config)
    if refused:
        raise ConfigError("; ".join(refused))
    errors = schema_errors(config, schema_path)
    if errors:
        raise ConfigError("; ".join(_describe(e) for e in errors))
    validate(config, schema=str(schema_path))  # Snakemake's validation: fills in every default
    if not config["mlflow"]["tracking_uri"]:
        config["mlflow"]["tracking_uri"] = f"sqlite:///{config['results_dir'].rstrip('/')}/mlflow.db"
    problems = []
    if max(config["final"]["cutoffs"]) < 20:
        problems.append(
            f"final.cutoffs: the tables compare Recall@20 and MRR@20, as the papers do; "
            f"include a cut-off of 20 or more, got {config['final']['cutoffs']}"
        )
    for name, ds in config["datasets"].items():
        ds.setdefault("mode", config["mode"])
        ds.setdefault("models", list(MODELS))
        if ds["mode"] == "reproduce" and ds.get("paper") not in published["params"]:
            problems.append(
                f"datasets.{name}: mode 'reproduce' needs 'paper' set to one of "
                f"{', '.join(published['params'])} (the published parameter sets)"
            )
        if ds["source"] == "custom" and not ds.get("options"):
            problems.append(
                f"datasets.{name}: a custom dataset needs 'options' (its preprocessing config, "
                "see preprocessing/README.md)"
            )
        if ds["source"] in ("synthetic", "custom") and ds["mode"] == "reproduce":
            problems.append(
                f"datasets.{name}: mode 'reproduce' is for the public datasets only (source is '{ds['source']}')"
            )
        options = options_problems(name, ds)
        problems += options or window_problems(name, ds)
    problems += published_statistics_problems(config, published)
    if not problems:
        problems = parameter_problems(config, published)
    if problems:
        raise ConfigError("; ".join(problems))


def seeds_for(model: str, first_seed: int, n_seeds: int) -> list[int]:
    """The seeds a final model runs with: n_seeds consecutive ones from first_seed for GRU4Rec and
    the baselines whose result depends on the seed (RANDOM; BPR-MF's initialisation and sampling),
    the first one only for a deterministic baseline (one run says all)."""
    seeded = model == "gru4rec" or SPECS[baseline_key(model)].seeded
    return [first_seed + k for k in range(n_seeds if seeded else 1)]
