"""Session-based kNN: SKNN and V-SkNN as defined in session-rec (Ludewig & Jannach; rn5l/session-rec,
algorithms/knn/sknn.py ContextKNN and vsknn.py VMContextKNN), vectorised over all slots of a step.

Both find, after every event, the training sessions most similar to the current session and
score each item by the summed similarity of the neighbour sessions that contain it:

1. candidates: the training sessions sharing an item with the current session so far; when
   there are more than `sample_size` of them, the `sample_size` most recent (by their last event;
   equal times: the later session in session-key order counts as more recent). sample_size=0
   uses every candidate.
2. similarity of the current session A (its set of items) and a candidate B (its set of items):
   SKNN: cosine |A & B| / sqrt(|A| |B|).
   V-SkNN: the current session's items are weighted by their (last) position p = 1..L in it
   (`weighting`: div p/L, quadratic (p/L)^2, log 1/log10(L - p + 1.7), same 1), and
   vec:    sum of the weights of A & B / |A|
   cosine: sum of the weights of A & B / (sqrt(sum of squared weights of A) sqrt(|B|)).
3. the `k` most similar candidates are the neighbours (equal similarity: the more recent first).
4. score(i) = sum over the neighbours B containing i of sim(A, B), times for V-SkNN
   - a decay by the position, counted from the end of the current session (1 = the current
     item), of the most recent item that A and B share (`weighting_score`: div 1/d,
     quadratic 1/d^2, log 1/log10(d + 1.7), same 1), and
   - 1 + idf_weighting * idf(i), idf(i) = ln(n_training_sessions / n_training_events_of_i)
     (idf_weighting = 0 switches it off).
   Items in no neighbour are UNSCORED.

Defaults are those of the session-rec constructors (k has no default there; its docstring and
example configurations use 100): k=100, sample_size=1000, V-SkNN weighting=div,
weighting_score=div, similarity=vec, idf_weighting=0 (off; session-rec's example configuration
for RSC15 uses k=500, sample_size=5000, weighting=quadratic, idf_weighting=5). Items of the
current session stay candidates (session-rec's remind=True). Deliberate differences:
- SKNN's similarity is the true cosine; session-rec computes li / sqrt(la) * sqrt(lb), which
  only differs by the factor |A| (the same for every candidate of a step), so neighbours and
  rankings are the same;
- the final division of the scores by their maximum (normalize=True) is left out: it does not
  change the ranking;
- the `linear` decays are left out: session-rec's form gives weight 0 to the 11th and later
  positions and negative weights in long sessions; the `random` sampling and the `jaccard`,
  `binary`, `tanimoto` similarities, dwell time and time decay are not implemented.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from . import specs
from .base import Baseline, SlotHistory, dense_scores, rank_within_rows

# position weights of the current session's items: p = 1..L (last occurrence), L = session length
POSITION_WEIGHTS = {
    "div": lambda p, L: p / L,
    "quadratic": lambda p, L: (p / L) ** 2,
    "log": lambda p, L: 1.0 / np.log10(L - p + 1.7),
    "same": lambda p, L: np.ones_like(p, dtype=np.float64),
}
# decay of a neighbour's contribution by d = 1, 2, ...: the position from the end of the most recent shared item
SCORE_DECAYS = {
    "div": lambda d: 1.0 / d,
    "quadratic": lambda d: 1.0 / d.astype(np.float64) ** 2,
    "log": lambda d: 1.0 / np.log10(d + 1.7),
    "same": lambda d: np.ones_like(d, dtype=np.float64),
}
assert tuple(POSITION_WEIGHTS) == specs.POSITION_WEIGHTINGS and tuple(SCORE_DECAYS) == specs.SCORE_DECAYS


def last_in_rows(m: sp.csr_matrix, n: int):
    """(mask, rows): which stored entries are among their row's last n (n=0: all), and each entry's row.
    The columns are session numbers in order of recency, so with sorted indices these are the most
    recent sessions."""
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    if n == 0:
        return np.ones(m.nnz, dtype=bool), rows
    return m.indptr[rows + 1] - 1 - np.arange(m.nnz) < n, rows


class _SessionKNN(Baseline):
    """What SKNN and V-SkNN share: the session/item incidence, the candidate sample, the top-k."""

    def _fit(self, events):
        last_time = events.times[events.offsets[1:] - 1]  # events are in time order within a session
        oldest_first = np.argsort(last_time, kind="stable")
        recency = np.empty(events.n_sessions, dtype=np.int64)
        recency[oldest_first] = np.arange(events.n_sessions)
        # session x item incidence (sets), sessions numbered by recency: a larger row is more recent
        b = sp.csr_matrix(
            (np.ones(len(events.items)), (recency[events.sessions], events.items)),
            shape=(events.n_sessions, self.n_items),
        )
        b.sum_duplicates()
        b.data[:] = 1.0
        b.sort_indices()
        self.session_items = b
        self.session_length = np.diff(b.indptr)
        item_sessions = b.T.tocsr()
        item_sessions.sort_indices()
        # Only an item's sample_size most recent sessions can be among a current session's
        # sample_size most recent candidates (every more recent session of that item is a
        # candidate too); and each of them holds all its shared items in these truncated lists,
        # so the overlaps computed from them stay exact.
        keep, rows = last_in_rows(item_sessions, self.params["sample_size"])
        self.item_sessions = sp.csr_matrix(
            (item_sessions.data[keep], (rows[keep], item_sessions.indices[keep])), shape=item_sessions.shape
        )

    def _scorer(self, width, device):
        return _KNNScorer(self, width, device)

    # hooks for the two variants ------------------------------------------------------------------
    def _query_weights(self, last_pos, length):
        """Weight of each distinct current item, given its last position (0-based) and the session length."""
        return np.ones(len(last_pos))

    def _similarity(self, overlap, rows, cols, query):
        """Similarity of slot rows[j] and candidate session cols[j], from their weighted overlap."""
        n_distinct = np.diff(query.indptr).astype(np.float64)
        return overlap / np.sqrt(n_distinct[rows] * self.session_length[cols])

    def _neighbour_weights(self, sim, rows, cols, query, last_pos, length):
        return sim

    def _item_weights(self):
        return None

    # the neighbourhood of every slot -------------------------------------------------------------
    def neighbours(self, query, last_pos, length):
        """(rows, cols, weight) of every slot's k neighbour sessions, for the query matrix of the slots."""
        overlap = (query @ self.item_sessions).tocsr()
        overlap.sort_indices()
        recent, rows = last_in_rows(overlap, self.params["sample_size"])
        rows, cols, vals = rows[recent], overlap.indices[recent], overlap.data[recent]
        sim = self._similarity(vals, rows, cols, query)
        order = np.lexsort((-cols, -sim, rows))
        rows, cols, sim = rows[order], cols[order], sim[order]
        top = rank_within_rows(rows) < self.params["k"]
        rows, cols, sim = rows[top], cols[top], sim[top]
        return rows, cols, self._neighbour_weights(sim, rows, cols, query, last_pos, length)


class SKNN(_SessionKNN):
    KEY = "sknn"


class VSKNN(_SessionKNN):
    KEY = "vsknn"

    def _fit(self, events):
        super()._fit(events)
        b = self.session_items
        # (session, item) keys of the incidence, sorted: membership tests for the score decay
        self.keys = np.repeat(np.arange(b.shape[0], dtype=np.int64), np.diff(b.indptr)) * self.n_items + b.indices
        idf = np.log(events.n_sessions / np.maximum(self.item_support, 1))
        self.item_weight = 1.0 + self.params["idf_weighting"] * idf if self.params["idf_weighting"] else None

    def _query_weights(self, last_pos, length):
        return POSITION_WEIGHTS[self.params["weighting"]](last_pos + 1.0, length.astype(np.float64))

    def _similarity(self, overlap, rows, cols, query):
        if self.params["similarity"] == "vec":
            return overlap / np.diff(query.indptr)[rows]
        norm = np.sqrt(
            np.bincount(
                np.repeat(np.arange(query.shape[0]), np.diff(query.indptr)),
                weights=query.data**2,
                minlength=query.shape[0],
            )
        )
        return overlap / (norm[rows] * np.sqrt(self.session_length[cols]))

    def _neighbour_weights(self, sim, rows, cols, query, last_pos, length):
        """sim times the decay by the most recent item the neighbour shares with the current session."""
        n_query = np.diff(query.indptr)[rows]  # distinct current items per neighbour pair (>= 1)
        starts = np.cumsum(n_query) - n_query
        pair = np.repeat(np.arange(len(rows)), n_query)
        entry = np.repeat(query.indptr[rows], n_query) + np.arange(len(pair)) - np.repeat(starts, n_query)
        key = cols[pair].astype(np.int64) * self.n_items + query.indices[entry]
        found = np.minimum(np.searchsorted(self.keys, key), len(self.keys) - 1)
        shared_pos = np.where(self.keys[found] == key, last_pos[entry], -1)
        latest = np.maximum.reduceat(shared_pos, starts) if len(rows) else shared_pos
        return sim * SCORE_DECAYS[self.params["weighting_score"]](length[rows] - latest)

    def _item_weights(self):
        return self.item_weight


class _KNNScorer:
    """Keeps each slot's session; every step recomputes all slots' neighbourhoods at once."""

    def __init__(self, model: _SessionKNN, width, device):
        self.model, self.device = model, device
        self.history = SlotHistory(width)

    def keep(self, idx):
        self.history.keep(idx)

    def reset(self, new):
        self.history.reset(new)

    def step(self, items):
        m = self.model
        self.history.append(items)
        query, last_pos = self._query()
        rows, cols, weight = m.neighbours(query, last_pos, self.history.length)
        votes = sp.csr_matrix((weight, (rows, cols)), shape=(len(items), m.session_items.shape[0]))
        scores = (votes @ m.session_items).tocoo()
        values = scores.data if m._item_weights() is None else scores.data * m._item_weights()[scores.col]
        return dense_scores(len(items), m.n_items, scores.row, scores.col, values, self.device)

    def _query(self):
        """The slots' distinct current items as a CSR matrix (slot x item, sorted) of their weights,
        and the last position (0-based) of each stored entry."""
        m, length = self.model, self.history.length
        rows, items, pos = self.history.flat()
        key = rows * m.n_items + items
        order = np.lexsort((pos, key))
        key, rows, items, pos = key[order], rows[order], items[order], pos[order]
        last = np.append(key[1:] != key[:-1], True)  # the last occurrence of each (slot, item)
        rows, items, pos = rows[last], items[last], pos[last]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(length)))])
        weights = m._query_weights(pos, length[rows])
        return sp.csr_matrix((weights, items, indptr), shape=(len(length), m.n_items)), pos
