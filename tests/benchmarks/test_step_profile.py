"""The step profile benchmark: exclusive times, costs that match the step's real products, and a
library left as it was."""

from __future__ import annotations

import pytest
import torch

import gru4rec.model as model_module
from benchmarks import step_profile
from benchmarks.step_profile import PieceTimer
from benchmarks.train_speed import synthetic
from gru4rec.batching import SessionRunner
from gru4rec.compiled import NativeKernels, native
from gru4rec.core import _TrainingStep
from gru4rec.losses import Loss
from gru4rec.model import EMBEDDING_MODES, GRU4RecNetwork
from gru4rec.optim import AdagradM
from gru4rec.sampling import SampleStore

PARAMS = {
    "loss": "bpr-max",
    "final_act": "elu-0.5",
    "constrained_embedding": True,
    "layers": [16, 12],  # two layers: the upper layer's dWx / dx products happen in backward()
    "batch_size": 8,
    "n_sample": 16,
    "momentum": 0.3,
    "bpreg": 1.0,
    "dropout_p_embed": 0.2,
    "dropout_p_hidden": 0.1,
}
PATCHED = [
    GRU4RecNetwork,
    _TrainingStep,
    SampleStore,
    Loss,
    AdagradM,
    NativeKernels,
    SessionRunner,
    model_module,
    *{type(a) for a in EMBEDDING_MODES.adapters.values()},
    *{type(a).__mro__[1] for a in EMBEDDING_MODES.adapters.values()},
]


class Clock:
    """A perf_counter that moves only when a test's fake work says so: exact times, on any load."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def spend(self, seconds: float):
        self.now += seconds


CLOCK = Clock()


class Nested:
    def outer(self):
        CLOCK.spend(0.02)
        self.inner()

    def inner(self):
        CLOCK.spend(0.03)

    def fails(self):
        raise KeyError("the piece's own error")


def test_exclusive_times_leave_out_nested_pieces_and_the_cost_bookkeeping(monkeypatch):
    monkeypatch.setattr(step_profile.time, "perf_counter", CLOCK)
    timer = PieceTimer()

    def slow_cost(result, obj):
        CLOCK.spend(0.05)  # bookkeeping: neither the piece's time nor its caller's
        return 10.0, 20.0

    timer.wrap(Nested, "outer", "outer")
    timer.wrap(Nested, "inner", "inner", slow_cost)
    Nested().outer()
    assert timer.seconds["outer"] == pytest.approx(0.02, abs=1e-12)
    assert timer.seconds["inner"] == pytest.approx(0.03, abs=1e-12)
    assert (timer.flops["inner"], timer.bytes["inner"], timer.calls["inner"]) == (10.0, 20.0, 1)
    timer.restore()
    assert "outer" in vars(Nested) and Nested.inner.__qualname__ == "Nested.inner"


def test_an_error_in_a_piece_is_raised_as_it_is_and_restore_brings_back_inheritance():
    timer = PieceTimer()
    timer.wrap(Nested, "fails", "fails", lambda result, obj: (1.0, 1.0))
    with pytest.raises(KeyError, match="own error"):
        Nested().fails()
    assert timer.flops["fails"] == 0 and timer._stack == []
    timer.restore()

    class Child(Nested):
        pass

    timer.wrap(Child, "inner", "inner")  # inherited: the wrapper goes into Child's own namespace
    assert "inner" in vars(Child)
    timer.restore()
    assert "inner" not in vars(Child) and Child.inner is Nested.inner


PIECES = {
    "unique ids + row gather",
    "input rows + embedding dropout multiply",
    "dropout masks (random numbers)",
    "GRU forward",
    "score product",
    "loss (activation, value, gradient)",
    "output backward products",
    "GRU backward",
    "input backward",
    "Adagrad, dense parameters",
    "Adagrad, touched rows",
}


@pytest.mark.parametrize(
    "compile", [False, pytest.param(True, marks=pytest.mark.skipif(native() is None, reason="no compiled step here"))]
)
def test_the_costed_flops_are_the_products_the_step_runs_and_the_library_is_restored(compile):
    before = {owner: dict(vars(owner)) for owner in PATCHED}
    df = synthetic(3000, 120, seed=3)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], with_flops=True) as prof:
        timer, n_steps, total, mean_u, n_items = step_profile.profile_epoch(PARAMS, df, steps=25, compile=compile)
    assert n_steps == 25
    # eagerly the loss reads the score matrix spread to its columns; the compiled loss reads O_u as
    # it is, and the compiled step draws the dropout masks inside the kernels that apply them
    if compile:
        pieces = PIECES - {"dropout masks (random numbers)"}
    else:
        pieces = PIECES | {"score columns spread + summed back"}
    assert set(timer.seconds) == pieces | {"other (schedule, log-Q offsets, glue)", "negative samples (drawn in bulk)",
                                           "runner (keep/reset, loop) + timer overhead"}  # fmt: skip
    assert all(timer.seconds[p] > 0 for p in timer.seconds)  # the runner's remainder included
    # every matrix product of the two epochs (untimed warm-up and timed one, same seed and data)
    # as the profiler counts it, against the products the timer attributes to the pieces
    profiled = sum(e.flops for e in prof.key_averages() if e.key in ("aten::mm", "aten::addmm", "aten::mv"))
    assert profiled > 0
    assert sum(timer.flops.values()) == pytest.approx(profiled / 2, rel=1e-9)
    assert 2 <= mean_u <= 8 + 8 + 16  # shared embedding: inputs, targets and samples share the gather
    after = {owner: dict(vars(owner)) for owner in PATCHED}
    assert after == before


def test_the_command_prints_the_table_and_a_summary(capsys):
    step_profile.main(["--preset", "retailrocket", "--events", "3000", "--items", "150", "--steps", "20"])
    out = capsys.readouterr().out
    assert "| **step** |" in out
    assert "summary:" in out and "us per step" in out
    assert "ns per element" in out
