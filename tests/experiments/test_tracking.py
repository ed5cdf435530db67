"""experiments.tracking against a real MLflow store (SQLite file)."""

from mlflow import MlflowClient
from mlflow.entities import ViewType

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


def test_the_code_version_reads_git_without_writing_its_index(tmp_path):
    """A plain `git status` rewrites .git/index (under index.lock) when a file's time changed: a job
    killed meanwhile would leave the lock, and the user's git would refuse to run."""
    import os
    import subprocess

    import gru4rec
    from experiments.tracking import version_at

    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    (tmp_path / "f.txt").write_text("a\n")
    for args in (["init", "-q"], ["add", "f.txt"], ["commit", "-qm", "x"]):
        subprocess.run(git + args, cwd=tmp_path, check=True)
    sha = subprocess.run(git + ["rev-parse", "--short", "HEAD"], cwd=tmp_path, capture_output=True, text=True)
    index = tmp_path / ".git" / "index"
    before = index.stat().st_mtime_ns
    os.utime(tmp_path / "f.txt", ns=(before + 5 * 10**9, before + 5 * 10**9))  # same content, newer time
    assert version_at(tmp_path) == f"{gru4rec.__version__}+{sha.stdout.strip()}"
    (tmp_path / "f.txt").write_text("b\n")
    assert version_at(tmp_path).endswith("-dirty")
    assert index.stat().st_mtime_ns == before and not (tmp_path / ".git" / "index.lock").exists()


def test_a_run_created_before_the_servers_answer_was_lost_is_not_created_twice(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    init_store(uri, "e")
    tracker = Tracker(uri, "e")
    create, calls = tracker.client.create_run, []

    def answer_lost_once(*args, **kwargs):
        run = create(*args, **kwargs)
        calls.append(run.info.run_id)
        if len(calls) == 1:
            raise ConnectionError("Connection reset by peer")
        return run

    tracker.client.create_run = answer_lost_once
    run_id = tracker.start("d/m/final")
    runs = MlflowClient(uri).search_runs([tracker.experiment_id()])
    assert [r.info.run_id for r in runs] == [run_id] == calls


def test_a_run_that_the_http_client_posted_twice_is_kept_once(tmp_path):
    """MLflow's HTTP client repeats a request whose answer was lost: the server made two runs."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    init_store(uri, "e")
    tracker = Tracker(uri, "e")
    create = tracker.client.create_run

    def posted_twice(*args, **kwargs):
        first = create(*args, **kwargs)
        create(*args, **kwargs)
        return first

    tracker.client.create_run = posted_twice
    tracker.uri = "http://127.0.0.1:5000"  # as seen by the check; the client stays on the file
    run_id = tracker.start("d/m/final")
    client = MlflowClient(uri)
    assert [r.info.run_id for r in client.search_runs([tracker.experiment_id()])] == [run_id]
    [gone] = client.search_runs([tracker.experiment_id()], run_view_type=ViewType.DELETED_ONLY)
    assert (
        gone.info.status == "KILLED"
        and gone.data.tags["create_token"] == client.get_run(run_id).data.tags["create_token"]
    )
