"""BPR-MF, the matrix factorisation baseline of the ICLR 2016 paper (the original code's baselines.BPR).

Training sessions are the "users": every training event (s, p) is a positive, paired with a
negative item n drawn uniformly from the catalogue, and stochastic gradient ascent on
log sigmoid(U_s . I_p - U_s . I_n) with L2 terms (lambda_session, lambda_item), factors
initialised uniformly in [-sigma, sigma] (or N(0, sigma^2) with init_normal), n_iterations
passes over the events in random order. At prediction time a session is represented by the
mean of the factors of its items so far (repeats count), and every item is scored by the dot
product with it.

Differences from the reference, for speed and clarity:
- updates are applied in mini-batches of `batch_size` events, each computed from the factors
  at the start of the batch and summed (batch_size=1 is the reference's per-event SGD);
- the negative item is uniform over the catalogue (the reference takes the item of one of the
  first n_items rows of its merged table, an indexing accident);
- the reference's item bias is never updated there (always 0) and is left out.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from .base import Baseline


@contextmanager
def single_thread():
    """Run torch ops on one thread: BPR-MF's steps are small (a batch of rows), and handing each one to
    a thread pool costs more than it saves (measured 0.08 ms vs 5.7 ms per index_add_ of 1024 x 100
    on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class BPRMF(Baseline):
    KEY = "bprmf"

    def _init(self, n, g):
        p = self.params
        shape = (n, p["n_factors"])
        if p["init_normal"]:
            return torch.randn(shape, generator=g) * p["sigma"]
        return (torch.rand(shape, generator=g) * 2 - 1) * p["sigma"]

    def _fit(self, events):
        with single_thread():
            self._sgd(events)

    def _sgd(self, events):
        p = self.params
        g = torch.Generator()
        g.manual_seed(self.seed)
        U = self._init(events.n_sessions, g)  # session factors, only needed during training
        I = self._init(self.n_items, g)
        sessions, items = torch.from_numpy(events.sessions), torch.from_numpy(events.items)
        for it in range(p["n_iterations"]):
            order = torch.randperm(len(items), generator=g)
            negatives = torch.randint(self.n_items, (len(items),), generator=g)
            total = 0.0
            for b in range(0, len(order), p["batch_size"]):
                e = order[b : b + p["batch_size"]]
                total += self._update(U, I, sessions[e], items[e], negatives[b : b + p["batch_size"]])
            self._log(f"BPR-MF iteration {it + 1}: mean log sigmoid {total / len(items):.6f}")
        self.item_factors = I

    def _update(self, U, I, s, pos, neg) -> float:
        """One summed SGD step for a batch of (session, positive, negative); returns the sum of log sigmoid."""
        p = self.params
        u, i1, i2 = U[s], I[pos], I[neg]
        x = ((i1 - i2) * u).sum(dim=1)
        c = torch.sigmoid(-x).unsqueeze(1)  # 1 - sigmoid(x)
        lr = p["learning_rate"]
        U.index_add_(0, s, lr * (c * (i1 - i2) - p["lambda_session"] * u))
        I.index_add_(0, pos, lr * (c * u - p["lambda_item"] * i1))
        I.index_add_(0, neg, lr * (-c * u - p["lambda_item"] * i2))
        return float(torch.nn.functional.logsigmoid(x).sum())

    def _scorer(self, width, device):
        return _BPRScorer(width, self.item_factors.to(device))


class _BPRScorer:
    """Per slot: the sum of the session's item factors and its length; scores = mean . item factors."""

    def __init__(self, width, item_factors):
        self.I = item_factors
        self.total = torch.zeros((width, item_factors.shape[1]), device=item_factors.device)
        self.count = torch.zeros((width, 1), device=item_factors.device)

    def keep(self, idx):
        self.total, self.count = self.total[idx], self.count[idx]

    def reset(self, new):
        self.total[new] = 0.0
        self.count[new] = 0.0

    def step(self, items):
        self.total += self.I[items]
        self.count += 1.0
        return (self.total / self.count) @ self.I.T
