"""The search spaces of the studies and the settings they fix: GRU4Rec's (the papers' space per
loss, the embedding modes' parameters) and the tuned baselines'. Needs neither torch nor Optuna:
the workflow checks a config's spaces with it when it parses its DAG.
"""

from __future__ import annotations

from gru4rec.baselines.specs import baseline_key, validate_baseline_params
from gru4rec.errors import ParameterError
from gru4rec.params import EMBEDDING_MODES, LOSSES, RANKING_LOSSES, validate_params

# The papers' search space (shared by the losses; see paper_space).
PAPER_SPACE = {
    "layers": {"type": "int", "low": 64, "high": 512, "step": 32},
    "batch_size": {"type": "int", "low": 32, "high": 256, "step": 16},
    "learning_rate": {"type": "float", "low": 0.01, "high": 0.25, "step": 0.005},
    "dropout_p_embed": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.05},
    "dropout_p_hidden": {"type": "float", "low": 0.0, "high": 0.7, "step": 0.05},
    "momentum": {"type": "float", "low": 0.0, "high": 0.9, "step": 0.05},
    "sample_alpha": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.1},
}
BPREG = {"type": "float", "low": 0.0, "high": 2.0, "step": 0.05}  # BPR-max's score regularisation
# The final activations a ranking loss is tuned over (the papers tuned BPR-max's).
RANKING_FINAL_ACTS = {"type": "categorical", "choices": ["elu-0.5", "elu-1", "linear"]}
# The model parameters of each embedding mode (gru4rec.params.EMBEDDING_MODES).
EMBEDDING_PARAMS = {
    "none": {"embedding": 0, "constrained_embedding": False},
    "separate": {"embedding": "layersize", "constrained_embedding": False},
    "shared": {"embedding": 0, "constrained_embedding": True},
}
# The kNN baselines' (and BPR-MF's) small default spaces: the parameters the papers tuned (Item-KNN:
# the original code's n_sims, lmbd, alpha; SKNN / V-SkNN: session-rec's k, sample_size and V-SkNN's
# weightings and IDF). POP, S-POP and RANDOM have nothing to tune.
BASELINE_SPACES = {
    "itemknn": {
        "n_sims": {"type": "int", "low": 20, "high": 200, "step": 20},
        "lmbd": {"type": "float", "low": 0.0, "high": 100.0, "step": 5.0},
        "alpha": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.1},
    },
    "bprmf": {
        "n_factors": {"type": "int", "low": 32, "high": 128, "step": 32},
        "learning_rate": {"type": "float", "low": 0.005, "high": 0.1, "log": True},
        "lambda_item": {"type": "float", "low": 0.0, "high": 0.1, "step": 0.01},
        "lambda_session": {"type": "float", "low": 0.0, "high": 0.1, "step": 0.01},
    },
    "sknn": {
        "k": {"type": "int", "low": 50, "high": 500, "step": 50},
        "sample_size": {"type": "categorical", "choices": [500, 1000, 2500, 5000, 10000]},
    },
    "vsknn": {
        "k": {"type": "int", "low": 50, "high": 500, "step": 50},
        "sample_size": {"type": "categorical", "choices": [500, 1000, 2500, 5000, 10000]},
        "weighting": {"type": "categorical", "choices": ["div", "quadratic", "log", "same"]},
        "weighting_score": {"type": "categorical", "choices": ["div", "quadratic", "log", "same"]},
        "idf_weighting": {"type": "categorical", "choices": [0, 1, 2, 5, 10]},
    },
}


def paper_space(loss: str) -> dict:
    """The papers' search space; BPR-max adds bpreg, the ranking losses the final activation."""
    extra = {"bpreg": BPREG} if loss == "bpr-max" else {}
    if loss in RANKING_LOSSES:
        extra["final_act"] = RANKING_FINAL_ACTS
    return dict(PAPER_SPACE, **extra)


def fixed_params(loss: str, embedding: str, *overrides: dict | None) -> dict:
    """The papers' settings fixed during tuning (n_sample 2048, n_epochs 10; log-Q 1 for
    cross-entropy, 0 otherwise) for a loss and embedding mode, then the overrides in order."""
    if loss not in LOSSES:
        raise ParameterError(f"loss must be one of {', '.join(LOSSES)}, got '{loss}'")
    if embedding not in EMBEDDING_PARAMS:
        raise ParameterError(f"embedding mode must be one of {', '.join(EMBEDDING_MODES)}, got '{embedding}'")
    out = {"loss": loss, "final_act": "softmax"} if loss == "cross-entropy" else {"loss": loss}
    out.update(logq=1.0 if loss == "cross-entropy" else 0.0, n_sample=2048, n_epochs=10)
    out.update(EMBEDDING_PARAMS[embedding])
    for extra in overrides:
        out.update(extra or {})
    return out


def baseline_space(name: str) -> dict:
    """The default search space of a tuned baseline; a one-line ParameterError for one without."""
    key = baseline_key(name)
    if key not in BASELINE_SPACES:
        raise ParameterError(
            f"baseline '{name}' has no parameters to tune; tuned baselines: {', '.join(BASELINE_SPACES)}"
        )
    return BASELINE_SPACES[key]


def study_setup(model: str, tuning: dict, loss=None, embedding=None, dataset_overrides=None):
    """(space, fixed parameters, parameter check) of a study: GRU4Rec's (`model` 'gru4rec', one loss
    and embedding mode; tuning['space'] or the papers' space, the papers' fixed settings and the
    overrides) or a baseline's (tuning['baseline_space'] or its default space, nothing fixed)."""
    if model == "gru4rec":
        space = (tuning.get("space") or {}).get(loss) or paper_space(loss)
        fixed = fixed_params(loss, embedding, tuning.get("overrides"), dataset_overrides)
        return space, fixed, validate_params
    space = (tuning.get("baseline_space") or {}).get(baseline_key(model)) or baseline_space(model)
    key = baseline_key(model)
    return space, {}, lambda params: validate_baseline_params(key, params)


def as_model_params(params: dict) -> dict:
    # the space draws one layer size, the model takes a list; stepped floats print as stepped
    params = {k: round(v, 10) if isinstance(v, float) else v for k, v in params.items()}
    if "layers" in params and not isinstance(params["layers"], list):
        params["layers"] = [params["layers"]]
    return params


def check_fixed_and_space(fixed: dict, space: dict, check=validate_params):
    """Catch a misspelt parameter or an impossible bound before any training time is spent."""
    for spec in space.values():
        if spec.get("type") in ("int", "float") and not spec["low"] <= spec["high"]:
            raise ParameterError(f"search space: low must be <= high, got {spec}")
    for pick in ("low", "high"):
        probe = {
            k: (v[pick] if v.get("type") in ("int", "float") else v.get("choices", [None])[0]) for k, v in space.items()
        }
        check(dict(fixed, **as_model_params(probe)))
