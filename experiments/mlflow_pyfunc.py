"""The GRU4Rec MLflow pyfunc model: MLflow runs this file to load a logged model.

A model is logged "from code": the model is this file plus the safetensors model file (an
artifact), so loading one runs this code and reads tensors; nothing is unpickled. The file is
self-contained (it imports only gru4rec, which is logged with the model, pandas and MLflow).

predict() takes a DataFrame with one session per row: `items` (a list of item ids, oldest
first), optional `k` (default 20) and `exclude_seen` (default false); it returns, per row, the
top-k item ids after the session (`items`, best first), their `scores`, and `n_unknown` (the
session's items the model does not know, skipped as `recommend()` does).
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

DEFAULT_K = 20


class GRU4RecPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from gru4rec import GRU4Rec

        config = context.model_config or {}
        self.model = GRU4Rec.load(context.artifacts["model"], device=config.get("device", "cpu"))

    def predict(self, context, model_input: pd.DataFrame, params=None):
        from gru4rec.errors import GRU4RecError

        try:
            return recommend_frame(self.model, model_input)
        except GRU4RecError as e:  # a bad request: MLflow's server answers 400 with this message
            raise MlflowException(str(e), INVALID_PARAMETER_VALUE) from None


def recommend_frame(model, frame) -> pd.DataFrame:
    """Top-k after each row's session: the whole sessions are fed to a SessionRecommender."""
    from gru4rec.streaming import SessionRecommender

    sessions, k, exclude = _read_frame(frame)
    n = len(sessions)
    rows = np.repeat(np.arange(n), [len(s) for s in sessions])
    rec = SessionRecommender(model, k=min(int(k.max(initial=1)), model.n_items), max_sessions=max(n, 1))
    known = rec.feed(rows, [item for s in sessions for item in s])
    out = [None] * n
    for flag in (False, True):
        part = np.flatnonzero(exclude == flag)
        for i, r in zip(part, rec.recommendations(part, exclude_seen=flag)):
            out[i] = r
    return pd.DataFrame(
        {
            "items": [r.items[: k[i]].tolist() for i, r in enumerate(out)],
            "scores": [r.scores[: k[i]].astype(float).tolist() for i, r in enumerate(out)],
            "n_unknown": np.bincount(rows[~known], minlength=n),
        }
    )


def _read_frame(frame):
    """Sessions, k and exclude_seen per row, validated (ParameterError naming the column and row)."""
    from gru4rec.errors import ParameterError

    if isinstance(frame, dict):
        frame = pd.DataFrame(frame)
    if not isinstance(frame, pd.DataFrame) or "items" not in frame.columns:
        raise ParameterError("the input needs a column 'items' with one list of item ids (a session) per row")
    sessions = []
    for i, s in enumerate(frame["items"]):
        if isinstance(s, (str, bytes)) or not isinstance(s, (list, tuple, np.ndarray)):
            raise ParameterError(f"column 'items', row {i}: expected a list of item ids, got {type(s).__name__}")
        sessions.append(list(s))
    k = _column(frame, "k", DEFAULT_K)
    exclude = _column(frame, "exclude_seen", False)
    bad = [i for i, v in enumerate(k) if not _positive_int(v)]
    if bad:
        raise ParameterError(f"column 'k', row {bad[0]}: expected a positive integer, got {k[bad[0]]!r}")
    bad = [i for i, v in enumerate(exclude) if not isinstance(v, (bool, np.bool_))]
    if bad:
        raise ParameterError(f"column 'exclude_seen', row {bad[0]}: expected true or false, got {exclude[bad[0]]!r}")
    return sessions, np.array([int(v) for v in k], dtype=np.int64), np.array(exclude, dtype=bool)


def _positive_int(v) -> bool:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        return False
    return float(v).is_integer() and v >= 1


def _column(frame, name, default) -> list:
    """The column's values, `default` where it is absent or missing (None, NaN)."""
    if name not in frame.columns:
        return [default] * len(frame)
    return [default if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in frame[name]]


mlflow.models.set_model(GRU4RecPyfunc())
