"""MLflow as a projection of an Optuna study.

The study is the record: a trial's objective writes only to Optuna (its value, its parameters and,
as user attributes, everything MLflow shows). `publish` writes the study into MLflow and can be
called any number of times, by any number of processes: each call brings MLflow closer to `plan`,
the projection computed from the study alone, and none undoes another's work.

- The study's run and each finished, pruned or diverged trial's run are found by a key tag derived
  from what the storage fixed: the study's name, its id and its first trial's start (`study_key`),
  and the trial's number (`trial_key`); never by a name searched across the experiment.
- A missing run is written whole: created with the trial's start time, one batch of parameters,
  metrics and tags, ended with the status the trial's state gives and its completion time.
- A run present and ended is left as it is. One left RUNNING (a publish was killed between the
  create and the end) is replaced by a whole one. Of several (two publishers at once, a retried
  request), the oldest ended one is kept and the others are deleted.
- Interrupted trials (their worker died) are not published: they run again under a new number.
- The study's run holds the study's settings and its summary (best value, counts): a publish
  changes only the metrics whose values changed, so that a repeated publish adds nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import timezone

import optuna
from mlflow.exceptions import MlflowException

from .sampling import interrupted, spent
from .spaces import as_model_params
from .tracking import stats_params

S = optuna.trial.TrialState
# a trial's state -> its run's status; a pruned trial stopped early on purpose (tagged `pruned`)
STATUS = {S.COMPLETE: "FINISHED", S.PRUNED: "KILLED", S.FAIL: "FAILED"}


# the trials that have a run: finished, pruned, or failed on its own (diverged), as those that
# used up budget; a trial of a dead worker runs again under another number
published = spent


def _digest(*parts) -> str:
    return hashlib.sha256("\n".join(map(str, parts)).encode()).hexdigest()[:32]


def study_key(study, trials=None) -> str | None:
    """The study's identity in MLflow, from what its storage fixed; None before its first trial:
    its name, its id and its first trial's id and start. A study deleted and created again under
    the same name, also in a new journal file, gets another key (its first trial starts at another
    time). Optuna gives the start in the reader's time zone: taken in UTC, to the second, every
    reader on every machine computes the same key."""
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    if not trials:
        return None
    first = min(trials, key=lambda t: t.number)
    start = first.datetime_start.astimezone(timezone.utc).replace(microsecond=0) if first.datetime_start else ""
    return _digest(study.study_name, study._study_id, first._trial_id, start)


def trial_key(key: str, number: int) -> str:
    return _digest(key, number)


def _ms(when) -> int | None:
    return int(when.timestamp() * 1000) if when else None


@dataclass
class Run:
    """One MLflow run as the projection has it."""

    key: str  # the value of its tag `trial_key` (a trial) or `study_key` (the study)
    name: str
    status: str
    tags: dict
    params: dict = field(default_factory=dict)
    metrics: list = field(default_factory=list)  # (name, value, step)
    start: int | None = None  # ms since the epoch
    end: int | None = None

    def latest_metrics(self) -> dict:
        return {name: value for name, value, _ in sorted(self.metrics, key=lambda m: m[2])}


def summary(study, trials, fixed: dict, metric: str) -> dict:
    """The best trial and the trial counts (what the study's run and the tune job report)."""
    complete = [t for t in trials if t.state == S.COMPLETE]
    n_failed = sum(1 for t in trials if t.state == S.FAIL and not interrupted(t))
    out = {
        "study": study.study_name,
        "metric": metric,
        "n_complete": len(complete),
        "n_failed": n_failed,
        "n_interrupted": sum(1 for t in trials if interrupted(t)),
        "n_pruned": sum(1 for t in trials if t.state == S.PRUNED),
    }
    if complete:
        best = max(complete, key=lambda t: (t.value, -t.number))  # the first of equal values, as Optuna
        out.update(value=best.value, trial=best.number, params=dict(fixed, **as_model_params(best.params)))
    return out


def _study_run(study, trials, key, label, meta, stats: dict) -> Run:
    s = summary(study, trials, meta.get("fixed", {}), meta.get("metric", ""))
    metrics = {"n_trials": meta.get("n_trials")} | {k: s[k] for k in ("n_complete", "n_failed", "n_pruned") if k in s}
    if "value" in s:
        metrics |= {"best_value": s["value"], "best_trial": s["trial"]}
    params = {
        "metric": meta.get("metric", ""),
        "fixed": json.dumps(meta.get("fixed", {})),
        "space": json.dumps(meta.get("space", {})),
    } | stats
    return Run(
        key=key,
        name=f"{label}/study",
        status="FINISHED",
        tags={"kind": "study", "study": study.study_name, "study_key": key},
        params=params,
        metrics=[(k, float(v), 0) for k, v in metrics.items() if v is not None],
        start=_ms(min(trials, key=lambda t: t.number).datetime_start),
    )


def _trial_run(trial, key, label) -> Run:
    attrs = trial.user_attrs
    tk = trial_key(key, trial.number)
    tags = {"kind": "trial", "optuna_trial": trial.number, "study_key": key, "trial_key": tk}
    tags |= {k: attrs[k] for k in ("worker", "device", "error") if k in attrs}
    if trial.state == S.PRUNED:
        tags["pruned"] = "true"
    metrics = [(k, float(v), 0) for k, v in (attrs.get("metrics") or {}).items()]
    if trial.state == S.COMPLETE:
        metrics.append(("value", float(trial.value), 0))
    if "seconds" in attrs:
        metrics.append(("seconds", float(attrs["seconds"]), 0))
    for row in attrs.get("history") or []:  # one row per epoch: step = epoch
        metrics += [(k, float(v), int(row["epoch"])) for k, v in row.items() if k != "epoch"]
    return Run(
        key=tk,
        name=f"{label}/trial-{trial.number}",
        status=STATUS[trial.state],
        tags=tags,
        params=attrs.get("params") or as_model_params(trial.params),
        metrics=metrics,
        start=_ms(trial.datetime_start),
        end=_ms(trial.datetime_complete),
    )


def plan(study, label: str, meta: dict, stats_path=None, trials=None) -> tuple[Run | None, list[Run]]:
    """The projection of the study: its run and its trials' runs (what MLflow should hold).
    `meta`: n_trials, metric, fixed, space (the settings the study's run shows)."""
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    key = study_key(study, trials)
    if key is None:
        return None, []
    runs = [_trial_run(t, key, label) for t in sorted(trials, key=lambda t: t.number) if published(t)]
    return _study_run(study, trials, key, label, meta, stats_params(stats_path)), runs


def publish(study, tracker, label: str, meta: dict, stats_path=None, only=None) -> str | None:
    """Bring MLflow in line with `plan` (see the module's docstring); returns the study run's id.
    `only`: the trial numbers to publish (a trial's callback publishes its own), else all; the
    study's summary metrics and best_params.json are written by a publish of all."""
    if not tracker.enabled:
        return None
    trials = study.get_trials(deepcopy=False)
    study_run, trial_runs = plan(study, label, meta, stats_path, trials)
    if study_run is None:
        return None
    for _ in range(3):  # again where another publisher took the study run this one wrote for a leftover
        found = tracker.tagged("study_key", study_run.key)  # the study's runs, oldest first: one search
        parent, have, tags = _keep_study_run(tracker, study_run, [r for r in found if _kind(r) == "study"], stats_path)
        if parent is not None:
            break
    else:
        raise MlflowException(f"{study_run.name}: the study's run was deleted while it was written, three times")
    by_key: dict[str, list] = {}
    for r in found:
        if _kind(r) == "trial":
            by_key.setdefault(r.data.tags.get("trial_key"), []).append(r)
    for spec in trial_runs:
        if only is not None and spec.tags["optuna_trial"] not in only:
            continue
        present = by_key.get(spec.key, [])
        ended = [r for r in present if r.info.status != "RUNNING"]
        keep = ended[0] if ended else None  # the oldest ended one; a RUNNING one is a killed publish's
        for r in present:
            if r is not keep:
                _discard(tracker, r)
        if keep is None:
            _write(tracker, spec, parent)
        elif keep.data.tags.get("mlflow.parentRunId") != parent:  # under a study run that went
            tracker.tags(keep.info.run_id, {"mlflow.parentRunId": parent})
    if only is None:
        changed = {k: v for k, v in study_run.latest_metrics().items() if have.get(k) != v}
        s = summary(study, trials, meta.get("fixed", {}), meta.get("metric", ""))
        digest = _digest(json.dumps(s, sort_keys=True, default=str))
        if "params" in s and tags.get("best_params") != digest:  # the tag says which summary the file holds
            tracker.artifact_json(parent, s, "best_params.json")
            tracker.tags(parent, {"best_params": digest})
        tracker.metrics(parent, changed)
    return parent


def _kind(run) -> str | None:
    return run.data.tags.get("kind")


def _keep_study_run(tracker, spec: Run, runs: list, stats_path) -> tuple[str | None, dict, dict]:
    """The study's run and the latest values of its metrics and tags: the oldest ended run (a
    RUNNING one, when it is all there is, is completed instead of replaced: trial runs may nest
    under it already); the other runs move their trials to it and go. None where the run this
    call wrote was taken meanwhile by another publisher for a killed publish's leftover."""
    if not runs:
        return _write(tracker, spec, None, stats_path), spec.latest_metrics(), spec.tags
    ended = [r for r in runs if r.info.status != "RUNNING"]
    keep = (ended or runs)[0]
    run_id, have = keep.info.run_id, dict(keep.data.metrics)
    if keep.info.status == "RUNNING":  # a publish killed before it ended the run: completed
        missing = {k: v for k, v in spec.params.items() if k not in keep.data.params}
        tracker.log(run_id, params=missing, metrics=[m for m in spec.metrics if m[0] not in have])
        tracker.artifact(run_id, stats_path, "data")
        tracker.end(run_id, spec.status)
        have = spec.latest_metrics() | have
    for other in runs:
        if other is not keep:
            for child in tracker.children(other.info.run_id):
                tracker.tags(child.info.run_id, {"mlflow.parentRunId": run_id})
            _discard(tracker, other)
    return run_id, have, dict(keep.data.tags)


def _discard(tracker, run) -> None:
    """A duplicate or a killed publish's leftover: ended (KILLED, if it was RUNNING) and deleted."""
    tracker.delete(run.info.run_id, running=run.info.status == "RUNNING")


def _write(tracker, spec: Run, parent: str | None, stats_path=None) -> str | None:
    """Create the run and write it whole; returns its id. Another publisher may delete it meanwhile
    (it took the run for a killed publish's leftover, and writes it itself): then None. A run that
    cannot be written (the store refuses a value) goes, so that none is left RUNNING."""
    run_id = tracker.start(spec.name, parent=parent, tags=spec.tags, start_time=spec.start)
    try:
        tracker.log(run_id, params=spec.params, metrics=spec.metrics)
        tracker.artifact(run_id, stats_path, "data")
        tracker.end(run_id, spec.status, end_time=spec.end)
    except MlflowException:
        if not tracker.exists(run_id):
            return None
        tracker.delete(run_id, running=True)
        raise
    return run_id
