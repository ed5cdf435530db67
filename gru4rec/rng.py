"""The random numbers of a training: the dropout masks and the negative samples.

On a CPU they are counter-based: a number is a hash of its position in a draw and of the draw's
keys, not the next state of a generator. So two pieces of code can draw the same numbers: NumPy
here, and the compiled step (gru4rec/compiled_step.c), which draws its masks inside the kernels
that apply them. A model trained on a CPU with and without the compiled step saw the same masks
and the same samples. Drawing them costs about what torch's CPU generator (mt19937) costs, 8 ns a
number, with NumPy, and well under 1 ns in the compiled step (a RetailRocket step draws 36,000
numbers for its masks). On other devices the numbers come from torch's generator for the device
(not the numbers of earlier versions: the keys are taken from it first): there a kernel launch
per operation would make the hash the slower way.

The hash is a 32-bit integer mixer of two xor-shift-multiply rounds (from Chris Wellons' hash
prospector), applied twice with the draw's keys in between: number j of the draw with keys
(k1, k2) is the top 24 bits of mix(mix(j + k1) ^ k2), all mod 2^32. Each draw of a training has
its own keys, mixed from the draw's count and two 32-bit keys taken from the training's seeded
torch generator.
"""

from __future__ import annotations

import numpy as np
import torch

M32 = 0xFFFFFFFF
MUL1, MUL2 = 0x21F0AAAD, 0x735A2D97
BITS = 24  # the top 24 bits of a hash are a uniform number: exact in float32
ONE = 1 << BITS


def hash32(x: int) -> int:
    """The mixer on a Python int in [0, 2^32) (the draws' keys)."""
    x = ((x ^ (x >> 16)) * MUL1) & M32
    x = ((x ^ (x >> 15)) * MUL2) & M32
    return x ^ (x >> 15)


def _mix(x: np.ndarray) -> np.ndarray:
    """The mixer on a uint32 array, in place (uint32 arithmetic wraps mod 2^32)."""
    x ^= x >> 16
    x *= np.uint32(MUL1)
    x ^= x >> 15
    x *= np.uint32(MUL2)
    x ^= x >> 15
    return x


def draw_bits(k1: int, k2: int, n: int) -> np.ndarray:
    """The n numbers of the draw with keys (k1, k2), uint32 in [0, 2^24)."""
    x = np.arange(n, dtype=np.uint32)
    x += np.uint32(k1)
    _mix(x)
    x ^= np.uint32(k2)
    _mix(x)
    x >>= np.uint32(32 - BITS)
    return x


def keep_threshold(p: float) -> int:
    """Inverted dropout with probability p keeps the positions whose number is below this."""
    return round((1.0 - p) * ONE)


def keep_scale(p: float) -> float:
    """The kept positions' factor 1 / (1 - p), as the float32 the masks hold."""
    return float(np.float32(1.0 / (1.0 - p)))


def guide_table(cdf: torch.Tensor) -> torch.Tensor:
    """For the compiled categorical draw: entry g is the first item whose cdf exceeds g / G, for a
    power of two G of about the number of items (at most 2^24, so that u G is exact)."""
    G = 1 << min(BITS, max(0, int(len(cdf) - 1).bit_length()))
    at = torch.arange(G, dtype=torch.float64, device=cdf.device) / G
    return torch.searchsorted(cdf, at.to(cdf.dtype), right=True).clamp_(max=len(cdf) - 1).to(torch.int32)


class CounterRandom:
    """The random numbers of one training, draw after draw (see the module docstring)."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator  # the device's generator: the keys, and the draws off the CPU
        k = torch.randint(0, 1 << 32, (2,), generator=generator, device=generator.device, dtype=torch.int64)
        self.key = tuple(int(v) for v in k.tolist())
        self.draws = 0
        self.kernels = None  # the compiled step's kernels (gru4rec.compiled), which draw on a CPU

    def next_keys(self) -> tuple[int, int]:
        """The keys of the next draw (the compiled step draws its numbers itself from them)."""
        c = self.draws
        self.draws += 1
        return hash32(self.key[0] ^ ((2 * c) & M32)), hash32(self.key[1] ^ ((2 * c + 1) & M32))

    def _uniform(self, keys, n: int, device) -> torch.Tensor:
        """n numbers uniform in [0, 1) (float32): the draw with these keys on a CPU (multiples of
        2^-24), else torch's generator."""
        if device.type != "cpu":
            return torch.rand(n, generator=self.generator, device=device)
        return torch.from_numpy(draw_bits(*keys, n)).to(torch.float32).mul_(1.0 / ONE)

    def categorical(self, cdf: torch.Tensor, n: int, guide: torch.Tensor | None = None) -> torch.Tensor:
        """n draws of an index with the cumulative probabilities cdf (float32, the last 1): the
        first index whose cdf exceeds a uniform number. `guide`: guide_table(cdf), which the
        compiled draw needs (it gives the same draws as the searchsorted here)."""
        keys = self.next_keys()
        if self.kernels is not None and cdf.device.type == "cpu" and guide is not None:
            return self.kernels.categorical(keys, n, cdf, guide)
        u = self._uniform(keys, n, cdf.device)
        return torch.searchsorted(cdf, u, right=True).clamp_(max=len(cdf) - 1)

    def dropout_mask(self, shape, p: float, device) -> torch.Tensor:
        """Inverted dropout: 1 / (1 - p) with probability 1 - p, else 0 (inference needs no rescaling)."""
        keys, device = self.next_keys(), torch.device(device)
        if self.kernels is not None and device.type == "cpu":
            return self.kernels.dropout_mask(keys, shape, keep_threshold(p), keep_scale(p))
        if device.type != "cpu":
            keep = torch.rand(shape, generator=self.generator, device=device) < 1.0 - p
        else:
            keep = torch.from_numpy(draw_bits(*keys, int(np.prod(shape))) < keep_threshold(p)).view(shape)
        return keep.to(torch.float32).mul_(keep_scale(p))
