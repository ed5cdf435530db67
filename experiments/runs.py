"""Training and evaluating one parameter set. A tuning trial (train_tr -> train_valid) and a final
run (train_full -> test, saved and logged to MLflow) are the same function on other data."""

from __future__ import annotations

import time
from pathlib import Path

from gru4rec import GRU4Rec, evaluate, read_events
from gru4rec.fileio import write_json
from gru4rec.params import validate_params

from .mlflow_model import log_and_register
from .tracking import Tracker


def train_and_evaluate(
    model: GRU4Rec, train, test, cutoffs=(20,), eval_targets="all", verbose=True, epoch_callback=None
) -> dict:
    """Fit `model` on `train` and measure it on `test`: Recall@N and MRR@N for every N in
    `cutoffs` (recall_at_N, mrr_at_N, ...), training time and speed, device, last epoch's loss."""
    t0 = time.perf_counter()
    history = model.fit(train, verbose=verbose, callback=epoch_callback)
    train_seconds = time.perf_counter() - t0
    res = evaluate(model, test, cutoffs=cutoffs, targets=eval_targets)
    if verbose:
        for line in res.format_lines():
            print(line, flush=True)
    events_per_s = sum(h["n_events"] for h in history) / max(sum(h["seconds"] for h in history), 1e-9)
    return dict(
        res.as_dict(),
        train_seconds=train_seconds,
        events_per_s=events_per_s,
        device=str(model.device),
        final_loss=history[-1]["loss"],
    )


def final_run(
    train_path,
    test_path,
    params: dict,
    out_dir,
    cutoffs=(1, 5, 10, 20),
    device="auto",
    seed=42,
    tracking_uri=None,
    experiment="gru4rec",
    label="final",
    eval_targets="all",
    stats_path=None,
    tags: dict | None = None,
    register_as: str | None = None,
) -> dict:
    """Train on train_full, evaluate on test; writes out_dir/model.safetensors, params.json and
    metrics.json, logs the run to MLflow, and returns the metrics. With `register_as`, the model is
    also logged as an MLflow pyfunc model and registered under that name (a new version)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = GRU4Rec(params, device=device, seed=seed)
    tracker = Tracker(tracking_uri, experiment)
    train, test = read_events(train_path), read_events(test_path)
    with tracker.run(label, tags=dict(tags or {}, kind="final", device=str(model.device))) as run:
        tracker.params(run, dict(model.params, seed=seed, device=str(model.device)))
        tracker.dataset_stats(run, stats_path)
        metrics = train_and_evaluate(
            model, train, test, cutoffs, eval_targets, epoch_callback=tracker.epoch_logger(run)
        )
        model.save(out / "model.safetensors")
        write_json(out / "params.json", validate_params(params))
        write_json(out / "metrics.json", dict(metrics, params=model.params, label=label))
        tracker.metrics(run, {k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        tracker.artifact(run, out / "params.json")
        tracker.artifact(run, out / "model.safetensors")
        if run and register_as:
            log_and_register(out / "model.safetensors", register_as, metrics, run_id=run, tracking_uri=tracker.uri)
    return metrics
