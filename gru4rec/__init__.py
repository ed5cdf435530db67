"""GRU4Rec: session-based recommendation with recurrent neural networks, in PyTorch.

A faithful reimplementation of Hidasi et al. (ICLR 2016; CIKM 2018): session-parallel
mini-batches, in-batch plus sampled negatives, cross-entropy (with log-Q) and BPR-max losses,
Adagrad with momentum and sparse item-matrix updates, full-ranking evaluation.

The model library only: it needs torch, numpy, pandas and pyarrow, and never imports the
experiment pipeline (`experiments`: Optuna, MLflow, plots) or `preprocessing`.
"""

__version__ = "0.1.0"  # the one place of the version (pyproject.toml reads it from here)

from .core import GRU4Rec  # noqa: E402
from .data import read_events  # noqa: E402
from .errors import DataError, GRU4RecError, ParameterError, TrainingDivergedError  # noqa: E402
from .evaluation import EvaluationResult, evaluate  # noqa: E402
from .recommend import recommend  # noqa: E402

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
