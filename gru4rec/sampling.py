"""Extra negative samples, drawn in bulk on the training device.

Items are drawn with probability proportional to support^sample_alpha (alpha 0: uniform,
1: popularity). Drawing per step would interrupt the device for every mini-batch, so, as in the
references, a store of `sample_store_size` ids is drawn at once and handed out `n_sample` at a time,
then redrawn when used up.
"""

from __future__ import annotations

import torch


class SampleStore:
    def __init__(
        self, support: torch.Tensor, n_sample: int, sample_alpha: float, store_size: int, generator: torch.Generator
    ):
        self.n_sample = int(n_sample)
        self.generator = generator
        weights = support.to(torch.float64) ** float(sample_alpha)
        cdf = torch.cumsum(weights, 0)
        self.cdf = (cdf / cdf[-1]).to(torch.float32)
        self.cdf[-1] = 1.0  # guard against rounding: every draw in [0, 1) must land on an item
        self.rows = max(1, int(store_size) // self.n_sample) if self.n_sample > 0 else 0
        self.store = None
        self.pointer = self.rows

    def _refill(self):
        u = torch.rand(self.rows * self.n_sample, generator=self.generator, device=self.cdf.device)
        idx = torch.searchsorted(self.cdf, u, right=True)
        self.store = idx.clamp_(max=len(self.cdf) - 1).view(self.rows, self.n_sample)
        self.pointer = 0

    def next(self) -> torch.Tensor:
        if self.pointer >= self.rows:
            self._refill()
        sample = self.store[self.pointer]
        self.pointer += 1
        return sample
