"""Minor page faults of GRU4Rec training steps (the issue of large temporaries mapped and unmapped
at every step). Trains the first steps of one epoch on the synthetic log and counts the faults
of the steps after a warm-up: the per-step figure, free of the one-off setup (schedule, sample
store, parameters). Counts, not times: the figure does not depend on the machine's load.

    python benchmarks/page_faults.py --preset retailrocket --events 2000000 --items 40000
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import gru4rec.batching as batching  # noqa: E402
from benchmarks.train_speed import PRESETS, first_steps, synthetic  # noqa: E402
from gru4rec import GRU4Rec  # noqa: E402


def faults_per_step(df, params, warmup: int, n_steps: int) -> tuple[int, float]:
    """(minor faults of the whole fit, minor faults per step from step `warmup` to `n_steps`)
    of fit() cut to its first n_steps steps."""
    full_steps = batching.SessionRunner.steps
    marks = []

    def marked_steps(self, state):
        for item in full_steps(self, state):
            if item[0] == warmup:
                marks.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
            yield item
        marks.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)  # after the last step

    batching.SessionRunner.steps = marked_steps
    try:
        with first_steps(n_steps):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            GRU4Rec(dict(params, n_epochs=1), device="cpu", seed=42).fit(df, verbose=False, compile=False)
            total = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    finally:
        batching.SessionRunner.steps = full_steps
    return total, (marks[1] - marks[0]) / (n_steps - warmup)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="retailrocket", choices=sorted(PRESETS))
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--items", type=int, default=40_000)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--steps", type=int, default=400)
    a = ap.parse_args(argv)
    df = synthetic(a.events, a.items, seed=1)
    total, per_step = faults_per_step(df, PRESETS[a.preset], a.warmup, a.steps)
    print(
        f"[{a.preset}] {len(df)} events, {df.ItemId.nunique()} items: {total} minor faults in fit() with "
        f"{a.steps} steps; {per_step:.1f} per step after step {a.warmup}"
    )


if __name__ == "__main__":
    main()
