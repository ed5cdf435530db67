"""GRU4Rec: session-based recommendation with recurrent neural networks, in PyTorch.

A faithful reimplementation of Hidasi et al. (ICLR 2016; CIKM 2018): session-parallel
mini-batches, in-batch plus sampled negatives, cross-entropy (with log-Q) and BPR-max losses,
Adagrad with momentum and sparse item-matrix updates, full-ranking evaluation.
"""
__version__ = "0.1.0"

from .core import GRU4Rec  # noqa: E402
from .errors import DataError, GRU4RecError, ParameterError, TrainingDivergedError  # noqa: E402
from .evaluation import EvaluationResult, evaluate  # noqa: E402
from .recommend import recommend  # noqa: E402

__all__ = ["GRU4Rec", "evaluate", "EvaluationResult", "recommend", "read_events", "GRU4RecError",
           "ParameterError", "DataError", "TrainingDivergedError", "__version__"]


def __getattr__(name):
    # read_events lives with the input validation; imported on first use to keep `import gru4rec` light
    if name == "read_events":
        from .data import read_events
        return read_events
    raise AttributeError(f"module 'gru4rec' has no attribute '{name}'")
