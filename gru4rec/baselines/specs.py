"""What the baselines are called and which parameters they take, without torch: the CLI's help,
the search spaces and the workflow's config check (when it parses its DAG) read it before any
baseline is built. The classes (gru4rec.baselines) take their NAME, PARAMS and CHOICES from here.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from ..errors import ParameterError
from ..params import _COERCE, Spec


@dataclass(frozen=True)
class BaselineSpec:
    name: str  # as the tables print it
    params: dict[str, Spec] = field(default_factory=dict)
    choices: dict[str, tuple] = field(default_factory=dict)  # the strings a str parameter allows
    seeded: bool = False  # its result depends on the seed (a final run repeats it per seed)


TOP_N = Spec("int", 100, "only the top_n most popular items get a popularity score (0: every item)", low=0)
K = Spec("int", 100, "number of neighbour sessions", low=1)
SAMPLE_SIZE = Spec("int", 1000, "candidate sessions: the most recent ones sharing an item (0: all)", low=0)
POSITION_WEIGHTINGS = ("div", "quadratic", "log", "same")  # gru4rec.baselines.sknn.POSITION_WEIGHTS
SCORE_DECAYS = ("div", "quadratic", "log", "same")  # gru4rec.baselines.sknn.SCORE_DECAYS

SPECS: dict[str, BaselineSpec] = {
    "random": BaselineSpec("RANDOM", seeded=True),
    "pop": BaselineSpec("POP", {"top_n": TOP_N}),
    "spop": BaselineSpec("S-POP", {"top_n": TOP_N}),
    "itemknn": BaselineSpec(
        "Item-KNN",
        {
            "n_sims": Spec("int", 100, "similar items kept per item", low=1),
            "lmbd": Spec("float", 20.0, "regularisation of the supports: discounts rare items", low=0),
            "alpha": Spec(
                "float",
                0.5,
                "weight of the current item's support in the normaliser (0.5: cosine-like, 1: confidence)",
                low=0,
                high=1,
            ),
        },
    ),
    "bprmf": BaselineSpec(
        "BPR-MF",
        {
            "n_factors": Spec("int", 100, "number of latent factors", low=1),
            "n_iterations": Spec("int", 10, "passes over the training events", low=1),
            "learning_rate": Spec("float", 0.01, "SGD learning rate", low=0, low_open=True),
            "lambda_session": Spec("float", 0.0, "L2 regularisation of the session factors", low=0),
            "lambda_item": Spec("float", 0.0, "L2 regularisation of the item factors", low=0),
            "sigma": Spec("float", 0.05, "width of the initialisation", low=0, low_open=True),
            "init_normal": Spec("bool", False, "normal instead of uniform initialisation"),
            "batch_size": Spec("int", 1024, "events per SGD update (1: the reference's per-event SGD)", low=1),
        },
        seeded=True,
    ),
    "sknn": BaselineSpec("SKNN", {"k": K, "sample_size": SAMPLE_SIZE}),
    "vsknn": BaselineSpec(
        "V-SkNN",
        {
            "k": K,
            "sample_size": SAMPLE_SIZE,
            "weighting": Spec(
                "str", "div", "weight of the current session's items by position: div, quadratic, log, same"
            ),
            "weighting_score": Spec(
                "str",
                "div",
                "decay of a neighbour's votes by the position of the most recent shared item: "
                "div, quadratic, log, same",
            ),
            "similarity": Spec("str", "vec", "vec (weighted overlap / |A|) or cosine"),
            "idf_weighting": Spec("float", 0.0, "strength of the IDF boost of rare items (0: off)", low=0),
        },
        {"weighting": POSITION_WEIGHTINGS, "weighting_score": SCORE_DECAYS, "similarity": ("vec", "cosine")},
    ),
}


def baseline_key(name: str) -> str:
    """The registry key of a baseline name; case, '-' and '_' are ignored ('V-SkNN', 'item_knn')."""
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in SPECS:
        close = difflib.get_close_matches(key, SPECS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ParameterError(f"unknown baseline '{name}'{hint}; expected one of: {', '.join(SPECS)}")
    return key


def validate_baseline_params(name: str, params: dict) -> dict:
    """All parameters of a baseline, defaults filled in, values coerced and checked (one-line ParameterError)."""
    spec = SPECS[baseline_key(name)]
    for param in params:
        if param not in spec.params:
            valid = ", ".join(spec.params) or "none"
            raise ParameterError(f"unknown parameter '{param}' for baseline {spec.name}; valid parameters: {valid}")
    out = {}
    for param, p in spec.params.items():
        value = _COERCE[p.type](param, params[param]) if param in params else p.default
        if p.type in ("int", "float") and not p.in_bounds(value):
            raise ParameterError(
                f"parameter {param}={value!r} of baseline {spec.name} is not valid: expected a value in {p.interval()}"
            )
        if param in spec.choices and value not in spec.choices[param]:
            raise ParameterError(
                f"parameter {param}={value!r} of baseline {spec.name} is not valid: expected one "
                f"of {', '.join(spec.choices[param])}"
            )
        out[param] = value
    return out
