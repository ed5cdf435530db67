"""Hyperparameter search with Optuna, as the papers did it.

One study per dataset x embedding mode x loss: train on train_tr, score MRR@20 (or Recall@20) on
train_valid. A study lives in persistent storage and is run to a trial *budget*, not for a number
of trials: started again after a kill, it continues where it stopped, and any number of workers
(processes here, or machines sharing a database) can work on it at once.

Storage. A path means an Optuna journal file (`JournalStorage`): an append-only log with a file
lock, safe for many local processes, no database needed (one SQLite file locks up under parallel
writers). A URL (postgresql://, mysql://) means a database shared by several machines.

Pruning (`pruner`: none | median | hyperband; off by default, as in the papers). With a pruner,
a trial reports its validation score after every epoch but the last, and Optuna stops a trial
whose score lags the other trials' at the same epoch (PRUNED). A pruned trial uses up budget like
a complete one: the budget counts trials tried, not trials finished.

Which trials use up the budget. COMPLETE and PRUNED ones, and FAILED ones that failed on their own (a
diverged training: NaN loss or score; tagged with the user attribute `error`). A trial whose
worker was killed is left RUNNING by the storage; it must neither block the study nor count, so
before a worker starts, such trials are failed (tag `interrupted`) and run again: a trial of a
dead process on this machine is recognised by the host, machine id, pid and process start it
records; on a database, by Optuna's heartbeat (a worker that has not reported for `grace_period`
seconds is dead, on any machine).
"""

from __future__ import annotations

import json
import math
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import sqlalchemy
import torch
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from gru4rec import evaluate, read_events
from gru4rec.errors import ParameterError, TrainingDivergedError, first_line
from gru4rec.params import validate_params
from gru4rec.processes import machine_id, process_alive, process_start

from .jobs import pause_point
from .runs import builder, train_and_evaluate
from .sampling import SlotSeededTPE, claim_slot, interrupted

# the spaces are re-exported: the tune jobs and the tests read them from here
from .spaces import (  # noqa: F401
    BASELINE_SPACES,
    EMBEDDING_PARAMS,
    PAPER_SPACE,
    as_model_params,
    baseline_space,
    check_fixed_and_space,
    fixed_params,
    paper_space,
    study_setup,
)
from .tracking import Tracker

S = optuna.trial.TrialState
# A RUNNING trial that does not say which process runs it (a worker killed between Optuna's ask
# and the objective's first line; a live one names itself within milliseconds) is taken as dead
# once this job has seen it so for this long, on its own clock (other machines' clocks, and the
# time zone a database stores the start in, may differ).
_UNNAMED_GRACE_SECONDS = 60
_unnamed_since: dict = {}  # (study, trial id, its start) -> when this process first saw it unnamed
# Jobs that start one new study at the same moment write their key and create their study run
# within this long of each other (see _find_or_start_study_run).
_SETTLE_SECONDS = 1.0
# a journal's lock unchanged this long belongs to a writer that was killed holding it (Optuna's default)
JOURNAL_LOCK_GRACE_SECONDS = 30


def suggest(trial, space: dict) -> dict:
    """Draw one parameter set from a space of {name: {type, low, high, step} | {type: categorical, choices}}."""
    out = {}
    for name, spec in space.items():
        kind = spec.get("type")
        if kind == "int":
            out[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), step=int(spec.get("step", 1)))
        elif kind == "float":
            out[name] = trial.suggest_float(
                name, float(spec["low"]), float(spec["high"]), step=spec.get("step"), log=bool(spec.get("log", False))
            )
        elif kind == "categorical":
            out[name] = trial.suggest_categorical(name, list(spec["choices"]))
        else:
            raise ParameterError(f"search space entry '{name}': type must be int, float or categorical, got {kind!r}")
    return as_model_params(out)


def make_storage(storage, heartbeat_interval: int = 60, grace_period: int = 180):
    """A database URL (postgresql://, mysql://, sqlite:///) or the path of an Optuna journal file."""
    if not isinstance(storage, (str, Path)):
        return storage
    if "://" in str(storage):
        return _database(str(storage), heartbeat_interval, grace_period)
    path = str(Path(storage).resolve())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # A lock file of its own (O_EXCL), not Optuna's default symbolic link to the journal: the link's
    # age is the journal's, which a new holder does not change, so every writer waiting on a lock
    # left by a killed one would break it, the next holder's too, and write at once. A link that an
    # earlier version of this code left dangling (a relative target) would block every writer.
    lock_path = Path(path + ".lock")
    if lock_path.is_symlink() and not lock_path.exists():
        lock_path.unlink(missing_ok=True)
    lock = JournalFileOpenLock(path, grace_period=JOURNAL_LOCK_GRACE_SECONDS)
    return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=lock))


def _database(url: str, heartbeat_interval: int, grace_period: int, attempts: int = 5):
    """Optuna's storage in a database. Jobs that start together on a new database race to create
    Optuna's tables there, and a loser's CREATE can fail: it tries again and finds the tables."""
    for k in range(attempts):
        try:
            with warnings.catch_warnings():  # the heartbeat API is marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
        except sqlalchemy.exc.SQLAlchemyError:
            if k == attempts - 1:
                raise
            time.sleep(0.5 * (k + 1))


PRUNERS = ("none", "median", "hyperband")


def make_pruner(name: str):
    """Optuna's pruner for a `tuning.pruner` name; the steps it compares are epochs."""
    if name not in PRUNERS:
        raise ParameterError(f"tuning pruner must be one of {', '.join(PRUNERS)}, got '{name}'")
    if name == "median":  # stop below the median of earlier trials at the same epoch, after 5 trials
        return optuna.pruners.MedianPruner(n_startup_trials=5)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def load_study(name: str, storage, seed: int = 42, pruner: str = "none"):
    """Create the study, or open it as it is (maximising; TPE seeded per trial slot, so that kills
    and the number of workers do not change the draws: see experiments.sampling)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own progress lines say it once
    return optuna.create_study(
        study_name=name,
        storage=make_storage(storage),
        direction="maximize",
        load_if_exists=True,
        sampler=SlotSeededTPE(seed),
        pruner=make_pruner(pruner),
    )


def _this_worker() -> dict:
    """The user attributes that identify this worker process: `worker` (host:pid, for people),
    `worker_machine` and `worker_start` (for _is_orphan), written in this order: `worker` last, so
    that a reader never sees it without the other two."""
    pid = os.getpid()
    return {
        "worker_machine": machine_id(),
        "worker_start": process_start(pid),
        "worker": f"{socket.gethostname()}:{pid}",
    }


def _is_orphan(study_name: str, trial) -> bool:
    """A RUNNING trial whose worker is gone; only decidable for workers on this machine (other
    machines' are found by the database's heartbeat). Gone: its pid is not alive, or is alive
    but started at another time (the pid was reused, or the machine rebooted)."""
    attrs = trial.user_attrs
    worker = attrs.get("worker")
    if worker is None:
        first_seen = _unnamed_since.setdefault((study_name, trial._trial_id, trial.datetime_start), time.monotonic())
        return time.monotonic() - first_seen > _UNNAMED_GRACE_SECONDS
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    machine = attrs.get("worker_machine")  # absent, as the start, in a study written before they were recorded
    if machine is not None and machine != machine_id():  # another machine of the same name
        return False
    if not process_alive(int(pid)):
        return True
    # a start that cannot be read (another user's process under /proc's hidepid) is no evidence
    recorded, now = attrs.get("worker_start"), process_start(int(pid))
    return bool(recorded and now) and recorded != now


def release_orphans(study, storage) -> int:
    """Fail the RUNNING trials of dead workers (tag `interrupted`) so that they neither block the
    study nor count against its budget; returns how many. Safe while other workers are running.
    `storage` is the study's storage object (`make_storage`)."""
    with warnings.catch_warnings():  # the heartbeat API is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # databases: no heartbeat for grace_period -> FAIL
    n = 0
    for t in study.get_trials(deepcopy=False, states=(S.RUNNING,)):
        if _is_orphan(study.study_name, t):
            try:
                storage.set_trial_user_attr(t._trial_id, "interrupted", True)
                storage.set_trial_state_values(t._trial_id, S.FAIL)
                n += 1
            except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
                pass  # finished (or failed by another worker) in the meantime
    return n


def trial_run_name(label: str, number: int) -> str:
    return f"{label}/trial-{number}"


def _close_interrupted_runs(study, tracker, label) -> None:
    """Bring the MLflow runs of failed trials in line with the study after a worker died (killed
    job, lost node). An interrupted trial runs again: its run is tagged `superseded` and ends
    KILLED, whether its worker died while it was RUNNING or after it FINISHED but before Optuna
    recorded the value; a worker killed after it started the run but before it recorded the run's
    id in the study leaves no id: that run is found by its name under the study's run. A diverged
    trial's run left RUNNING (by a study written before `_record_failure` ended the run first)
    ends FAILED."""
    failed = study.get_trials(deepcopy=False, states=(S.FAIL,))
    if not tracker.enabled or not failed:
        return
    parent = study.user_attrs.get("mlflow_parent_run")
    # one search for the study's runs, not two calls per failed trial: most are closed already
    runs = tracker.children(parent) if parent else []
    by_id = {r.info.run_id: r for r in runs}
    for t in failed:
        run_id = t.user_attrs.get("mlflow_run")
        if run_id and run_id not in by_id:  # not nested under the study's run: looked up on its own
            if interrupted(t):
                tracker.supersede(run_id)
            else:
                tracker.end_if_running(run_id, "FAILED")
            continue
        name = trial_run_name(label, t.number)
        for run in [by_id[run_id]] if run_id else [r for r in runs if r.info.run_name == name]:
            if not interrupted(t):
                if run.info.status == "RUNNING":
                    tracker.end(run.info.run_id, "FAILED")
            elif run_id or run.info.status == "RUNNING":
                tracker.supersede_run(run)


def _anonymous(study) -> list:
    """RUNNING trials that do not say which worker runs them (yet: see _is_orphan)."""
    return [t for t in study.get_trials(deepcopy=False, states=(S.RUNNING,)) if "worker" not in t.user_attrs]


def _diverged(trial) -> bool:
    """Failed on its own (NaN loss or score, tagged `error`): it uses up budget. A trial failed
    because its worker died (`release_orphans`, or Optuna's heartbeat) does not."""
    return trial.state == S.FAIL and not interrupted(trial)


def counts(study) -> tuple[int, int]:
    """(trials that use up the budget, trials running now)."""
    used = running = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (S.COMPLETE, S.PRUNED) or _diverged(t):
            used += 1
        elif t.state == S.RUNNING:
            running += 1
    return used, running


@dataclass
class ValidationScore:
    """The papers' objective: train the model (GRU4Rec, or the baseline named by `model`) with the
    parameters on train_tr, return MRR@cutoff (or Recall@cutoff) on train_valid, ranking ties by
    `mode` (the evaluator's tie modes). Picklable, so that spawned workers get a copy; each loads
    the data once."""

    train_path: str
    valid_path: str
    cutoff: int = 20
    metric: str = "mrr"
    device: str = "cpu"
    seed: int = 42
    eval_targets: str = "all"
    threads: int = 1
    model: str = "gru4rec"
    mode: str = "standard"
    _data: tuple | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.metric not in ("mrr", "recall"):
            raise ParameterError(f"tuning metric must be 'mrr' or 'recall', got '{self.metric}'")

    def __getstate__(self):
        return dict(self.__dict__, _data=None)

    def __call__(self, params: dict, epoch_callback=None, prune=None) -> tuple[float, dict]:
        """`prune(epoch, value)`, when given, gets the validation score after every epoch but the
        last (which the final evaluation scores) and raises optuna.TrialPruned to stop the trial."""
        torch.set_num_threads(max(1, self.threads))
        if self._data is None:
            self._data = (read_events(self.train_path), read_events(self.valid_path))
        train, valid = self._data
        model = builder(self.model, self.device)(params, self.seed)
        if prune is not None:
            epoch_callback = self._pruning_callback(model, valid, epoch_callback, prune)
        m = train_and_evaluate(
            model,
            train,
            valid,
            (self.cutoff,),
            self.eval_targets,
            verbose=False,
            epoch_callback=epoch_callback,
            mode=self.mode,
        )
        recall, mrr = m[f"recall_at_{self.cutoff}"], m[f"mrr_at_{self.cutoff}"]
        return mrr if self.metric == "mrr" else recall, {
            f"valid_recall_at_{self.cutoff}": recall,
            f"valid_mrr_at_{self.cutoff}": mrr,
            "train_seconds": m["train_seconds"],
            "device": m["device"],
        }

    def _pruning_callback(self, model, valid, epoch_callback, prune):
        def after_epoch(info):
            if epoch_callback is not None:
                epoch_callback(info)
            if info["epoch"] < model.params["n_epochs"]:
                res = evaluate(model, valid, cutoffs=(self.cutoff,), targets=self.eval_targets, mode=self.mode)
                prune(info["epoch"], (res.mrr if self.metric == "mrr" else res.recall)[self.cutoff])

        return after_epoch


def _pruning_check(trial):
    """prune(epoch, value): report the value to Optuna; raise TrialPruned when its pruner says so."""

    def prune(epoch: int, value: float):
        trial.report(value, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch} ({value:.4f})")

    return prune


@dataclass
class _Objective:
    """One trial: draw parameters, score them, log the trial to MLflow under the study's run."""

    score: object  # callable(params, epoch_callback=None) -> (value, extra metrics)
    space: dict
    fixed: dict
    tracker: object  # a tracking.Tracker (picklable: each worker process opens its own client)
    parent_run: str | None = None
    label: str = ""
    pruning: bool = False  # report every epoch's validation score to the study's pruner

    def __call__(self, trial) -> float:
        for key, value in _this_worker().items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("slot", claim_slot(trial.study, trial))  # before the first draw
        params = dict(self.fixed, **suggest(trial, self.space))
        tracker = self.tracker
        run = tracker.start(
            trial_run_name(self.label, trial.number),
            parent=self.parent_run,
            tags={"kind": "trial", "optuna_trial": trial.number},
        )
        if run:  # a later job marks it KILLED if this worker dies (_close_interrupted_runs)
            trial.set_user_attr("mlflow_run", run)
        pause_point(f"trial-{trial.number}")
        tracker.params(run, params)
        t0 = time.perf_counter()
        pruning = {"prune": _pruning_check(trial)} if self.pruning else {}
        try:
            value, extra = self.score(params, epoch_callback=tracker.epoch_logger(run) if run else None, **pruning)
            if value is None or math.isnan(value):
                raise TrainingDivergedError(f"the validation score is {value}")
        except TrainingDivergedError as e:
            _record_failure(trial, tracker, run, str(e))
            raise
        except RuntimeError as e:
            # this parameter set failed on its own (e.g. torch's out-of-memory on a large network): the
            # trial keeps its slot and uses budget, so a rerun draws the next slot's parameters instead
            # of failing on the same ones again; errors of the data or the code (not RuntimeError)
            # still stop the job
            msg = f"{type(e).__name__}: {first_line(e)}"
            _record_failure(trial, tracker, run, msg)
            raise TrialFailed(msg) from e
        except optuna.TrialPruned:
            trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
            tracker.tags(run, {"pruned": "true"})
            tracker.end(run, "KILLED")
            raise
        except BaseException:
            tracker.end(run, "KILLED")
            raise
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
        tracker.metrics(run, dict(extra, value=value))  # logs the numeric entries; the device is a tag
        if "device" in extra:
            tracker.tags(run, {"device": extra["device"]})
        tracker.end(run)
        pause_point(f"trial-{trial.number}:run-ended")  # killed here, the run is superseded (the trial runs again)
        return value


class TrialFailed(RuntimeError):
    """A trial's parameter set failed with a runtime error; the study goes on."""


def _record_failure(trial, tracker, run, message: str):
    """Tag a trial failed on its own (it keeps its slot and uses budget: see _diverged). The run
    ends first: a job killed in between leaves an interrupted trial (run again) with a FAILED run,
    not a diverged trial whose run stays RUNNING."""
    tracker.tags(run, {"error": message})
    tracker.end(run, "FAILED")
    pause_point(f"trial-{trial.number}:run-ended")
    trial.set_user_attr("error", message)


class _Progress:
    """Prints one line per finished trial of the study (whichever worker or machine ran it)."""

    def __init__(self, study, label: str, n_trials: int, metric: str):
        self.label, self.n_trials, self.metric = label, n_trials, metric
        self.seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        self.used = counts(study)[0]

    def __call__(self, study, _trial=None):
        for t in study.get_trials(deepcopy=False):
            if not t.state.is_finished() or t.number in self.seen:
                continue
            self.seen.add(t.number)
            if t.state == S.COMPLETE:
                self.used += 1
                secs = t.user_attrs.get("seconds")
                took = f" in {secs:.1f}s" if secs is not None else ""
                print(
                    f"[{self.label}] trial {t.number} ({self.used}/{self.n_trials}): {self.metric}={t.value:.4f} "
                    f"(best {study.best_value:.4f}){took}",
                    flush=True,
                )
            elif t.state == S.PRUNED:
                self.used += 1
                epoch = max(t.intermediate_values, default=0)
                print(
                    f"[{self.label}] trial {t.number} ({self.used}/{self.n_trials}): pruned after epoch {epoch}",
                    flush=True,
                )
            elif _diverged(t):
                self.used += 1
                print(
                    f"[{self.label}] trial {t.number} ({self.used}/{self.n_trials}): failed, {t.user_attrs['error']}",
                    flush=True,
                )


class _StopAtBudget:
    """Stops a worker once finished + running trials reach the budget (checked after every trial)."""

    def __init__(self, n_trials: int, progress: _Progress | None = None, parent_pid: int | None = None):
        self.n_trials, self.progress, self.parent_pid = n_trials, progress, parent_pid

    def __call__(self, study, trial):
        pause_point(f"trial-{trial.number}:recorded")  # between trials: this worker runs none
        if self.progress:
            self.progress(study, trial)
        used, running = counts(study)
        orphaned = self.parent_pid is not None and os.getppid() != self.parent_pid  # the tune job was killed
        if orphaned or used + running >= self.n_trials:
            study.stop()


def _work(study_name, storage, objective, n_trials, seed, progress=None, parent_pid=None, pruner="none"):
    """One worker: run trials of the study until the budget is reached (or its parent is gone)."""
    study = load_study(study_name, storage, seed=seed, pruner=pruner)
    used, running = counts(study)
    if used + running < n_trials:
        study.optimize(
            objective,
            n_trials=n_trials - used - running,
            catch=(TrainingDivergedError, TrialFailed),
            callbacks=[_StopAtBudget(n_trials, progress, parent_pid)],
            gc_after_trial=False,
        )


def run_study(
    study_name: str,
    storage,
    score,
    space: dict,
    fixed: dict,
    n_trials: int,
    workers: int = 1,
    seed: int = 42,
    metric_name: str = "MRR@20",
    tracking_uri: str | None = None,
    experiment: str = "gru4rec",
    label: str | None = None,
    stats_path=None,
    poll_seconds: float = 2.0,
    check=validate_params,
    pruner: str = "none",
) -> dict:
    """Run (or continue) a study to `n_trials` with `workers` local processes; returns the summary
    of the best trial: {study, metric, value, trial, n_complete, n_failed, n_interrupted, params}.

    `score(params, epoch_callback=None) -> (value, extra_metrics)` is the objective: a
    `ValidationScore` for GRU4Rec and the baselines (any picklable callable for tests); with a
    `pruner` other than none it is also given `prune=` (see ValidationScore). The k-th trial of
    the budget samples with TPE seeded (seed, k), whichever worker runs it. `check(params)`
    validates a parameter set before any training (GRU4Rec's validate_params; a baseline's
    validate_params for its study). Raises TrainingDivergedError when no trial of the study
    succeeded.
    """
    label = label or study_name
    if n_trials < 1 or workers < 1:
        raise ParameterError(f"n_trials and workers must be >= 1, got {n_trials} and {workers}")
    if not space:
        raise ParameterError(f"study '{study_name}': the search space is empty")
    check_fixed_and_space(fixed, space, check)
    store = make_storage(storage)
    study = load_study(study_name, store, seed=seed, pruner=pruner)
    interrupted = release_orphans(study, store)
    tracker = Tracker(tracking_uri, experiment)
    _close_interrupted_runs(study, tracker, label)
    parent = _study_run(study, tracker, label, n_trials, metric_name, fixed, space, stats_path)
    used, running = counts(study)
    print(
        f"[{label}] study '{study_name}': {used}/{n_trials} trials done"
        + (f", {interrupted} interrupted trial(s) released" if interrupted else "")
        + (f", {running} running elsewhere" if running else "")
        + f"; {max(0, n_trials - used - running)} to run with {workers} worker(s)",
        flush=True,
    )
    objective = _Objective(score, space, fixed, tracker, parent, label, pruning=pruner != "none")
    progress = _Progress(study, label, n_trials, metric_name)
    waiting = False
    while True:
        if workers == 1:
            _work(study_name, storage, objective, n_trials, seed, progress, pruner=pruner)
        elif (left := n_trials - sum(counts(study))) > 0:
            # no more processes than trials left: each loads the data, and each that starts would
            # run a trial, beyond the budget for those too many
            n_procs = min(workers, left)
            args = (study, study_name, storage, objective, n_trials, seed, n_procs, progress, poll_seconds, pruner)
            _run_processes(*args)
        # trials of workers (of other jobs) that died meanwhile were counted as running: released
        # here (this host) or by the database's heartbeat, they leave budget to run
        release_orphans(study, store)
        _close_interrupted_runs(study, tracker, label)
        used, running = counts(study)
        if used + running < n_trials:
            print(
                f"[{label}] {n_trials - used - running} trial(s) left by workers that died meanwhile: running them",
                flush=True,
            )
        elif used >= n_trials or not (unnamed := _anonymous(study)):
            parent = _join_study_run(study, tracker, parent)
            return _summarise(study, fixed, metric_name, tracker, parent, label)
        else:  # a live worker names itself at once; a trial that still has no name is released once stale
            if not waiting:
                print(
                    f"[{label}] {len(unnamed)} trial(s) started by a worker killed before it recorded "
                    f"its process: taken as dead once unnamed for {_UNNAMED_GRACE_SECONDS} s, then run again",
                    flush=True,
                )
            waiting = True
            time.sleep(poll_seconds)


def _study_run(study, tracker, label, n_trials, metric_name, fixed, space, stats_path):
    """The study's MLflow parent run: created once and recorded in the study, so that resumed
    runs and workers on other machines nest their trials under the same run."""
    if not tracker.enabled:
        return None
    for _ in range(3):
        recorded = study.user_attrs.get("mlflow_parent_run")
        parent = _find_or_start_study_run(study, tracker, label, recorded)
        # recorded only where no job beside this one recorded its own meanwhile: that one is kept,
        # and this job's run (no trial runs yet) folds into it
        if parent != recorded and study.user_attrs.get("mlflow_parent_run") == recorded:
            study.set_user_attr("mlflow_parent_run", parent)
        parent = _join_study_run(study, tracker, parent)
        if tracker.exists(parent):
            break  # else another job starting beside this one folded it away meanwhile: again
    tracker.reopen(parent)
    if "n_trials" not in tracker.logged_params(parent):  # logged last: a job killed before left it out
        tracker.dataset_stats(parent, stats_path)
        params = {"n_trials": n_trials, "metric": metric_name, "fixed": json.dumps(fixed), "space": json.dumps(space)}
        tracker.params(parent, params)
    return parent


def _find_or_start_study_run(study, tracker, label, recorded) -> str:
    """The run the study records (`recorded`), or one tagged with the key the study keeps (a job
    killed after it created the run, before it recorded it, left it; a study of the same name
    started afresh has another key), or a new one. Other runs with the key (of a job killed beside
    it) are folded into the recorded one. Jobs that start one new study together each write a key,
    wait (_SETTLE_SECONDS) and read back the last one, and keep the oldest run with it; where they
    still chose apart, each job's run is folded into the recorded one at its end (_join_study_run)."""
    if "mlflow_study_key" not in study.user_attrs:
        study.set_user_attr("mlflow_study_key", uuid.uuid4().hex)
        time.sleep(_SETTLE_SECONDS)
    key = study.user_attrs["mlflow_study_key"]  # read back: the last job's to write its own
    runs = tracker.tagged("study_key", key)
    ids = [r.info.run_id for r in runs]
    if recorded and recorded not in ids and tracker.exists(recorded):
        tracker.tags(recorded, {"study_key": key})  # a study recorded before its run had a key
    elif recorded not in ids:
        if not runs:
            tracker.start(f"{label}/study", tags={"kind": "study", "study": study.study_name, "study_key": key})
            time.sleep(_SETTLE_SECONDS)
            runs = tracker.tagged("study_key", key)
        return runs[0].info.run_id
    for run in runs:
        if run.info.run_id != recorded:
            tracker.fold_into(run.info.run_id, recorded)
    return recorded


def _join_study_run(study, tracker, parent):
    """At a job's end: where a job started beside this one recorded another study run, this job's
    run (with its trial runs) is folded into that one, which the job then reports to."""
    recorded = study.user_attrs.get("mlflow_parent_run")
    if not tracker.enabled or recorded in (None, parent) or not tracker.exists(recorded):
        return parent
    tracker.fold_into(parent, recorded)
    return recorded


def _run_processes(study, study_name, storage, objective, n_trials, seed, workers, progress, poll_seconds, pruner):
    """Workers are fresh interpreters started with the pickled job (not multiprocessing: its spawn
    re-runs the parent's main script, which for a Snakemake job is the job itself, and fork would
    share torch's threads and the stores' database connections). Their output goes to a file each
    and is shown when a worker fails; the progress lines come from here, read off the study."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    code = "import pickle, sys; from experiments.tuning import _work; _work(*pickle.load(sys.stdin.buffer))"
    procs = []
    with tempfile.TemporaryDirectory(prefix="tune-workers-") as tmp:
        try:
            for k in range(workers):
                out = open(Path(tmp) / f"worker-{k}.log", "w+")
                proc = subprocess.Popen(
                    [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, env=env
                )
                proc.stdin.write(
                    pickle.dumps((study_name, str(storage), objective, n_trials, seed, None, os.getpid(), pruner))
                )
                proc.stdin.close()
                procs.append((proc, out))
            while any(p.poll() is None for p, _ in procs):
                time.sleep(poll_seconds)
                progress(study)
        finally:
            for p, _ in procs:
                if p.poll() is None:
                    p.terminate()
                p.wait()
        progress(study)
        failed = []
        for k, (p, out) in enumerate(procs):
            if p.returncode != 0:
                out.seek(0)
                tail = out.read().strip().splitlines()[-15:]
                print(f"[tune worker {k}] exit code {p.returncode}:\n  " + "\n  ".join(tail), file=sys.stderr)
                failed.append(p.returncode)
            out.close()
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {workers} tuning workers of study '{study_name}' failed "
            f"(exit codes {failed}); their last lines are above"
        )


def _summarise(study, fixed, metric_name, tracker, parent, label) -> dict:
    """The best trial and the trial counts; `study` reads the storage afresh, so trials of other
    workers are included."""
    study_name = study.study_name
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == S.COMPLETE]
    n_failed = sum(1 for t in trials if _diverged(t))
    n_interrupted = sum(1 for t in trials if t.state == S.FAIL) - n_failed
    n_pruned = sum(1 for t in trials if t.state == S.PRUNED)
    if not complete:
        raise TrainingDivergedError(
            f"study '{study_name}': no trial succeeded ({n_failed} diverged); "
            "narrow the search space (e.g. lower learning rates)"
        )
    best = study.best_trial
    summary = {
        "study": study_name,
        "metric": metric_name,
        "value": best.value,
        "trial": best.number,
        "n_complete": len(complete),
        "n_failed": n_failed,
        "n_interrupted": n_interrupted,
        "n_pruned": n_pruned,
        "params": dict(fixed, **as_model_params(best.params)),
    }
    if parent:
        tracker.metrics(
            parent,
            {"best_value": best.value, "best_trial": best.number, "n_complete": len(complete), "n_failed": n_failed},
        )
        tracker.artifact_json(parent, summary, "best_params.json")
        tracker.end(parent)
    print(
        f"[{label}] done: best {metric_name}={best.value:.4f} (trial {best.number}); {len(complete)} complete, "
        f"{n_failed} diverged, {n_interrupted} interrupted" + (f", {n_pruned} pruned" if n_pruned else ""),
        flush=True,
    )
    return summary
