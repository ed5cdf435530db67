"""Log a trained GRU4Rec as an MLflow pyfunc model and register it in the MLflow Model Registry.

The logged model is `mlflow_pyfunc.py` (MLflow runs it to load the model: no pickle), the
safetensors model file as its artifact, and a copy of the gru4rec package (so a registered
model keeps working when the code moves on), with a signature and an input example.

The pipeline's final runs register their models; the model of a final run's directory can also
be registered by hand (name from the path, test metrics from its metrics.json):

    python -m experiments.mlflow_model results/synthetic/final/bpr-max-shared
    MLFLOW_TRACKING_URI=sqlite:///results/mlflow.db \\
        mlflow models serve -m models:/gru4rec-synthetic-bpr-max-shared/1 --env-manager local -p 5001
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import AnyType, Array

import gru4rec
from experiments.tracking import _retry, init_store
from gru4rec.errors import GRU4RecError, ParameterError, first_line

CODE = Path(__file__).with_name("mlflow_pyfunc.py")
ARTIFACT_NAME = "model"  # the name of the MLflow model inside its run
REQUIREMENTS = ("torch", "numpy", "pandas", "safetensors", "mlflow")


def registered_name(dataset: str, loss: str, embedding: str) -> str:
    """The registry name of a final model: one per dataset, loss and embedding mode."""
    return f"gru4rec-{dataset}-{loss}-{embedding}"


def signature(item_ids):
    """Input: a session per row (`items`), optional `k` and `exclude_seen`; output: top-k per row."""
    ids = DataType.long if item_ids.dtype.kind in "iu" else DataType.string
    # k and exclude_seen are untyped so that rows may leave them out and k may come as an int or a
    # float: MLflow turns a missing value into an error in a long column, into True in a boolean
    # one, and refuses ints for a double column; predict() checks both values itself
    inputs = Schema(
        [
            ColSpec(Array(ids), "items"),
            ColSpec(AnyType(), "k", required=False),
            ColSpec(AnyType(), "exclude_seen", required=False),
        ]
    )
    outputs = Schema(
        [ColSpec(Array(ids), "items"), ColSpec(Array(DataType.double), "scores"), ColSpec(DataType.long, "n_unknown")]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example(item_ids):
    """Two short sessions made of the model's own items."""
    ids = [x.item() if hasattr(x, "item") else x for x in item_ids[:3]]
    return pd.DataFrame({"items": [ids, ids[:1]], "k": [5, 3], "exclude_seen": [False, True]})


def log_model(model_file, registered_model_name: str | None = None, device: str = "cpu"):
    """Log the model file as a pyfunc model under the active MLflow run (and register it when a
    name is given); returns MLflow's ModelInfo."""
    model = gru4rec.GRU4Rec.load(model_file, device="cpu")  # for the item ids of the signature
    with _package_copy() as code:
        return mlflow.pyfunc.log_model(
            name=ARTIFACT_NAME,
            python_model=str(CODE),
            artifacts={"model": str(model_file)},
            code_paths=[code],
            signature=signature(model.item_ids),
            input_example=input_example(model.item_ids),
            pip_requirements=[f"{p}=={importlib.metadata.version(p)}" for p in REQUIREMENTS],
            model_config={"device": device},
            registered_model_name=registered_model_name,
        )


def log_and_register(
    model_file, name: str, metrics: dict | None = None, run_id: str | None = None, tracking_uri: str | None = None
):
    """Log `model_file` as an MLflow model, register it as a new version of `name`, and put the
    test metrics on the run (and as tags on the version). Uses the active MLflow run, or the run
    `run_id` (e.g. a Tracker's run); `tracking_uri`, if given, becomes MLflow's tracking (and
    registry) URI for the process. Returns the registered ModelVersion."""
    if not Path(model_file).is_file():
        raise ParameterError(f"{model_file}: model file not found")
    values = {
        k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    with _active_run(run_id) as run:
        logged = _retry(mlflow.MlflowClient().get_run, run).data.metrics
        new = {k: v for k, v in values.items() if logged.get(k) != v}  # a Tracker may have logged them
        if new:
            _retry(mlflow.log_metrics, new, run_id=run)
        info = _retry(log_model, model_file, registered_model_name=name)
        version = info.registered_model_version
        client = mlflow.MlflowClient()
        for k, v in values.items():
            _retry(client.set_model_version_tag, name, str(version), k, f"{v:.6g}")
        return _retry(client.get_model_version, name, str(version))


@contextmanager
def _active_run(run_id):
    """The active run's id, or `run_id` resumed for the block and left in the state it was found
    (MLflow's start_run marks a resumed run RUNNING and ends it FINISHED)."""
    active = mlflow.active_run()
    if active is not None:
        if run_id not in (None, active.info.run_id):
            raise ParameterError(f"log_and_register: run_id {run_id} is not the active MLflow run {active.info.run_id}")
        yield active.info.run_id
        return
    if run_id is None:
        raise ParameterError("log_and_register needs an active MLflow run or a run_id")
    status = mlflow.MlflowClient().get_run(run_id).info.status
    with mlflow.start_run(run_id=run_id):
        yield run_id
    mlflow.MlflowClient().update_run(run_id, status=status)


@contextmanager
def _package_copy():
    """A copy of the gru4rec package without bytecode caches, for the model's code."""
    with tempfile.TemporaryDirectory() as d:
        target = Path(d) / "gru4rec"
        shutil.copytree(Path(gru4rec.__file__).parent, target, ignore=shutil.ignore_patterns("__pycache__"))
        yield str(target)


def main(argv=None) -> int:
    """Register the model of a final run's directory (results/DATASET/final/LOSS-EMBEDDING)."""
    ap = argparse.ArgumentParser(prog="python -m experiments.mlflow_model", description=main.__doc__)
    ap.add_argument("final_dir", type=Path, help="directory with model.safetensors and metrics.json")
    ap.add_argument("--name", help="registered model name (default: gru4rec-DATASET-LOSS-EMBEDDING from the path)")
    ap.add_argument("--tracking-uri", default="sqlite:///results/mlflow.db")
    ap.add_argument("--experiment", default="gru4rec-demo")
    args = ap.parse_args(argv)
    d = args.final_dir
    try:
        if not (d / "model.safetensors").is_file():
            raise ParameterError(f"{d}: no model.safetensors in this directory (expected a final run's directory)")
        if args.name is None and (len(d.resolve().parts) < 3 or "-" not in d.name):
            raise ParameterError(
                f"{d}: cannot derive the model name from the path "
                f"(expected .../DATASET/final/LOSS-EMBEDDING); give --name"
            )
        name = args.name or registered_name(d.resolve().parts[-3], *d.name.rsplit("-", 1))
        metrics = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").is_file() else {}
        init_store(args.tracking_uri, args.experiment)  # artifacts beside the database, as the pipeline's
        mlflow.set_tracking_uri(args.tracking_uri)
        mlflow.set_experiment(args.experiment)
        with mlflow.start_run(run_name=f"register {name}"):
            version = log_and_register(d / "model.safetensors", name, metrics)
    except (GRU4RecError, OSError, ValueError) as e:
        print(f"error: {first_line(e)}", file=sys.stderr)
        return 1
    print(f"registered {name} version {version.version} (tracking URI {args.tracking_uri})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
