"""Next-item evaluation: Recall@N and MRR@N, ranking the target against every training item.

Each test session starts from a zero hidden state; for every event but the last the model scores
all items and the next event's item is the only relevant one. Test events whose item the model
does not know are dropped first (and counted). Sessions run in parallel, as in training.

Any model that implements the protocol below can be evaluated (GRU4Rec and the baselines):
  model.n_items, model.item_index(ids) -> model columns (-1: unknown), model.require_trained(),
  model.session_scorer(width, device) -> scorer with keep(idx), reset(new) and
  step(items) -> (w, n_items) scores (higher is better); optional model.item_support.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .batching import SessionRunner, session_data, sort_sessions
from .errors import DataError, ParameterError

TIE_MODES = ("standard", "conservative", "median", "tiebreaking")
MAX_SCORE_ELEMENTS = 1 << 26  # bound on one step's score matrix (slots x items), to bound memory


@dataclass
class EvaluationResult:
    cutoffs: tuple
    recall: dict = field(default_factory=dict)
    mrr: dict = field(default_factory=dict)
    n_predictions: int = 0
    n_dropped: int = 0
    n_sessions: int = 0
    seconds: float = 0.0
    mode: str = "standard"

    def format_lines(self) -> list[str]:
        """One line per cut-off, in the reference implementation's format."""
        return [f"Recall@{n}: {self.recall[n]:.6f} MRR@{n}: {self.mrr[n]:.6f}" for n in self.cutoffs]

    def as_dict(self) -> dict:
        out = {}
        for n in self.cutoffs:
            out[f"recall_at_{n}"] = self.recall[n]
            out[f"mrr_at_{n}"] = self.mrr[n]
        out.update(
            n_predictions=self.n_predictions,
            n_dropped=self.n_dropped,
            n_sessions=self.n_sessions,
            eval_seconds=self.seconds,
        )
        return out


def ranks_of_targets(scores: torch.Tensor, targets: torch.Tensor, mode: str, generator=None) -> torch.Tensor:
    """1-based rank of each row's target among all columns, under the given tie mode.

    standard: 1 + number of items scored higher; conservative: below every equally scored item;
    median: half of the equally scored items count as above; tiebreaking: a uniformly random
    position among the equally scored items (what a tiny random perturbation would give).
    """
    t = scores.gather(1, targets.unsqueeze(1))
    higher = (scores > t).sum(dim=1)
    if mode == "standard":
        return (higher + 1).to(torch.float64)
    equal = (scores == t).sum(dim=1)  # includes the target itself
    if mode == "conservative":
        return (higher + equal).to(torch.float64)
    if mode == "median":
        return higher + 1 + 0.5 * (equal - 1).to(torch.float64)
    if mode == "tiebreaking":
        u = torch.rand(len(targets), generator=generator, device=scores.device, dtype=torch.float64)
        return (higher + 1).to(torch.float64) + torch.floor(u * equal)
    raise ParameterError(f"tie mode '{mode}' is not valid; expected one of: {', '.join(TIE_MODES)}")


def _check_cutoffs(cutoffs):
    try:
        cutoffs = tuple(int(c) for c in cutoffs)
    except (TypeError, ValueError):
        raise ParameterError(f"cut-offs must be positive integers, got {cutoffs!r}") from None
    if not cutoffs or min(cutoffs) < 1:
        raise ParameterError(f"cut-offs must be positive integers, got {list(cutoffs)}")
    return cutoffs


@torch.no_grad()
def evaluate(
    model,
    data,
    cutoffs=(20,),
    mode: str = "standard",
    batch_size: int = 512,
    session_key: str = "SessionId",
    item_key: str = "ItemId",
    time_key: str = "Time",
    seed: int = 0,
    targets: str = "all",
) -> EvaluationResult:
    """Recall@N and MRR@N of `model` on the test events in `data`, for every N in `cutoffs` at once.

    targets="all" scores every next event (session-based protocol); targets="last" scores only
    each session's last event, after running the model over the rest of it (the sequence-aware
    "last item" protocol).
    """
    from .data import validate_events

    cutoffs = _check_arguments(cutoffs, mode, targets, batch_size)
    model.require_trained()
    df = validate_events(data, session_key, item_key, time_key, source="test data")
    t0 = time.perf_counter()
    sd, n_dropped = _known_sessions(model, df, session_key, item_key, time_key)
    result = EvaluationResult(cutoffs=cutoffs, n_dropped=n_dropped, mode=mode, n_sessions=sd.n_sessions)
    dev = getattr(model, "device", torch.device("cpu"))
    width = max(1, min(int(batch_size), MAX_SCORE_ELEMENTS // max(model.n_items, 1)))
    runner = SessionRunner(
        torch.from_numpy(sd.items).to(dev), sd.offsets, np.arange(sd.n_sessions), width, with_events=targets == "last"
    )
    counts = _RankCounts(cutoffs, mode, seed, dev)
    is_last = _is_last_event(sd, dev) if targets == "last" else None
    scorer = model.session_scorer(max(runner.first_width, 1), dev)
    for _, X, T, events in runner.steps(scorer):
        scores = scorer.step(X)
        if is_last is not None:  # only the predictions of each session's last event count
            keep = is_last[events + 1]
            scores, T = scores[keep], T[keep]
            if len(T) == 0:
                continue
        counts.add(scores, T)
    if counts.n == 0:
        raise DataError("no test session has 2 or more events with known items: nothing to evaluate")
    result.n_predictions = counts.n
    result.recall, result.mrr = counts.metrics()
    result.seconds = time.perf_counter() - t0
    return result


def _check_arguments(cutoffs, mode, targets, batch_size):
    """Raise ParameterError for a bad argument of evaluate(); returns the cut-offs as a tuple."""
    cutoffs = _check_cutoffs(cutoffs)
    if mode not in TIE_MODES:
        raise ParameterError(f"tie mode '{mode}' is not valid; expected one of: {', '.join(TIE_MODES)}")
    if targets not in ("all", "last"):
        raise ParameterError(f"targets must be 'all' or 'last', got '{targets}'")
    if int(batch_size) < 1:
        raise ParameterError(f"evaluation batch_size must be >= 1, got {batch_size}")
    return cutoffs


def _is_last_event(sd, device) -> torch.Tensor:
    """(n_events,) bool on the device: True for each session's last event."""
    last = np.zeros(len(sd.items), dtype=bool)
    last[sd.offsets[1:] - 1] = True
    return torch.from_numpy(last).to(device)


def _known_sessions(model, df, session_key, item_key, time_key):
    """Test sessions in model item columns, without the events of unknown items; and their count."""
    idx = model.item_index(df[item_key].to_numpy())
    known = idx >= 0
    n_dropped = int((~known).sum())
    if not known.any():
        raise DataError(
            f"no test event has an item known to the model ({n_dropped} events dropped): nothing to evaluate"
        )
    df = sort_sessions(df.loc[known].assign(**{item_key: idx[known]}), session_key, time_key)
    return session_data(df, df[item_key].to_numpy(), session_key, time_key), n_dropped


class _RankCounts:
    """Hits and reciprocal ranks at every cut-off, summed on the device over the predictions."""

    def __init__(self, cutoffs, mode, seed, device):
        self.cutoffs, self.mode = cutoffs, mode
        self.hits = torch.zeros(len(cutoffs), dtype=torch.float64, device=device)
        self.rr = torch.zeros(len(cutoffs), dtype=torch.float64, device=device)
        self.cut = torch.tensor(cutoffs, dtype=torch.float64, device=device).unsqueeze(1)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)
        self.n = 0

    def add(self, scores, targets):
        ranks = ranks_of_targets(scores, targets, self.mode, self.generator)
        self.n += len(targets)
        inside = ranks.unsqueeze(0) <= self.cut
        self.hits += inside.sum(dim=1)
        self.rr += (inside / ranks.unsqueeze(0)).sum(dim=1)

    def metrics(self):
        hits, rr = self.hits.cpu().numpy() / self.n, self.rr.cpu().numpy() / self.n
        return (
            {c: float(hits[i]) for i, c in enumerate(self.cutoffs)},
            {c: float(rr[i]) for i, c in enumerate(self.cutoffs)},
        )
