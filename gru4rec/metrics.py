"""Top-N metrics of next-item prediction, summed step by step from the score matrices of a pass.

At every cut-off N: Recall@N (= HitRate: one relevant item), MRR@N, NDCG@N (1/log2(rank + 1)),
item coverage@N (share of the catalogue in at least one top-N list) and popularity@N (mean
training support of the top-N items, divided by the largest support).

Ties. The target's rank under each tie mode is (higher: items scored above it, equal: items
scored like it, itself included) standard: higher + 1; conservative: higher + equal; median:
higher + 1 + (equal - 1) / 2; tiebreaking: a uniformly random place among its ties. A top-N list
holds the items that would count as hits if they were the target: those whose own rank under the
mode is <= N. So Recall@N is the share of events whose target is in its top-N list, and a model
gains nothing from ties in the lists that it does not gain in Recall: in `standard` mode a tie
group that reaches the N-th place is in the list whole (the list can be longer than N); in
`conservative` mode it is left out whole unless it ends by the N-th place (shorter); in `median`
mode it is in whole when its middle place is <= N; in `tiebreaking` mode the places left are
filled by a uniformly random choice among the tied items (exactly N items).

Speed. Every metric depends on ranks <= max(N) only, so one top-(max(N) + 1) per step
(gru4rec.topk) gives them all: the counts of a row are exact from its top-k unless its last two
scores tie, and only such rows (rare for a neural model, common for baselines with unscored
items) are counted over the whole catalogue. This replaces two full comparison passes per step.
"""

from __future__ import annotations

import math

import torch

from .errors import ParameterError
from .params import TIE_MODES
from .topk import top_k


def check_mode(mode: str):
    if mode not in TIE_MODES:
        raise ParameterError(f"tie mode '{mode}' is not valid; expected one of: {', '.join(TIE_MODES)}")


def ranks_from_counts(higher: torch.Tensor, equal: torch.Tensor, mode: str, generator=None, u=None) -> torch.Tensor:
    """1-based float64 ranks from the number of items scored higher than / equal to the target
    (equal includes the target itself); tiebreaking uses one uniform number per row: `u`, or
    drawn from `generator`."""
    check_mode(mode)
    if mode == "standard":
        return (higher + 1).to(torch.float64)
    if mode == "conservative":
        return (higher + equal).to(torch.float64)
    if mode == "median":
        return higher + 1 + 0.5 * (equal - 1).to(torch.float64)
    if u is None:
        u = torch.rand(len(higher), generator=generator, device=higher.device, dtype=torch.float64)
    return (higher + 1).to(torch.float64) + torch.floor(u * equal)


def counts_above(values: torch.Tensor, x: torch.Tensor):
    """(higher, equal): entries of each row of `values` scored above / equal to x[row]."""
    return (values > x[:, None]).sum(1), (values == x[:, None]).sum(1)


def ranks_of_targets(scores: torch.Tensor, targets: torch.Tensor, mode: str, generator=None) -> torch.Tensor:
    """1-based rank of each row's target among all columns, under the given tie mode (full passes)."""
    t = scores.gather(1, targets.unsqueeze(1)).squeeze(1)
    return ranks_from_counts(*counts_above(scores, t), mode, generator)


def top_n_mask(values: torch.Tensor, bound: torch.Tensor, n, mode: str, generator=None) -> torch.Tensor:
    """Which entries of `values` (..., m) are in the top-n list of their row under the tie mode,
    `bound` (...) being the row's n-th best score and n an int or a tensor broadcast like bound;
    every entry of the row scored >= bound must be in `values`."""
    above = values > bound[..., None]
    tied = values == bound[..., None]
    h, e = above.sum(-1), tied.sum(-1)  # h < n: only the n-1 best can be above the n-th
    if mode == "tiebreaking":  # the n - h places left go to uniformly random tied entries
        keys = torch.rand(values.shape, generator=generator, device=values.device, dtype=torch.float64)
        keys = keys.masked_fill(~tied, 2.0)
        k = min(int(torch.as_tensor(n).max()), values.shape[-1])
        smallest = torch.topk(keys, k, dim=-1, largest=False).values
        kth = smallest.gather(-1, (n - h - 1).clamp(0, k - 1)[..., None])
        return above | (tied & (keys <= kth))
    if mode == "standard":
        return above | tied
    take = (h + e <= n) if mode == "conservative" else (2 * h + e + 1 <= 2 * n)  # median: h + 1 + (e-1)/2 <= n
    return above | (tied & take[..., None])


def _rows(x: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor | None:
    return None if x is None else x[rows]


class MetricSums:
    """Every metric at every cut-off, summed on the device over the predictions of a pass.

    A step costs one top-k and a check for ties at its end; the rest works on the top-k of
    FLUSH_EVERY steps at once (small operations are not free: on a busy machine each one can wait
    for a thread of the pool). Rows whose k-th and (k-1)-th scores tie are done at once over
    every item; in the other rows every tie group that reaches a top-N list lies in the top-k,
    and a target below it ranks after the (k-1) = max(N) items above it.
    """

    FLUSH_EVERY = 32
    # ... or sooner, when the pending (rows x cut-offs x top-k) arrays of a flush would exceed this
    # many elements: the lists of every cut-off are built at once, so memory grows with both
    FLUSH_ELEMENTS = 1 << 23

    def __init__(self, cutoffs, mode, n_items, item_support, seed, device, keep_ranks=False):
        check_mode(mode)
        self.cutoffs, self.mode, self.n_items = tuple(cutoffs), mode, n_items
        self.k = min(max(self.cutoffs) + 1, n_items)
        self.n_cut = torch.tensor(self.cutoffs, device=device)  # (C,)
        self.bound_at = (self.n_cut.clamp(max=self.k) - 1)[None, :]  # top-k column of each cut-off's n-th score
        self.cut = self.n_cut.to(torch.float64)[:, None]  # (C, 1)
        self.rank_sums = torch.zeros((len(self.cutoffs), 3), dtype=torch.float64, device=device)  # hits, rr, dcg
        self.list_sums = torch.zeros((len(self.cutoffs), 2), dtype=torch.float64, device=device)  # support, items
        self.seen = torch.zeros((len(self.cutoffs), n_items), dtype=torch.bool, device=device)
        self.support = None
        if item_support is not None and len(item_support) == n_items and max(item_support, default=0) > 0:
            s = torch.as_tensor(item_support, dtype=torch.float64, device=device)
            self.support = s / s.max()
        # the targets' tie-breaking draws come from the seed alone, one per row in step order
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.list_generator = torch.Generator(device=device).manual_seed(seed + 1)
        self.pending = []  # (top, top_items, target score, draws, row ids) of steps not summed yet
        self.pending_rows = 0
        self.n = 0
        self.kept = [] if keep_ranks else None  # (row ids, ranks) of every summed row, with keep_ranks

    def add(self, scores: torch.Tensor, targets: torch.Tensor, ids: torch.Tensor | None = None):
        """Add one step: `scores` (rows x items), each row's target column; with keep_ranks, `ids`
        names each row (any integers: ranks() returns them with the rows' ranks)."""
        if self.kept is not None and ids is None:
            raise ParameterError("MetricSums(keep_ranks=True).add needs the rows' ids")
        top, top_items = top_k(scores, self.k)
        t = scores.gather(1, targets[:, None]).squeeze(1)
        u = None
        if self.mode == "tiebreaking":
            u = torch.rand(len(t), generator=self.generator, device=t.device, dtype=torch.float64)
        self.n += len(t)
        if self.k < scores.shape[1]:
            tied_end = top[:, -1] == top[:, -2]
            if tied_end.any():
                rows, rest = torch.nonzero(tied_end).squeeze(1), torch.nonzero(~tied_end).squeeze(1)
                self._add_full_rows(scores.index_select(0, rows), top[rows], t[rows], _rows(u, rows), _rows(ids, rows))
                top, top_items, t, u, ids = top[rest], top_items[rest], t[rest], _rows(u, rest), _rows(ids, rest)
        self.pending.append((top, top_items, t, u, None if self.kept is None else ids))
        self.pending_rows += len(t)
        if (
            len(self.pending) >= self.FLUSH_EVERY
            or self.pending_rows * len(self.cutoffs) * self.k >= self.FLUSH_ELEMENTS
        ):
            self.flush()

    def flush(self):
        """Sum the pending steps: ranks and top-N lists from their top-k alone."""
        if not self.pending:
            return
        top, top_items, t, u, ids = (None if p[0] is None else torch.cat(p) for p in zip(*self.pending))
        self.pending, self.pending_rows = [], 0
        self._add_ranks(ranks_from_counts(*counts_above(top, t), self.mode, u=u), ids)
        w, c, k = top.shape[0], len(self.cutoffs), top.shape[1]
        bound = top.gather(1, self.bound_at.expand(w, c))  # (w, C)
        mask = top_n_mask(top[:, None, :].expand(w, c, k), bound, self.n_cut[None, :], self.mode, self.list_generator)
        row, cut, col = torch.nonzero(mask, as_tuple=True)
        self.seen[cut, top_items[row, col]] = True
        if self.support is not None:
            listed = mask.to(torch.float64)
            self.list_sums[:, 0] += torch.einsum("wck,wk->c", listed, self.support[top_items])
            self.list_sums[:, 1] += listed.sum((0, 2))

    def _add_ranks(self, ranks, ids=None):
        if self.kept is not None:
            self.kept.append((ids, ranks))
        gains = torch.stack([torch.ones_like(ranks), 1 / ranks, 1 / torch.log2(ranks + 1)])  # (3, w)
        self.rank_sums += (ranks[None, :] <= self.cut).to(torch.float64) @ gains.t()

    def _add_full_rows(self, scores, top, t, u, ids=None):
        """Ranks and top-N lists of rows whose ties may go on beyond the top-k, over every item."""
        self._add_ranks(ranks_from_counts(*counts_above(scores, t), self.mode, u=u), ids)
        bound = top.gather(1, self.bound_at.expand(len(top), len(self.cutoffs)))
        for j, n in enumerate(self.cutoffs):
            full = top_n_mask(scores, bound[:, j], n, self.mode, self.list_generator)
            self.seen[j] |= full.any(0)
            if self.support is not None:
                times = full.sum(0).to(torch.float64)  # how many lists each item is in
                self.list_sums[j, 0] += times @ self.support
                self.list_sums[j, 1] += times.sum()

    def results(self) -> dict:
        """metric name -> {cut-off: value}; popularity only when the model has item support."""
        self.flush()
        r = self.rank_sums / self.n
        per = {"recall": r[:, 0], "mrr": r[:, 1], "ndcg": r[:, 2], "coverage": self.seen.sum(1).double() / self.n_items}
        if self.support is not None:
            pop, listed = self.list_sums[:, 0], self.list_sums[:, 1]
            per["popularity"] = torch.where(listed > 0, pop / listed.clamp(min=1), math.nan)
        return {name: dict(zip(self.cutoffs, v.cpu().tolist())) for name, v in per.items()}

    def ranks(self):
        """(ids, ranks) of every row added, ordered by id (keep_ranks only): the float64 ranks the
        metrics counted, exact up to the largest cut-off and `inf` beyond it (the top-k gives no
        more: a target below the top max(N) only counts as a miss)."""
        if self.kept is None:
            raise ParameterError("MetricSums was made without keep_ranks: it kept no ranks")
        self.flush()
        if not self.kept:
            return torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.float64)
        ids, ranks = (torch.cat(x).cpu() for x in zip(*self.kept))
        ranks = torch.where(ranks <= max(self.cutoffs), ranks, math.inf)
        order = torch.argsort(ids, stable=True)
        return ids[order], ranks[order]
