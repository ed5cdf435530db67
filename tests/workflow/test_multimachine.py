"""The multi-machine setup of config/README.md, run for real on this machine: the tiny workflow with
its studies in a PostgreSQL database and its runs on an MLflow tracking server (restarted during
the run), and `snakemake all` killed at several points and run again. The servers are started by
the tests on 127.0.0.1 (tests/servers.py); the kills land at named pause points
(experiments.jobs.pause_point), so the verdict does not depend on the machine's speed."""

import json
import os
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from experiments import tuning
from experiments.jobs import PAUSE_AT, PAUSE_DIR, pause_files

from ..experiments.projection_check import trials_as_projected
from ..experiments.test_tuning import wait_until_reached
from ..servers import MLflowServer, postgres_server
from .test_workflow import ENV, REPO, SNAKEMAKE, snake, tiny_config

pytestmark = pytest.mark.slow
# the command of every run here (a job killed by SIGKILL leaves outputs Snakemake calls incomplete)
ALL = ["--cores", "3", "all", "--rerun-incomplete"]


_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_job_outlives_its_test():
    """A failed test (e.g. a job that never reached its pause point) leaves no workflow running on."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start(workdir: Path, config: Path, pause: str | None = None) -> subprocess.Popen:
    """`snakemake all` in the background, in a process group of its own; with `pause`, its jobs
    hold at that pause point until the test lets them go on (or kills them)."""
    env = dict(ENV)
    if pause:
        (workdir / "pause").mkdir(exist_ok=True)
        env.update({PAUSE_AT: pause, PAUSE_DIR: str(workdir / "pause")})
    proc = subprocess.Popen(
        SNAKEMAKE + ["--directory", str(workdir), *ALL, "--configfile", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _STARTED.append(proc)
    return proc


def reached(workdir: Path, proc, pause: str) -> Path:
    """Wait until a job of `proc` holds at `pause`; returns the file that lets it go on."""
    marker, go = pause_files(workdir / "pause", pause)
    wait_until_reached(marker, proc, timeout=600)
    return go


def finish(proc, timeout=900) -> str:
    out = proc.communicate(timeout=timeout)[0].decode()
    assert proc.returncode == 0, out[-4000:]
    return out


def final_labels(results: Path) -> set[str]:
    """The MLflow run name of every final model the workflow wrote (whatever models the config has)."""
    return {json.loads(p.read_text())["label"] for p in results.glob("*/final/*/metrics.json")}


def study_summaries(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(results.glob("*/tuning/*/best_params.json"))]


def check_mlflow(uri: str, experiment: str, results: Path) -> list:
    """Every study, trial and final run is in the store, once, finished, with its metrics and
    artifacts; none is left RUNNING. Returns the runs."""
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=5000)
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    finished = [r for r in runs if r.info.status == "FINISHED"]
    names = [r.info.run_name for r in finished]
    assert len(names) == len(set(names)), "a run is in the store twice"
    by_name = {r.info.run_name: r for r in finished}
    for label in final_labels(results):
        final = by_name[label]
        assert "recall_at_20" in final.data.metrics and final.data.tags["kind"] == "final"
        artifacts = {a.path for a in client.list_artifacts(final.info.run_id)}
        assert "metrics.json" in artifacts
        if final.data.tags["model"] == "gru4rec":  # the baselines save no model file
            assert "model.safetensors" in artifacts
    for summary in study_summaries(results):
        study = next(r for r in finished if r.data.tags.get("study") == summary["study"])
        assert "best_params.json" in {a.path for a in client.list_artifacts(study.info.run_id)}
        trials = [r for r in finished if r.data.tags.get("mlflow.parentRunId") == study.info.run_id]
        assert len(trials) == summary["n_complete"] and all("value" in t.data.metrics for t in trials)
    return runs


@pytest.fixture(scope="module")
def postgres():
    with postgres_server() as server:
        yield server


def test_studies_in_postgresql_and_runs_on_a_restarted_tracking_server(postgres, tmp_path):
    """config/README.md's several-machines setup: optuna.storage a PostgreSQL URL, mlflow.tracking_uri
    an MLflow server; three jobs at a time. The server is restarted while a trial holds at a pause
    point and the other jobs go on: they wait for it and retry; no run is lost or duplicated."""
    url = postgres.database("workflow")
    server = MLflowServer(tmp_path / "mlflow").start()
    try:
        config = tiny_config(tmp_path, mlflow={"tracking_uri": server.uri}, optuna={"storage": url})
        proc = start(tmp_path, config, pause="trial-1")
        go = reached(tmp_path, proc, "trial-1")
        server.restart()
        go.touch()
        finish(proc)
        results = tmp_path / "results"
        assert final_labels(results) and len(study_summaries(results)) >= 1
        check_mlflow(server.uri, "test", results)
        budget = yaml.safe_load(config.read_text())["tuning"]["n_trials"]
        for summary in study_summaries(results):  # every study is in the database, at its budget
            used_up = summary["n_complete"] + summary["n_failed"]
            assert tuning.counts(tuning.load_study(summary["study"], url)) == (used_up, 0) and used_up == budget
        assert not list(results.rglob("study.journal"))
    finally:
        server.stop()


# --------------------------------------------------------------------------------------- kill anywhere
KILL_POINTS = [
    "job-done:preprocess/synthetic",  # the splits are written, the job has not ended
    "trial-1",  # inside a study: trial 0 done and published, trial 1 running (its run comes when it ends)
    "run-started:synthetic/cross-entropy-shared/final",  # inside a final training, its run RUNNING
    "job-done:tables",  # the tables are written, the job has not ended
]


def kill_config(tmp_path):
    # the tiny config with one embedding mode: two studies, two final runs (the kills are the point)
    return tiny_config(tmp_path, datasets={"synthetic": dict(_tiny_dataset(), embeddings=["shared"])})


def _tiny_dataset():
    return yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())["datasets"]["synthetic"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """One uninterrupted run of the kill tests' config: the reference."""
    workdir = tmp_path_factory.mktemp("uninterrupted")
    finish(start(workdir, kill_config(workdir)))
    return workdir / "results"


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    """A table without its timing columns (training time, speed: they differ from run to run)."""
    return table.drop(columns=[c for c in table.columns if c.endswith(("seconds", "per_s"))])


def assert_outputs_whole(results: Path):
    """Every output file reads back in full; no temporary file is left behind."""
    import safetensors

    assert not list(results.rglob(".*.tmp"))
    for path in results.rglob("*"):
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".parquet":
            pd.read_parquet(path)
        elif path.suffix == ".csv":
            pd.read_csv(path)
        elif path.suffix == ".safetensors":
            with safetensors.safe_open(str(path), "np") as f:
                [f.get_tensor(k) for k in f.keys()]


def test_killed_anywhere_the_workflow_ends_as_an_uninterrupted_run(uninterrupted, tmp_path):
    """SIGKILL to `snakemake all` and all its jobs (a lost machine) at each point of KILL_POINTS in
    turn, `snakemake --unlock`, the same command again: the tables equal the uninterrupted run's,
    no output is truncated, and MLflow holds one finished run per final model."""
    config = kill_config(tmp_path)
    for point in KILL_POINTS:
        proc = start(tmp_path, config, pause=point)
        reached(tmp_path, proc, point)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        r = snake(["--unlock", "--configfile", str(config)], tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
    finish(start(tmp_path, config))
    results = tmp_path / "results"
    for name in ("summary.csv", "paper_comparison.csv"):
        ours, reference = (pd.read_csv(d / "tables" / name) for d in (results, uninterrupted))
        pd.testing.assert_frame_equal(comparable(ours), comparable(reference))
    assert_outputs_whole(results)
    runs = check_mlflow(f"sqlite:///{results}/mlflow.db", "test", results)
    killed = {r.info.run_name for r in runs if r.info.status == "KILLED" and not r.data.tags.get("pruned")}
    assert "synthetic/cross-entropy-shared/final" in killed  # the final run killed at the third point
    # (and the final runs of jobs running beside it): a trial's run is written whole once it ended
    assert all("/final" in name for name in killed), killed
    summaries = study_summaries(results)
    assert sum(s["n_interrupted"] for s in summaries) >= 1  # the trial killed at the second point runs again
    for s in summaries:  # its study's trial runs are what the study holds: the killed trial has none
        dataset, name = s["study"].split("/")
        study = tuning.load_study(s["study"], str(results / dataset / "tuning" / name / "study.journal"))
        trials_as_projected(study, s["study"], f"sqlite:///{results}/mlflow.db", "test")
