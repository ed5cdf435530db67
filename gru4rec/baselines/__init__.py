"""Baselines for the comparison tables: RANDOM, POP, S-POP, Item-KNN and BPR-MF (the ICLR 2016 paper's,
as in the original code's baselines.py), SKNN and V-SkNN (session-rec).

Each one is fitted on the same events as GRU4Rec and implements the evaluator's model protocol,
so `evaluate(make_baseline("vsknn").fit(train), test)` ranks its scores exactly as GRU4Rec's.

    >>> model = make_baseline("item-knn", n_sims=100, lmbd=20).fit(train_df)
"""

from __future__ import annotations

import difflib

from ..errors import ParameterError
from .base import UNSCORED, Baseline
from .bprmf import BPRMF
from .itemknn import ItemKNN
from .popularity import Pop, Random, SessionPop
from .sknn import SKNN, VSKNN

BASELINES: dict[str, type[Baseline]] = {
    "random": Random,
    "pop": Pop,
    "spop": SessionPop,
    "itemknn": ItemKNN,
    "bprmf": BPRMF,
    "sknn": SKNN,
    "vsknn": VSKNN,
}


def baseline_class(name: str) -> type[Baseline]:
    """The class of a baseline name; case, '-' and '_' are ignored ('V-SkNN', 'item_knn')."""
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in BASELINES:
        close = difflib.get_close_matches(key, BASELINES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ParameterError(f"unknown baseline '{name}'{hint}; expected one of: {', '.join(BASELINES)}")
    return BASELINES[key]


def make_baseline(name: str, seed: int = 42, device="cpu", **params) -> Baseline:
    """An unfitted baseline; unknown names, unknown parameters and bad values are one-line ParameterErrors.
    `device` is where its scorers put the scores by default (the evaluator's device)."""
    return baseline_class(name)(params, seed=seed, device=device)


def parse_baseline_params(text: str) -> dict:
    """'name=value,name=value' (the -ps syntax) to a dict of strings; the baseline checks names and values."""
    out = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not name or not value:
            raise ParameterError(f"malformed parameter '{item.strip()}' in the parameter string: expected name=value")
        if name in out:
            raise ParameterError(f"parameter {name} is given twice in the parameter string")
        out[name] = value
    return out


__all__ = [
    "BASELINES",
    "UNSCORED",
    "Baseline",
    "baseline_class",
    "make_baseline",
    "parse_baseline_params",
    "Random",
    "Pop",
    "SessionPop",
    "ItemKNN",
    "BPRMF",
    "SKNN",
    "VSKNN",
]
