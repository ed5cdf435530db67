"""Training and evaluating one parameter set. A tuning trial (train_tr -> train_valid) and a final
run (train_full -> test, once per seed, saved and logged to MLflow) are the same function on other
data, for GRU4Rec and for the baselines alike."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gru4rec import GRU4Rec, evaluate, read_events
from gru4rec.baselines import Baseline, make_baseline

from .mlflow_model import log_and_register
from .outputs import atomic_output, clear_stale, write_json
from .significance import RANKS_FILE
from .tracking import Tracker


def train_and_evaluate(
    model,
    train,
    test,
    cutoffs=(20,),
    eval_targets="all",
    verbose=True,
    epoch_callback=None,
    mode="standard",
    ranks=False,
) -> dict:
    """Fit `model` (GRU4Rec or a baseline) on `train` and measure it on `test`: every metric of the
    evaluator at every N in `cutoffs` (recall_at_N, mrr_at_N, ...) under the tie `mode`, training
    time and speed, device and (GRU4Rec) the last epoch's loss; with `ranks`, also "ranks": the
    evaluator's per-event ranks (gru4rec.evaluate(ranks=True))."""
    t0 = time.perf_counter()
    if isinstance(model, Baseline):
        model.fit(train, verbose=verbose)
        history = [{"n_events": len(train), "seconds": time.perf_counter() - t0}]
    else:
        history = model.fit(train, verbose=verbose, callback=epoch_callback)
    train_seconds = time.perf_counter() - t0
    res = evaluate(model, test, cutoffs=cutoffs, targets=eval_targets, mode=mode, ranks=ranks)
    if verbose:
        for line in res.format_lines():
            print(line, flush=True)
    events_per_s = sum(h["n_events"] for h in history) / max(sum(h["seconds"] for h in history), 1e-9)
    out = dict(res.as_dict(), train_seconds=train_seconds, events_per_s=events_per_s, device=str(model.device))
    if "loss" in history[-1]:
        out["final_loss"] = history[-1]["loss"]
    if ranks:
        out["ranks"] = res.ranks
    return out


def _numeric(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def aggregate(per_seed: list[dict]) -> dict:
    """Mean and sample standard deviation (ddof=1; None for one seed) of every numeric entry over the
    per-seed metrics: {**means, "std": {name: std}, "n_seeds": n}. The keys of the first seed count."""
    if not per_seed:
        raise ValueError("aggregate: no per-seed metrics")
    names = list(_numeric(per_seed[0]))
    values = {k: np.array([float(m[k]) for m in per_seed]) for k in names}
    n = len(per_seed)
    return dict(
        {k: float(v.mean()) for k, v in values.items()},
        std={k: float(v.std(ddof=1)) if n > 1 else None for k, v in values.items()},
        n_seeds=n,
    )


def builder(model: str, device="auto"):
    """build(params, seed) -> an unfitted model: GRU4Rec ('gru4rec') or the named baseline."""
    if model == "gru4rec":
        return lambda params, seed: GRU4Rec(params, device=device, seed=seed)
    return lambda params, seed: make_baseline(model, seed=seed, device=device, **params)


def final_run(
    train_path,
    test_path,
    params: dict,
    out_dir,
    model: str = "gru4rec",
    cutoffs=(1, 5, 10, 20),
    device="auto",
    seeds=(42,),
    mode: str = "standard",
    tracking_uri=None,
    experiment="gru4rec",
    label="final",
    eval_targets="all",
    stats_path=None,
    tags: dict | None = None,
    register_as: str | None = None,
    workspace: str | None = None,
) -> dict:
    """Train `model` ('gru4rec' or a baseline name) with `params` on train_full once per seed, evaluate
    each on test; writes out_dir/metrics.json (mean, std and per-seed metrics), params.json,
    ranks.parquet (every test prediction's rank of its target, per seed: write_ranks) and for
    GRU4Rec model.safetensors (the first seed's model). MLflow: one parent run per model with a
    nested run per seed. With `register_as`, the saved model is also registered as a pyfunc model.
    A rerun replaces only the earlier runs of the same `label` and `workspace` (tracking.workspace_id)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    build, tracker = builder(model, device), Tracker(tracking_uri, experiment, workspace=workspace)
    train, test = read_events(train_path), read_events(test_path)
    per_seed, saved, ranks = [], None, []
    with tracker.run(label, tags=dict(tags or {}, kind="final", model=model)) as parent:
        tracker.params(parent, dict(params, seeds=",".join(map(str, seeds)), tie_mode=mode))
        tracker.dataset_stats(parent, stats_path)
        for seed in seeds:
            m = build(params, seed)
            print(f"[{label}] seed {seed} ({len(per_seed) + 1}/{len(seeds)})", flush=True)
            with tracker.run(f"{label}/seed-{seed}", parent=parent, tags={"kind": "seed", "seed": seed}) as run:
                tracker.params(run, dict(m.params, seed=seed, device=str(m.device)))
                metrics = train_and_evaluate(
                    m,
                    train,
                    test,
                    cutoffs,
                    eval_targets,
                    epoch_callback=tracker.epoch_logger(run),
                    mode=mode,
                    ranks=True,
                )
                ranks.append(metrics.pop("ranks").assign(Seed=seed))
                tracker.metrics(run, _numeric(metrics))
            per_seed.append(dict(metrics, seed=seed))
            if saved is None and hasattr(m, "save"):
                saved = out / "model.safetensors"
                clear_stale(saved)  # what a killed run's save left
                m.save(saved)
        summary = aggregate([{k: v for k, v in m.items() if k != "seed"} for m in per_seed])
        result = dict(
            summary, model=model, device=per_seed[0]["device"], tie_mode=mode, seeds=list(seeds), per_seed=per_seed
        )
        write_json(out / "params.json", m.params)
        write_ranks(out / RANKS_FILE, ranks)
        write_json(out / "metrics.json", dict(result, params=m.params, label=label))
        tracker.metrics(parent, dict(_numeric(summary), **_std_metrics(summary["std"])))
        tracker.artifact(parent, out / "params.json")
        tracker.artifact(parent, out / "metrics.json")
        if saved is not None:
            tracker.artifact(parent, saved)
            if parent and register_as:
                log_and_register(saved, register_as, summary, run_id=parent, tracking_uri=tracker.uri)
    print(f"[{label}] done: {_headline(summary, cutoffs)} over {len(seeds)} seed(s)", flush=True)
    return result


def write_ranks(path, per_seed: list[pd.DataFrame]) -> None:
    """ranks.parquet of a final run: one row per test prediction and seed (SessionId, Position,
    ItemId, Rank, Seed), seed by seed, each in (session, time) order; written atomically."""
    table = pd.concat(per_seed, ignore_index=True)
    table["Position"] = table["Position"].astype(np.int32)
    table["Seed"] = table["Seed"].astype(np.int64)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        table.to_parquet(tmp, index=False)


def _std_metrics(std: dict) -> dict:
    return {f"{k}_std": v for k, v in std.items() if v is not None and not math.isnan(v)}


def _headline(summary: dict, cutoffs) -> str:
    n, nan = max(cutoffs), float("nan")
    return f"Recall@{n}={summary.get(f'recall_at_{n}', nan):.4f} MRR@{n}={summary.get(f'mrr_at_{n}', nan):.4f}"
