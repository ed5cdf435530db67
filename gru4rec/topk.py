"""The k best scores of each row of a full-catalogue score matrix, and their columns.

torch.topk on the CPU selects within each whole row, at about 1.5 ns per score on these cores:
at 37,000 items a quarter of the time of the score product itself at 224 units. Most of a row
cannot be in its top-k, and one cheap pass can tell which parts. Cut the row into blocks of B
columns (the last n mod B columns, the tail, fill no block) and take each block's maximum (a
vectorised reduction, under a third of topk's cost per score). Let v_i be the i-th best score
among the blocks' columns. For every i <= k, the k blocks with the largest maxima hold at least i
entries >= v_i: either every block whose maximum reaches v_i is among them, or all k of them
reach it. So the top-k of those k * B entries has the blocks' top-k values, ties included; the
tail's own top-k merged in makes it the row's.

The values equal torch.topk's (==; a zero may come back as -0.0), sorted the same way. Which of
several equal scores comes back, and in which order, is unspecified, as with torch.topk, and the
two differ (so may a row scored alone and among others). The metrics' counts read only values,
and their top-N lists take a tie group whole or not at all unless it reaches the top-k's end, a
row they recount over every item; in `tiebreaking` mode the tied items that fill a list's last
places are a uniform random draw keyed by position, so which ones depend on that order, their
distribution does not (gru4rec.metrics).

The fixed cost is about twenty operations, ~0.1 ms: below MIN_ROWS_FOR_BLOCKS rows (the streaming
recommender's single events) plain torch.topk is faster, and it is used there.
"""

from __future__ import annotations

import torch

BLOCK = 64  # columns per block: the fastest of 32, 64 and 128 at 37,000 items, k = 21
MIN_BLOCKS_PER_K = 8  # below k * 8 blocks, the candidates are a large share of the row: plain topk
MIN_ROWS_FOR_BLOCKS = 4  # at 37,000 items, 1 thread: 1 row 149 us against torch.topk's 84; 4 rows 222 vs 256


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, columns) of the k largest entries of each row of `scores` (b, n), largest first."""
    b, n = scores.shape
    full = n // BLOCK * BLOCK  # columns in whole blocks; the last n - full columns are a row's tail
    if scores.device.type != "cpu" or b < MIN_ROWS_FOR_BLOCKS or full < MIN_BLOCKS_PER_K * k * BLOCK:
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
