"""The Snakemake workflow: dry runs of both configs, the demo end to end on a tiny config, a config
error, resuming a killed study, and two workers sharing one study."""
import json
import os
import subprocess
import sys
import time
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
        "tuning": {"n_trials": 2, "workers": 1, "metric": "mrr", "cutoff": 20, "device": "cpu",
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


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/paper.yaml"])
def test_dry_runs(configfile, tmp_path):
    r = snake(["-n", "--cores", "1", "all", "--configfile", configfile,
               "--config", f"results_dir={tmp_path}/results", f"raw_dir={tmp_path}/raw"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    jobs = r.stdout + r.stderr
    if configfile.endswith("paper.yaml"):
        for ds in ("rsc15", "yoochoose", "rees46", "coveo", "retailrocket", "diginetica"):
            assert f"{ds}/final/" in jobs
        assert "published_params" in jobs and "download" in jobs
    else:
        assert jobs.count("rule tune:") == 6 and jobs.count("rule train_final:") == 6


def test_config_error_is_reported_before_any_job(tmp_path):
    cfg = yaml.safe_load(tiny_config(tmp_path).read_text())
    cfg["tunning"] = cfg.pop("tuning")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    r = snake(["-n", "--cores", "1", "all", "--configfile", str(tmp_path / "bad.yaml")], tmp_path)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "tunning" in out and "Traceback" not in out
    assert not (tmp_path / "results").exists()  # no job ran


def test_demo_pipeline_end_to_end(tmp_path):
    config = tiny_config(tmp_path)
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
    # the HTML report
    r = snake(["--cores", "1", "--configfile", str(config), "--report", str(tmp_path / "report.html")], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "report.html").stat().st_size > 10000
