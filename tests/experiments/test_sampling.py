"""Trials seeded by their slot in the budget (experiments.sampling): a kill or a second worker does
not change what a study draws."""

import os
import signal
from types import SimpleNamespace

import optuna

from experiments import tuning
from experiments.sampling import claim_slot

from .fake_objective import quadratic
from .test_tuning import FIXED, SPACE, _paused_at, _start_study_process, wait_until_reached

S = optuna.trial.TrialState


def study_of(*trials):
    """An in-memory study holding trials given as (state, user attributes)."""
    study = optuna.create_study()
    for state, attrs in trials:
        value = 1.0 if state == S.COMPLETE else None
        study.add_trial(optuna.trial.create_trial(state=state, value=value, user_attrs=attrs))
    return study


def next_slot(study):
    return claim_slot(study, SimpleNamespace(number=len(study.get_trials())))


def test_a_trial_takes_the_slot_of_a_killed_one_else_the_next():
    assert next_slot(study_of()) == 0
    done = (S.COMPLETE, {"slot": 0})
    assert next_slot(study_of(done, (S.COMPLETE, {"slot": 1}))) == 2
    killed = (S.FAIL, {"slot": 1})  # failed without an `error`: its worker died
    assert next_slot(study_of(done, killed, (S.COMPLETE, {"slot": 2}))) == 1
    # once a later trial has taken it again, the slot is no longer free
    assert next_slot(study_of(done, killed, (S.COMPLETE, {"slot": 2}), (S.COMPLETE, {"slot": 1}))) == 3
    # a diverged trial (tagged `error`) used up its slot
    assert next_slot(study_of(done, (S.FAIL, {"slot": 1, "error": "nan"}))) == 2
    # a worker that started just before this one and has not written its slot yet gets the first
    assert next_slot(study_of(done, killed, (S.RUNNING, {}))) == 2


def test_a_killed_and_resumed_study_draws_what_an_uninterrupted_one_draws(tmp_path):
    storage = tmp_path / "killed.journal"
    env, reached = _paused_at("trial-2", tmp_path)
    proc = _start_study_process(storage, 5, "quadratic", env=env)
    wait_until_reached(reached, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = tuning.run_study("s", str(storage), quadratic, SPACE, FIXED, 5, seed=42)
    uninterrupted = tuning.run_study("s", str(tmp_path / "plain.journal"), quadratic, SPACE, FIXED, 5, seed=42)

    def drawn(path):
        trials = tuning.load_study("s", str(path)).get_trials()
        return {t.user_attrs["slot"]: t.params for t in trials if t.state == S.COMPLETE}

    assert drawn(storage) == drawn(tmp_path / "plain.journal") and len(drawn(storage)) == 5
    assert resumed["params"] == uninterrupted["params"] and resumed["n_interrupted"] == 1
