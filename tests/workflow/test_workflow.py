"""The Snakemake workflow: dry runs of both configs, the demo end to end on a tiny config, a config
error, resuming a killed study, and two workers sharing one study."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snake(args, tmp_path, timeout=900):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run(SNAKEMAKE + args, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


def tiny_config(tmp_path, **extra):
    cfg = {
        "results_dir": str(tmp_path / "results"), "raw_dir": str(tmp_path / "raw"),
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "test"},
        "optuna": {"storage": None, "seed": 1},
        "tuning": {"n_trials": 2, "workers": 1, "threads_per_trial": 1, "metric": "mrr", "cutoff": 20, "device": "cpu",
                   "overrides": {"n_epochs": 1, "n_sample": 32},
                   "space": {"cross-entropy": {"layers": {"type": "int", "low": 16, "high": 32, "step": 16},
                                               "learning_rate": {"type": "float", "low": 0.05, "high": 0.1, "step": 0.05}},
                             "bpr-max": {"layers": {"type": "int", "low": 16, "high": 32, "step": 16},
                                         "final_act": {"type": "categorical", "choices": ["elu-1", "linear"]}}}},
        "final": {"cutoffs": [1, 5, 10, 20], "device": "cpu", "seed": 1, "threads": 1, "overrides": {"n_epochs": 1}},
        "datasets": {"synthetic": {"source": "synthetic", "options": {"n_sessions": 1500, "n_items": 150, "days": 10, "seed": 3}}},
    }
    cfg.update(extra)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def dry_run(tmp_path, *args, config=()):
    r = snake(["-n", "--cores", "8", "all", *args, "--config", f"results_dir={tmp_path}/results",
               f"raw_dir={tmp_path}/raw", *config], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout + r.stderr


def job_counts(out):
    """{rule: count} from the dry run's 'Job stats' table."""
    table = out.split("Job stats:")[1].split("total")[0]
    return {line.split()[0]: int(line.split()[1]) for line in table.splitlines()[3:] if line.strip()}


PAPER = ("rsc15", "yoochoose", "rees46", "coveo", "retailrocket", "diginetica")


def test_dry_run_of_the_demo_config(tmp_path):
    jobs = job_counts(dry_run(tmp_path))
    assert jobs == {"mlflow_init": 1, "preprocess": 1, "tune": 6, "train_final": 6, "tables": 1, "plots": 1, "all": 1}


def test_dry_runs_of_the_paper_config_in_both_modes(tmp_path):
    out = dry_run(tmp_path, "--configfile", "config/paper.yaml")
    assert job_counts(out) == {"download": 6, "mlflow_init": 1, "preprocess": 6, "tune": 36, "train_final": 36,
                               "tables": 1, "plots": 1, "all": 1}
    assert "synthetic" not in out  # the demo config is replaced, not merged
    out = dry_run(tmp_path, "--configfile", "config/paper.yaml", config=["mode=reproduce"])
    assert job_counts(out)["published_params"] == 6 and "tune" not in job_counts(out)
    for ds, loss in zip(PAPER, ["cross-entropy"] * 3 + ["bpr-max"] * 3):
        assert f"{ds}/final/{loss}-shared/metrics.json" in out


def test_config_error_is_one_line_before_any_job(tmp_path):
    cfg = yaml.safe_load(tiny_config(tmp_path).read_text())
    cfg["tunning"] = cfg.pop("tuning")
    cfg["datasets"]["synthetic"]["embeddings"] = ["shared", "tied"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    r = snake(["--cores", "1", "all", "--configfile", str(tmp_path / "bad.yaml")], tmp_path)
    assert r.returncode != 0
    lines = [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("config error (") and "bad.yaml" in lines[0]
    assert "unknown key 'tunning'" in lines[0] and "missing" in lines[0] and "'tied'" in lines[0]
    assert not (tmp_path / "results").exists()  # no job ran
    # a cross-check the schema cannot express
    cfg = yaml.safe_load(tiny_config(tmp_path).read_text())
    cfg["datasets"]["retail"] = {"source": "retailrocket", "mode": "reproduce"}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    r = snake(["-n", "--cores", "1", "all", "--configfile", str(tmp_path / "bad.yaml")], tmp_path)
    assert r.returncode != 0 and "datasets.retail: mode 'reproduce' needs 'paper'" in r.stderr


def test_the_documented_workout_example_is_a_valid_dataset_entry(tmp_path):
    """config/README.md's custom dataset (the second seed's workout log) passes the schema and
    the preprocessing, and gives the last-item split it promises."""
    import preprocessing
    readme = (REPO / "config" / "README.md").read_text()
    block = next(b.split("```", 1)[0] for b in readme.split("```yaml")[1:] if "workouts:" in b)
    entry = yaml.safe_load(block)["datasets"]["workouts"]
    raw = tmp_path / "fitrec"
    raw.mkdir()
    rows = ["session,item,timestamp"] + [f"u{u},{['run', 'bike', 'walk', 'swim'][(u + k) % 4]},{1000 * u + k}"
                                         for u in range(30) for k in range(5)]
    (raw / entry["options"]["files"][0]).write_text("\n".join(rows) + "\n")
    cfg = yaml.safe_load(tiny_config(tmp_path).read_text())
    cfg["datasets"] = {"workouts": dict(entry, raw=str(raw))}
    (tmp_path / "workouts.yaml").write_text(yaml.safe_dump(cfg))
    r = snake(["-n", "--cores", "1", "all", "--configfile", str(tmp_path / "workouts.yaml")], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    preprocessing.preprocess("custom", raw, tmp_path / "splits", entry["options"])
    test = pd.read_parquet(tmp_path / "splits" / "test.parquet")
    train = pd.read_parquet(tmp_path / "splits" / "train_full.parquet")
    assert test.SessionId.nunique() == 30 and len(train) == len(test) - 30  # the last workout is held out


def test_demo_pipeline_end_to_end(tmp_path):
    config = tiny_config(tmp_path)
    cfg = yaml.safe_load(config.read_text())
    cfg["tuning"]["workers"] = 2  # each study's two trials run in two worker processes
    config.write_text(yaml.safe_dump(cfg))
    r = snake(["--cores", "2", "all", "--configfile", str(config)], tmp_path)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    res = tmp_path / "results"
    summary = pd.read_csv(res / "tables" / "summary.csv")
    assert len(summary) == 6 and set(summary.embedding) == {"none", "separate", "shared"}
    assert summary["Recall@20"].between(0, 1).all() and (summary["Recall@20"] > 0.3).all()
    paper = pd.read_csv(res / "tables" / "paper_comparison.csv")
    assert set(paper.dataset) == {"rsc15", "yoochoose", "rees46", "coveo", "retailrocket", "diginetica"}
    for name in ("metrics.png", "speed.png"):
        assert (res / "plots" / name).stat().st_size > 1000
    best = json.loads((res / "synthetic" / "tuning" / "bpr-max-shared" / "best_params.json").read_text())
    assert best["n_complete"] == 2 and best["params"]["constrained_embedding"] is True
    assert (res / "synthetic" / "tuning" / "bpr-max-shared" / "study.journal").exists()
    log = (res / "logs" / "tune" / "synthetic" / "bpr-max-shared.log").read_text()
    assert "with 2 worker(s)" in log and "(2/2)" in log and "done: best MRR@20=" in log
    metrics = json.loads((res / "synthetic" / "final" / "bpr-max-shared" / "metrics.json").read_text())
    assert metrics["device"] == "cpu" and metrics["recall_at_20"] == pytest.approx(
        summary.query("loss == 'bpr-max' and embedding == 'shared'")["Recall@20"].iloc[0])
    # MLflow: 6 studies, their trials nested under them, 6 final runs
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("test")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    kinds = pd.Series([r.data.tags.get("kind") for r in runs]).value_counts()
    assert kinds["study"] == 6 and kinds["trial"] == 12 and kinds["final"] == 6
    studies = {r.info.run_id for r in runs if r.data.tags.get("kind") == "study"}
    assert all(r.data.tags.get("mlflow.parentRunId") in studies for r in runs if r.data.tags.get("kind") == "trial")
    final = next(r for r in runs if r.data.tags.get("kind") == "final")
    assert "recall_at_20" in final.data.metrics and final.data.params["device"] == "cpu"
    assert len(client.get_metric_history(final.info.run_id, "train_loss")) == 1
    artifacts = Path(final.info.artifact_uri.replace("file://", ""))
    assert artifacts.is_relative_to(tmp_path / "mlartifacts") and (artifacts / "model.safetensors").exists()
    # the HTML report
    r = snake(["--cores", "1", "--configfile", str(config), "--report", str(tmp_path / "report.html")], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "report.html").stat().st_size > 10000


def test_interrupted_workflow_continues_its_study(tmp_path):
    """Ctrl-C during tuning (while trial 2 runs, trials 0 and 1 done), then the same command
    again: the study continues where it stopped."""
    import signal

    import optuna

    from gru4rec import tuning
    from gru4rec.jobs import PAUSE_AT, PAUSE_DIR

    from .test_tuning import wait_until_reached
    config = tiny_config(tmp_path)
    cfg = yaml.safe_load(config.read_text())
    cfg["tuning"].update(n_trials=6)
    cfg["datasets"]["synthetic"].update(losses=["cross-entropy"], embeddings=["shared"])
    cfg["mlflow"]["tracking_uri"] = "none"
    config.write_text(yaml.safe_dump(cfg))
    study_dir = tmp_path / "results" / "synthetic" / "tuning" / "cross-entropy-shared"
    (tmp_path / "pause").mkdir()
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               **{PAUSE_AT: "trial-2", PAUSE_DIR: str(tmp_path / "pause")})
    proc = subprocess.Popen(SNAKEMAKE + ["--cores", "1", "all", "--configfile", str(config)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    wait_until_reached(tmp_path / "pause" / "trial-2.reached", proc)
    complete = optuna.trial.TrialState.COMPLETE
    before = [t for t in tuning.load_study("synthetic/cross-entropy-shared", str(study_dir / "study.journal")).trials
              if t.state == complete]
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=300)
    assert [t.number for t in before] == [0, 1]
    assert not (study_dir / "best_params.json").exists()
    r = snake(["--cores", "1", "all", "--configfile", str(config)], tmp_path)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    after = {t.number: t for t in tuning.load_study("synthetic/cross-entropy-shared", str(study_dir / "study.journal")).trials}
    assert all(after[t.number].state == complete and after[t.number].value == t.value for t in before)
    assert after[2].state == optuna.trial.TrialState.FAIL  # the interrupted trial: failed, not counted
    best = json.loads((study_dir / "best_params.json").read_text())
    assert best["n_complete"] + best["n_failed"] == 6 and best["n_interrupted"] == 1
    log = (tmp_path / "results" / "logs" / "tune" / "synthetic" / "cross-entropy-shared.log").read_text()
    assert "study 'synthetic/cross-entropy-shared': 2/6 trials done" in log  # the second run's first line
