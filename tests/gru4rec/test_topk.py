"""gru4rec.topk against torch.topk: the same values, columns that hold them, on both paths."""

import pytest
import torch

from gru4rec import topk
from gru4rec.topk import BLOCK, MIN_BLOCKS_PER_K, MIN_ROWS_FOR_BLOCKS, top_k


def block_path_width(k, tail):
    """A catalogue just wide enough for the block path at k, with `tail` columns in no block."""
    return MIN_BLOCKS_PER_K * k * BLOCK + tail


def check_against_torch(scores, k):
    values, columns = top_k(scores, k)
    want = torch.topk(scores, k, dim=1).values
    assert torch.equal(values, want)
    assert torch.equal(scores.gather(1, columns), values)  # each column holds its value
    assert all(len(set(row.tolist())) == k for row in columns)  # no column twice


@pytest.mark.parametrize("k", [1, 5, 21])
@pytest.mark.parametrize("tail", [0, 1, BLOCK - 1])
def test_distinct_scores_give_torch_topk_exactly(k, tail):
    g = torch.Generator().manual_seed(k + tail)
    scores = torch.randn(33, block_path_width(k, tail), generator=g)
    values, columns = top_k(scores, k)
    want = torch.topk(scores, k, dim=1)
    assert torch.equal(values, want.values) and torch.equal(columns, want.indices)


@pytest.mark.parametrize("tail", [1, BLOCK - 1])
def test_the_best_scores_in_the_last_partial_block_are_found(tail):
    k = 21
    scores = torch.randn(8, block_path_width(k, tail), generator=torch.Generator().manual_seed(3))
    scores[:, -tail:] += 100.0  # the tail holds the row's best scores
    values, columns = top_k(scores, k)
    assert torch.equal(values, torch.topk(scores, k, dim=1).values)
    assert (columns[:, :tail] >= scores.shape[1] - tail).all()


def test_the_k_best_in_one_block_and_in_k_blocks():
    k = 21
    scores = torch.randn(MIN_ROWS_FOR_BLOCKS, block_path_width(k, 5), generator=torch.Generator().manual_seed(4))
    scores[0, 3 * BLOCK : 3 * BLOCK + k] += 50.0  # all k best in one block
    scores[1, torch.arange(k) * 7 * BLOCK] += 50.0  # one in each of k blocks
    check_against_torch(scores, k)
    assert set(top_k(scores, k)[1][0].tolist()) == set(range(3 * BLOCK, 3 * BLOCK + k))


@pytest.mark.parametrize("levels", [2, 4, 1000])
def test_tied_scores_give_torch_topks_values(levels):
    """With ties either may pick any of the tied columns; the values agree and the columns hold them."""
    k = 21
    g = torch.Generator().manual_seed(levels)
    scores = torch.randint(0, levels, (40, block_path_width(k, 17)), generator=g).float()
    check_against_torch(scores, k)


def test_rows_of_minus_infinity_with_a_few_finite_scores():
    k = 21
    scores = torch.full((6, block_path_width(k, 9)), float("-inf"))
    for r in range(6):
        scores[r, torch.randperm(scores.shape[1], generator=torch.Generator().manual_seed(r))[: 3 * r]] = r + 1.0
    check_against_torch(scores, k)


def test_a_strided_score_matrix_and_a_slice_of_a_larger_buffer():
    k = 21
    scores = torch.randn(block_path_width(k, 3), 9, generator=torch.Generator().manual_seed(6)).t()
    values, columns = top_k(scores, k)
    want = torch.topk(scores, k, dim=1)
    assert torch.equal(values, want.values) and torch.equal(columns, want.indices)
    buffer = torch.randn(12, block_path_width(k, 3), generator=torch.Generator().manual_seed(7))
    check_against_torch(buffer[3:9], k)  # contiguous, with a storage offset (the evaluator's out[:w])


def widths_selected_by_torch_topk(monkeypatch, scores, k):
    """The row widths that top_k hands to torch.topk."""
    widths, real = [], torch.topk

    def spy(x, *args, **kwargs):
        widths.append(x.shape[-1])
        return real(x, *args, **kwargs)

    monkeypatch.setattr(topk.torch, "topk", spy)
    top_k(scores, k)
    monkeypatch.setattr(topk.torch, "topk", real)
    return widths


def test_the_block_path_never_selects_within_a_whole_row(monkeypatch):
    k, n = 21, block_path_width(21, 5)
    widths = widths_selected_by_torch_topk(monkeypatch, torch.randn(MIN_ROWS_FOR_BLOCKS, n), k)
    assert widths and max(widths) < n // 4


@pytest.mark.parametrize(
    "shape", [(MIN_ROWS_FOR_BLOCKS - 1, block_path_width(21, 5)), (64, block_path_width(21, 0) - 1)]
)
def test_few_rows_and_narrow_catalogues_use_torch_topk(monkeypatch, shape):
    assert widths_selected_by_torch_topk(monkeypatch, torch.randn(*shape), 21) == [shape[1]]


def test_no_rows():
    values, columns = top_k(torch.randn(0, block_path_width(21, 5)), 21)
    assert values.shape == columns.shape == (0, 21)
