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

from experiments import tuning
from experiments.jobs import PAUSE_AT, PAUSE_DIR, pause_files
from gru4rec.errors import ParameterError
from gru4rec.losses import LOSSES, RANKING_LOSSES
from gru4rec.model import EMBEDDING_MODES, embedding_mode
from gru4rec.processes import proc_stat, process_start

from .fake_objective import EpochWise, Rendezvous, out_of_memory_above, quadratic

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


def _runs(uri, kind):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("t").experiment_id], max_results=100)
    return [r for r in runs if r.data.tags["kind"] == kind]


def _statuses(uri):
    return {r.info.run_name: r.info.status for r in _runs(uri, "trial")}


@pytest.mark.parametrize(
    "point, objective, left, ends",
    [
        # after the trial's run started, before its id was recorded in the study (found by name)
        ("run-started:s/trial-2", "quadratic", "RUNNING", "KILLED"),
        # during the training
        ("trial-2", "quadratic", "RUNNING", "KILLED"),
        # after the run finished, before Optuna recorded the value: the trial runs again
        ("trial-2:run-ended", "quadratic", "FINISHED", "KILLED"),
        # after a diverged trial's run failed, before the study recorded the error: it runs again
        ("trial-2:run-ended", "DivergesOnCall(3)", "FAILED", "FAILED"),
    ],
)
def test_a_trial_run_of_a_killed_job_ends_in_line_with_the_study(tmp_path, monkeypatch, point, objective, left, ends):
    """The next job of the study closes the killed trial's run; the others stay finished, and the
    store holds one FINISHED run per completed trial."""
    monkeypatch.chdir(tmp_path)
    storage, uri = tmp_path / "study.journal", f"sqlite:///{tmp_path}/mlflow.db"
    _kill_at(point, storage, uri, tmp_path, objective=objective)
    assert _statuses(uri) == {"s/trial-0": "FINISHED", "s/trial-1": "FINISHED", "s/trial-2": left}
    assert ("mlflow_run" in trials(storage)[2].user_attrs) == (point != "run-started:s/trial-2")
    run(storage, 4, tracking_uri=uri, experiment="t")
    after = _statuses(uri)
    assert after.pop("s/trial-2") == ends
    assert set(after.values()) == {"FINISHED"} and len(after) == 4  # trials 0, 1 and two new ones
    done = trials(storage)
    assert tuning.interrupted(done[2]) and sum(t.state == S.COMPLETE for t in done) == 4
    superseded = {r.info.run_name for r in _runs(uri, "trial") if r.data.tags.get("superseded")}
    assert superseded == {"s/trial-2"}  # its trial ran again


def test_a_study_run_left_by_a_job_killed_before_recording_it_is_taken_up(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage, uri = tmp_path / "study.journal", f"sqlite:///{tmp_path}/mlflow.db"
    _kill_at("run-started:s/study", storage, uri, tmp_path)
    [orphan] = _runs(uri, "study")
    assert orphan.info.status == "RUNNING" and not orphan.data.params
    assert "mlflow_parent_run" not in tuning.load_study("s", str(storage)).user_attrs
    run(storage, 4, tracking_uri=uri, experiment="t")
    [study_run] = _runs(uri, "study")  # the same run, not a second one
    assert study_run.info.run_id == orphan.info.run_id and study_run.info.status == "FINISHED"
    assert study_run.data.params["n_trials"] == "4" and "best_value" in study_run.data.metrics
    trial_runs = _runs(uri, "trial")
    assert len(trial_runs) == 4 and all(r.data.tags["mlflow.parentRunId"] == orphan.info.run_id for r in trial_runs)


def test_a_second_study_run_of_a_job_started_beside_it_is_folded_into_the_recorded_one(tmp_path):
    """Two jobs that start one new study together may each create a study run (on several
    machines). The run the study records is kept, even where the other is older (a client's clock
    sets a run's start): a job killed before it retired its own run leaves it to the next job, which
    moves its trial runs under the recorded run, and ends and deletes it."""
    from mlflow.tracking import MlflowClient

    storage, uri = tmp_path / "study.journal", f"sqlite:///{tmp_path}/mlflow.db"
    run(storage, 2, tracking_uri=uri, experiment="t")
    [first] = _runs(uri, "study")
    client, tracker = MlflowClient(uri), tuning.Tracker(uri, "t")
    tags = {"kind": "study", "study": "s", "study_key": first.data.tags["study_key"]}
    second = client.create_run(tracker.experiment_id(), first.info.start_time - 60_000, tags, "s/study").info.run_id
    stray = tracker.start("s/trial-9", parent=second, tags={"kind": "trial"})
    tracker.end(stray)
    run(storage, 3, tracking_uri=uri, experiment="t")
    assert [r.info.run_id for r in _runs(uri, "study")] == [first.info.run_id]
    gone = client.get_run(second)
    assert gone.info.lifecycle_stage == "deleted" and gone.info.status == "KILLED"
    assert {r.data.tags["mlflow.parentRunId"] for r in _runs(uri, "trial")} == {first.info.run_id}
    assert client.get_run(stray).data.tags["mlflow.parentRunId"] == first.info.run_id


def test_a_job_that_chose_another_study_run_joins_the_recorded_one_at_its_end(tmp_path):
    """A job whose run lost to the one another job recorded meanwhile folds its run into it."""
    from mlflow.tracking import MlflowClient

    storage, uri = tmp_path / "study.journal", f"sqlite:///{tmp_path}/mlflow.db"
    run(storage, 2, tracking_uri=uri, experiment="t")
    [recorded] = _runs(uri, "study")
    tracker = tuning.Tracker(uri, "t")
    mine = tracker.start("s/study", tags={"kind": "study", "study": "s"})
    trial = tracker.start("s/trial-5", parent=mine, tags={"kind": "trial"})
    study = tuning.load_study("s", str(storage))
    assert tuning._join_study_run(study, tracker, mine) == recorded.info.run_id
    client = MlflowClient(uri)
    assert client.get_run(mine).info.lifecycle_stage == "deleted"
    assert client.get_run(trial).data.tags["mlflow.parentRunId"] == recorded.info.run_id
    assert tuning._join_study_run(study, tracker, recorded.info.run_id) == recorded.info.run_id


def test_a_job_whose_study_run_was_folded_away_as_it_started_takes_the_recorded_one(tmp_path, monkeypatch):
    """Job B records its study run just after job C (starting beside it) folded that run into job
    A's: B finds its run gone and takes the one the study should record, instead of failing."""
    storage, uri = tmp_path / "study.journal", f"sqlite:///{tmp_path}/mlflow.db"
    run(storage, 2, tracking_uri=uri, experiment="t")
    [kept] = _runs(uri, "study")
    tracker = tuning.Tracker(uri, "t")
    folded = tracker.start("s/study", tags={"kind": "study", "study": "s"})
    tracker.fold_into(folded, kept.info.run_id)
    tuning.load_study("s", str(storage)).set_user_attr("mlflow_parent_run", folded)  # B's late record
    find, answers = tuning._find_or_start_study_run, iter([folded])
    monkeypatch.setattr(tuning, "_find_or_start_study_run", lambda *a: next(answers, None) or find(*a))
    run(storage, 3, tracking_uri=uri, experiment="t")
    assert tuning.load_study("s", str(storage)).user_attrs["mlflow_parent_run"] == kept.info.run_id
    assert [r.info.run_id for r in _runs(uri, "study")] == [kept.info.run_id]
    assert {r.data.tags["mlflow.parentRunId"] for r in _runs(uri, "trial")} == {kept.info.run_id}


def test_a_worker_of_another_job_dying_meanwhile_is_released_and_its_budget_run(tmp_path, monkeypatch):
    """Job A holds trial 1 when job B starts on the same study; A dies while B runs. B releases A's
    trial, closes its run and runs the trial the budget still has, instead of ending one short."""
    monkeypatch.chdir(tmp_path)
    storage, uri = tmp_path / "study.journal", f"sqlite:///{tmp_path}/mlflow.db"
    kwargs = f", tracking_uri={uri!r}, experiment='t'"
    env_a, reached_a = _paused_at("trial-1", tmp_path, "pause-a")
    a = _start_study_process(storage, 5, "quadratic", env=env_a, kwargs=kwargs)
    wait_until_reached(reached_a, a)
    env_b, reached_b = _paused_at("trial-2", tmp_path, "pause-b")
    b = _start_study_process(storage, 5, "quadratic", env=env_b, kwargs=kwargs)
    wait_until_reached(reached_b, b)  # B started (with A alive: trial 1 is not released) and runs trial 2
    os.killpg(a.pid, signal.SIGKILL)
    a.wait()
    pause_files(tmp_path / "pause-b", "trial-2")[1].touch()
    out = b.communicate(timeout=300)[0].decode()
    assert b.returncode == 0, out
    assert "1 trial(s) left by workers that died meanwhile: running them" in out
    done = trials(storage)
    assert [t.number for t in done if tuning.interrupted(t)] == [1]
    assert sum(t.state == S.COMPLETE for t in done) == 5 and not any(t.state == S.RUNNING for t in done)
    after = _statuses(uri)
    assert after.pop("s/trial-1") == "KILLED" and set(after.values()) == {"FINISHED"} and len(after) == 5


def test_a_trial_is_released_only_when_its_own_worker_process_is_gone(tmp_path):
    """A worker is its host, machine id, pid and process start: a live pid that another process
    now holds (reused) or a trial of a machine that shares this one's name is told apart."""
    storage = tuning.make_storage(str(tmp_path / "study.journal"))
    study = tuning.load_study("s", storage)
    me, host = tuning._this_worker(), socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])  # exited, never reaped
    deadline = time.monotonic() + 30
    while proc_stat(zombie.pid)[:1] != ["Z"] and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = {
        "this process": me,
        "a reused pid": dict(me, worker_start=me["worker_start"] + "0"),
        "a dead pid": dict(me, worker=f"{host}:{dead.pid}"),
        "a dead pid, written before the start was recorded": {"worker": f"{host}:{dead.pid}"},
        "a zombie": dict(me, worker=f"{host}:{zombie.pid}", worker_start=process_start(zombie.pid)),
        "a machine of the same name": dict(me, worker=f"{host}:{dead.pid}", worker_machine="another-machine"),
        "another host": dict(me, worker=f"elsewhere:{dead.pid}"),
    }
    for attrs in workers.values():
        trial = study.ask()
        for key, value in attrs.items():
            study._storage.set_trial_user_attr(trial._trial_id, key, value)
    assert tuning.release_orphans(study, storage) == 4
    zombie.wait()
    states = dict(zip(workers, [t.state for t in study.get_trials()]))
    assert states == {
        "this process": S.RUNNING,
        "a reused pid": S.FAIL,
        "a dead pid": S.FAIL,
        "a dead pid, written before the start was recorded": S.FAIL,
        "a zombie": S.FAIL,
        "a machine of the same name": S.RUNNING,
        "another host": S.RUNNING,
    }
    assert me["worker_start"]  # readable on Linux: the checks above used it


def test_a_trial_of_a_worker_killed_before_it_named_itself_is_run_again(tmp_path, monkeypatch, capsys):
    """Killed between Optuna's ask and the objective's first line, a worker leaves a RUNNING trial
    that names no process: the job waits until it has seen it unnamed for the grace period and runs
    the budget it held, instead of ending one trial short."""
    monkeypatch.setattr(tuning, "_UNNAMED_GRACE_SECONDS", 2)
    storage = tmp_path / "s.journal"
    tuning.load_study("s", tuning.make_storage(str(storage))).ask()
    run(storage, 3, poll_seconds=0.2)
    done = trials(storage)
    assert [t.state for t in done] == [S.FAIL, S.COMPLETE, S.COMPLETE, S.COMPLETE] and tuning.interrupted(done[0])
    assert "taken as dead once unnamed for 2 s" in capsys.readouterr().out


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


def test_two_separate_jobs_share_one_study(tmp_path):
    """As two machines on one database: neither takes the other's running trials for dead ones
    (the first job's first trial is running, waiting for the second, when the second starts)."""
    storage = tmp_path / "shared.journal"
    (tmp_path / "rendezvous").mkdir()
    objective = f"Rendezvous({str(tmp_path / 'rendezvous')!r})"
    procs = [_start_study_process(storage, 6, objective) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    done = trials(storage)
    complete = [t for t in done if t.state == S.COMPLETE]
    assert 6 <= len(complete) <= 7
    assert not any(t.user_attrs.get("interrupted") for t in done)
    assert len({t.user_attrs["worker"] for t in complete}) == 2


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
    assert parent.data.params["data.train_tr.events"] == "100" and "best_value" in parent.data.metrics
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
