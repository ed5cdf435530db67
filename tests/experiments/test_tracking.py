"""experiments.tracking against a real MLflow store (SQLite file)."""

import multiprocessing
import re

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

from experiments.tracking import WORKSPACE_FILE, Tracker, init_store, workspace_id
from gru4rec.errors import GRU4RecError


@pytest.mark.parametrize("workspace", [None, "0" * 32])
def test_a_job_that_starts_again_supersedes_its_earlier_runs_of_the_same_name(tmp_path, workspace):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    init_store(uri, "e")
    tracker = Tracker(uri, "e", workspace=workspace)
    killed = tracker.run("d/m/final")  # a job killed mid-run: its run never ends
    left_running = killed.__enter__()
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


def test_two_workspaces_on_one_store_keep_each_others_runs_of_the_same_name(tmp_path):
    """Two results directories on one tracking store and experiment, each running the job
    'd/m/final' (twice: the second is a rerun): each rerun replaces only its own directory's run."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    init_store(uri, "e")
    a, b = (Tracker(uri, "e", workspace=workspace_id(tmp_path / d)) for d in "ab")
    assert a.workspace != b.workspace
    finished = {}
    for tracker in (a, b, a, b):  # interleaved, as two people's jobs would be
        with tracker.run("d/m/final") as parent, tracker.run("d/m/final/seed-1", parent=parent) as seed:
            pass
        finished[tracker.workspace] = {parent, seed}
    runs = MlflowClient(uri).search_runs([a.experiment_id()])
    alive = {r.info.run_id for r in runs if r.info.status == "FINISHED"}
    assert alive == finished[a.workspace] | finished[b.workspace]  # both directories' last runs
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4 + ["KILLED"] * 4
    assert {r.data.tags["workspace"] for r in runs if r.info.run_id in finished[a.workspace]} == {a.workspace}


def _read_workspace(path, queue):
    queue.put(workspace_id(path))


def test_the_workspace_id_is_written_once_and_agreed_on_by_parallel_first_jobs(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    jobs = [ctx.Process(target=_read_workspace, args=(tmp_path / "results", queue)) for _ in range(4)]
    for j in jobs:
        j.start()
    ids = {queue.get(timeout=120) for _ in jobs}
    for j in jobs:
        j.join()
    assert len(ids) == 1 and re.fullmatch("[0-9a-f]{32}", ids.pop())
    assert workspace_id(tmp_path / "results") == (tmp_path / "results" / WORKSPACE_FILE).read_text().strip()
    assert [p.name for p in (tmp_path / "results").iterdir()] == [WORKSPACE_FILE]  # no temporary file left


def test_the_workspace_id_is_written_where_the_file_system_has_no_hard_links(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")  # vfat, SMB and some FUSE mounts

    monkeypatch.setattr("os.link", no_links)
    first = workspace_id(tmp_path / "results")
    assert re.fullmatch("[0-9a-f]{32}", first) and workspace_id(tmp_path / "results") == first
    assert [p.name for p in (tmp_path / "results").iterdir()] == [WORKSPACE_FILE]


def test_an_edited_workspace_file_is_a_one_line_error_naming_it(tmp_path):
    (tmp_path / WORKSPACE_FILE).write_text("my workspace\n")
    with pytest.raises(GRU4RecError, match=r"\.mlflow_workspace: expected the 32 hex digits"):
        workspace_id(tmp_path)


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
