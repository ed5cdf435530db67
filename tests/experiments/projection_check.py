"""What MLflow holds of a study, set beside what experiments.projection.plan computes from the
study alone: the check that a job killed anywhere leaves, after its rerun, MLflow equal to the
projection of the study."""

from mlflow.tracking import MlflowClient

from experiments import projection


def _view(name, status, params, metrics, tags, parent):
    keep = ("kind", "optuna_trial", "study_key", "trial_key", "pruned", "error", "device", "worker")
    return {
        "name": name,
        "status": status,
        "params": {k: str(v) for k, v in params.items()},
        "metrics": {k: float(v) for k, v in metrics.items()},
        "tags": {k: str(v) for k, v in tags.items() if k in keep},
        "parent": parent,
    }


def in_mlflow(uri: str, experiment: str, study_key: str | None = None) -> dict:
    """Every active run of the experiment (or of one study, by its key): {name: view}; two runs of
    one name fail the check."""
    client = MlflowClient(tracking_uri=uri)
    where = f"tags.study_key = '{study_key}'" if study_key else ""
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], where, max_results=5000)
    names = {r.info.run_id: r.info.run_name for r in runs}
    out = {}
    for r in runs:
        assert r.info.run_name not in out, f"two runs named {r.info.run_name}"
        parent = names.get(r.data.tags.get("mlflow.parentRunId"), r.data.tags.get("mlflow.parentRunId"))
        out[r.info.run_name] = _view(r.info.run_name, r.info.status, r.data.params, r.data.metrics, r.data.tags, parent)
    return out


def expected(study, label: str, meta: dict, stats_path=None) -> dict:
    """The projection of the study alone: {name: view}."""
    study_run, trial_runs = projection.plan(study, label, meta, stats_path)
    if study_run is None:
        return {}
    out = {
        study_run.name: _view(
            study_run.name, study_run.status, study_run.params, study_run.latest_metrics(), study_run.tags, None
        )
    }
    for run in trial_runs:
        out[run.name] = _view(run.name, run.status, run.params, run.latest_metrics(), run.tags, study_run.name)
    return out


def trials_as_projected(study, label: str, uri: str, experiment: str) -> None:
    """The study's trial runs in MLflow are those the projection of the study computes (whatever
    settings its run shows), and its one study run is FINISHED."""
    key = projection.study_key(study)
    have, want = in_mlflow(uri, experiment, key), expected(study, label, {})
    assert [v["status"] for v in have.values() if v["tags"]["kind"] == "study"] == ["FINISHED"]
    trials = {k: v for k, v in have.items() if v["tags"]["kind"] == "trial"}
    assert trials == {k: v for k, v in want.items() if v["tags"]["kind"] == "trial"}
