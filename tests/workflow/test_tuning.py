"""Optuna studies: resume after a killed run, NaN trials, two workers sharing one study."""
import subprocess
import sys
import time

import optuna
import pytest

import preprocessing
from gru4rec import tuning
from gru4rec.errors import TrainingDivergedError

SPACE = {"layers": {"type": "int", "low": 16, "high": 48, "step": 16},
         "learning_rate": {"type": "float", "low": 0.05, "high": 0.15, "step": 0.05}}
FIXED = {"loss": "cross-entropy", "n_epochs": 2, "n_sample": 16, "batch_size": 16}


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    d = tmp_path_factory.mktemp("splits")
    preprocessing.preprocess("synthetic", None, d, {"n_sessions": 1500, "n_items": 150, "days": 10, "seed": 5}, quiet=True)
    return str(d / "train_tr.parquet"), str(d / "train_valid.parquet")


def states(storage, name="s"):
    study = tuning.load_study(name, str(storage), fail_stale=False)
    return study, [t.state for t in study.trials]


def test_killed_study_resumes_to_its_budget_without_losing_trials(tmp_path, splits):
    storage = tmp_path / "study.journal"
    code = (f"from gru4rec.tuning import run_study; run_study('s', {str(storage)!r}, {splits[0]!r}, {splits[1]!r}, 3, "
            f"{SPACE!r}, {dict(FIXED, n_epochs=4)!r})")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    first = None
    while time.time() < deadline:
        time.sleep(0.3)
        if storage.exists():
            study, st = states(storage)
            if optuna.trial.TrialState.COMPLETE in st:
                first = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE][0]
                break
    proc.kill()
    proc.wait()
    assert first is not None, "the first trial did not finish in time"
    summary = tuning.run_study("s", str(storage), splits[0], splits[1], 3, SPACE, dict(FIXED, n_epochs=4))
    study, st = states(storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3 and summary["n_complete"] == 3
    kept = next(t for t in complete if t.number == first.number)
    assert kept.value == first.value and kept.params == first.params
    interrupted = [t for t in study.trials if t.user_attrs.get("interrupted")]
    assert len(interrupted) <= 1 and all(t.state == optuna.trial.TrialState.FAIL for t in interrupted)
    # a finished study run again does no more work
    again = tuning.run_study("s", str(storage), splits[0], splits[1], 3, SPACE, dict(FIXED, n_epochs=4))
    assert again["n_complete"] == 3 and len(states(storage)[1]) == len(st)


def test_diverged_trial_is_failed_and_the_study_goes_on(tmp_path, splits, monkeypatch):
    calls = []
    real = tuning.objective_value

    def sometimes_nan(params, *a, **k):
        calls.append(1)
        if len(calls) == 1:
            raise TrainingDivergedError("the loss became nan in epoch 1")
        return real(params, *a, **k)
    monkeypatch.setattr(tuning, "objective_value", sometimes_nan)
    summary = tuning.run_study("nan", str(tmp_path / "j"), splits[0], splits[1], 3, SPACE, FIXED)
    study = tuning.load_study("nan", str(tmp_path / "j"), fail_stale=False)
    assert [t.state for t in study.trials].count(optuna.trial.TrialState.FAIL) == 1
    assert "nan" in study.trials[0].user_attrs["error"]
    # the failed trial counts against the budget: 3 trials in all, 2 complete
    assert summary["n_complete"] == 2 and len(study.trials) == 3


def test_two_workers_share_one_study(tmp_path, splits):
    storage = str(tmp_path / "shared.journal")
    summary = tuning.run_study("two", storage, splits[0], splits[1], 4, SPACE, FIXED, workers=2)
    study = tuning.load_study("two", storage, fail_stale=False)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert 4 <= len(complete) <= 5  # a worker may start one trial while the other finishes the last
    assert len({t.user_attrs["worker"] for t in complete}) == 2
    assert len({t.number for t in complete}) == len(complete)
    assert summary["value"] == max(t.value for t in complete)


def test_bad_space_fails_before_training(tmp_path, splits):
    from gru4rec.errors import ParameterError
    with pytest.raises(ParameterError):
        tuning.run_study("bad", str(tmp_path / "b"), splits[0], splits[1], 2, {"layerz": {"type": "int", "low": 1, "high": 2}}, FIXED)
