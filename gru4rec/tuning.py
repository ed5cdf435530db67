"""Hyperparameter search with Optuna, as the papers did it (Optuna is imported only here).

One study per dataset x embedding mode x loss: train on train_tr, score MRR@20 (or Recall@20)
on train_valid. Studies live in persistent storage: an interrupted run, started again, continues
the same study up to its trial budget without losing a finished trial. The default storage is an
Optuna journal file (safe for several local worker processes, no database); a database URL
(e.g. postgresql://...) lets workers on several machines share one study.
"""
from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import socket
import time
from pathlib import Path

from .errors import ParameterError, TrainingDivergedError

# The papers' search space (shared by both losses; BPR-max adds bpreg and the final activation).
PAPER_SPACE = {
    "layers": {"type": "int", "low": 64, "high": 512, "step": 32},
    "batch_size": {"type": "int", "low": 32, "high": 256, "step": 16},
    "learning_rate": {"type": "float", "low": 0.01, "high": 0.25, "step": 0.005},
    "dropout_p_embed": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.05},
    "dropout_p_hidden": {"type": "float", "low": 0.0, "high": 0.7, "step": 0.05},
    "momentum": {"type": "float", "low": 0.0, "high": 0.9, "step": 0.05},
    "sample_alpha": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.1},
}
BPRMAX_EXTRA = {
    "bpreg": {"type": "float", "low": 0.0, "high": 2.0, "step": 0.05},
    "final_act": {"type": "categorical", "choices": ["elu-0.5", "elu-1", "linear"]},
}
# Fixed during tuning (the papers' settings).
FIXED = {
    "cross-entropy": {"loss": "cross-entropy", "final_act": "softmax", "logq": 1.0, "n_sample": 2048, "n_epochs": 10},
    "bpr-max": {"loss": "bpr-max", "logq": 0.0, "n_sample": 2048, "n_epochs": 10},
}
EMBEDDING_MODES = {
    "none": {"embedding": 0, "constrained_embedding": False},
    "separate": {"embedding": "layersize", "constrained_embedding": False},
    "shared": {"embedding": 0, "constrained_embedding": True},
}


def paper_space(loss: str) -> dict:
    return dict(PAPER_SPACE, **(BPRMAX_EXTRA if loss == "bpr-max" else {}))


def suggest(trial, space: dict) -> dict:
    """Draw one parameter set from a space of {name: {type, low, high, step} | {type: categorical, choices}}."""
    out = {}
    for name, spec in space.items():
        kind = spec.get("type")
        if kind == "int":
            out[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), step=int(spec.get("step", 1)))
        elif kind == "float":
            v = trial.suggest_float(name, float(spec["low"]), float(spec["high"]), step=spec.get("step"),
                                    log=bool(spec.get("log", False)))
            out[name] = round(v, 10)  # 0.045000000000000005 -> 0.045
        elif kind == "categorical":
            out[name] = trial.suggest_categorical(name, list(spec["choices"]))
        else:
            raise ParameterError(f"search space entry '{name}': type must be int, float or categorical, got {kind!r}")
    if "layers" in out and not isinstance(out["layers"], list):
        out["layers"] = [out["layers"]]
    return out


def make_storage(storage: str):
    """A database URL (postgresql://, mysql://, sqlite:///) or a path to an Optuna journal file."""
    import optuna
    if "://" in str(storage):
        return optuna.storages.RDBStorage(str(storage), heartbeat_interval=60, grace_period=300)
    from optuna.storages.journal import JournalFileBackend
    Path(storage).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(storage)))


def _finished(study) -> int:
    import optuna
    S = optuna.trial.TrialState
    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state in (S.COMPLETE, S.PRUNED) or (t.state == S.FAIL and not t.user_attrs.get("interrupted")))


def _running(study) -> int:
    import optuna
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING)


def load_study(name: str, storage, seed: int = 42, fail_stale: bool = True):
    """Create or continue a study. With fail_stale, RUNNING trials left by a killed run are marked
    failed (and not counted against the budget): only do this when no other worker is running."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = make_storage(storage) if isinstance(storage, (str, Path)) else storage
    study = optuna.create_study(study_name=name, storage=store, direction="maximize", load_if_exists=True,
                                sampler=optuna.samplers.TPESampler(seed=seed))
    if fail_stale and not isinstance(store, optuna.storages.RDBStorage):
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
            study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
    return study


def objective_value(params: dict, train, valid, cutoff: int = 20, metric: str = "mrr", device="cpu", seed=42,
                    tracker=None, parent=None, trial_name="trial", eval_targets="all"):
    """Train on train, evaluate on valid; returns (value, result, history)."""
    from .core import GRU4Rec
    from .evaluation import evaluate
    model = GRU4Rec(params, device=device, seed=seed)
    run = tracker.start(trial_name, parent=parent, tags={"kind": "trial"}) if tracker else None
    try:
        if tracker:
            tracker.params(run, model.params)
        history = model.fit(train, verbose=False, callback=tracker.epoch_logger(run) if tracker else None)
        res = evaluate(model, valid, cutoffs=(cutoff,), targets=eval_targets)
        value = res.mrr[cutoff] if metric == "mrr" else res.recall[cutoff]
        if tracker:
            tracker.metrics(run, {f"valid_recall_at_{cutoff}": res.recall[cutoff], f"valid_mrr_at_{cutoff}": res.mrr[cutoff],
                                  "train_seconds": sum(h["seconds"] for h in history)})
            tracker.end(run)
        return value, res, history
    except TrainingDivergedError as e:
        if tracker:
            tracker.tags(run, {"error": str(e)})
            tracker.end(run, "FAILED")
        raise
    except BaseException:
        if tracker:
            tracker.end(run, "KILLED")
        raise


def worker(study_name, storage, train_path, valid_path, n_trials, space, fixed, cutoff=20, metric="mrr",
           device="cpu", seed=42, tracking_uri=None, experiment="gru4rec", parent=None, label="", threads=1,
           eval_targets="all", worker_id=0):
    """One worker: ask for trials until the study has n_trials finished (or running) trials."""
    import optuna
    import torch
    from .data import read_events
    from .tracking import Tracker
    if threads:
        torch.set_num_threads(threads)
    train, valid = read_events(train_path), read_events(valid_path)
    study = load_study(study_name, storage, seed=seed + worker_id, fail_stale=False)
    tracker = Tracker(tracking_uri, experiment) if tracking_uri else None
    while _finished(study) + _running(study) < n_trials:
        trial = study.ask()
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        params = dict(fixed, **suggest(trial, space))
        t0 = time.perf_counter()
        try:
            value, _, _ = objective_value(params, train, valid, cutoff, metric, device, seed, tracker, parent,
                                          f"{label}/trial-{trial.number}", eval_targets)
        except TrainingDivergedError as e:
            trial.set_user_attr("error", str(e))
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            print(f"[{label}] trial {trial.number}: failed ({e})", flush=True)
            continue
        except BaseException:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        if math.isnan(value):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        study.tell(trial, value)
        best = study.best_value
        print(f"[{label}] trial {trial.number} ({_finished(study)}/{n_trials}): {metric.upper()}@{cutoff}={value:.4f} "
              f"(best {best:.4f}) in {time.perf_counter() - t0:.1f}s", flush=True)


def run_study(study_name, storage, train_path, valid_path, n_trials, space, fixed, cutoff=20, metric="mrr",
              workers=1, device="cpu", seed=42, tracking_uri=None, experiment="gru4rec", label=None,
              eval_targets="all", threads_per_worker=1) -> dict:
    """Run (or continue) a study to its budget with `workers` processes; returns the best trial."""
    import optuna
    from .params import validate_params
    from .tracking import Tracker
    label = label or study_name
    # check the fixed part and the space's bounds before spending any time
    probe = {k: (v["low"] if v.get("type") in ("int", "float") else v["choices"][0]) for k, v in space.items()}
    if "layers" in probe:
        probe["layers"] = [probe["layers"]]
    validate_params(dict(fixed, **probe))
    study = load_study(study_name, storage, seed=seed, fail_stale=True)
    tracker = Tracker(tracking_uri, experiment) if tracking_uri else None
    parent = study.user_attrs.get("mlflow_parent_run")
    if tracker and tracker.enabled and not parent:
        parent = tracker.start(f"{label}/study", tags={"kind": "study", "study": study_name})
        study.set_user_attr("mlflow_parent_run", parent)
        tracker.params(parent, {"n_trials": n_trials, "metric": f"{metric}@{cutoff}", "fixed": json.dumps(fixed),
                                "space": json.dumps(space)})
    done = _finished(study)
    print(f"[{label}] study '{study_name}': {done}/{n_trials} trials finished, {max(0, n_trials - done)} to run "
          f"with {workers} worker(s)", flush=True)
    kwargs = dict(study_name=study_name, storage=str(storage), train_path=str(train_path), valid_path=str(valid_path),
                  n_trials=n_trials, space=space, fixed=fixed, cutoff=cutoff, metric=metric, device=device, seed=seed,
                  tracking_uri=tracking_uri, experiment=experiment, parent=parent, label=label,
                  threads=threads_per_worker, eval_targets=eval_targets)
    if done < n_trials:
        if workers <= 1:
            worker(**kwargs)
        else:
            ctx = mp.get_context("spawn")
            procs = [ctx.Process(target=worker, kwargs=dict(kwargs, worker_id=i)) for i in range(workers)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            bad = [p.exitcode for p in procs if p.exitcode != 0]
            if bad:
                raise RuntimeError(f"{len(bad)} tuning worker(s) of study '{study_name}' failed (exit codes {bad})")
    study = load_study(study_name, storage, seed=seed, fail_stale=False)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise TrainingDivergedError(f"study '{study_name}': no trial finished successfully ({len(study.trials)} failed)")
    best = study.best_trial
    params = dict(fixed, **best.params)
    if "layers" in params and not isinstance(params["layers"], list):
        params["layers"] = [params["layers"]]
    summary = {"study": study_name, "metric": f"{metric}@{cutoff}", "value": best.value, "trial": best.number,
               "n_complete": len(complete), "n_failed": len(study.trials) - len(complete), "params": params}
    if tracker and parent:
        tracker.metrics(parent, {f"best_valid_{metric}_at_{cutoff}": best.value, "n_complete": len(complete)})
        tracker.end(parent)
    print(f"[{label}] done: best {metric.upper()}@{cutoff}={best.value:.4f} (trial {best.number}); "
          f"{len(complete)} complete, {summary['n_failed']} failed", flush=True)
    return summary


def write_json(path, obj):
    """Atomic JSON write (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)
