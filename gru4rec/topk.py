"""The k best scores of each row of a full-catalogue score matrix, and their columns.

torch.topk on the CPU selects within each whole row, at about 1.5 ns per score on these cores:
at 37,000 items a quarter of the time of the score product itself at 224 units. Most of a row
cannot be in its top-k, and one cheap pass can tell which parts. Cut the row into blocks of B
columns: an item among the row's k best lies in a block whose maximum is at least the k-th best
score, and at most k blocks have such a maximum (each holds one of the k best), so the k blocks
with the largest maxima hold all of them (with ties, they hold k entries of the k best values).
A block maximum is a vectorised reduction (under a third of topk's cost per score); the selection
then runs on the k * B entries of those blocks instead of the row, and the last columns, which fill
no block, are merged in from a top-k of their own.

The values are exactly torch.topk's, sorted the same way. Among equal scores either may return
any of the tied columns, as torch.topk does not promise which; the evaluation's tie handling
reads only the values at the top-k's end (gru4rec.metrics).
"""

from __future__ import annotations

import torch

BLOCK = 64  # columns per block: the fastest of 32, 64 and 128 at 37,000 items, k = 21
MIN_BLOCKS_PER_K = 8  # below k * 8 blocks, the candidates are a large share of the row: plain topk


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, columns) of the k largest entries of each row of `scores` (b, n), largest first."""
    b, n = scores.shape
    full = n // BLOCK * BLOCK  # columns in whole blocks; the last n - full columns are a row's tail
    if scores.device.type != "cpu" or full < MIN_BLOCKS_PER_K * k * BLOCK:
        return torch.topk(scores, k, dim=1)
    scores = scores.contiguous()
    maxima = scores[:, :full].view(b, full // BLOCK, BLOCK).amax(2)
    blocks = torch.topk(maxima, k, dim=1, sorted=False).indices  # (b, k)
    # copy the k blocks of each row out as whole rows of a sliding-window view of the buffer (one
    # memcpy-like pass; gather() reads them element by element, 6x slower)
    starts = (torch.arange(b, device=scores.device)[:, None] * n + blocks * BLOCK).view(-1)
    candidates = scores.view(-1).unfold(0, BLOCK, 1).index_select(0, starts).view(b, k * BLOCK)
    values, at = torch.topk(candidates, k, dim=1)
    columns = blocks.gather(1, at // BLOCK) * BLOCK + at % BLOCK
    if full < n:  # the tail's own best, merged in
        tail_values, tail_at = torch.topk(scores[:, full:], min(k, n - full), dim=1)
        values, at = torch.topk(torch.cat([values, tail_values], 1), k, dim=1)
        columns = torch.cat([columns, tail_at + full], 1).gather(1, at)
    return values, columns
