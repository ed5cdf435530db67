"""GRU4Rec: session-based recommendation with recurrent neural networks, in PyTorch.

A faithful reimplementation of Hidasi et al. (ICLR 2016; CIKM 2018): session-parallel
mini-batches, in-batch plus sampled negatives, cross-entropy (with log-Q) and BPR-max losses,
Adagrad with momentum and sparse item-matrix updates, full-ranking evaluation.

The model library only: it needs torch, numpy, pandas and pyarrow, and never imports the
experiment pipeline (`experiments`: Optuna, MLflow, plots) or `preprocessing`.
"""

__version__ = "0.1.0"  # the one place of the version (pyproject.toml reads it from here)

import importlib
import sys
import types

from .errors import DataError, GRU4RecError, ParameterError, TrainingDivergedError  # noqa: E402

# The API that needs torch is imported on first use, so that `gru4rec.params` and the baselines'
# specs can be read without loading torch (the workflow checks a config with them when it parses
# its DAG).
_LAZY = {
    "GRU4Rec": ".core",
    "read_events": ".data",
    "EvaluationResult": ".evaluation",
    "evaluate": ".evaluation",
    "recommend": ".recommend",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    def __setattr__(self, name, value):
        # loading the submodule gru4rec.recommend must not hide the function of the same name
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "GRU4Rec",
    "evaluate",
    "EvaluationResult",
    "recommend",
    "read_events",
    "GRU4RecError",
    "ParameterError",
    "DataError",
    "TrainingDivergedError",
    "__version__",
]
