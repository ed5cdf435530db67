"""Baselines for the comparison tables: RANDOM, POP, S-POP, Item-KNN and BPR-MF (the ICLR 2016 paper's,
as in the original code's baselines.py), SKNN and V-SkNN (session-rec).

Each one is fitted on the same events as GRU4Rec and implements the evaluator's model protocol,
so `evaluate(make_baseline("vsknn").fit(train), test)` ranks its scores exactly as GRU4Rec's.

    >>> model = make_baseline("item-knn", n_sims=100, lmbd=20).fit(train_df)
"""

from __future__ import annotations

import importlib

from ..errors import ParameterError
from .specs import SPECS, baseline_key, validate_baseline_params

# Each baseline's class, imported on first use: the specs above need no torch, the classes do.
_CLASSES = {
    "random": ("popularity", "Random"),
    "pop": ("popularity", "Pop"),
    "spop": ("popularity", "SessionPop"),
    "itemknn": ("itemknn", "ItemKNN"),
    "bprmf": ("bprmf", "BPRMF"),
    "sknn": ("sknn", "SKNN"),
    "vsknn": ("sknn", "VSKNN"),
}
assert tuple(_CLASSES) == tuple(SPECS)
_BY_CLASS_NAME = {cls: (module, cls) for module, cls in _CLASSES.values()}
_FROM_BASE = ("Baseline", "UNSCORED")


def baseline_class(name: str):
    """The class of a baseline name; case, '-' and '_' are ignored ('V-SkNN', 'item_knn')."""
    module, cls = _CLASSES[baseline_key(name)]
    return getattr(importlib.import_module(f".{module}", __name__), cls)


def __getattr__(name):
    if name == "BASELINES":  # registry key -> class, in the tables' order
        return {key: baseline_class(key) for key in SPECS}
    if name in _BY_CLASS_NAME:
        module, cls = _BY_CLASS_NAME[name]
        return getattr(importlib.import_module(f".{module}", __name__), cls)
    if name in _FROM_BASE:
        return getattr(importlib.import_module(".base", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_baseline(name: str, seed: int = 42, device="cpu", **params):
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
    "SPECS",
    "baseline_key",
    "validate_baseline_params",
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
