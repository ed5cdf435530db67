"""What every baseline shares: parameters, fitting bookkeeping, the item index and the slot history.

A baseline follows the model protocol of the evaluator (see `Baseline`): `n_items`,
`item_index`, `require_trained`, `item_support` and `session_scorer(width, device)`, whose
scorer takes `keep` (the batch shrinks) -> `reset` (new sessions start) -> `step` (one event per
slot, scores of every item as the next one).

Items a baseline has no score for (Item-KNN's items outside the neighbour list, the kNN methods'
items in no neighbour session, POP's items outside the top list) get `UNSCORED` = -inf: below
every real score, and equal to each other, so the evaluator's tie modes decide how a target
among them is ranked (`conservative` puts it below all of them).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..batching import index_training_events, item_positions
from ..device import resolve_device
from ..errors import GRU4RecError, ParameterError
from ..params import Spec
from .specs import SPECS, validate_baseline_params

UNSCORED = float("-inf")


@dataclass
class TrainingEvents:
    """The training events of a fit, sorted by (session, time), items as model columns."""

    items: np.ndarray  # (n_events,) int64 item column of each event
    sessions: np.ndarray  # (n_events,) int64 session number (0..n_sessions-1, in session-key order)
    offsets: np.ndarray  # (n_sessions + 1,) session k is items[offsets[k]:offsets[k+1]]
    times: np.ndarray  # (n_events,) float64 event times

    @property
    def n_sessions(self) -> int:
        return len(self.offsets) - 1


class Baseline:
    """Base class: subclasses set KEY (their entry of gru4rec.baselines.specs.SPECS, which gives
    NAME, PARAMS and CHOICES) and implement _fit(events) and _scorer(width, device)."""

    KEY = ""
    NAME = "baseline"
    PARAMS: dict[str, Spec] = {}
    CHOICES: dict[str, tuple] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.KEY:
            spec = SPECS[cls.KEY]
            cls.NAME, cls.PARAMS, cls.CHOICES = spec.name, spec.params, spec.choices

    def __init__(self, params: dict | None = None, seed: int = 42, device="cpu", **params_kw):
        merged = dict(params or {})
        merged.update(params_kw)
        self.params = self.validate_params(merged)
        self.seed = int(seed)
        self.device = resolve_device(device)  # where scores are returned (fitting runs on the CPU)
        self.item_ids: np.ndarray | None = None
        self.item_support: np.ndarray | None = None
        self._item_lookup: pd.Index | None = None
        self.trained = False
        self._verbose = False

    @classmethod
    def validate_params(cls, params: dict) -> dict:
        """All parameters, defaults filled in, values coerced and checked (one-line ParameterError)."""
        return validate_baseline_params(cls.KEY, params)

    # -- the model protocol ----------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return 0 if self.item_ids is None else len(self.item_ids)

    def item_index(self, ids) -> np.ndarray:
        """Model column of each original item id; -1 where the id is unknown (as GRU4Rec.item_index)."""
        self.require_trained()
        if self._item_lookup is None:
            self._item_lookup = pd.Index(self.item_ids)
        return item_positions(self._item_lookup, ids)

    def require_trained(self):
        if not self.trained:
            raise GRU4RecError(f"the {self.NAME} baseline is not fitted (call fit before scoring)")

    def session_scorer(self, width: int, device=None):
        """A fresh scoring state for `width` session slots, returning scores on `device` (default: self.device)."""
        self.require_trained()
        if int(width) < 1:
            raise ParameterError(f"scorer width must be >= 1, got {width}")
        return self._scorer(int(width), self.device if device is None else resolve_device(device))

    # -- fitting -----------------------------------------------------------------------------------
    def fit(
        self,
        data: pd.DataFrame,
        session_key: str = "SessionId",
        item_key: str = "ItemId",
        time_key: str = "Time",
        verbose: bool = True,
    ):
        """Fit on events (one row per event; the same columns and checks as GRU4Rec.fit). Returns self."""
        self.trained = False
        # the same checks and item columns as GRU4Rec
        df, sd, self.item_ids, self.item_support = index_training_events(data, session_key, item_key, time_key)
        self._item_lookup = None
        sessions = np.repeat(np.arange(len(sd.offsets) - 1), np.diff(sd.offsets))
        events = TrainingEvents(sd.items, sessions, sd.offsets, df[time_key].to_numpy(dtype=np.float64))
        self._verbose = verbose
        self._fit(events)
        self.trained = True
        self._log(
            f"Fitted {self.NAME} ({self.describe()}) on {len(events.items)} events, {events.n_sessions} "
            f"sessions, {self.n_items} items"
        )
        return self

    def describe(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.params.items()) or "no parameters"

    def _log(self, msg: str):
        if self._verbose:
            print(msg, file=sys.stdout, flush=True)

    def _fit(self, events: TrainingEvents):
        raise NotImplementedError

    def _scorer(self, width: int, device: torch.device):
        raise NotImplementedError


class SlotHistory:
    """The items each slot's current session has seen so far, in order (a padded NumPy array).

    Implements the protocol's keep/reset for every scorer that needs the whole session.
    """

    def __init__(self, width: int, capacity: int = 16):
        self.items = np.zeros((width, capacity), dtype=np.int64)
        self.length = np.zeros(width, dtype=np.int64)

    def keep(self, idx: torch.Tensor):
        idx = idx.cpu().numpy()
        self.items, self.length = self.items[idx], self.length[idx]

    def reset(self, new: torch.Tensor):
        self.length[new.cpu().numpy()] = 0

    def append(self, items: torch.Tensor):
        items = items.cpu().numpy()
        if self.length.max(initial=0) >= self.items.shape[1]:
            grown = np.zeros((self.items.shape[0], 2 * self.items.shape[1]), dtype=np.int64)
            grown[:, : self.items.shape[1]] = self.items
            self.items = grown
        self.items[np.arange(len(items)), self.length] = items
        self.length += 1

    def flat(self):
        """(slot, item, position) of every event of every slot's session, slot-major and in order."""
        rows = np.repeat(np.arange(len(self.length)), self.length)
        pos = np.arange(len(rows)) - np.repeat(np.cumsum(self.length) - self.length, self.length)
        return rows, self.items[rows, pos], pos


def rank_within_rows(rows: np.ndarray) -> np.ndarray:
    """0-based position of each entry within its row, for entries sorted by row (non-negative ints)."""
    counts = np.bincount(rows)
    return np.arange(len(rows)) - (np.cumsum(counts) - counts)[rows]


def dense_scores(width: int, n_items: int, rows, cols, values, device) -> torch.Tensor:
    """A (width x n_items) float32 score matrix: `values` at (rows, cols), UNSCORED elsewhere."""
    out = torch.full((width, n_items), UNSCORED, dtype=torch.float32, device=device)
    if len(rows):
        out[
            torch.as_tensor(rows, dtype=torch.long, device=device),
            torch.as_tensor(cols, dtype=torch.long, device=device),
        ] = torch.as_tensor(values, dtype=torch.float32, device=device)
    return out
