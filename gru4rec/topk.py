"""The k best scores of each row of a full-catalogue score matrix, and their columns.

torch.topk on the CPU selects within each whole row, at about 1.5 ns per score on these cores:
at 37,000 items a quarter of the time of the score product itself at 224 units. Most of a row
cannot be in its top-k, and one cheap pass can tell which parts. Cut the row into blocks of B
columns and take each block's maximum (a vectorised reduction, under a third of topk's cost per
score). For every i <= k, the k blocks with the largest maxima hold at least i entries as large
as the row's i-th best score: either every block whose maximum reaches it is among them, or all k
of them reach it. So the top-k of those k * B entries has the row's top-k values, ties included.
The last columns, which fill no block, are merged in from a top-k of their own.

The values equal torch.topk's (==; a zero may come back as -0.0), sorted the same way. Which of
several equal scores comes back is unspecified, as with torch.topk, and the two differ: the
metrics' counts read only values, and their top-N lists take a tie group whole or not at all
unless it reaches the top-k's end, a row they recount over every item (gru4rec.metrics).

The fixed cost is about a dozen operations, ~0.1 ms: below MIN_ROWS rows (the streaming
recommender's single events) plain torch.topk is faster, and it is used there.
"""

from __future__ import annotations

import torch

BLOCK = 64  # columns per block: the fastest of 32, 64 and 128 at 37,000 items, k = 21
MIN_BLOCKS_PER_K = 8  # below k * 8 blocks, the candidates are a large share of the row: plain topk
MIN_ROWS = 4  # 1 row of 37,000: 149 us against torch.topk's 84; 4 rows: 222 against 256 (1 thread)


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, columns) of the k largest entries of each row of `scores` (b, n), largest first."""
    b, n = scores.shape
    full = n // BLOCK * BLOCK  # columns in whole blocks; the last n - full columns are a row's tail
    if scores.device.type != "cpu" or b < MIN_ROWS or full < MIN_BLOCKS_PER_K * k * BLOCK:
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
