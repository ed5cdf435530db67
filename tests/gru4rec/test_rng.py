import numpy as np
import pytest
import torch

from gru4rec import rng
from gru4rec.rng import CounterRandom


def _mix_python(x: int) -> int:
    """The mixer in plain Python integers, written from its definition: xor-shift, multiply mod 2^32."""
    for shift, mul in ((16, rng.MUL1), (15, rng.MUL2)):
        x = ((x ^ (x >> shift)) * mul) % 2**32
    return x ^ (x >> 15)


def test_a_draw_is_the_hash_of_position_and_keys():
    k1, k2 = 4_000_000_000, 123_456_789  # j + k1 wraps past 2^32
    got = rng.draw_bits(k1, k2, 4000)
    expected = [_mix_python(_mix_python((j + k1) % 2**32) ^ k2) >> 8 for j in range(len(got))]
    assert got.dtype == np.uint32 and got.tolist() == expected
    x = [0, 1, 2**31 - 1, 2**31, 2**32 - 1, 12345]
    assert [rng.hash32(v) for v in x] == [_mix_python(v) for v in x]  # the keys are mixed in Python


def test_the_numbers_look_uniform_and_independent():
    r = CounterRandom(torch.Generator().manual_seed(0))
    u = torch.from_numpy(rng.draw_bits(*r.next_keys(), 1 << 20)).double() / rng.ONE
    counts = torch.histc(u, bins=256, min=0.0, max=1.0)
    expected = len(u) / 256
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert 180 < chi2 < 340  # 255 degrees of freedom: both tails beyond 1e-4
    for lag in (1, 2, 16, 4096):  # neighbouring positions are uncorrelated
        assert abs(float(torch.corrcoef(torch.stack([u[:-lag], u[lag:]]))[0, 1])) < 0.005
    v = torch.from_numpy(rng.draw_bits(*r.next_keys(), 1 << 20)).double() / rng.ONE  # the next draw: another one
    assert abs(float(torch.corrcoef(torch.stack([u, v]))[0, 1])) < 0.005
    assert not torch.equal(u[:100], v[:100])


def test_categorical_draws_follow_the_probabilities():
    p = torch.tensor([0.5, 0.0, 0.25, 0.125, 0.125])
    cdf = torch.cumsum(p, 0)
    r = CounterRandom(torch.Generator().manual_seed(1))
    draws = r.categorical(cdf, 200_000)
    freq = torch.bincount(draws, minlength=5).double() / len(draws)
    torch.testing.assert_close(freq, p.double(), atol=0.004, rtol=0)
    assert int(draws.max()) == 4 and (draws != 1).all()  # an item of probability 0 is never drawn


def test_the_guide_table_starts_every_search_at_or_before_its_answer():
    cdf = torch.cumsum(torch.rand(1000, generator=torch.Generator().manual_seed(2)) ** 4, 0)
    cdf = (cdf / cdf[-1]).float()
    guide = rng.guide_table(cdf)
    G = len(guide)
    assert G == 1024 and guide.dtype == torch.int32
    u = torch.arange(G, dtype=torch.float32) / G
    assert torch.equal(guide.long(), torch.searchsorted(cdf, u, right=True).clamp(max=999))
    assert (guide[1:] >= guide[:-1]).all()


@pytest.mark.parametrize("p", [0.05, 0.5, 0.9])
def test_dropout_masks_keep_1_minus_p_and_rescale(p):
    r = CounterRandom(torch.Generator().manual_seed(3))
    m = r.dropout_mask((400, 500), p, "cpu")
    scale = np.float32(1 / (1 - p))
    assert set(torch.unique(m).tolist()) == {0.0, float(scale)}
    kept = float((m > 0).double().mean())
    assert kept == pytest.approx(1 - p, abs=4 * np.sqrt(p * (1 - p) / m.numel()))
    assert float(m.double().mean()) == pytest.approx(1.0, abs=0.01)


def test_the_numbers_follow_the_seed():
    def draws(seed):
        r = CounterRandom(torch.Generator().manual_seed(seed))
        return r.categorical(torch.linspace(0.1, 1.0, 10), 64), r.dropout_mask((8, 8), 0.5, "cpu")

    a, b, c = draws(1), draws(1), draws(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
