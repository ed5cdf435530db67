"""Next-item evaluation: Recall, MRR, NDCG, coverage and popularity at N, ranking the target
against every training item (the metrics and tie modes: gru4rec.metrics).

Each test session starts from a zero hidden state; for every event but the last the model scores
all items and the next event's item is the only relevant one. Test events whose item the model
does not know are dropped first (and counted). Sessions run in parallel, as in training.

Any model that implements the protocol below can be evaluated (GRU4Rec and the baselines):
  model.n_items, model.item_index(ids) -> model columns (-1: unknown), model.require_trained(),
  model.session_scorer(width, device) -> scorer with keep(idx), reset(new) and
  step(items) -> (w, n_items) scores (higher is better); optional model.item_support and
  scorer.step_rows(items, rows) -> scores of those rows only (the state advances in every slot).
A scorer may return the same buffer at every step: the scores are used before the next step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from .batching import SessionRunner, session_data, sort_sessions
from .errors import DataError, ParameterError
from .metrics import TIE_MODES, MetricSums, check_mode, ranks_of_targets

__all__ = ["TIE_MODES", "EvaluationResult", "evaluate", "ranks_of_targets"]

MAX_SCORE_ELEMENTS = 1 << 26  # bound on one step's score matrix (slots x items), to bound memory
METRICS = ("recall", "mrr", "ndcg", "coverage", "popularity")  # as_dict() keys: f"{metric}_at_{N}"


@dataclass
class EvaluationResult:
    cutoffs: tuple
    recall: dict = field(default_factory=dict)
    mrr: dict = field(default_factory=dict)
    ndcg: dict = field(default_factory=dict)
    coverage: dict = field(default_factory=dict)
    popularity: dict = field(default_factory=dict)  # empty when the model has no item support
    n_predictions: int = 0
    n_dropped: int = 0
    n_sessions: int = 0
    seconds: float = 0.0
    mode: str = "standard"
    # with evaluate(ranks=True): one row per prediction (see evaluate); not part of as_dict()
    ranks: pd.DataFrame | None = field(default=None, repr=False)

    def format_lines(self) -> list[str]:
        """Per cut-off, the reference implementation's line, then one with the other metrics."""
        lines = []
        for n in self.cutoffs:
            lines.append(f"Recall@{n}: {self.recall[n]:.6f} MRR@{n}: {self.mrr[n]:.6f}")
            more = f"NDCG@{n}: {self.ndcg[n]:.6f} Coverage@{n}: {self.coverage[n]:.6f}"
            lines.append(more + (f" Popularity@{n}: {self.popularity[n]:.6f}" if n in self.popularity else ""))
        return lines

    def as_dict(self) -> dict:
        out = {}
        for n in self.cutoffs:
            for name in METRICS:
                values = getattr(self, name)
                if n in values:
                    out[f"{name}_at_{n}"] = values[n]
        out.update(
            n_predictions=self.n_predictions,
            n_dropped=self.n_dropped,
            n_sessions=self.n_sessions,
            eval_seconds=self.seconds,
        )
        return out


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
    ranks: bool = False,
) -> EvaluationResult:
    """Recall, MRR, NDCG, coverage and popularity of `model` on the test events in `data`, at
    every N in `cutoffs` at once (see gru4rec.metrics for the metrics and the tie modes).

    targets="all" scores every next event (session-based protocol); targets="last" scores only
    each session's last event, after running the model over the rest of it (the sequence-aware
    "last item" protocol).

    ranks=True also returns, as `result.ranks`, the rank of every prediction's target: a DataFrame
    with one row per predicted event, in (session, time) order: the session id, `Position` (the
    target's 0-based place in its session, events sorted by time, counting every test event of
    the session, also those of unknown items), the target item id and `Rank` (float64, 1-based,
    under the tie mode). These are the ranks the metrics count: exact up to max(cutoffs), `inf`
    below (so Recall@N is the mean of Rank <= N and MRR@N of 1/Rank where Rank <= N, at every N).
    """
    from .data import validate_events

    cutoffs = _check_arguments(cutoffs, mode, targets, batch_size)
    model.require_trained()
    df = validate_events(data, session_key, item_key, time_key, source="test data")
    t0 = time.perf_counter()
    sd, n_dropped, events = _known_sessions(model, df, session_key, item_key, time_key, ranks)
    dev = getattr(model, "device", torch.device("cpu"))
    sums = MetricSums(cutoffs, mode, model.n_items, getattr(model, "item_support", None), seed, dev, ranks)
    _run(model, sd, sums, batch_size, targets == "last", dev, with_ids=ranks)
    if sums.n == 0:
        raise DataError("no test session has 2 or more events with known items: nothing to evaluate")
    result = EvaluationResult(cutoffs=cutoffs, n_dropped=n_dropped, mode=mode, n_sessions=sd.n_sessions)
    result.n_predictions = sums.n
    for name, values in sums.results().items():
        setattr(result, name, values)
    if ranks:
        ids, values = sums.ranks()
        result.ranks = events.iloc[ids.numpy()].reset_index(drop=True).assign(Rank=values.numpy())
    result.seconds = time.perf_counter() - t0
    return result


def _run(model, sd, sums: MetricSums, batch_size: int, last_only: bool, dev, with_ids: bool = False):
    """One session-parallel pass over the test sessions, adding every scored prediction to `sums`
    (with_ids: named by its target's event index in `sd`).

    With last_only, a step scores only the slots whose target ends its session, through the
    scorer's optional step_rows(items, rows) (the hidden state still advances in every slot).
    """
    width = max(1, min(int(batch_size), MAX_SCORE_ELEMENTS // max(model.n_items, 1)))
    items = torch.from_numpy(sd.items).to(dev)
    runner = SessionRunner(items, sd.offsets, np.arange(sd.n_sessions), width, with_events=last_only or with_ids)
    is_last = _is_last_event(sd, dev) if last_only else None
    scorer = model.session_scorer(max(runner.first_width, 1), dev)
    step_rows = getattr(scorer, "step_rows", None) or (lambda items, rows: scorer.step(items).index_select(0, rows))
    for _, X, T, events in runner.steps(scorer):
        ids = None if events is None else events + 1  # the targets' events
        if is_last is None:
            sums.add(scorer.step(X), T, ids if with_ids else None)
            continue
        rows = torch.nonzero(is_last[ids]).squeeze(1)
        scores = step_rows(X, rows)
        if len(rows):
            sums.add(scores, T.index_select(0, rows), ids.index_select(0, rows) if with_ids else None)


def _check_arguments(cutoffs, mode, targets, batch_size):
    """Raise ParameterError for a bad argument of evaluate(); returns the cut-offs as a tuple."""
    cutoffs = _check_cutoffs(cutoffs)
    check_mode(mode)
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


def _known_sessions(model, df, session_key, item_key, time_key, with_events=False):
    """Test sessions in model item columns, without the events of unknown items; the number of
    those; and with_events, the kept events (session id, Position in the whole session, item id)
    in the same order (else None)."""
    idx = model.item_index(df[item_key].to_numpy())
    known = idx >= 0
    n_dropped = int((~known).sum())
    if not known.any():
        raise DataError(
            f"no test event has an item known to the model ({n_dropped} events dropped): nothing to evaluate"
        )
    # sorted (stably) before the unknown items go: the order of the kept events is the same, and
    # a target's position counts every event of its session
    column = "model_column"  # validate_events kept only the three keys
    df = sort_sessions(df.assign(**{column: idx}), session_key, time_key)
    keep = df[column].to_numpy() >= 0  # `known` in the sorted order
    events = None
    if with_events:
        s = df[session_key].to_numpy()
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        position = np.arange(len(s)) - np.repeat(starts, np.diff(np.r_[starts, len(s)]))
        events = pd.DataFrame(
            {session_key: s[keep], "Position": position[keep], item_key: df[item_key].to_numpy()[keep]}
        )
    df = df.loc[keep]
    return session_data(df, df[column].to_numpy(), session_key, time_key), n_dropped, events
