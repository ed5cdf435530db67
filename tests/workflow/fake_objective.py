"""Stand-ins for the GRU4Rec objective (picklable: tuning workers are separate processes)."""
import math
import time

from gru4rec.errors import TrainingDivergedError


class Quadratic:
    """quadratic() that takes `sleep` seconds a trial, as a training would."""

    def __init__(self, sleep: float):
        self.sleep = sleep

    def __call__(self, params, epoch_callback=None):
        time.sleep(self.sleep)
        return quadratic(params, epoch_callback)


def quadratic(params, epoch_callback=None):
    """Best at learning_rate 0.1; NaN above 0.2 (a diverged training), an exception below 0.02."""
    if epoch_callback:
        for epoch in (1, 2):
            epoch_callback({"epoch": epoch, "loss": 1.0 / epoch, "seconds": 0.01, "mb_per_s": 1.0, "events_per_s": 10.0})
    lr = params["learning_rate"]
    if lr > 0.2:
        return math.nan, {}
    if lr < 0.02:
        raise TrainingDivergedError("the loss became nan in epoch 1")
    return 1.0 - (lr - 0.1) ** 2, {"valid_recall_at_20": 0.5}
