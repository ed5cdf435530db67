"""experiments.tracking against a real MLflow store (SQLite file)."""

from mlflow import MlflowClient

from experiments.tracking import Tracker, init_store


def test_a_job_that_starts_again_supersedes_its_earlier_runs_of_the_same_name(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    init_store(uri, "e")
    tracker = Tracker(uri, "e")
    left_running = tracker.start("d/m/final")  # a job killed mid-run
    with tracker.run("d/m/final"):  # its rerun, killed after the run finished (outputs discarded)
        pass
    try:
        with tracker.run("it's/final"):  # a failed job stays failed
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with tracker.run("d/m/final"), tracker.run("it's/final"):  # the job that completes
        pass
    client = MlflowClient(uri)
    runs = client.search_runs([tracker.experiment_id()])
    states = [(r.info.run_name, r.info.status, r.data.tags.get("superseded", "-")) for r in runs]
    assert sorted(states) == sorted(
        [
            ("d/m/final", "KILLED", "-"),
            ("d/m/final", "KILLED", "true"),
            ("d/m/final", "FINISHED", "-"),
            ("it's/final", "FAILED", "-"),
            ("it's/final", "FINISHED", "-"),
        ]
    )
    assert client.get_run(left_running).info.status == "KILLED"
