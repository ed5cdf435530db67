"""Optuna studies in a real PostgreSQL database (a throwaway server on 127.0.0.1, tests/servers.py):
two workers in separate processes share a study, one is killed in the middle of a trial, and the
study still ends with exactly its budget and the best parameters of a sequential run."""

import os
import signal
import time

import optuna
import pytest

from experiments import tuning
from experiments.jobs import pause_files
from experiments.sampling import interrupted

from ..servers import postgres_server
from .fake_objective import quadratic
from .test_tuning import FIXED, SPACE, _paused_at, _start_study_process, trials, wait_until_reached

S = optuna.trial.TrialState
BUDGET = 6  # below TPE's 10 random start-up trials: parallel workers draw the sequential run's points


@pytest.fixture(scope="module")
def postgres():
    with postgres_server() as server:
        yield server


def by_slot(url, name):
    trials = tuning.load_study(name, url).get_trials()
    return {t.user_attrs["slot"]: (t.params, t.value) for t in trials if t.state == S.COMPLETE}, trials


def fail_stale(url, name, number, timeout=60):
    """Fail the trials whose heartbeat is older than 1 s (the workflow waits 3 minutes), until trial
    `number` is one of them (an event: its worker's last heartbeat ages past the second); returns it."""
    hasty = optuna.storages.RDBStorage(url, heartbeat_interval=1, grace_period=1)
    deadline = time.monotonic() + timeout
    while (trial := tuning.load_study(name, url).trials[number]).state == S.RUNNING:
        assert time.monotonic() < deadline, f"trial {number} was not failed by its heartbeat within {timeout} s"
        optuna.storages.fail_stale_trials(optuna.load_study(study_name=name, storage=hasty))
        time.sleep(0.2)
    return trial


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # the heartbeat API
def test_killed_worker_of_a_shared_study_loses_nothing(postgres, tmp_path):
    url = postgres.database("killed_worker")
    tuning.load_study("s", url)  # the schema and the study exist before the workers race for them
    (tmp_path / "rendezvous").mkdir()
    env, reached = _paused_at("trial-2", tmp_path)
    # each worker's first trial waits for the other's: trials 0 and 1 run in different processes,
    # and the one that takes trial 2 holds there until it is killed
    objective = f"Rendezvous({str(tmp_path / 'rendezvous')!r})"
    procs = [_start_study_process(url, BUDGET, objective, env=env) for _ in range(2)]
    wait_until_reached(reached, procs[0])
    victim = next(p for p in procs if p.pid == int(reached.read_text()))
    survivor = next(p for p in procs if p is not victim)
    # the survivor stops at the budget, counting the victim's running trial; it ends while the
    # victim is alive (a worker on another machine, as far as it can tell), which is killed then
    out = survivor.communicate(timeout=300)[0].decode()
    assert survivor.returncode == 0, out
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    before, trials = by_slot(url, "s")
    assert [t.state for t in trials if t.number == 2] == [S.RUNNING]  # left behind by the killed worker
    assert len(before) == BUDGET - 1

    # Optuna's heartbeat fails the dead worker's trial, on any machine: its last heartbeat is older
    # than the grace period (3 minutes in the workflow; 1 s here, so that the test need not wait)
    killed = fail_stale(url, "s", 2)
    assert killed.state == S.FAIL and interrupted(killed)

    # the job started again: finished trials kept, the killed one replaced, the budget met exactly
    summary = tuning.run_study("s", url, quadratic, SPACE, FIXED, BUDGET)
    after, trials = by_slot(url, "s")
    assert all(after[slot] == v for slot, v in before.items())
    assert sorted(after) == list(range(BUDGET)) and summary["n_complete"] == BUDGET
    assert summary["n_interrupted"] == 1 and not any(t.state == S.RUNNING for t in trials)
    assert len({t.user_attrs["worker"] for t in trials if t.state == S.COMPLETE}) == 3  # two workers + the rerun

    # one uninterrupted sequential worker with the same seed draws the same points: the same best
    sequential = tuning.run_study("sequential", url, quadratic, SPACE, FIXED, BUDGET)
    assert by_slot(url, "sequential")[0] == after
    assert sequential["params"] == summary["params"] and sequential["value"] == summary["value"]


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_job_runs_the_budget_of_a_worker_elsewhere_that_died_while_it_ran(postgres, tmp_path):
    """A worker on another machine (another host name) holds trial 0 when this job starts, and dies
    while the job runs: once its heartbeat has failed the trial, the job runs the budget it held
    instead of ending one trial short. The job holds between two of its trials meanwhile (a trial
    of its own would look stale to the test's 1-second grace period too)."""
    url = postgres.database("died_meanwhile")
    tuning.load_study("s", url)
    env, reached = _paused_at("trial-0", tmp_path, "pause-elsewhere")
    elsewhere = _start_study_process(
        url, 4, "quadratic", env=env, prelude="import socket; socket.gethostname = lambda: 'elsewhere'\n"
    )
    wait_until_reached(reached, elsewhere)
    env, reached = _paused_at("trial-1:recorded", tmp_path, "pause-here")
    here = _start_study_process(url, 4, "quadratic", env=env)
    wait_until_reached(reached, here)  # started with trial 0 running elsewhere (3 to run), trial 1 done
    os.killpg(elsewhere.pid, signal.SIGKILL)
    elsewhere.wait()
    assert interrupted(fail_stale(url, "s", 0))
    pause_files(tmp_path / "pause-here", "trial-1:recorded")[1].touch()
    out = here.communicate(timeout=300)[0].decode()
    assert here.returncode == 0, out
    assert "1 trial(s) left by workers that died meanwhile: running them" in out
    done = trials(url)
    assert [t.number for t in done if t.state == S.COMPLETE] == [1, 2, 3, 4] and done[0].state == S.FAIL
