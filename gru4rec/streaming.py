"""Streaming next-item recommendations: one event at a time, for many live sessions.

`recommend()` replays each whole session on every call. A live recommender instead keeps every
session's GRU hidden state and advances it by the newest event only: one GRU step and one scoring
of all items per event, whatever the session's length (O(1) work per event).

The semantics are those of training and evaluation: a session starts from a zero hidden state,
dropout is off (inference), and an event whose item the model does not know is skipped (the
state stays as it was; `recommend()` and the evaluation drop such events too). So after any
sequence of events, the top-k equals `recommend()` on the session's known items so far (up to
which of several equally scored items are returned: gru4rec.topk).

The state store is bounded: at most `max_sessions` sessions, in preallocated rows; when it is
full, a new session takes the row of the least recently used one (updated or queried last). An
evicted session that sends another event restarts from an empty state, as if that event were its
first: `n_events` in the result says how many events the state holds.

    rec = SessionRecommender(model, k=10, exclude_seen=True)
    r = rec.update("user-42", 1234)          # r.items, r.scores: the top-10 after this event
    rs = rec.update_many(sessions, items)    # one event each for many sessions, batched
    rec.end("user-42")                       # the session is over: free its state
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import ParameterError
from .topk import top_k

MAX_SCORE_ELEMENTS = 1 << 24  # bound on one score matrix (sessions x items) computed at once
MIN_ROWS = 64  # initial rows of the state store; it doubles up to max_sessions


@dataclass
class Recommendation:
    """The top-k after one event (or for the current state of a session)."""

    session_id: object
    items: np.ndarray  # original item ids, best first; empty when the session has no state
    scores: np.ndarray | None  # their scores (None unless return_scores)
    n_events: int  # known events in the session's state (0: no state)
    unknown_item: bool = False  # the event's item is unknown to the model: the state was not changed
    embedding: np.ndarray | None = None  # the session embedding (last GRU layer's state), if asked for


class _Network:
    """The few calls made into a trained GRU4Rec: the one place to adapt if the core changes."""

    def __init__(self, model):
        model.require_trained()
        self.net, self.device = model.net, model.device
        self.item_ids, self.n_items = model.item_ids, model.n_items
        # GRU4Rec.item_index looks ids up with pandas, which costs O(n_items) per call for a list of
        # Python objects (16 ms for 100k items): too slow per event. A dict matches the same ids.
        self.lookup = {item: i for i, item in enumerate(model.item_ids.tolist())}

    def item_index(self, ids) -> np.ndarray:
        """The model column of each original id; -1 where the model does not know it."""
        ids = ids.tolist() if isinstance(ids, np.ndarray) else ids
        return np.fromiter((self.lookup.get(x, -1) for x in ids), dtype=np.int64, count=len(ids))

    def empty_state(self, n: int) -> list[torch.Tensor]:
        """Hidden states of n new sessions: one (n, units) tensor per layer."""
        return self.net.init_hidden(n)

    def step(self, items: torch.Tensor, H: list[torch.Tensor]) -> torch.Tensor:
        """Feed one item per row; H is updated in place; returns the last layer's output."""
        return self.net.forward_hidden(items, H)

    def scores(self, h: torch.Tensor) -> torch.Tensor:
        return self.net.score_all(h)


@dataclass
class _Session:
    row: int  # row of the state store holding its hidden state
    n_events: int = 0
    seen: list = field(default_factory=list)  # model indices of its known items, for exclude_seen


class _StateStore:
    """Hidden states of at most max_sessions sessions, evicting the least recently used."""

    def __init__(self, net: _Network, max_sessions: int):
        self.net, self.max_sessions = net, max_sessions
        self.H = net.empty_state(min(MIN_ROWS, max_sessions))
        self.sessions: OrderedDict = OrderedDict()
        self.free = list(range(len(self.H[0]) - 1, -1, -1))
        self.n_evicted = 0

    def get(self, session_id, touch: bool = True) -> _Session | None:
        s = self.sessions.get(session_id)
        if s is not None and touch:
            self.sessions.move_to_end(session_id)
        return s

    def open(self, session_id) -> _Session:
        """A new session with a zero state (the training and evaluation reset)."""
        if not self.free:
            if len(self.sessions) < self.max_sessions:
                self._grow()
            else:
                _, old = self.sessions.popitem(last=False)
                self.free.append(old.row)
                self.n_evicted += 1
        s = _Session(row=self.free.pop())
        for h in self.H:
            h[s.row] = 0.0
        self.sessions[session_id] = s
        return s

    def _grow(self):
        old = len(self.H[0])
        new = self.net.empty_state(min(2 * old, self.max_sessions))
        for h_new, h in zip(new, self.H):
            h_new[:old] = h
        self.H = new
        self.free = list(range(len(new[0]) - 1, old - 1, -1))

    def end(self, session_id) -> bool:
        s = self.sessions.pop(session_id, None)
        if s is not None:
            self.free.append(s.row)
        return s is not None


class SessionRecommender:
    """Top-k next items for live sessions, advancing each session's state by one event at a time.

    model: a trained GRU4Rec. k: default number of recommendations. max_sessions: bound of the
    state store (least recently used sessions are evicted). exclude_seen: by default leave out
    the items already in the session. allowed_items: recommend only these item ids (ids the
    model does not know are ignored, with a warning saying how many). return_scores,
    return_embedding: fill those fields of the results. Not thread-safe: one per thread, or a lock.
    """

    def __init__(
        self,
        model,
        k: int = 20,
        max_sessions: int = 100_000,
        exclude_seen: bool = False,
        allowed_items=None,
        return_scores: bool = True,
        return_embedding: bool = False,
    ):
        self.net = _Network(model)
        self.k = _positive_int("k", k)
        self.exclude_seen = _flag("exclude_seen", exclude_seen)
        self.return_scores = _flag("return_scores", return_scores)
        self.return_embedding = _flag("return_embedding", return_embedding)
        self.store = _StateStore(self.net, _positive_int("max_sessions", max_sessions))
        self.blocked, self.n_candidates = None, self.net.n_items
        if allowed_items is not None:
            self._restrict(allowed_items)

    def _restrict(self, allowed_items):
        allowed = _as_ids("allowed_items", allowed_items)
        idx = self._item_index("allowed_items", allowed)
        known = np.unique(idx[idx >= 0])
        if len(known) == 0:
            raise ParameterError(f"allowed_items: none of the {len(allowed)} ids is an item known to the model")
        if (idx < 0).any():
            warnings.warn(
                f"allowed_items: {int((idx < 0).sum())} of {len(allowed)} ids are unknown to the model and ignored",
                stacklevel=3,
            )
        self.blocked = torch.ones(self.net.n_items, dtype=torch.bool, device=self.net.device)
        self.blocked[torch.from_numpy(known).to(self.net.device)] = False
        self.n_candidates = len(known)

    # ----------------------------------------------------------------------------------------
    # public API
    def update(self, session_id, item_id, k: int | None = None, exclude_seen: bool | None = None) -> Recommendation:
        """Advance one session by one event and return its top-k."""
        return self.update_many([session_id], [item_id], k, exclude_seen)[0]

    @torch.no_grad()
    def update_many(
        self, session_ids, item_ids, k: int | None = None, exclude_seen: bool | None = None
    ) -> list[Recommendation]:
        """One event per entry (sessions may repeat: their events apply in order); a result per event.

        The events are applied in rounds (every session's first event, then its second, ...). Each
        session sees its own events in order, but when the store is full the least recently used
        session is chosen at round granularity, so evictions may differ from calling update() once
        per event in arrival order; call update() per event where that order matters."""
        k, exclude_seen = self._options(k, exclude_seen)
        sids, items = self._check_events(session_ids, item_ids)
        out = [None] * len(sids)
        for positions, sessions, unknown in self._advance(sids, items):
            recs = self._recommend(sessions, k, exclude_seen)
            for pos, r, u in zip(positions, recs, unknown):
                r.session_id, r.unknown_item = sids[pos], bool(u)
                out[pos] = r
        return out

    @torch.no_grad()
    def feed(self, session_ids, item_ids) -> np.ndarray:
        """Advance sessions by these events without scoring (to replay a history); True where known."""
        sids, items = self._check_events(session_ids, item_ids)
        known = np.ones(len(sids), dtype=bool)
        for positions, _, unknown in self._advance(sids, items):
            known[positions] = ~unknown
        return known

    @torch.no_grad()
    def recommendations(
        self, session_ids, k: int | None = None, exclude_seen: bool | None = None
    ) -> list[Recommendation]:
        """The top-k for the current state of each session (no event); empty for unknown sessions."""
        k, exclude_seen = self._options(k, exclude_seen)
        ids = _as_ids("session_ids", session_ids)
        recs = self._recommend([self.store.get(_hashable(s)) for s in ids], k, exclude_seen)
        for r, s in zip(recs, ids):
            r.session_id = s
        return recs

    def embedding(self, session_id) -> np.ndarray | None:
        """The session embedding: its last GRU layer's state (None for a session not in the store)."""
        s = self.store.get(_hashable(session_id), touch=False)
        return None if s is None else self.store.H[-1][s.row].cpu().numpy().copy()

    def end(self, session_id) -> bool:
        """Forget a session (its next event starts a new one); False if it was not in the store."""
        return self.store.end(_hashable(session_id))

    def __len__(self) -> int:
        return len(self.store.sessions)

    def __contains__(self, session_id) -> bool:
        return _hashable(session_id) in self.store.sessions

    @property
    def n_evicted(self) -> int:
        """Sessions evicted so far to make room for new ones."""
        return self.store.n_evicted

    # ----------------------------------------------------------------------------------------
    # internals
    def _options(self, k, exclude_seen):
        """A call's k (at most the number of candidate items) and exclude_seen, defaults filled in."""
        k = self.k if k is None else _positive_int("k", k)
        exclude_seen = self.exclude_seen if exclude_seen is None else _flag("exclude_seen", exclude_seen)
        return min(k, self.n_candidates), exclude_seen

    def _check_events(self, session_ids, item_ids):
        sids, items = _as_ids("session_ids", session_ids), _as_ids("item_ids", item_ids)
        if len(sids) != len(items):
            raise ParameterError(
                f"session_ids and item_ids must have the same length, got {len(sids)} and {len(items)}"
            )
        return sids, items

    def _item_index(self, name, ids) -> np.ndarray:
        try:
            return np.asarray(self.net.item_index(ids), dtype=np.int64)
        except TypeError as e:
            raise ParameterError(f"{name}: item ids must be strings or integers ({e})") from None

    def _advance(self, session_ids, item_ids):
        """Apply the events in rounds in which each session occurs once (a session's events in order),
        in chunks of at most max_sessions; yields (positions, sessions, unknown) of every chunk."""
        idx = self._item_index("item_ids", item_ids) if len(item_ids) else np.empty(0, dtype=np.int64)
        sids = [_hashable(s) for s in session_ids]
        occurrence, count = np.empty(len(sids), dtype=np.int64), {}
        for i, s in enumerate(sids):
            occurrence[i] = count.get(s, 0)
            count[s] = occurrence[i] + 1
        for r in range(int(occurrence.max()) + 1 if len(sids) else 0):
            round_pos = np.flatnonzero(occurrence == r)
            for start in range(0, len(round_pos), self.store.max_sessions):
                pos = round_pos[start : start + self.store.max_sessions]
                yield pos, self._step([sids[p] for p in pos], idx[pos]), idx[pos] < 0

    def _step(self, sids, idx) -> list[_Session | None]:
        """Advance distinct sessions by one item each (-1: unknown, the state is kept)."""
        # touch the sessions of the chunk before opening new ones, so that none of them is evicted
        sessions = [self.store.get(s) for s in sids]
        for i in np.flatnonzero(idx >= 0):
            if sessions[i] is None:
                sessions[i] = self.store.open(sids[i])
        live = np.flatnonzero(idx >= 0)
        if len(live):
            dev = self.net.device
            rows = torch.tensor([sessions[i].row for i in live], device=dev)
            H = [h.index_select(0, rows) for h in self.store.H]
            self.net.step(torch.from_numpy(idx[live]).to(dev), H)
            for h, h_new in zip(self.store.H, H):
                h.index_copy_(0, rows, h_new)
            for i in live:
                sessions[i].n_events += 1
                sessions[i].seen.append(int(idx[i]))
        return sessions

    def _recommend(self, sessions, k, exclude_seen) -> list[Recommendation]:
        """Top-k of each session's current state (an empty result for None)."""
        empty = self.net.item_ids[:0]
        out = [
            Recommendation(None, empty, np.empty(0, np.float32) if self.return_scores else None, 0) for _ in sessions
        ]
        live = [i for i, s in enumerate(sessions) if s is not None]
        chunk = max(1, MAX_SCORE_ELEMENTS // max(self.net.n_items, 1))
        for start in range(0, len(live), chunk):
            part = live[start : start + chunk]
            self._top_k([sessions[i] for i in part], [out[i] for i in part], k, exclude_seen)
        return out

    def _top_k(self, sessions, out, k, exclude_seen):
        dev = self.net.device
        rows = torch.tensor([s.row for s in sessions], device=dev)
        h = self.store.H[-1].index_select(0, rows)
        S = self.net.scores(h)
        if self.blocked is not None:
            S.masked_fill_(self.blocked, float("-inf"))
        if exclude_seen:
            r = torch.tensor([i for i, s in enumerate(sessions) for _ in s.seen], dtype=torch.long, device=dev)
            c = torch.tensor([j for s in sessions for j in s.seen], dtype=torch.long, device=dev)
            S[r, c] = float("-inf")
        scores, top = top_k(S, k)
        scores, top = scores.cpu().numpy(), top.cpu().numpy()
        emb = h.cpu().numpy() if self.return_embedding else None
        for i, (s, r) in enumerate(zip(sessions, out)):
            n = int(np.isfinite(scores[i]).sum())  # fewer than k when exclusions leave fewer items
            r.items = self.net.item_ids[top[i, :n]]
            r.scores = scores[i, :n] if self.return_scores else None
            r.n_events = s.n_events
            r.embedding = emb[i].copy() if emb is not None else None


def _positive_int(name, v) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ParameterError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def _flag(name, v) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise ParameterError(f"{name} must be True or False, got {v!r}")
    return bool(v)


def _as_ids(name, ids) -> list | np.ndarray:
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__len__") or getattr(ids, "ndim", 1) != 1:
        raise ParameterError(f"{name} must be a one-dimensional sequence of ids, got {type(ids).__name__}")
    return ids if isinstance(ids, np.ndarray) else list(ids)


def _hashable(session_id):
    try:
        hash(session_id)
    except TypeError:
        raise ParameterError(
            f"session ids must be hashable (a string or an integer), got {type(session_id).__name__}"
        ) from None
    return session_id
