"""Extra negative samples, drawn in bulk on the training device.

Items are drawn with probability proportional to support^sample_alpha (alpha 0: uniform,
1: popularity). Drawing per step would interrupt the device for every mini-batch, so, as in the
references, a store of `sample_store_size` ids is drawn at once and handed out `n_sample` at a time,
then redrawn when used up. On a CPU the uniform numbers are the training's counter-based ones
(gru4rec.rng), the same with or without the compiled step; on other devices they come from
torch's generator.
"""

from __future__ import annotations

import torch

from .rng import CounterRandom, guide_table


class SampleStore:
    def __init__(
        self, support: torch.Tensor, n_sample: int, sample_alpha: float, store_size: int, random: CounterRandom
    ):
        self.n_sample = int(n_sample)
        self.random = random
        weights = support.to(torch.float64) ** float(sample_alpha)
        cdf = torch.cumsum(weights, 0)
        self.cdf = (cdf / cdf[-1]).to(torch.float32)
        self.cdf[-1] = 1.0  # guard against rounding: every draw in [0, 1) must land on an item
        self.guide = guide_table(self.cdf) if self.cdf.device.type == "cpu" else None
        self.rows = max(1, int(store_size) // self.n_sample) if self.n_sample > 0 else 0
        self.store = None
        self.pointer = self.rows

    def _refill(self):
        idx = self.random.categorical(self.cdf, self.rows * self.n_sample, self.guide)
        self.store = idx.view(self.rows, self.n_sample)
        self.pointer = 0

    def next(self) -> torch.Tensor:
        if self.pointer >= self.rows:
            self._refill()
        sample = self.store[self.pointer]
        self.pointer += 1
        return sample
