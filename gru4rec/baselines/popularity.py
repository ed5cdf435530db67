"""The floor and the popularity baselines of the ICLR 2016 paper: RANDOM, POP and S-POP.

POP and S-POP follow the original code's baselines.py (Pop, SessionPop). POP ranks the `top_n`
most popular items (by number of training events) by popularity; S-POP ranks the items of the
current session first, by how often they occurred in it so far, and breaks ties by popularity
(again of the top_n items only). Items outside the top list (for S-POP: and not in the session)
are UNSCORED.

The reference scores popularity as supp / (supp + 1), plus the session count for S-POP. The
scores here are integers in the same order instead: float32 cannot tell 150000/150001 from
149999/150000, and the Yoochoose items have supports like these, so the reference formula in
float32 would create ties the reference does not have. POP's score is the item's popularity
level (the dense rank of its support among the top list: 1 = least popular); S-POP's is
count * (n_levels + 1) + level, exact in float32 while that stays below 2**24 (n_levels <=
top_n, so with the default top_n=100 for sessions of up to 160,000 events).
"""

from __future__ import annotations

import numpy as np
import torch

from .base import UNSCORED, Baseline, SlotHistory


def popularity_levels(support: np.ndarray, top_n: int) -> np.ndarray:
    """Dense rank of each item's support among the top_n items (1 = the least popular of them), 0 for
    the items outside the top list (top_n=0: every item is in it). Equal supports share a level.

    Ties at the cut are broken by the lower item column (the reference's sort leaves them to chance).
    """
    support = np.asarray(support, dtype=np.int64)
    inside = np.ones(len(support), dtype=bool)
    if 0 < top_n < len(support):
        order = np.lexsort((np.arange(len(support)), -support))
        inside[order[top_n:]] = False
    levels = np.zeros(len(support), dtype=np.int64)
    levels[inside] = np.unique(support[inside], return_inverse=True)[1] + 1
    return levels


class Random(Baseline):
    """Uniform random scores, fresh at every step: the floor any model must clear (seeded)."""

    KEY = "random"

    def _fit(self, events):
        pass

    def _scorer(self, width, device):
        return _RandomScorer(self.n_items, self.seed, device)


class _RandomScorer:
    def __init__(self, n_items, seed, device):
        self.n_items, self.device = n_items, device
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(seed)

    def keep(self, idx):
        pass

    def reset(self, new):
        pass

    def step(self, items):
        return torch.rand((len(items), self.n_items), generator=self.gen, device=self.device)


class Pop(Baseline):
    """POP: the same list for every session, by training popularity."""

    KEY = "pop"

    def _fit(self, events):
        levels = popularity_levels(self.item_support, self.params["top_n"])
        self.scores = np.where(levels > 0, levels, UNSCORED).astype(np.float32)

    def _scorer(self, width, device):
        return _PopScorer(torch.from_numpy(self.scores).to(device))


class _PopScorer:
    def __init__(self, scores):
        self.scores = scores

    def keep(self, idx):
        pass

    def reset(self, new):
        pass

    def step(self, items):
        return self.scores.unsqueeze(0).repeat(len(items), 1)  # a fresh tensor: callers may write to it


class SessionPop(Baseline):
    """S-POP: the current session's items by their count in it, then the rest by popularity."""

    KEY = "spop"

    def _fit(self, events):
        self.levels = popularity_levels(self.item_support, self.params["top_n"])

    def _scorer(self, width, device):
        return _SessionPopScorer(
            width, torch.from_numpy(self.levels.astype(np.float32)).to(device), float(self.levels.max() + 1)
        )


class _SessionPopScorer:
    def __init__(self, width, levels, count_weight):
        self.history = SlotHistory(width)
        self.levels = levels
        self.count_weight = count_weight  # one more occurrence in the session outweighs every level

    def keep(self, idx):
        self.history.keep(idx)

    def reset(self, new):
        self.history.reset(new)

    def step(self, items):
        self.history.append(items)
        rows, seen, _ = self.history.flat()
        dev = self.levels.device
        scores = self.levels.unsqueeze(0).repeat(len(items), 1)
        scores.index_put_(
            (torch.from_numpy(rows).to(dev), torch.from_numpy(seen).to(dev)),
            torch.full((len(rows),), self.count_weight, device=dev),
            accumulate=True,
        )
        # a score is 0 exactly when the item is neither in the session nor in the top list
        return scores.masked_fill_(scores == 0, UNSCORED)
