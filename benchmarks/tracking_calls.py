"""MLflow calls that a tune job makes to bring the runs of failed trials in line with its study
(experiments.tuning._close_interrupted_runs, run at a job's start and after every pass of its
loop), on a study with N interrupted trials whose runs are already closed but for the first pass.

Each line: the calls of the first pass (which ends and tags the runs) and of every later pass,
per client method. The code before one search per study looked every run up by itself: two
get_run per failed trial and pass. A local SQLite store: counts, not times, so the machine does
not matter.

    python benchmarks/tracking_calls.py            # N = 10, 100
    python benchmarks/tracking_calls.py 20 500
"""

from __future__ import annotations

import collections
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments import tuning  # noqa: E402
from experiments.tracking import Tracker, init_store  # noqa: E402

COUNTED = ("get_run", "search_runs", "set_tag", "set_terminated")


def study_with_interrupted_trials(d: Path, n: int):
    uri = f"sqlite:///{d}/mlflow.db"
    init_store(uri, "bench")
    tracker = Tracker(uri, "bench")
    storage = tuning.make_storage(str(d / "s.journal"))
    study = tuning.load_study("s", storage)
    parent = tracker.start("s/study")
    study.set_user_attr("mlflow_parent_run", parent)
    for _ in range(n):
        trial = study.ask()
        run = tracker.start(tuning.trial_run_name("s", trial.number), parent=parent)
        storage.set_trial_user_attr(trial._trial_id, "mlflow_run", run)
        storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
        storage.set_trial_state_values(trial._trial_id, tuning.S.FAIL)
    return study, tracker


def counting(tracker) -> collections.Counter:
    calls, client = collections.Counter(), tracker.client
    for name in COUNTED:
        method = getattr(client, name)

        def counted(*args, _method=method, _name=name, **kwargs):
            calls[_name] += 1
            return _method(*args, **kwargs)

        setattr(client, name, counted)
    return calls


def main(sizes: list[int]) -> None:
    for n in sizes:
        with tempfile.TemporaryDirectory() as d:
            study, tracker = study_with_interrupted_trials(Path(d), n)
            calls = counting(tracker)
            tuning._close_interrupted_runs(study, tracker, "s")
            first = dict(calls)
            calls.clear()
            tuning._close_interrupted_runs(study, tracker, "s")
            print(
                f"N={n}: first pass {sum(first.values())} calls {first}; every later pass "
                f"{sum(calls.values())} {dict(calls)}",
                flush=True,
            )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10, 100])
