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
such trials are failed (tag `interrupted`) and run again. A journal has one owner, the tune job
of its study (Snakemake locks the working directory): the RUNNING trials it finds at its start,
and those left when its own workers have ended, are its dead workers'. A database is shared by
machines: a worker that has not reported for `grace_period` seconds is dead (Optuna's heartbeat).

MLflow is a projection of the study (experiments.projection): a trial writes only to Optuna, and
the study is published after every trial and at the start and end of every job.
"""

from __future__ import annotations

import ctypes
import math
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import time
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

from . import projection
from .jobs import pause_point
from .runs import builder, train_and_evaluate
from .sampling import SlotSeededTPE, claim_slot, interrupted, spent

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


def release_orphans(study, storage) -> int:
    """Fail the RUNNING trials of dead workers (tag `interrupted`) so that they neither block the
    study nor count against its budget; returns how many. A journal's trials are all its owner's
    (call this only while none of the job's workers runs); a database's are those whose heartbeat
    stopped, on any machine. `storage` is the study's storage object (`make_storage`)."""
    if not isinstance(storage, optuna.storages.JournalStorage):
        running = len(study.get_trials(deepcopy=False, states=(S.RUNNING,)))
        with warnings.catch_warnings():  # the heartbeat API is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        return running - len(study.get_trials(deepcopy=False, states=(S.RUNNING,)))
    n = 0
    for t in study.get_trials(deepcopy=False, states=(S.RUNNING,)):
        storage.set_trial_user_attr(t._trial_id, "interrupted", True)
        storage.set_trial_state_values(t._trial_id, S.FAIL)
        n += 1
    return n


def counts(study) -> tuple[int, int]:
    """(trials that use up the budget, trials running now)."""
    used = running = 0
    for t in study.get_trials(deepcopy=False):
        if spent(t):
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
    """One trial: draw parameters, score them, record in the study everything its MLflow run will
    show (user attributes `params`, `metrics`, `history`, `device`, `seconds`, `error`: see
    experiments.projection)."""

    score: object  # callable(params, epoch_callback=None) -> (value, extra metrics)
    space: dict
    fixed: dict
    pruning: bool = False  # report every epoch's validation score to the study's pruner

    def __call__(self, trial) -> float:
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # for people
        trial.set_user_attr("slot", claim_slot(trial.study, trial))  # before the first draw
        params = dict(self.fixed, **suggest(trial, self.space))
        trial.set_user_attr("params", params)
        pause_point(f"trial-{trial.number}")
        history = []

        def log_epoch(info):  # kept in memory: the study gets the history once the trial ends
            history.append(
                {
                    "epoch": info["epoch"],
                    "train_loss": info["loss"],
                    "epoch_seconds": info["seconds"],
                    "mb_per_s": info["mb_per_s"],
                    "events_per_s": info["events_per_s"],
                }
            )

        t0 = time.perf_counter()
        pruning = {"prune": _pruning_check(trial)} if self.pruning else {}
        try:
            value, extra = self.score(params, epoch_callback=log_epoch, **pruning)
            if value is None or math.isnan(value):
                raise TrainingDivergedError(f"the validation score is {value}")
        except TrainingDivergedError as e:
            self._record(trial, history, {}, t0)  # the run shows the loss going to NaN
            trial.set_user_attr("error", str(e))  # failed on its own: it keeps its slot (sampling.spent)
            raise
        except RuntimeError as e:
            # this parameter set failed on its own (e.g. torch's out-of-memory on a large network): the
            # trial keeps its slot and uses budget, so a rerun draws the next slot's parameters instead
            # of failing on the same ones again; errors of the data or the code (not RuntimeError)
            # still stop the job
            msg = f"{type(e).__name__}: {first_line(e)}"
            self._record(trial, history, {}, t0)
            trial.set_user_attr("error", msg)
            raise TrialFailed(msg) from e
        except optuna.TrialPruned:
            self._record(trial, history, {}, t0)
            raise
        self._record(trial, history, extra, t0)
        return value

    @staticmethod
    def _record(trial, history, extra, t0):
        if history:
            trial.set_user_attr("history", history)
        numbers = {k: v for k, v in extra.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if numbers:
            trial.set_user_attr("metrics", numbers)
        if "device" in extra:
            trial.set_user_attr("device", str(extra["device"]))
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))


class TrialFailed(RuntimeError):
    """A trial's parameter set failed with a runtime error; the study goes on."""


class _Publish:
    """After each trial (as optuna_integration's MLflowCallback): its run into MLflow. A store that
    cannot be reached is a warning here; the job's last publish repairs what this one missed."""

    def __init__(self, tracker, label: str, meta: dict, stats_path=None):
        self.tracker, self.label, self.meta, self.stats_path = tracker, label, meta, stats_path

    def __call__(self, study, trial):
        pause_point(f"trial-{trial.number}:recorded")  # the trial is in the study, not yet in MLflow
        if not self.tracker.enabled:
            return
        try:
            projection.publish(study, self.tracker, self.label, self.meta, self.stats_path, only={trial.number})
        except Exception as e:
            print(f"warning: [{self.label}] trial {trial.number} not in MLflow yet: {first_line(e)}", file=sys.stderr)


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
            elif t.state == S.FAIL and not interrupted(t):
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
        if self.progress:
            self.progress(study, trial)
        used, running = counts(study)
        orphaned = self.parent_pid is not None and os.getppid() != self.parent_pid  # the tune job was killed
        if orphaned or used + running >= self.n_trials:
            study.stop()


def _die_with_parent(parent_pid: int) -> None:
    """On Linux, a worker process is killed with its tune job (PR_SET_PDEATHSIG): the job's rerun
    owns the journal and fails every trial it finds running, so no worker of the killed job may
    go on. Elsewhere a worker stops after its trial (_StopAtBudget)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the job died before the call
        os._exit(1)


def _work(study_name, storage, objective, n_trials, seed, progress=None, parent_pid=None, pruner="none", publish=None):
    """One worker: run trials of the study until the budget is reached (or its parent is gone)."""
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    study = load_study(study_name, storage, seed=seed, pruner=pruner)
    callbacks = ([publish] if publish else []) + [_StopAtBudget(n_trials, progress, parent_pid)]
    used, running = counts(study)
    if used + running < n_trials:
        study.optimize(
            objective,
            n_trials=n_trials - used - running,
            catch=(TrainingDivergedError, TrialFailed),
            callbacks=callbacks,
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
    meta = {"n_trials": n_trials, "metric": metric_name, "fixed": fixed, "space": space}
    publish = _Publish(tracker, label, meta, stats_path)
    projection.publish(study, tracker, label, meta, stats_path)  # repairs what a killed job left
    used, running = counts(study)
    print(
        f"[{label}] study '{study_name}': {used}/{n_trials} trials done"
        + (f", {interrupted} interrupted trial(s) released" if interrupted else "")
        + (f", {running} running elsewhere" if running else "")
        + f"; {max(0, n_trials - used - running)} to run with {workers} worker(s)",
        flush=True,
    )
    objective = _Objective(score, space, fixed, pruning=pruner != "none")
    progress = _Progress(study, label, n_trials, metric_name)
    while True:
        if workers == 1:
            _work(study_name, storage, objective, n_trials, seed, progress, pruner=pruner, publish=publish)
        elif (left := n_trials - sum(counts(study))) > 0:
            # no more processes than trials left: each loads the data, and each that starts would
            # run a trial, beyond the budget for those too many
            n_procs = min(workers, left)
            args = (study, study_name, storage, objective, n_trials, seed, n_procs, progress, poll_seconds, pruner)
            _run_processes(*args, publish)
        # trials of workers that died meanwhile were counted as running: released (a journal's, now
        # that none of this job's workers runs; a database's by the heartbeat) they leave budget to run
        release_orphans(study, store)
        used, running = counts(study)
        if used + running >= n_trials:
            break
        print(
            f"[{label}] {n_trials - used - running} trial(s) left by workers that died meanwhile: running them",
            flush=True,
        )
    projection.publish(study, tracker, label, meta, stats_path)
    return _summarise(study, fixed, metric_name, label)


def _run_processes(
    study, study_name, storage, objective, n_trials, seed, workers, progress, poll_seconds, pruner, publish=None
):
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
                job = (study_name, str(storage), objective, n_trials, seed, None, os.getpid(), pruner, publish)
                proc.stdin.write(pickle.dumps(job))
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


def _summarise(study, fixed, metric_name, label) -> dict:
    """The best trial and the trial counts; `study` reads the storage afresh, so trials of other
    workers are included."""
    summary = projection.summary(study, study.get_trials(deepcopy=False), fixed, metric_name)
    n_failed, n_interrupted, n_pruned = summary["n_failed"], summary["n_interrupted"], summary["n_pruned"]
    if "value" not in summary:
        raise TrainingDivergedError(
            f"study '{study.study_name}': no trial succeeded ({n_failed} diverged); "
            "narrow the search space (e.g. lower learning rates)"
        )
    print(
        f"[{label}] done: best {metric_name}={summary['value']:.4f} (trial {summary['trial']}); "
        f"{summary['n_complete']} complete, {n_failed} diverged, {n_interrupted} interrupted"
        + (f", {n_pruned} pruned" if n_pruned else ""),
        flush=True,
    )
    return summary
