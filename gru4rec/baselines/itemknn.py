"""Item-KNN, the strongest baseline of the ICLR 2016 paper (the original code's baselines.ItemKNN).

Two items are similar when they occur in the same sessions. The reference counts, for every
training event of item i, each DISTINCT item of that event's session once (NumPy's fancy-index
`iarray[items_of_session] += 1` adds once per distinct index, however often an item repeats). With
n_si the number of events of item i in session s and supp_i the number of training events of i:

    sim(i, j) = sum_s n_si * [n_sj > 0] / ((supp_i + lmbd)^alpha * (supp_j + lmbd)^(1 - alpha)),  sim(i, i) = 0

so the similarity is NOT symmetric where items repeat within a session: a session "a a b" gives
count(a, b) = 2 but count(b, a) = 1. Order and time within the session do not matter.
lmbd discounts rare items (chance co-occurrences), alpha = 0.5 is cosine-like, alpha = 1 a
confidence. Each item keeps its `n_sims` most similar items (ties at the cut: lower item column
first; the reference's sort leaves them to chance). The next item is scored by row i of sim, i the
current item only (not the whole session); items outside the current item's list, or with
similarity 0, are UNSCORED (the reference gives them 0, the same rank).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .base import Baseline, dense_scores, rank_within_rows


def top_per_row(m: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Keep each row's n largest positive entries (ties: lower column first)."""
    m = m.tocoo()
    keep = m.data > 0
    rows, cols, vals = m.row[keep], m.col[keep], m.data[keep]
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    first = rank_within_rows(rows) < n
    return sp.csr_matrix((vals[first], (rows[first], cols[first])), shape=m.shape)


class ItemKNN(Baseline):
    KEY = "itemknn"

    def _fit(self, events):
        p = self.params
        # X: session x item event counts (n_si); B: whether the session holds the item at all.
        # count(i, j) = sum_s n_si * B_sj = (X' B)_ij, the reference's once-per-distinct-item count
        x = sp.csr_matrix(
            (np.ones(len(events.items)), (events.sessions, events.items)), shape=(events.n_sessions, self.n_items)
        )
        x.sum_duplicates()
        b = x.copy()
        b.data[:] = 1.0
        co = (x.T @ b).tocsr()
        co.setdiag(0)
        co.eliminate_zeros()
        supp = self.item_support.astype(np.float64) + p["lmbd"]
        co = co.tocoo()
        co.data = co.data / (supp[co.row] ** p["alpha"] * supp[co.col] ** (1.0 - p["alpha"]))
        self.sims = top_per_row(co.tocsr(), p["n_sims"])

    def _scorer(self, width, device):
        return _ItemKNNScorer(self.sims, self.n_items, device)


class _ItemKNNScorer:
    """Stateless between events: only the current item matters."""

    def __init__(self, sims, n_items, device):
        self.sims, self.n_items, self.device = sims, n_items, device

    def keep(self, idx):
        pass

    def reset(self, new):
        pass

    def step(self, items):
        rows = self.sims[items.cpu().numpy()].tocoo()
        return dense_scores(len(items), self.n_items, rows.row, rows.col, rows.data, self.device)
