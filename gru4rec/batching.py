"""Session-parallel passes over sessions: the schedule (NumPy, once per pass) and the runner.

`batch_size` slots each hold one session. At every step each slot feeds its current item and
predicts the next one. A slot whose session has no next item takes the next session in order
(its hidden state is reset); sessions of length 1 give no pair and are passed over. When no
session is left, finished slots are dropped and the batch shrinks, keeping slot order.

Computing the whole schedule up front keeps the step loop free of Python-side bookkeeping: a
step only slices precomputed index rows that already live on the device. The same runner drives
training, evaluation and recommendation.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .data import validate_events


@dataclass
class SessionData:
    """Events sorted by (session, time), items mapped to model indices."""

    items: np.ndarray  # (n_events,) int64 item indices
    offsets: np.ndarray  # (n_sessions + 1,) session k is items[offsets[k]:offsets[k+1]]
    first_time: np.ndarray  # (n_sessions,) time of each session's first event

    @property
    def n_sessions(self) -> int:
        return len(self.offsets) - 1


def sort_sessions(df: pd.DataFrame, session_key: str, time_key: str) -> pd.DataFrame:
    """Sort events by (session, time) unless they already are; stable, so ties keep file order."""
    s = df[session_key].to_numpy()
    t = df[time_key].to_numpy()
    if s.dtype.kind in "iuf" and np.all(s[1:] >= s[:-1]) and np.all((s[1:] != s[:-1]) | (t[1:] >= t[:-1])):
        return df
    return df.sort_values([session_key, time_key], kind="stable")


def session_data(df: pd.DataFrame, item_index: np.ndarray, session_key: str, time_key: str) -> SessionData:
    """Build SessionData from events already sorted by session and time."""
    s = df[session_key].to_numpy()
    boundaries = np.flatnonzero(s[1:] != s[:-1]) + 1
    offsets = np.concatenate([[0], boundaries, [len(s)]]).astype(np.int64)
    times = df[time_key].to_numpy()
    return SessionData(items=np.array(item_index, dtype=np.int64), offsets=offsets, first_time=times[offsets[:-1]])


def index_training_events(data: pd.DataFrame, session_key: str, item_key: str, time_key: str):
    """Check and sort training events and give their items model columns (the sorted original ids,
    shared by GRU4Rec and the baselines). Returns (sorted events, SessionData, item ids, training
    support of each item)."""
    df = validate_events(data, session_key, item_key, time_key, source="training data")
    df = sort_sessions(df, session_key, time_key)
    codes, uniques = pd.factorize(df[item_key], sort=True)
    support = np.bincount(codes, minlength=len(uniques)).astype(np.int64)
    return df, session_data(df, codes, session_key, time_key), np.asarray(uniques), support


@dataclass
class Schedule:
    """Event indices of every step, left-aligned in slot order.

    inputs[t, :width[t]] are the event indices fed at step t (targets are the next events, +1);
    starts[t, k] is True where that slot begins a new session (its hidden state must be zeroed);
    shrink[t] (for the steps where the batch shrinks) are the rows of the previous step's hidden
    state that carry over, in order.
    """

    inputs: np.ndarray  # (n_steps, batch_size) int64, -1 where the slot is empty
    starts: np.ndarray  # (n_steps, batch_size) bool
    width: np.ndarray  # (n_steps,) active slots per step
    shrink: dict  # step -> np.ndarray of kept row positions

    @property
    def n_steps(self) -> int:
        return len(self.width)

    @property
    def n_events(self) -> int:
        """Number of training pairs (predictions) in the schedule."""
        return int(self.width.sum())


def assign_slots(lengths: np.ndarray, batch_size: int):
    """Give each session (in processing order) a slot and a first step, as the references do.

    Returns (slot, first_step) per session, and the number of steps. The references advance all
    slots to the end of the shortest remaining session (a "round"), then hand the next sessions to
    the finished slots in slot order; a slot that receives a one-event session (no training pair)
    is finished again in the following round, at the same step, after the slots of this round.
    A priority queue keyed (free step, round, slot) replays exactly that order.
    """
    steps = np.maximum(np.asarray(lengths, dtype=np.int64) - 1, 0).tolist()
    n = len(steps)
    slot = np.empty(n, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    heap = [(0, 0, s) for s in range(min(batch_size, n))]
    for k in range(n):
        free_at, rnd, s = heap[0]
        slot[k] = s
        first[k] = free_at
        # a session without pairs leaves the slot free at the same step, for the next round
        heapq.heapreplace(heap, (free_at + steps[k], 0, s) if steps[k] else (free_at, rnd + 1, s))
    n_steps = max((t for t, _, _ in heap), default=0)
    return slot, first, n_steps


def build_schedule(offsets: np.ndarray, order: np.ndarray, batch_size: int, min_width: int = 1) -> Schedule:
    """Schedule for sessions given by `offsets` (events of session k are offsets[k]:offsets[k+1]),
    processed in `order`. Steps with fewer than `min_width` active slots end the epoch (training
    without extra samples needs 2: a slot's only negatives are the other slots' targets).
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    order = np.asarray(order, dtype=np.int64)
    lengths = offsets[order + 1] - offsets[order]
    slot, first, n_steps = assign_slots(lengths, batch_size)
    n_pairs = np.maximum(lengths - 1, 0)
    total = int(n_pairs.sum())
    # one entry per training pair: its step, slot and input event
    within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(n_pairs) - n_pairs, n_pairs)
    step = np.repeat(first, n_pairs) + within
    col = np.repeat(slot, n_pairs)
    event = np.repeat(offsets[order], n_pairs) + within
    width_cols = min(batch_size, max(len(order), 1))
    grid = np.full((n_steps, width_cols), -1, dtype=np.int64)
    grid[step, col] = event
    start_grid = np.zeros((n_steps, width_cols), dtype=bool)
    start_grid[step[within == 0], col[within == 0]] = True

    active = grid >= 0
    width = active.sum(axis=1)
    if min_width > 1:
        too_narrow = np.flatnonzero(width < min_width)
        if len(too_narrow):
            cut = too_narrow[0]
            grid, start_grid, active, width = grid[:cut], start_grid[:cut], active[:cut], width[:cut]
    # Empty slots only appear once sessions run out, and then never fill again; move the active
    # ones to the left (stable, so slot order is kept) and record which hidden rows carry over.
    # The first step needs no record: its hidden state is created with width[0] zero rows.
    shrink = {}
    for t in np.flatnonzero(width[1:] < width[:-1]) + 1:
        shrink[int(t)] = np.flatnonzero(active[t][active[t - 1]])
    rows = np.flatnonzero(width < width_cols)
    if len(rows):
        left = np.argsort(~active[rows], axis=1, kind="stable")
        grid[rows] = np.take_along_axis(grid[rows], left, axis=1)
        start_grid[rows] = np.take_along_axis(start_grid[rows], left, axis=1)
    return Schedule(inputs=grid, starts=start_grid, width=width, shrink=shrink)


class SessionRunner:
    """One session-parallel pass, as device tensors, stepped through by `steps(state)`.

    `items` (on the device) are the model item columns of the events; session k is
    items[offsets[k]:offsets[k+1]]; sessions run in `order`. `state` is whatever holds the hidden
    state: an object with keep(idx) (only these rows carry over, in this order) and reset(new)
    (clear the rows where a new session starts), such as the model protocol's session scorer.
    Its first step has `first_width` rows.
    """

    def __init__(
        self, items: torch.Tensor, offsets, order, batch_size: int, min_width: int = 1, with_events: bool = False
    ):
        sched = build_schedule(offsets, order, batch_size, min_width)
        dev = items.device
        events = torch.from_numpy(np.maximum(sched.inputs, 0)).to(dev)
        self.events = events if with_events else None  # input event positions, when asked for
        self.inputs = items[events]
        self.targets = items[(events + 1).clamp_(max=len(items) - 1)]
        self.new = torch.from_numpy(sched.starts).to(dev)
        self.has_new = sched.starts.any(axis=1).tolist()
        self.width = sched.width.tolist()
        self.keep = {t: torch.from_numpy(k).to(dev) for t, k in sched.shrink.items()}
        self.n_steps = sched.n_steps
        self.n_events = sched.n_events
        self.first_width = self.width[0] if self.n_steps else 0

    def steps(self, state):
        """Yield (t, inputs, targets, events) per step, after applying the step's hidden-state
        actions to `state`: keep (when the batch shrinks), then reset (where sessions start)."""
        for t in range(self.n_steps):
            w = self.width[t]
            keep = self.keep.get(t)
            if keep is not None:
                state.keep(keep)
            if self.has_new[t]:
                state.reset(self.new[t, :w])
            yield t, self.inputs[t, :w], self.targets[t, :w], None if self.events is None else self.events[t, :w]


def item_positions(lookup: pd.Index, ids) -> np.ndarray:
    """Position of each id in `lookup` (a model's item ids); -1 where an id is not there."""
    if isinstance(ids, (pd.Series, pd.Index, np.ndarray)):
        target = pd.Index(ids)
    else:  # a Python list may mix types ([3, 7, "x"]): keep each id's own type
        target = pd.Index(list(ids), dtype=object)
    return lookup.get_indexer(target)
