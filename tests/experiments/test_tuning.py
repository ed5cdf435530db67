"""Optuna studies (experiments.tuning) with a stand-in objective: budget, seeding, diverged trials,
resuming a killed run, parallel workers, MLflow nesting; and the real GRU4Rec objective once."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from experiments import projection, tuning
from experiments.jobs import PAUSE_AT, PAUSE_DIR, pause_files
from gru4rec.errors import ParameterError
from gru4rec.losses import LOSSES, RANKING_LOSSES
from gru4rec.model import EMBEDDING_MODES, embedding_mode

from .fake_objective import EpochWise, Rendezvous, out_of_memory_above, quadratic
from .projection_check import expected, in_mlflow

S = optuna.trial.TrialState
SPACE = {
    "learning_rate": {"type": "float", "low": 0.02, "high": 0.2, "step": 0.01},  # never diverges
    "layers": {"type": "int", "low": 16, "high": 64, "step": 16},
}
FIXED = tuning.fixed_params("cross-entropy", "shared", {"n_epochs": 1, "n_sample": 0})
REPO = Path(__file__).resolve().parents[2]


def trials(storage, name="s"):
    return tuning.load_study(name, str(storage)).get_trials()


def run(storage, n, name="s", objective=quadratic, **kw):
    return tuning.run_study(name, str(storage), objective, SPACE, FIXED, n, **kw)


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_and_embedding_mode_of_the_library_can_be_studied(loss):
    for mode in EMBEDDING_MODES:
        fixed = tuning.fixed_params(loss, mode)
        assert fixed["loss"] == loss and embedding_mode(fixed["embedding"], fixed["constrained_embedding"]) == mode
        tuning.check_fixed_and_space(fixed, tuning.paper_space(loss))  # both ends of every range are valid
    assert ("bpreg" in tuning.paper_space(loss)) == (loss == "bpr-max")
    assert ("final_act" in tuning.paper_space(loss)) == (loss in RANKING_LOSSES)
    with pytest.raises(ParameterError, match="embedding mode must be one of none, separate, shared"):
        tuning.fixed_params(loss, "tied")


def test_study_runs_to_its_budget_with_a_seeded_sampler(tmp_path):
    summary = run(tmp_path / "a.journal", 6, seed=7)
    done = trials(tmp_path / "a.journal")
    assert len(done) == 6
    values = [t.value for t in done if t.state == S.COMPLETE]
    assert summary["value"] == max(values) and summary["n_complete"] == len(values)
    assert summary["params"]["layers"] in ([16], [32], [48], [64])  # a list, as the model takes it
    assert summary["params"]["constrained_embedding"] is True and summary["params"]["loss"] == "cross-entropy"
    assert summary["params"]["learning_rate"] == round(summary["params"]["learning_rate"], 2)
    # the same seed draws the same parameters; another seed does not
    run(tmp_path / "b.journal", 6, seed=7)
    run(tmp_path / "c.journal", 6, seed=8)
    params = {k: [t.params for t in trials(tmp_path / f"{k}.journal")] for k in "abc"}
    assert params["a"] == params["b"] != params["c"]
    # a study at its budget does no more work when run again
    run(tmp_path / "a.journal", 6, seed=7)
    assert len(trials(tmp_path / "a.journal")) == 6
    # continued to a larger budget, it draws new parameters, not the first run's again
    run(tmp_path / "a.journal", 9, seed=7)
    again = [t.params for t in trials(tmp_path / "a.journal")]
    assert len(again) == 9 and again[6:9] != again[0:3]


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_pruned_trials_stop_early_and_count_against_the_budget(tmp_path, pruner):
    # seed 4 draws trials that both pruners stop (seed 3 gives none below the median in 14 trials)
    summary = run(tmp_path / "p.journal", 14, objective=EpochWise(tmp_path), seed=4, pruner=pruner)
    done = trials(tmp_path / "p.journal")
    pruned = [t for t in done if t.state == S.PRUNED]
    assert len(done) == 14 and pruned and summary["n_pruned"] == len(pruned)
    assert summary["n_complete"] == 14 - len(pruned)
    # a pruned trial stopped at the epoch where it was pruned; a complete one ran all three
    epochs = (tmp_path / "epochs.log").read_text().split()
    assert len(epochs) // 2 == 3 * summary["n_complete"] + sum(max(t.intermediate_values) for t in pruned)
    assert all(max(t.intermediate_values) < 3 for t in pruned)
    # without a pruner every trial runs to its end, and the objective is not asked to report
    (tmp_path / "epochs.log").unlink()
    assert run(tmp_path / "n.journal", 6, objective=EpochWise(tmp_path), seed=3)["n_pruned"] == 0
    assert len((tmp_path / "epochs.log").read_text().split()) // 2 == 18
    assert all(not t.intermediate_values for t in trials(tmp_path / "n.journal"))


def test_unknown_pruner_is_a_parameter_error(tmp_path):
    with pytest.raises(ParameterError, match="pruner must be one of none, median, hyperband, got 'mean'"):
        run(tmp_path / "a.journal", 2, pruner="mean")


def test_diverged_trials_are_failed_and_the_study_goes_on(tmp_path):
    # a space where most draws diverge (NaN score above 0.2, an exception below 0.02)
    space = {"learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "step": 0.01}}
    summary = tuning.run_study("s", str(tmp_path / "j"), quadratic, space, FIXED, 12, seed=3)
    done = trials(tmp_path / "j")
    failed = [t for t in done if t.state == S.FAIL]
    assert len(done) == 12 and failed, "the seed should draw some diverging learning rates"
    assert all("error" in t.user_attrs for t in failed)
    assert any("nan" in t.user_attrs["error"] for t in failed)
    assert summary["n_failed"] == len(failed) and summary["n_complete"] == 12 - len(failed)


def test_a_trial_failing_with_a_runtime_error_uses_its_slot_and_the_study_goes_on(tmp_path):
    # e.g. out of memory for a large network: a rerun must not draw the same failing parameters again
    space = {"learning_rate": {"type": "float", "low": 0.05, "high": 0.2, "step": 0.01}}
    summary = tuning.run_study("s", str(tmp_path / "j"), out_of_memory_above, space, FIXED, 10, seed=3)
    done = trials(tmp_path / "j")
    failed = [t for t in done if t.state == S.FAIL]
    assert len(done) == 10 and failed, "the seed should draw some learning rates above 0.15"
    assert all(t.user_attrs["error"] == "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB" for t in failed)
    assert summary["n_failed"] == len(failed) and summary["n_complete"] == 10 - len(failed)
    # the study is at its budget: running the job again adds no trial
    tuning.run_study("s", str(tmp_path / "j"), out_of_memory_above, space, FIXED, 10, seed=3)
    assert len(trials(tmp_path / "j")) == 10


def test_no_successful_trial_is_an_error(tmp_path):
    space = {"learning_rate": {"type": "float", "low": 0.21, "high": 0.25, "step": 0.01}}
    with pytest.raises(tuning.TrainingDivergedError, match="no trial succeeded"):
        tuning.run_study("s", str(tmp_path / "j"), quadratic, space, FIXED, 2)


def test_bad_space_or_fixed_parameter_fails_before_any_trial(tmp_path):
    with pytest.raises(ParameterError, match="layerz"):
        tuning.run_study(
            "s", str(tmp_path / "j"), quadratic, {"layerz": {"type": "int", "low": 1, "high": 2}}, FIXED, 2
        )
    with pytest.raises(ParameterError, match="low must be <= high"):
        tuning.run_study(
            "s", str(tmp_path / "j"), quadratic, {"learning_rate": {"type": "float", "low": 0.2, "high": 0.1}}, FIXED, 2
        )
    assert not (tmp_path / "j").exists() or not trials(tmp_path / "j")


def _start_study_process(storage, n, objective: str, name="s", workers=1, env=None, kwargs="", prelude=""):
    """run_study in a process of its own (a session leader, so that its workers die with it);
    `objective` is Python code for the objective, evaluated there, `kwargs` more arguments, and
    `prelude` code run first."""
    code = (
        prelude + f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from experiments import tuning\n"
        "from tests.experiments.fake_objective import DivergesOnCall, Rendezvous, quadratic\n"
        f"tuning.run_study({name!r}, {str(storage)!r}, {objective}, {SPACE!r}, {FIXED!r}, {n}, workers={workers}, "
        f"poll_seconds=0.2{kwargs})\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=dict(os.environ, **(env or {})),
    )


def _paused_at(point, tmp_path, where="pause"):
    """The environment that makes a job hold at `point` (experiments.jobs.pause_point), and the file
    that says it is there."""
    where = tmp_path / where
    where.mkdir(exist_ok=True)
    return {PAUSE_AT: point, PAUSE_DIR: str(where)}, pause_files(where, point)[0]


def wait_until_reached(marker: Path, proc, timeout=300):
    """Wait for the job to reach its pause point (an event; the timeout only stops a broken test)."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(
                f"the job ended (exit code {proc.returncode}) before reaching {marker.stem}:\n"
                + (proc.stdout.read().decode() if proc.stdout else "")
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"the job did not reach {marker.stem} within {timeout} s")
        time.sleep(0.05)


def test_killed_run_resumes_to_its_budget_without_losing_a_trial(tmp_path):
    storage = tmp_path / "study.journal"
    env, reached = _paused_at("trial-2", tmp_path)
    proc = _start_study_process(storage, 5, "quadratic", env=env)
    # kill it (the whole process group, as a cancelled cluster job) while trial 2 is running
    wait_until_reached(reached, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = trials(storage)
    assert [t.state for t in done] == [S.COMPLETE, S.COMPLETE, S.RUNNING]  # left behind by the killed worker
    before = {t.number: (t.params, t.value) for t in done if t.state == S.COMPLETE}
    summary = tuning.run_study("s", str(storage), quadratic, SPACE, FIXED, 5)
    after = trials(storage)
    complete = {t.number: (t.params, t.value) for t in after if t.state == S.COMPLETE}
    interrupted = [t for t in after if t.user_attrs.get("interrupted")]
    # the budget is used up by completed and diverged trials, not by the interrupted one
    assert len(after) == 6 and len(complete) + summary["n_failed"] == 5 and summary["n_complete"] == len(complete)
    assert all(complete[k] == v for k, v in before.items())  # no finished trial lost or changed
    assert [t.number for t in interrupted] == [2] and interrupted[0].state == S.FAIL
    assert summary["n_interrupted"] == 1
    assert not any(t.state == S.RUNNING for t in after)


def _kill_at(point, storage, uri, tmp_path, n=4, objective="quadratic"):
    """Run a study job with MLflow tracking in a process of its own and SIGKILL it at `point`."""
    env, reached = _paused_at(point, tmp_path)
    kwargs = f", tracking_uri={uri!r}, experiment='t'"
    proc = _start_study_process(storage, n, objective, env=env, kwargs=kwargs)
    wait_until_reached(reached, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


META = {"n_trials": 4, "metric": "MRR@20", "fixed": FIXED, "space": SPACE}


@pytest.mark.parametrize(
    "point, objective, left",
    [
        # during the training: the trial is RUNNING in the study and has no run
        ("trial-2", "quadratic", {}),
        # the trial is in the study, not yet in MLflow
        ("trial-2:recorded", "quadratic", {}),
        # the same for a diverged trial: it keeps its slot and is published FAILED by the rerun
        ("trial-2:recorded", "DivergesOnCall(3)", {}),
        # a publish killed between creating the trial's run and ending it
        ("run-started:s/trial-2", "quadratic", {"s/trial-2": "RUNNING"}),
        # the study's run created, nothing written into it yet
        ("run-started:s/study", "quadratic", {"s/study": "RUNNING"}),
    ],
)
def test_a_job_killed_anywhere_leaves_mlflow_equal_to_the_projection_of_its_study(
    tmp_path, monkeypatch, point, objective, left
):
    """After the rerun every published trial has exactly one ended run, none is RUNNING, and MLflow
    equals what experiments.projection computes from the study alone."""
    monkeypatch.chdir(tmp_path)
    storage, uri = tmp_path / "study.journal", f"sqlite:///{tmp_path}/mlflow.db"
    _kill_at(point, storage, uri, tmp_path, objective=objective)
    before = in_mlflow(uri, "t")
    assert {k: v["status"] for k, v in before.items() if k in left or v["status"] == "RUNNING"} == left
    study = tuning.load_study("s", str(storage))
    if point != "run-started:s/study":  # the trials before the kill are in MLflow as the study has them
        done = {k: v for k, v in expected(study, "s", META).items() if k in ("s/trial-0", "s/trial-1")}
        assert {k: before[k] for k in done} == done
    run(storage, 4, tracking_uri=uri, experiment="t")
    study = tuning.load_study("s", str(storage))
    after = in_mlflow(uri, "t")
    assert after == expected(study, "s", META)
    assert "RUNNING" not in {v["status"] for v in after.values()}
    trial_runs = [v for v in after.values() if v["tags"]["kind"] == "trial"]
    assert len(trial_runs) == 4 and sum(projection.published(t) for t in study.trials) == 4
    if point == "trial-2":  # the kill came before the trial was told: it runs again, and has no run
        assert tuning.interrupted(study.trials[2]) and "s/trial-2" not in after
    else:  # told before the kill: published by the rerun, FAILED if it diverged
        assert after["s/trial-2"]["status"] == ("FAILED" if "Diverges" in objective else "FINISHED")
    # published again, nothing changes: the projection is idempotent
    projection.publish(study, tuning.Tracker(uri, "t"), "s", META)
    assert in_mlflow(uri, "t") == after


def test_duplicate_and_half_written_runs_are_reduced_to_one_each(tmp_path):
    """Two publishers at once (two machines, a retried request) may each write a run; a killed one
    leaves a RUNNING run. The next publish keeps the oldest ended run of each trial, moves the trial
    runs under the kept study run, and deletes the rest."""
    from mlflow.tracking import MlflowClient

    storage, uri = tmp_path / "study.journal", f"sqlite:///{tmp_path}/mlflow.db"
    run(storage, 3, tracking_uri=uri, experiment="t")
    study, tracker, meta = tuning.load_study("s", str(storage)), tuning.Tracker(uri, "t"), dict(META, n_trials=3)
    clean = in_mlflow(uri, "t")
    study_run, trial_runs = projection.plan(study, "s", meta)
    # a second study run with a trial run of its own, and a RUNNING copy of trial 1
    twin = tracker.start("s/study", tags=study_run.tags)
    tracker.end(twin)
    copy = tracker.start("s/trial-0", parent=twin, tags=trial_runs[0].tags, start_time=trial_runs[0].start + 1)
    tracker.end(copy)
    half = tracker.start("s/trial-1", parent=twin, tags=trial_runs[1].tags)
    projection.publish(study, tracker, "s", meta)
    assert in_mlflow(uri, "t") == clean
    client = MlflowClient(uri)
    assert {client.get_run(r).info.lifecycle_stage for r in (twin, copy, half)} == {"deleted"}


def test_a_journal_study_fails_the_running_trials_it_finds_at_a_job_start(tmp_path, capsys):
    """A journal has one owner, its study's tune job: a RUNNING trial found at the start is one of
    a killed worker of an earlier job (also one killed before it named itself), and runs again."""
    storage = tmp_path / "s.journal"
    study = tuning.load_study("s", tuning.make_storage(str(storage)))
    study.ask()
    named = study.ask()
    study._storage.set_trial_user_attr(named._trial_id, "worker", f"{socket.gethostname()}:{os.getpid()}")
    run(storage, 3)
    done = trials(storage)
    assert [t.state for t in done] == [S.FAIL, S.FAIL, S.COMPLETE, S.COMPLETE, S.COMPLETE]
    assert all(tuning.interrupted(t) for t in done[:2])
    assert "2 interrupted trial(s) released" in capsys.readouterr().out


def test_a_journal_lock_left_by_a_killed_writer_is_broken(tmp_path, monkeypatch):
    """A worker killed while it writes to the study's journal leaves the journal's lock file
    behind; the next job breaks it after the grace period instead of waiting forever. The journal
    is named relative to the working directory, as the workflow names it."""
    monkeypatch.chdir(tmp_path)
    holder = (
        f"import sys, time; sys.path.insert(0, {str(REPO)!r})\nfrom experiments import tuning\n"
        "storage = tuning.make_storage('study.journal')\ntuning.load_study('s', storage)\n"
        "storage._backend._lock.acquire()\nprint('held', flush=True)\ntime.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    proc.kill()
    proc.wait()
    assert os.path.exists(tmp_path / "study.journal.lock")
    resume = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\nfrom experiments import tuning\n"
        "from tests.experiments.fake_objective import quadratic\ntuning.JOURNAL_LOCK_GRACE_SECONDS = 3\n"
        f"tuning.run_study('s', 'study.journal', quadratic, {SPACE!r}, {FIXED!r}, 2)\n"
    )
    # in a process of its own: a lock that is never broken fails the test instead of hanging it
    done = subprocess.run([sys.executable, "-c", resume], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [t.state for t in trials(tmp_path / "study.journal")] == [S.COMPLETE, S.COMPLETE]


def test_writers_waiting_on_a_killed_writers_lock_take_it_one_at_a_time(tmp_path):
    """Breaking a stale lock hands it to one waiter: the others wait for that holder instead of
    taking the lock as stale too (Optuna's symbolic-link lock ages with the journal, not the lock)."""
    journal = tmp_path / "study.journal"
    tuning.make_storage(str(journal))._backend._lock.acquire()  # this holder never lets go: as if killed
    waiter = (
        f"import sys, time; sys.path.insert(0, {str(REPO)!r})\nfrom experiments import tuning\n"
        f"tuning.JOURNAL_LOCK_GRACE_SECONDS = 3\nlock = tuning.make_storage({str(journal)!r})._backend._lock\n"
        "print('waiting', flush=True); lock.acquire(); start = time.time(); time.sleep(1.0)\n"
        "print(start, time.time(), flush=True); lock.release()\n"
    )
    procs = []
    for _ in range(3):  # apart: Optuna checks a lock's age and breaks it in two steps, racing a twin
        procs.append(subprocess.Popen([sys.executable, "-c", waiter], stdout=subprocess.PIPE, text=True))
        assert procs[-1].stdout.readline().strip() == "waiting"
        time.sleep(0.5)
    held = sorted(tuple(map(float, p.communicate(timeout=120)[0].split())) for p in procs)
    assert len(held) == 3
    assert all(end <= next_start for (_, end), (next_start, _) in zip(held, held[1:])), held


def test_two_workers_of_one_job_share_the_study(tmp_path):
    (tmp_path / "rendezvous").mkdir()
    summary = run(tmp_path / "j", 6, objective=Rendezvous(tmp_path / "rendezvous"), workers=2, poll_seconds=0.2)
    done = trials(tmp_path / "j")
    complete = [t for t in done if t.state == S.COMPLETE]
    # a worker checks the budget after each of its trials: when both finish one at the same moment,
    # both may start another, one more than the budget (never more with two workers)
    assert 6 <= len(complete) <= 7
    assert len({t.user_attrs["worker"] for t in complete}) == 2
    assert summary["value"] == max(t.value for t in complete)


def test_a_job_starts_no_more_workers_than_trials_left(tmp_path, monkeypatch):
    started, run_processes = [], tuning._run_processes
    monkeypatch.setattr(tuning, "_run_processes", lambda *a: started.append(a[6]) or run_processes(*a))
    run(tmp_path / "s.journal", 2, workers=3)
    run(tmp_path / "s.journal", 3, workers=3)
    assert started == [2, 1]  # each worker that starts runs a trial: a third would overshoot the budget
    assert len(trials(tmp_path / "s.journal")) == 3


def test_trials_nest_under_the_study_run_in_mlflow(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root would be ./mlruns: it must not be used
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    stats = tmp_path / "stats.tsv"
    stats.write_text("split\tevents\tsessions\titems\ntrain_tr\t100\t20\t10\ntrain_valid\t10\t2\t5\n")
    kw = dict(tracking_uri=uri, experiment="t", stats_path=stats)
    run(tmp_path / "j", 3, **kw)
    run(tmp_path / "j", 4, **kw)  # resumed with a larger budget: same parent run
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("t").experiment_id], max_results=100)
    studies = [r for r in runs if r.data.tags["kind"] == "study"]
    trial_runs = [r for r in runs if r.data.tags["kind"] == "trial"]
    assert len(studies) == 1 and len(trial_runs) == 4
    parent = studies[0]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in trial_runs)
    assert all(r.info.status == "FINISHED" for r in runs)
    assert parent.data.params["data.train_tr.events"] == "100" and parent.data.metrics["n_trials"] == 4
    assert parent.data.metrics["best_value"] == max(t.value for t in trials(tmp_path / "j"))
    assert "code_version" in parent.data.tags
    trial = trial_runs[0]
    assert trial.data.params["learning_rate"] and "value" in trial.data.metrics
    assert [m.step for m in client.get_metric_history(trial.info.run_id, "train_loss")] == [1, 2]
    artifacts = Path(parent.info.artifact_uri.replace("file://", ""))
    assert artifacts.is_relative_to(tmp_path / "store" / "mlartifacts")
    assert (artifacts / "best_params.json").exists() and (artifacts / "data" / "stats.tsv").exists()
    assert not (tmp_path / "mlruns").exists()


def _log_runs(uri, k):
    from experiments.tracking import Tracker

    tracker = Tracker(uri, "par")
    for i in range(8):
        with tracker.run(f"w{k}-{i}", tags={"kind": "load"}) as r:
            tracker.params(r, {"a": i, "b": k})
            for step in range(3):
                tracker.metrics(r, {"loss": 1.0 / (step + 1)}, step=step)


def test_parallel_jobs_do_not_lose_mlflow_runs(tmp_path):
    from concurrent.futures import ProcessPoolExecutor

    from mlflow.tracking import MlflowClient

    from experiments.tracking import init_store

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    init_store(uri, "par")
    with ProcessPoolExecutor(4) as pool:
        list(pool.map(_log_runs, [uri] * 4, range(4)))
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("par").experiment_id], max_results=100)
    assert len(runs) == 32 and all(r.info.status == "FINISHED" for r in runs)
    assert all(len(client.get_metric_history(r.info.run_id, "loss")) == 3 for r in runs)


def test_gru4rec_validation_score(tmp_path):
    import preprocessing

    preprocessing.preprocess("synthetic", None, tmp_path, {"n_sessions": 600, "n_items": 60, "days": 6, "seed": 2})
    score = tuning.ValidationScore(str(tmp_path / "train_tr.parquet"), str(tmp_path / "train_valid.parquet"))
    epochs = []
    value, extra = score(dict(FIXED, layers=[16], batch_size=16, learning_rate=0.1), epoch_callback=epochs.append)
    assert 0 < value <= 1 and value == extra["valid_mrr_at_20"] and extra["device"] == "cpu"
    assert [e["epoch"] for e in epochs] == [1]


def test_gru4rec_validation_score_reports_every_epoch_to_the_pruner(tmp_path):
    import preprocessing

    preprocessing.preprocess("synthetic", None, tmp_path, {"n_sessions": 600, "n_items": 60, "days": 6, "seed": 2})
    score = tuning.ValidationScore(str(tmp_path / "train_tr.parquet"), str(tmp_path / "train_valid.parquet"))
    params = dict(FIXED, layers=[16], batch_size=16, learning_rate=0.1, n_epochs=3)
    reported = []
    value, _ = score(params, prune=lambda epoch, v: reported.append((epoch, v)))
    # epochs 1 and 2 are reported (the last is the final score); evaluating between epochs
    # leaves the training as it is: the final score equals a run without a pruner
    assert [e for e, _ in reported] == [1, 2] and all(0 < v <= 1 for _, v in reported)
    assert value == score(params)[0]
    assert reported[0][1] != value  # the reports are the scores of the partly trained model

    def stop(epoch, v):
        raise optuna.TrialPruned()

    epochs = []
    with pytest.raises(optuna.TrialPruned):
        score(params, epoch_callback=epochs.append, prune=stop)
    assert [e["epoch"] for e in epochs] == [1]


def test_a_trial_trains_and_evaluates_with_its_own_thread_count(tmp_path):
    import torch

    import preprocessing

    preprocessing.preprocess("synthetic", None, tmp_path, {"n_sessions": 300, "n_items": 40, "days": 6, "seed": 2})
    score = tuning.ValidationScore(str(tmp_path / "train_tr.parquet"), str(tmp_path / "train_valid.parquet"), threads=1)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # what a process on 2 cores starts with: a trial must not keep it
    seen = []
    try:
        score(
            dict(FIXED, layers=[16], batch_size=16, n_epochs=2), prune=lambda e, v: seen.append(torch.get_num_threads())
        )
    finally:
        torch.set_num_threads(before)
    assert seen == [1]
