"""Next-item evaluation: Recall@N and MRR@N, ranking the target against every training item.

Each test session starts from a zero hidden state; for every event but the last the model scores
all items and the next event's item is the only relevant one. Test events whose item the model
does not know are dropped first (and counted). Sessions run in parallel, as in training.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .batching import build_schedule
from .core import session_data, sort_sessions
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
        out.update(n_predictions=self.n_predictions, n_dropped=self.n_dropped, n_sessions=self.n_sessions,
                   eval_seconds=self.seconds)
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
def evaluate(model, data, cutoffs=(20,), mode: str = "standard", batch_size: int = 512,
             session_key: str = "SessionId", item_key: str = "ItemId", time_key: str = "Time",
             seed: int = 0, targets: str = "all") -> EvaluationResult:
    """Recall@N and MRR@N of `model` on the test events in `data`, for every N in `cutoffs` at once.

    targets="all" scores every next event (session-based protocol); targets="last" scores only
    each session's last event, after running the model over the rest of it (the sequence-aware
    "last item" protocol).
    """
    from .data import validate_events
    cutoffs = _check_cutoffs(cutoffs)
    if mode not in TIE_MODES:
        raise ParameterError(f"tie mode '{mode}' is not valid; expected one of: {', '.join(TIE_MODES)}")
    if targets not in ("all", "last"):
        raise ParameterError(f"targets must be 'all' or 'last', got '{targets}'")
    if int(batch_size) < 1:
        raise ParameterError(f"evaluation batch_size must be >= 1, got {batch_size}")
    model._require_trained()
    df = validate_events(data, session_key, item_key, time_key, source="test data")
    t0 = time.perf_counter()
    idx = model.item_index(df[item_key].to_numpy())
    known = idx >= 0
    n_dropped = int((~known).sum())
    df = df.loc[known].assign(**{item_key: idx[known]})
    result = EvaluationResult(cutoffs=cutoffs, n_dropped=n_dropped, mode=mode)
    if len(df) == 0:
        raise DataError(f"no test event has an item known to the model ({n_dropped} events dropped): nothing to evaluate")
    df = sort_sessions(df, session_key, time_key)
    sd = session_data(df, df[item_key].to_numpy(), session_key, time_key)
    result.n_sessions = len(sd.offsets) - 1
    net, dev = model.net, model.device
    width = max(1, min(int(batch_size), MAX_SCORE_ELEMENTS // max(model.n_items, 1)))
    sched = build_schedule(sd.offsets, np.arange(result.n_sessions), width)
    items = torch.from_numpy(sd.items).to(dev)
    events = torch.from_numpy(np.maximum(sched.inputs, 0)).to(dev)
    starts = torch.from_numpy(sched.starts).to(dev)
    shrink = {t: torch.from_numpy(k).to(dev) for t, k in sched.shrink.items()}
    hits = torch.zeros(len(cutoffs), dtype=torch.float64, device=dev)
    rr = torch.zeros(len(cutoffs), dtype=torch.float64, device=dev)
    cut = torch.tensor(cutoffs, dtype=torch.float64, device=dev).unsqueeze(1)
    g = torch.Generator(device=dev)
    g.manual_seed(seed)
    scored = None
    if targets == "last":
        is_last = np.zeros(len(sd.items), dtype=bool)
        is_last[sd.offsets[1:] - 1] = True
        scored = torch.from_numpy(is_last).to(dev)
    n = 0
    H = net.init_hidden(int(sched.width[0]) if sched.n_steps else 1)
    for t in range(sched.n_steps):
        w = int(sched.width[t])
        if t in shrink:
            H = [h.index_select(0, shrink[t]) for h in H]
        new = starts[t, :w].unsqueeze(1)
        H = [h.masked_fill(new, 0.0) for h in H]
        ev = events[t, :w]
        out = net.forward_hidden(items[ev], H)
        if scored is not None:
            keep = scored[ev + 1]
            out, ev = out[keep], ev[keep]
            if len(ev) == 0:
                continue
        ranks = ranks_of_targets(net.score_all(out), items[ev + 1], mode, g)
        n += len(ev)
        inside = ranks.unsqueeze(0) <= cut
        hits += inside.sum(dim=1)
        rr += (inside / ranks.unsqueeze(0)).sum(dim=1)
    result.n_predictions = n
    if n == 0:
        raise DataError("no test session has 2 or more events with known items: nothing to evaluate")
    hits, rr = hits.cpu().numpy() / n, rr.cpu().numpy() / n
    result.recall = {c: float(hits[i]) for i, c in enumerate(cutoffs)}
    result.mrr = {c: float(rr[i]) for i, c in enumerate(cutoffs)}
    result.seconds = time.perf_counter() - t0
    return result
