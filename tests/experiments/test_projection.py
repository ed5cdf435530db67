"""experiments.projection: MLflow written from the Optuna study alone, idempotently."""

import os
import subprocess
import sys
import time

import optuna
from mlflow.tracking import MlflowClient

from experiments import projection, tuning
from experiments.tracking import Tracker, init_store

from .projection_check import expected, in_mlflow

S = optuna.trial.TrialState
META = {"n_trials": 4, "metric": "MRR@20", "fixed": {"loss": "cross-entropy"}, "space": {}}


def four_kinds(storage) -> optuna.Study:
    """A study with a complete, a pruned, a diverged and an interrupted trial, each with the user
    attributes the objective records."""
    study = tuning.load_study("s", tuning.make_storage(str(storage)))
    history = [{"epoch": 1, "train_loss": 2.0}, {"epoch": 2, "train_loss": 1.5}]
    for state in (S.COMPLETE, S.PRUNED, S.FAIL, S.FAIL):
        trial = study.ask()
        trial.set_user_attr("params", {"learning_rate": 0.1 * (trial.number + 1)})
        if trial.number < 3:  # the interrupted one died before its first epoch
            trial.set_user_attr("history", history)
        if state == S.COMPLETE:
            trial.set_user_attr("metrics", {"recall_at_20": 0.5, "mrr_at_20": 0.25})
        if trial.number == 2:
            trial.set_user_attr("error", "the loss became nan in epoch 3")
        study.tell(trial, 0.25 if state == S.COMPLETE else None, state=state)
    return study


def test_each_trial_state_has_the_run_its_state_gives(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    init_store(uri, "t")
    study, tracker = four_kinds(tmp_path / "s.journal"), Tracker(uri, "t")
    projection.publish(study, tracker, "s", META)
    runs = in_mlflow(uri, "t")
    assert runs == expected(study, "s", META)
    assert {k: v["status"] for k, v in runs.items()} == {
        "s/study": "FINISHED",
        "s/trial-0": "FINISHED",
        "s/trial-1": "KILLED",  # pruned: stopped early on purpose
        "s/trial-2": "FAILED",
    }  # the interrupted trial 3 has no run: it runs again under another number
    assert runs["s/trial-1"]["tags"]["pruned"] == "true" and "nan" in runs["s/trial-2"]["tags"]["error"]
    assert runs["s/trial-0"]["metrics"]["mrr_at_20"] == 0.25 and runs["s/trial-0"]["params"]["learning_rate"] == "0.1"
    client = MlflowClient(uri)
    failed = next(r for r in client.search_runs(["1"]) if r.info.run_name == "s/trial-2")
    losses = client.get_metric_history(failed.info.run_id, "train_loss")
    assert [(m.step, m.value) for m in losses] == [(1, 2.0), (2, 1.5)]  # a failed trial shows its epochs
    study_run = next(r for r in client.search_runs(["1"]) if r.info.run_name == "s/study")
    assert study_run.data.metrics["best_value"] == 0.25 and study_run.data.metrics["n_failed"] == 1
    assert "best_params.json" in {a.path for a in client.list_artifacts(study_run.info.run_id)}


def test_a_trials_own_publish_leaves_the_other_trials_alone(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    init_store(uri, "t")
    study, tracker = four_kinds(tmp_path / "s.journal"), Tracker(uri, "t")
    projection.publish(study, tracker, "s", META, only={1})
    assert set(in_mlflow(uri, "t")) == {"s/study", "s/trial-1"}
    projection.publish(study, tracker, "s", META)
    assert in_mlflow(uri, "t") == expected(study, "s", META)


def test_the_study_key_is_the_same_in_every_time_zone(tmp_path):
    """Optuna gives a trial's start in the reader's local time; the key is computed in UTC, so
    machines in other time zones find the same runs."""
    four_kinds(tmp_path / "s.journal")
    code = (
        "from experiments import projection, tuning\n"
        f"print(projection.study_key(tuning.load_study('s', {str(tmp_path / 's.journal')!r})))"
    )
    keys = {
        subprocess.run(
            [sys.executable, "-c", code], env=dict(os.environ, TZ=tz), capture_output=True, text=True, check=True
        ).stdout.strip()
        for tz in ("UTC", "Asia/Tokyo", "America/Los_Angeles")
    }
    assert len(keys) == 1 and len(keys.pop()) == 32


def test_a_study_made_again_under_the_same_name_is_another_study(tmp_path):
    """A new journal file (results deleted, MLflow kept) restarts the storage's ids: the first
    trial's start tells the two studies apart, so the new one does not take the old one's runs."""
    first = projection.study_key(four_kinds(tmp_path / "a.journal"))
    second_now = int(time.time())
    while int(time.time()) == second_now:  # the key takes the start to the second
        time.sleep(0.01)
    second = projection.study_key(four_kinds(tmp_path / "b.journal"))
    assert first != second
