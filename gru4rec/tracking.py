"""MLflow logging for tuning trials and final runs (MLflow is imported only when tracking is on).

The default store is a SQLite file under results/ (no server). SQLite allows one writer at a time,
so every call is retried with back-off when the database is locked: parallel jobs wait, they do
not fail or lose runs. Create the store once before starting parallel jobs (`init_store`); the
workflow does this in its own rule.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


def _retry(fn, *args, attempts=30, **kwargs):
    for k in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # sqlite3/SQLAlchemy 'database is locked' and friends
            text = str(e).lower()
            if k == attempts - 1 or not any(s in text for s in ("locked", "busy", "unique constraint", "already exists")):
                raise
            time.sleep(min(2.0, 0.05 * 2 ** k) * (0.5 + random.random()))


def code_version() -> str:
    from . import __version__
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


class Tracker:
    """A thin, retrying wrapper over MLflow's tracking API; a no-op when uri is None or 'none'."""

    def __init__(self, uri: str | None, experiment: str = "gru4rec"):
        self.enabled = bool(uri) and str(uri).lower() != "none"
        self.uri, self.experiment = uri, experiment
        self._client = None
        self._experiment_id = None
        if self.enabled:
            os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
            import logging
            logging.getLogger("mlflow").setLevel(logging.WARNING)
            logging.getLogger("alembic").setLevel(logging.WARNING)

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def experiment_id(self) -> str:
        if self._experiment_id is None:
            exp = _retry(self.client.get_experiment_by_name, self.experiment)
            if exp is None:
                try:
                    self._experiment_id = _retry(self.client.create_experiment, self.experiment)
                except Exception:  # created by a parallel job in the meantime
                    self._experiment_id = _retry(self.client.get_experiment_by_name, self.experiment).experiment_id
            else:
                self._experiment_id = exp.experiment_id
        return self._experiment_id

    def start(self, name: str, parent: str | None = None, tags: dict | None = None) -> str | None:
        if not self.enabled:
            return None
        tags = dict(tags or {}, **{"code_version": code_version(), "mlflow.runName": name})
        if parent:
            tags["mlflow.parentRunId"] = parent
        run = _retry(self.client.create_run, self.experiment_id(), tags=tags, run_name=name)
        return run.info.run_id

    def params(self, run, params: dict):
        if run:
            from mlflow.entities import Param
            items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
            for i in range(0, len(items), 100):
                _retry(self.client.log_batch, run, params=items[i:i + 100])

    def metrics(self, run, metrics: dict, step: int = 0):
        if run:
            from mlflow.entities import Metric
            now = int(time.time() * 1000)
            items = [Metric(str(k), float(v), now, step) for k, v in metrics.items() if v is not None]
            _retry(self.client.log_batch, run, metrics=items)

    def tags(self, run, tags: dict):
        if run:
            for k, v in tags.items():
                _retry(self.client.set_tag, run, k, str(v))

    def artifact(self, run, path, subdir: str | None = None):
        if run and Path(path).exists():
            _retry(self.client.log_artifact, run, str(path), subdir)

    def artifact_json(self, run, obj, name: str):
        if run:
            with tempfile.TemporaryDirectory() as d:
                p = Path(d) / name
                p.write_text(json.dumps(obj, indent=2, default=str))
                self.artifact(run, p)

    def end(self, run, status: str = "FINISHED"):
        if run:
            _retry(self.client.set_terminated, run, status)

    @contextmanager
    def run(self, name, parent=None, tags=None):
        run_id = self.start(name, parent, tags)
        try:
            yield run_id
        except BaseException:
            self.end(run_id, "FAILED")
            raise
        self.end(run_id)

    def epoch_logger(self, run):
        """A GRU4Rec.fit callback that logs loss and speed per epoch."""
        def log(info):
            self.metrics(run, {"train_loss": info["loss"], "epoch_seconds": info["seconds"],
                               "mb_per_s": info["mb_per_s"], "events_per_s": info["events_per_s"]}, step=info["epoch"])
        return log


def init_store(uri: str | None, experiment: str = "gru4rec") -> str | None:
    """Create the tracking store and the experiment (run once, before parallel jobs)."""
    tracker = Tracker(uri, experiment)
    if not tracker.enabled:
        return None
    if str(uri).startswith("sqlite:///"):
        Path(str(uri)[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return tracker.experiment_id()
