"""Top-k next-item recommendations for sessions given as item sequences."""
from __future__ import annotations

import numpy as np
import torch

from .errors import ParameterError


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
    input items.
    """
    model._require_trained()
    if int(k) < 1:
        raise ParameterError(f"k must be a positive integer, got {k}")
    k = min(int(k), model.n_items)
    seqs, _ = _as_sessions(sessions)
    net, dev = model.net, model.device
    mapped, n_unknown = [], 0
    for s in seqs:
        idx = model.item_index(s) if len(s) else np.empty(0, dtype=np.int64)
        n_unknown += int((idx < 0).sum())
        mapped.append(idx[idx >= 0])
    out = [[] for _ in seqs]
    # longest first, so the sessions still running at step t are always a prefix of the batch
    order = sorted((i for i, m in enumerate(mapped) if len(m)), key=lambda i: -len(mapped[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        lengths = [len(mapped[i]) for i in chunk]
        padded = np.zeros((len(chunk), lengths[0]), dtype=np.int64)
        for row, i in enumerate(chunk):
            padded[row, :lengths[row]] = mapped[i]
        X = torch.from_numpy(padded).to(dev)
        H = net.init_hidden(len(chunk))
        last = torch.empty((len(chunk), net.layers[-1]), device=dev)
        for t in range(lengths[0]):
            a = sum(1 for n in lengths if n > t)
            Hs = [h[:a] for h in H]
            y = net.forward_hidden(X[:a, t], Hs)
            for i in range(len(H)):
                H[i] = torch.cat([Hs[i], H[i][a:]]) if a < len(chunk) else Hs[i]
            last[:a] = y
        scores, top = torch.topk(net.score_all(last), k, dim=1)
        scores, top = scores.cpu().numpy(), top.cpu().numpy()
        for row, i in enumerate(chunk):
            ids = model.item_ids[top[row]]
            out[i] = [(_plain(item), float(sc)) for item, sc in zip(ids, scores[row])]
    return out, n_unknown


def _plain(x):
    return x.item() if hasattr(x, "item") else x
