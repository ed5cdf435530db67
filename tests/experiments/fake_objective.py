"""Stand-ins for the GRU4Rec objective (picklable: tuning workers are separate processes)."""

import math
import os
import time
from pathlib import Path

from gru4rec.errors import TrainingDivergedError


class Rendezvous:
    """quadratic(), but a worker's first trial waits until `n` workers (processes) have each
    started one: every worker of the test then certainly runs trials, however fast or slow the
    machine starts the others."""

    def __init__(self, directory, n: int = 2, timeout: float = 300.0):
        self.directory, self.n, self.timeout = str(directory), n, timeout

    def __call__(self, params, epoch_callback=None):
        here = Path(self.directory)
        (here / str(os.getpid())).touch()
        deadline = time.monotonic() + self.timeout
        while len(list(here.iterdir())) < self.n:  # waits for an event, not a guessed duration
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(list(here.iterdir()))} of {self.n} workers started a trial")
            time.sleep(0.05)
        return quadratic(params, epoch_callback)


def quadratic(params, epoch_callback=None):
    """Best at learning_rate 0.1; NaN above 0.2 (a diverged training), an exception below 0.02."""
    if epoch_callback:
        for epoch in (1, 2):
            epoch_callback(
                {"epoch": epoch, "loss": 1.0 / epoch, "seconds": 0.01, "mb_per_s": 1.0, "events_per_s": 10.0}
            )
    lr = params["learning_rate"]
    if lr > 0.2:
        return math.nan, {}
    if lr < 0.02:
        raise TrainingDivergedError("the loss became nan in epoch 1")
    return 1.0 - (lr - 0.1) ** 2, {"valid_recall_at_20": 0.5}


class EpochWise:
    """quadratic()'s value reached over 3 epochs (value * epoch / 3), reported to `prune` after
    epochs 1 and 2 as a pruned GRU4Rec trial does; each epoch run is recorded in `log_dir`."""

    def __init__(self, log_dir):
        self.log_dir = str(log_dir)

    def __call__(self, params, epoch_callback=None, prune=None):
        final, extra = quadratic(params)
        for epoch in (1, 2, 3):
            with open(Path(self.log_dir) / "epochs.log", "a") as f:
                f.write(f"{params['learning_rate']} {epoch}\n")
            if prune is not None and epoch < 3:
                prune(epoch, final * epoch / 3)
        return final, extra


def out_of_memory_above(params, epoch_callback=None):
    """quadratic(), but a RuntimeError (as torch's out-of-memory) for learning rates above 0.15."""
    if params["learning_rate"] > 0.15:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return quadratic(params, epoch_callback)


class DivergesOnCall:
    """quadratic(), but the `n`-th call in a process diverges (a NaN score), whatever the draw."""

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def __call__(self, params, epoch_callback=None):
        self.calls += 1
        return (math.nan, {}) if self.calls == self.n else quadratic(params, epoch_callback)
