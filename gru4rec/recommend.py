"""Top-k next-item recommendations for sessions given as item sequences."""

from __future__ import annotations

import numpy as np
import torch

from .batching import SessionRunner
from .errors import ParameterError
from .model import HiddenState
from .topk import top_k


def _as_sessions(sessions):
    """Accept one session (a flat sequence of ids) or a list of sessions."""
    if isinstance(sessions, (str, bytes)) or not hasattr(sessions, "__len__"):
        raise ParameterError("sessions must be a sequence of item ids or a list of such sequences")
    if len(sessions) and all(not isinstance(s, (list, tuple, np.ndarray)) for s in sessions):
        return [list(sessions)], True
    return [list(s) for s in sessions], False


@torch.no_grad()
def recommend(model, sessions, k: int = 20, batch_size: int = 512):
    """Recommend the k highest scored items after each session.

    sessions: a list of item-id sequences in original ids (or a single sequence). Items unknown
    to the model are skipped. Returns (recommendations, n_unknown): one list of (item_id, score)
    per session, best first (empty for a session with no known item), and the number of skipped
    input items. A k above the model's number of items gives lists of every item (k is clamped).
    Among items of equal score, which come back (and in which order) is unspecified and may
    depend on how many sessions are scored together (gru4rec.topk).
    """
    model.require_trained()
    k, batch_size = _positive("k", k), _positive("batch_size", batch_size)
    k = min(k, model.n_items)  # at most every item: a longer list does not exist
    seqs, _ = _as_sessions(sessions)
    mapped, n_unknown = [], 0
    for s in seqs:
        idx = model.item_index(s) if len(s) else np.empty(0, dtype=np.int64)
        n_unknown += int((idx < 0).sum())
        mapped.append(idx[idx >= 0])
    out = [[] for _ in seqs]
    filled = [i for i, m in enumerate(mapped) if len(m)]
    if not filled:
        return out, n_unknown
    last = _last_outputs(model.net, [mapped[i] for i in filled], batch_size)
    for start in range(0, len(filled), batch_size):
        scores, top = top_k(model.net.score_all(last[start : start + batch_size]), k)
        scores, top = scores.cpu().numpy(), top.cpu().numpy()
        for row, i in enumerate(filled[start : start + batch_size]):
            ids = model.item_ids[top[row]]
            out[i] = [(_plain(item), float(sc)) for item, sc in zip(ids, scores[row])]
    return out, n_unknown


def _positive(name, v) -> int:
    """A positive integer (2.0 is 2; 2.5, True and '3' are mistakes)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer, float, np.floating)):
        raise ParameterError(f"{name} must be a positive integer, got {v!r}")
    if isinstance(v, (float, np.floating)) and not float(v).is_integer():
        raise ParameterError(f"{name} must be a positive integer, got {v!r}")
    if int(v) < 1:
        raise ParameterError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def _last_outputs(net, sessions, batch_size):
    """The last layer's output after each session's last item: (n_sessions, d).

    The session-parallel runner feeds every event that has a next one, so a placeholder event
    after each session makes its last item an input too; the placeholder itself is never fed.
    Every step writes its rows' outputs to their sessions; a session's last write is its answer.
    """
    lengths = np.array([len(s) + 1 for s in sessions], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    items = np.zeros(offsets[-1], dtype=np.int64)  # placeholders stay 0 (any valid column)
    for s, start in zip(sessions, offsets[:-1]):
        items[start : start + len(s)] = s
    dev = net.device
    owner = torch.from_numpy(np.repeat(np.arange(len(sessions)), lengths)).to(dev)
    runner = SessionRunner(
        torch.from_numpy(items).to(dev), offsets, np.arange(len(sessions)), batch_size, with_events=True
    )
    state = HiddenState(net, runner.first_width)
    last = torch.empty((len(sessions), net.layers[-1]), device=dev)
    for _, X, _, events in runner.steps(state):
        last.index_copy_(0, owner[events], net.forward_hidden(X, state.H))
    return last


def _plain(x):
    return x.item() if hasattr(x, "item") else x
