"""The Snakemake workflow: dry runs of the configs, config errors, defaults, the tiny CI config
(.test/config) end to end, and resuming an interrupted study. Every run works in a temporary
directory (snakemake --directory), as the catalog's workflows run .test/."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

import preprocessing
from experiments import tuning
from experiments.jobs import PAUSE_AT, PAUSE_DIR
from gru4rec.baselines import BASELINES
from gru4rec.losses import RANKING_LOSSES

from ..experiments.test_tuning import wait_until_reached

REPO = Path(__file__).resolve().parents[2]
TEST_CONFIG = REPO / ".test" / "config" / "config.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile")]
ENV = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")


def snake(args, workdir, env=ENV, timeout=900):
    return subprocess.run(
        SNAKEMAKE + ["--directory", str(workdir), *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def tiny_config(tmp_path, **changes):
    """The CI config (.test/config/config.yaml) with top-level sections updated by `changes`."""
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    for key, value in changes.items():
        cfg[key] = dict(cfg.get(key) or {}, **value) if isinstance(value, dict) else value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def dry_run(tmp_path, *args):
    r = snake(["-n", "--cores", "8", "all", *args], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout + r.stderr


def job_counts(out):
    """{rule: count} from the dry run's 'Job stats' table."""
    table = out.split("Job stats:")[1].split("total")[0]
    return {line.split()[0]: int(line.split()[1]) for line in table.splitlines()[3:] if line.strip()}


def test_dry_run_of_the_demo_config(tmp_path):
    jobs = job_counts(dry_run(tmp_path, "--configfile", str(REPO / "config" / "config.yaml")))
    assert jobs == {
        "mlflow_init": 1,
        "preprocess": 1,
        "tune": 6,
        "tune_baseline": 4,  # Item-KNN, BPR-MF, SKNN, V-SkNN
        "train_final": 6,
        "train_baseline": len(BASELINES),
        "study_plots": 1,  # every study's plots in one job
        "curves": 1,
        "tables": 1,
        "plots": 1,
        "all": 1,
    }


def test_the_demo_config_is_the_default_in_the_repository(tmp_path):
    """`snakemake all` in the repository runs config/config.yaml (results_dir moved for the test)."""
    r = subprocess.run(
        SNAKEMAKE + ["-n", "all", "--config", f"results_dir={tmp_path}/results"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert f"{tmp_path}/results/synthetic/final/bpr-max-separate/metrics.json" in r.stdout


def test_dry_runs_of_the_paper_config_in_both_modes(tmp_path):
    out = dry_run(tmp_path, "--configfile", str(REPO / "config" / "paper.yaml"))
    assert job_counts(out) == {
        "download": 6,
        "mlflow_init": 1,
        "preprocess": 6,
        "tune": 36,
        "tune_baseline": 24,
        "train_final": 36,
        "train_baseline": 6 * len(BASELINES),
        "study_plots": 1,
        "curves": 6,
        "tables": 1,
        "plots": 1,
        "all": 1,
    }
    assert "synthetic" not in out  # the demo config is replaced, not merged
    out = dry_run(tmp_path, "--configfile", str(REPO / "config" / "paper.yaml"), "--config", "mode=reproduce")
    assert job_counts(out)["published_params"] == 6 and "tune" not in job_counts(out)
    published = yaml.safe_load((REPO / "config" / "published.yaml").read_text())["params"]
    for ds in preprocessing.PUBLIC_DATASETS:
        assert f"{ds}/final/{published[ds]['loss']}-shared/metrics.json" in out


def test_a_config_holds_only_what_differs_from_the_defaults(tmp_path):
    """One dataset entry is a whole config: the schema has every other key's default."""
    (tmp_path / "one.yaml").write_text(
        "datasets:\n  rr: {source: retailrocket, mode: reproduce, paper: retailrocket}\n"
    )
    out = dry_run(tmp_path, "--configfile", str(tmp_path / "one.yaml"))
    assert job_counts(out) == {
        "download": 1,
        "mlflow_init": 1,
        "preprocess": 1,
        "published_params": 1,
        "train_final": 1,
        "tune_baseline": 4,  # every model is the default: the baselines are tuned in both modes
        "train_baseline": len(BASELINES),
        "study_plots": 1,
        "curves": 1,
        "tables": 1,
        "plots": 1,
        "all": 1,
    }
    assert "results/rr/final/bpr-max-shared/metrics.json" in out and "resources/raw/rr/.complete" in out
    (tmp_path / "tune.yaml").write_text("datasets:\n  demo: {source: synthetic}\n")
    assert job_counts(dry_run(tmp_path, "--configfile", str(tmp_path / "tune.yaml")))["tune"] == 6


def test_models_select_the_baselines_and_gru4rec(tmp_path):
    (tmp_path / "m.yaml").write_text(
        "final: {seeds: 3}\ndatasets:\n  a: {source: synthetic, models: [pop, vsknn]}\n"
        "  b: {source: synthetic, models: [gru4rec], losses: [bpr-max], embeddings: [shared]}\n"
    )
    out = dry_run(tmp_path, "--configfile", str(tmp_path / "m.yaml"))
    jobs = job_counts(out)
    assert jobs["train_baseline"] == 2 and jobs["tune_baseline"] == 1 and jobs["tune"] == 1
    assert jobs["train_final"] == 1 and "results/a/tuning/vsknn/best_params.json" in out
    assert "results/b/final/pop" not in out and "results/a/final/bpr-max" not in out
    (tmp_path / "bad.yaml").write_text("datasets:\n  a: {source: synthetic, models: [pop, knn]}\n")
    r = snake(["-n", "--cores", "1", "all", "--configfile", str(tmp_path / "bad.yaml")], tmp_path)
    assert r.returncode != 0 and "datasets.a.models.1: 'knn' is not one of ['gru4rec', 'random', 'pop'" in r.stderr


def test_every_loss_of_the_library_is_a_valid_study(tmp_path):
    """The workflow's names come from the library: a legacy ranking loss is a study like any other."""
    loss = RANKING_LOSSES[-1]
    config = tiny_config(
        tmp_path, datasets={"synthetic": {"source": "synthetic", "losses": [loss], "embeddings": ["none"]}}
    )
    out = dry_run(tmp_path, "--configfile", str(config))
    assert f"results/synthetic/tuning/{loss}-none/best_params.json" in out and job_counts(out)["tune"] == 1


def test_config_errors_are_one_line_before_any_job(tmp_path):
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["tunning"] = cfg.pop("tuning")
    cfg["datasets"]["synthetic"]["embeddings"] = ["shared", "tied"]
    cfg["datasets"]["other"] = {"options": {}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    r = snake(["--cores", "1", "all", "--configfile", str(tmp_path / "bad.yaml")], tmp_path)
    assert r.returncode != 0
    lines = [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("config error (") and "bad.yaml" in lines[0]
    assert "unknown key 'tunning'" in lines[0] and "'tied' is not one of" in lines[0]
    assert "datasets.other: 'source' is missing" in lines[0]
    assert not (tmp_path / "results").exists()  # no job ran
    # a cross-check the schema cannot express
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["datasets"]["retail"] = {"source": "retailrocket", "mode": "reproduce"}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    r = snake(["-n", "--cores", "1", "all", "--configfile", str(tmp_path / "bad.yaml")], tmp_path)
    assert r.returncode != 0 and "datasets.retail: mode 'reproduce' needs 'paper'" in r.stderr
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg.setdefault("final", {})["cutoffs"] = [5, 10]  # the tables need Recall@20
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    r = snake(["-n", "--cores", "1", "all", "--configfile", str(tmp_path / "bad.yaml")], tmp_path)
    assert r.returncode != 0 and "final.cutoffs: the tables compare Recall@20" in r.stderr


def test_the_documented_workout_example_is_a_valid_dataset_entry(tmp_path):
    """config/README.md's custom dataset (the second seed's workout log) passes the schema and
    the preprocessing, and gives the last-item split it promises."""
    readme = (REPO / "config" / "README.md").read_text()
    block = next(b.split("```", 1)[0] for b in readme.split("```yaml")[1:] if "workouts:" in b)
    entry = yaml.safe_load(block)["datasets"]["workouts"]
    raw = tmp_path / "fitrec"
    raw.mkdir()
    rows = ["session,item,timestamp"] + [
        f"u{u},{['run', 'bike', 'walk', 'swim'][(u + k) % 4]},{1000 * u + k}" for u in range(30) for k in range(5)
    ]
    (raw / entry["options"]["files"][0]).write_text("\n".join(rows) + "\n")
    config = tiny_config(tmp_path, datasets={"workouts": dict(entry, raw=str(raw))})
    dry_run(tmp_path, "--configfile", str(config))
    preprocessing.preprocess("custom", raw, tmp_path / "splits", entry["options"])
    test = pd.read_parquet(tmp_path / "splits" / "test.parquet")
    train = pd.read_parquet(tmp_path / "splits" / "train_full.parquet")
    assert test.SessionId.nunique() == 30 and len(train) == len(test) - 30  # the last workout is held out


def _check_dataset_tables(tables):
    """The tiny run's per-dataset tables: the ICLR 2016 layout and every metric, in three formats."""
    comp = pd.read_csv(tables / "comparison.csv")
    assert list(comp.Model[:2]) == ["POP", "Item-KNN"] and len(comp) == 8  # the paper's order, GRU4Rec after
    knn = comp.set_index("Model").loc["Item-KNN"]
    assert knn["Recall@20 vs Item-KNN (%)"] == 0 and pd.isna(knn["Recall@20 std"])  # deterministic: one run
    gru = comp[comp.Model.str.startswith("GRU4Rec")]
    assert gru["Recall@20 std"].notna().all()  # two seeds
    expected = 100 * (gru["MRR@20"] - knn["MRR@20"]) / knn["MRR@20"]
    assert gru["MRR@20 vs Item-KNN (%)"].to_numpy() == pytest.approx(expected.to_numpy())
    md = (tables / "comparison.md").read_text()
    assert "tie mode `conservative`" in md and " ± " in md and "| POP |" in md
    tex = (tables / "comparison.tex").read_text()
    assert tex.count(r"\\") == 9 and r"\toprule" in tex and r"$\pm$" in tex
    every = pd.read_csv(tables / "all_metrics.csv")
    assert {"Recall@1", "MRR@5", "Recall@20"} <= set(every.columns) and len(every) == 8
    # the paired tests: every model against the best baseline, in the CSV; the note says which test
    p = comp["Recall@20 vs best baseline p Holm"]
    assert p.isna().sum() == 1 and p.dropna().between(0, 1).all()  # the best baseline is the reference
    assert "paired bootstrap" in md and "Holm-Bonferroni" in md and "p Holm" not in md


@pytest.mark.slow
def test_the_tiny_config_end_to_end(tmp_path):
    config = tiny_config(tmp_path, tuning={"workers": 2})  # each study's two trials in two worker processes
    r = snake(["--cores", "2", "all", "--configfile", str(config)], tmp_path)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    res = tmp_path / "results"
    summary = pd.read_csv(res / "tables" / "summary.csv", keep_default_na=False)
    assert len(summary) == 8 and set(summary.model) == {"gru4rec", "pop", "itemknn"}
    gru = summary[summary.model == "gru4rec"]
    assert set(gru.embedding) == {"none", "separate", "shared"} and (gru.seeds == 2).all()
    assert summary["Recall@20"].between(0, 1).all() and (gru["Recall@20"] > 0.3).all()
    _check_dataset_tables(res / "tables" / "synthetic")
    paper = pd.read_csv(res / "tables" / "paper_comparison.csv")
    assert set(paper.dataset) == set(preprocessing.PUBLIC_DATASETS)
    for name in ("metrics.png", "speed.png", "synthetic/curves.png"):
        assert (res / "plots" / name).stat().st_size > 1000
    for study in ("bpr-max-shared", "itemknn"):
        for name in ("history.png", "importance.png"):
            assert (res / "plots" / "studies" / "synthetic" / study / name).stat().st_size > 1000
    best = json.loads((res / "synthetic" / "tuning" / "bpr-max-shared" / "best_params.json").read_text())
    assert best["n_complete"] == 2 and best["params"]["constrained_embedding"] is True
    assert (res / "synthetic" / "tuning" / "bpr-max-shared" / "study.journal").exists()
    log = (res / "logs" / "tune" / "synthetic" / "bpr-max-shared.log").read_text()
    assert "with 2 worker(s)" in log and "(2/2)" in log and "done: best MRR@20=" in log
    metrics = json.loads((res / "synthetic" / "final" / "bpr-max-shared" / "metrics.json").read_text())
    assert metrics["device"] == "cpu" and metrics["recall_at_20"] == pytest.approx(
        summary.query("loss == 'bpr-max' and embedding == 'shared'")["Recall@20"].iloc[0]
    )
    assert [m["seed"] for m in metrics["per_seed"]] == [1, 2] and metrics["tie_mode"] == "conservative"
    assert all(f"mrr_at_{n}" in metrics for n in range(1, 21))  # the curves' cut-offs
    assert metrics["recall_at_20"] == pytest.approx(sum(m["recall_at_20"] for m in metrics["per_seed"]) / 2)
    # every final run's per-event ranks give its metrics, seed by seed
    for run in ("bpr-max-shared", "itemknn", "pop"):
        saved = json.loads((res / "synthetic" / "final" / run / "metrics.json").read_text())
        ranks = pd.read_parquet(res / "synthetic" / "final" / run / "ranks.parquet")
        for m in saved["per_seed"]:
            r = ranks[ranks.Seed == m["seed"]].Rank
            assert len(r) == m["n_predictions"] and (r <= 20).mean() == pytest.approx(m["recall_at_20"], rel=1e-12)
            assert (1 / r[r <= 5]).sum() / len(r) == pytest.approx(m["mrr_at_5"], rel=1e-12)
    knn = json.loads((res / "synthetic" / "final" / "itemknn" / "metrics.json").read_text())
    tuned = json.loads((res / "synthetic" / "tuning" / "itemknn" / "best_params.json").read_text())
    assert knn["params"]["n_sims"] == tuned["params"]["n_sims"] and len(knn["per_seed"]) == 1
    # MLflow (the default store: results/mlflow.db): 7 studies (6 GRU4Rec, Item-KNN), their trials
    # nested under them, 8 final runs with a nested run per seed (GRU4Rec 2 each, the baselines 1)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{res}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("test").experiment_id], max_results=1000)
    kinds = pd.Series([r.data.tags.get("kind") for r in runs]).value_counts()
    assert kinds["study"] == 7 and kinds["trial"] == 14 and kinds["final"] == 8 and kinds["seed"] == 14
    studies = {r.info.run_id for r in runs if r.data.tags.get("kind") == "study"}
    assert all(r.data.tags.get("mlflow.parentRunId") in studies for r in runs if r.data.tags.get("kind") == "trial")
    final = next(r for r in runs if r.data.tags.get("kind") == "final" and r.data.tags.get("model") == "gru4rec")
    assert "recall_at_20" in final.data.metrics and "recall_at_20_std" in final.data.metrics
    seeds = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == final.info.run_id]
    assert sorted(r.data.tags["seed"] for r in seeds) == ["1", "2"] and seeds[0].data.params["device"] == "cpu"
    assert len(client.get_metric_history(seeds[0].info.run_id, "train_loss")) == 1
    artifacts = Path(final.info.artifact_uri.replace("file://", ""))
    assert artifacts.is_relative_to(res / "mlartifacts") and (artifacts / "model.safetensors").exists()
    # the HTML report
    r = snake(["--cores", "1", "--configfile", str(config), "--report", str(tmp_path / "report.html")], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    report = (tmp_path / "report.html").read_text()
    for name in ("comparison.md", "paper_comparison.md", "summary.md", "curves.png", "speed.png", "metrics.png"):
        assert name in report, name  # the tables and plots are in the page


@pytest.mark.slow
def test_interrupted_workflow_continues_its_study(tmp_path):
    """Ctrl-C during tuning (while trial 2 runs, trials 0 and 1 done), then the same command
    again: the study continues where it stopped."""
    config = tiny_config(
        tmp_path,
        tuning={"n_trials": 6},
        mlflow={"tracking_uri": "none"},
        datasets={
            "synthetic": {
                "source": "synthetic",
                "losses": ["cross-entropy"],
                "embeddings": ["shared"],
                "models": ["gru4rec"],
                "options": {"n_sessions": 1500, "n_items": 150, "days": 10},
            }
        },
    )
    study_dir = tmp_path / "results" / "synthetic" / "tuning" / "cross-entropy-shared"
    (tmp_path / "pause").mkdir()
    env = dict(ENV, **{PAUSE_AT: "trial-2", PAUSE_DIR: str(tmp_path / "pause")})
    proc = subprocess.Popen(
        SNAKEMAKE + ["--directory", str(tmp_path), "--cores", "1", "all", "--configfile", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        # Ctrl-C must reach the workflow as it does in a terminal: a test run started in the
        # background by a non-interactive shell (`pytest ... &`) ignores SIGINT, and its children
        # would inherit that and never stop
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    wait_until_reached(tmp_path / "pause" / "trial-2.reached", proc)
    complete = optuna.trial.TrialState.COMPLETE
    before = [
        t
        for t in tuning.load_study("synthetic/cross-entropy-shared", str(study_dir / "study.journal")).trials
        if t.state == complete
    ]
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=300)
    assert [t.number for t in before] == [0, 1]
    assert not (study_dir / "best_params.json").exists()
    r = snake(["--cores", "1", "all", "--configfile", str(config)], tmp_path)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    after = {
        t.number: t
        for t in tuning.load_study("synthetic/cross-entropy-shared", str(study_dir / "study.journal")).trials
    }
    assert all(after[t.number].state == complete and after[t.number].value == t.value for t in before)
    assert after[2].state == optuna.trial.TrialState.FAIL  # the interrupted trial: failed, not counted
    best = json.loads((study_dir / "best_params.json").read_text())
    assert best["n_complete"] + best["n_failed"] == 6 and best["n_interrupted"] == 1
    log = (tmp_path / "results" / "logs" / "tune" / "synthetic" / "cross-entropy-shared.log").read_text()
    assert "study 'synthetic/cross-entropy-shared': 2/6 trials done" in log  # the second run's first line


@pytest.mark.slow
def test_two_results_directories_on_one_mlflow_store_keep_each_others_final_runs(tmp_path):
    """Two people (or two checkouts) with one MLflow store and experiment run the same config, and
    one of them trains its final models again: every directory's last final runs stay FINISHED,
    and only the rerun directory's earlier ones are replaced."""
    from mlflow.tracking import MlflowClient

    from experiments.tracking import workspace_id

    store = tmp_path / "shared" / "mlflow.db"
    config = tiny_config(
        tmp_path,
        tuning={"n_trials": 1},
        final={"seeds": 1},
        mlflow={"tracking_uri": f"sqlite:///{store}"},
        datasets={
            "synthetic": {
                "source": "synthetic",
                "losses": ["cross-entropy"],
                "embeddings": ["none"],
                "models": ["gru4rec", "pop"],
                "options": {"n_sessions": 600, "n_items": 80, "days": 10},
            }
        },
    )
    dirs = {name: tmp_path / name for name in ("alice", "bob")}
    for name in ("alice", "bob", "alice"):
        again = ["--forcerun", "train_final", "train_baseline"] if (dirs[name] / "results").exists() else []
        r = snake(["--cores", "2", "all", "--configfile", str(config), *again], dirs[name])
        assert r.returncode == 0, r.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name("test").experiment_id], max_results=1000)
    final = [r for r in runs if r.data.tags.get("kind") in ("final", "seed")]
    ids = {name: workspace_id(d / "results") for name, d in dirs.items()}
    assert {r.data.tags["workspace"] for r in final} == set(ids.values())
    by = {name: [r for r in final if r.data.tags["workspace"] == ids[name]] for name in dirs}
    # bob's two final runs (GRU4Rec and POP) and their seeds are untouched by alice's rerun
    assert sorted(r.info.status for r in by["bob"]) == ["FINISHED"] * 4
    # alice's first runs were replaced by her rerun: one FINISHED run per output, as in her results
    assert sorted(r.info.status for r in by["alice"]) == ["FINISHED"] * 4 + ["KILLED"] * 4
    for name, d in dirs.items():
        for model in ("cross-entropy-none", "pop"):
            metrics = json.loads((d / "results" / "synthetic" / "final" / model / "metrics.json").read_text())
            logged = [
                r
                for r in by[name]
                if r.info.status == "FINISHED"
                and r.data.tags["kind"] == "final"
                and r.info.run_name.split("/")[1] == model
            ]
            assert len(logged) == 1 and logged[0].data.metrics["recall_at_20"] == pytest.approx(metrics["recall_at_20"])
