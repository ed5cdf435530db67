"""A final model as an MLflow model: logged and registered in a real (SQLite) store, loaded with
mlflow.pyfunc, and served by the real `mlflow models serve`; every answer equals recommend()."""

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from experiments.mlflow_model import log_and_register, main, registered_name
from experiments.tracking import Tracker
from gru4rec import GRU4Rec, recommend
from tests.gru4rec.test_streaming import assert_same_ranking
from tests.servers import free_port, wait_until

NAME = registered_name("markov", "cross-entropy", "shared")
METRICS = {"recall_at_20": 0.61, "mrr_at_20": 0.25, "n_sessions": 450, "device": "cpu"}
SERVER_START_TIMEOUT = 180  # seconds for `mlflow models serve` to answer /ping (imports torch and MLflow)


@pytest.fixture(scope="module")
def trained(markov_data, tmp_path_factory):
    train, _ = markov_data
    model = GRU4Rec(layers=[16], n_epochs=1, batch_size=16, n_sample=32, device="cpu", seed=3)
    model.fit(train.iloc[:3000], verbose=False)
    d = tmp_path_factory.mktemp("serving")
    model.save(d / "model.safetensors")
    return model, d


@pytest.fixture(scope="module")
def registered(trained):
    """The model logged and registered from a Tracker's run, as the pipeline's final run does."""
    _, d = trained
    uri = f"sqlite:///{d}/mlflow.db"
    tracker = Tracker(uri, "serving-test")
    with tracker.run("final") as run:
        tracker.metrics(run, {"recall_at_20": METRICS["recall_at_20"]})  # the pipeline logs its metrics first
        version = log_and_register(d / "model.safetensors", NAME, METRICS, run_id=run, tracking_uri=uri)
        status_during = mlflow.MlflowClient(uri).get_run(run).info.status
    return dict(uri=uri, run=run, version=version, status_during=status_during, dir=d)


def test_register_a_final_run_directory_from_the_command_line(trained, tmp_path, capsys):
    _, d = trained
    final = tmp_path / "results" / "shop" / "final" / "bpr-max-separate"
    final.mkdir(parents=True)
    (final / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes())
    (final / "metrics.json").write_text(json.dumps({"recall_at_20": 0.5, "params": {"loss": "bpr-max"}}))
    uri = f"sqlite:///{tmp_path}/results/mlflow.db"
    assert main([str(final), "--tracking-uri", uri]) == 0
    assert "registered gru4rec-shop-bpr-max-separate version 1" in capsys.readouterr().out
    version = mlflow.MlflowClient(uri).get_model_version("gru4rec-shop-bpr-max-separate", "1")
    assert version.tags["recall_at_20"] == "0.5"
    assert (tmp_path / "results" / "mlartifacts").is_dir()  # beside the database, as the pipeline's store
    assert main([str(tmp_path), "--tracking-uri", uri]) == 1
    assert (
        capsys.readouterr().err == f"error: {tmp_path}: no model.safetensors in this directory "
        f"(expected a final run's directory)\n"
    )


def sessions_of(model, rng, n=12):
    """Random sessions of known items, with a few unknown ids mixed in."""
    out = [[int(x) for x in rng.choice(model.item_ids, int(rng.integers(1, 7)))] for _ in range(n)]
    out[1].insert(1, 10**9)
    return out


def test_registered_with_metrics_signature_and_no_pickle(registered):
    client = mlflow.MlflowClient(registered["uri"])
    version = registered["version"]
    assert version.name == NAME == "gru4rec-markov-cross-entropy-shared" and version.status == "READY"
    assert version.run_id == registered["run"]
    assert version.tags["recall_at_20"] == "0.61"
    run = client.get_run(registered["run"])
    assert run.data.metrics["mrr_at_20"] == 0.25 and "device" not in run.data.metrics
    assert [m.value for m in client.get_metric_history(run.info.run_id, "recall_at_20")] == [0.61]  # not twice
    # the run was left running for the pipeline to end it, and ended normally
    assert registered["status_during"] == "RUNNING" and run.info.status == "FINISHED"
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/{version.version}"))
    files = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    assert "artifacts/model.safetensors" in files and "code/gru4rec/streaming.py" in files
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))], files
    info = mlflow.models.get_model_info(f"models:/{NAME}/{version.version}")
    assert [c["name"] for c in info.signature.inputs.to_dict()] == ["items", "k", "exclude_seen"]
    assert [c["name"] for c in info.signature.outputs.to_dict()] == ["items", "scores", "n_unknown"]
    assert info.saved_input_example_info is not None


def test_loaded_model_predicts_like_recommend(trained, registered):
    model, _ = trained
    mlflow.set_tracking_uri(registered["uri"])
    pm = mlflow.pyfunc.load_model(f"models:/{NAME}/{registered['version'].version}")
    sessions = sessions_of(model, np.random.default_rng(0)) + [[10**9]]
    out = pm.predict(pd.DataFrame({"items": sessions, "k": [5.0] * len(sessions)}))
    expected, _ = recommend(model, sessions, k=5)
    for items, scores, exp in zip(out["items"], out["scores"], expected):
        assert_same_ranking(items, scores, exp)
    assert out["n_unknown"].tolist() == [0, 1] + [0] * (len(sessions) - 3) + [1]
    assert out["items"].iloc[-1] == []  # a session without a known item gets no recommendations
    # exclude_seen and k per row; rows that leave them out get the defaults (20, false)
    seen = sessions[0]
    out = pm.predict(pd.DataFrame({"items": [seen, seen], "k": [3, None], "exclude_seen": [True, None]}))
    full = recommend(model, [seen], k=model.n_items)[0][0]
    assert_same_ranking(out["items"][0], out["scores"][0], [(i, s) for i, s in full if i not in seen][:3])
    assert_same_ranking(out["items"][1], out["scores"][1], full[:20])


@pytest.mark.parametrize(
    "frame, message",
    [
        (pd.DataFrame({"items": [[1]], "k": [0]}), "column 'k', row 0: expected a positive integer, got 0"),
        (pd.DataFrame({"items": [[1], [2]], "k": [1, 2.5]}), "column 'k', row 1: expected a positive integer, got 2.5"),
        (
            pd.DataFrame({"items": [[1]], "exclude_seen": ["yes"]}),
            "column 'exclude_seen', row 0: expected true or false",
        ),
        (pd.DataFrame({"sessions": [[1]]}), "Model is missing inputs ['items']"),  # MLflow checks the signature
    ],
)
def test_bad_input_is_a_parameter_error(registered, frame, message):
    mlflow.set_tracking_uri(registered["uri"])
    pm = mlflow.pyfunc.load_model(f"models:/{NAME}/{registered['version'].version}")
    with pytest.raises(MlflowException, match=re.escape(message)) as e:
        pm.predict(frame)
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"


def post(url, body: bytes):
    """(status, parsed JSON body) of a POST, for error statuses too."""
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def answers_ping(url) -> bool:
    with urllib.request.urlopen(f"{url}/ping", timeout=2) as r:
        return r.status == 200


@pytest.fixture
def server(registered):
    """`mlflow models serve` of the registered version on 127.0.0.1, from an empty directory and
    without PYTHONPATH: the model must bring its own code."""
    port, d = free_port(), registered["dir"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(MLFLOW_TRACKING_URI=registered["uri"], DO_NOT_TRACK="true")
    cwd = d / "serve"
    cwd.mkdir(exist_ok=True)
    log = d / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "models",
                "serve",
                "-m",
                f"models:/{NAME}/{registered['version'].version}",
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                "1",
            ],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers_ping(url), SERVER_START_TIMEOUT, "mlflow models serve", proc, log)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its worker: the group this test started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
def test_served_model_answers_like_recommend_and_survives_a_bad_request(trained, server):
    model, _ = trained
    sessions = sessions_of(model, np.random.default_rng(1))
    body = {"dataframe_records": [{"items": s, "k": 10} for s in sessions]}
    status, answer = post(f"{server}/invocations", json.dumps(body).encode())
    assert status == 200, answer
    expected, _ = recommend(model, sessions, k=10)
    for row, exp in zip(answer["predictions"], expected):
        assert_same_ranking(row["items"], row["scores"], exp)
    assert [row["n_unknown"] for row in answer["predictions"]] == [0, 1] + [0] * (len(sessions) - 2)

    for bad in (b'{"dataframe_records": [{"items": [1, 2]', b'{"dataframe_records": [{"items": [1], "k": 0}]}'):
        status, error = post(f"{server}/invocations", bad)
        assert 400 <= status < 500 and error["message"], (status, error)
    assert "column 'k', row 0: expected a positive integer" in error["message"]

    status, again = post(f"{server}/invocations", json.dumps(body).encode())  # still serving
    assert status == 200 and again == answer
