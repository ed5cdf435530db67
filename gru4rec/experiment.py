"""A final run: train on train_full, evaluate on test, save the model and metrics, log to MLflow."""
from __future__ import annotations

import time
from pathlib import Path

from .fileio import write_json


def train_and_evaluate(train_path, test_path, params: dict, out_dir, cutoffs=(1, 5, 10, 20), device="auto",
                       seed=42, tracking_uri=None, experiment="gru4rec", label="final", eval_targets="all",
                       stats_path=None, tags: dict | None = None) -> dict:
    """Writes out_dir/model.safetensors, params.json and metrics.json; returns the metrics."""
    from .core import GRU4Rec
    from .data import read_events
    from .evaluation import evaluate
    from .params import validate_params
    from .tracking import Tracker
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = GRU4Rec(params, device=device, seed=seed)
    tracker = Tracker(tracking_uri, experiment)
    train, test = read_events(train_path), read_events(test_path)
    with tracker.run(label, tags=dict(tags or {}, kind="final", device=str(model.device))) as run:
        tracker.params(run, dict(model.params, seed=seed, device=str(model.device)))
        tracker.dataset_stats(run, stats_path)
        t0 = time.perf_counter()
        history = model.fit(train, callback=tracker.epoch_logger(run))
        train_seconds = time.perf_counter() - t0
        res = evaluate(model, test, cutoffs=cutoffs, targets=eval_targets)
        for line in res.format_lines():
            print(line, flush=True)
        metrics = dict(res.as_dict(), train_seconds=train_seconds,
                       events_per_s=sum(h["n_events"] for h in history) / max(sum(h["seconds"] for h in history), 1e-9),
                       device=str(model.device), final_loss=history[-1]["loss"])
        model.save(out / "model.safetensors")
        write_json(out / "params.json", validate_params(params))
        write_json(out / "metrics.json", dict(metrics, params=model.params, label=label))
        tracker.metrics(run, {k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        tracker.artifact(run, out / "params.json")
        tracker.artifact(run, out / "model.safetensors")
    return metrics
