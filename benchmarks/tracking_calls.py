"""MLflow calls of `experiments.projection.publish`, the projection of a study into MLflow that
every tune job runs at its start and end (to repair what a killed job left) and after each trial.

For a study of N finished trials: the calls of the first publish (which writes every run), of a
publish that finds MLflow already in line (what every job start costs once nothing is missing),
and of a trial's own publish (the callback after each trial). Counts, not times, on a local
SQLite store, so the machine does not matter.

    python benchmarks/tracking_calls.py            # N = 10, 100
    python benchmarks/tracking_calls.py 20 500
"""

from __future__ import annotations

import collections
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments import projection, tuning  # noqa: E402
from experiments.tracking import Tracker, init_store  # noqa: E402

META = {"n_trials": 0, "metric": "MRR@20", "fixed": {}, "space": {"x": ["float", 0.0, 1.0]}}


def finished_study(d: Path, n: int):
    """A journal study of n finished trials, each with the per-epoch history a trial records."""
    study = tuning.load_study("s", tuning.make_storage(str(d / "s.journal")))
    for k in range(n):
        trial = study.ask()
        trial.set_user_attr("params", {"x": k / n})
        trial.set_user_attr("metrics", {"recall_at_20": 0.5, "mrr_at_20": k / n})
        trial.set_user_attr("history", [{"epoch": e, "train_loss": 1.0 / (e + 1)} for e in range(3)])
        study.tell(trial, k / n)
    return study


def counting(tracker) -> collections.Counter:
    calls, client = collections.Counter(), tracker.client
    for name in [m for m in dir(client) if not m.startswith("_") and callable(getattr(client, m))]:
        method = getattr(client, name)

        def counted(*args, _method=method, _name=name, **kwargs):
            calls[_name] += 1
            return _method(*args, **kwargs)

        setattr(client, name, counted)
    return calls


def main(sizes: list[int]) -> None:
    for n in sizes:
        with tempfile.TemporaryDirectory() as d:
            uri = f"sqlite:///{d}/mlflow.db"
            init_store(uri, "bench")
            study, tracker = finished_study(Path(d), n), Tracker(uri, "bench")
            meta = dict(META, n_trials=n)
            calls, figures = counting(tracker), []
            for what, only in (("first publish", None), ("in line", None), ("one trial's", {n - 1})):
                calls.clear()
                projection.publish(study, tracker, "s", meta, only=only)
                figures.append(f"{what} {sum(calls.values())} {dict(sorted(calls.items()))}")
            print(f"N={n}: " + "; ".join(figures), flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10, 100])
