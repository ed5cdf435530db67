"""MLflow logging for tuning trials and final runs.

Why SQLite for the default local store: MLflow 3 puts its file store (`./mlruns`) in maintenance
mode (it warns on every use) and makes `sqlite:///mlflow.db` its own default, and a database can
be searched by the UI quickly. SQLite takes one writer at a time, so every call here is retried
with back-off while the database is locked: parallel jobs wait, they neither fail nor lose runs.
Create the store once before starting parallel jobs (`init_store`: it runs MLflow's schema
migrations, which must not race); the workflow does this in its own rule. Artifacts of a SQLite
store go to `mlartifacts/` beside the database (MLflow's default would be `./mlruns` in whatever
directory the job happens to run in).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import gru4rec
from gru4rec.errors import GRU4RecError, first_line

from .jobs import pause_point

# a run's metrics are in the store when the call returns (MLflow reads this when logging)
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

_TRANSIENT = (
    "locked",
    "busy",
    "unable to open database",
    "connection reset",
    "temporarily unavailable",
    "timed out",
    "timeout",
    # a tracking server that is restarting or briefly unreachable (requests' / urllib3's words)
    "connection refused",
    "max retries exceeded",
    "failed to establish a new connection",
    "connection aborted",
    "remote end closed connection",
    "bad gateway",
    "service unavailable",
)


def _retry(fn, *args, attempts: int = 40, **kwargs):
    """Call fn, retrying with jittered back-off on a locked / busy store or an unreachable server
    (up to ~1 minute on top of MLflow's own HTTP retries); any other error is raised at once."""
    for k in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # sqlite3 / SQLAlchemy OperationalError, requests' errors, ...
            if k == attempts - 1 or not any(s in str(e).lower() for s in _TRANSIENT):
                raise
            time.sleep(min(2.0, 0.05 * 2**k) * (0.5 + random.random()))


def _oldest_first(runs) -> list:
    """Runs by start, ties by id: every reader orders the same runs alike."""
    return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Package version + git commit (+ '-dirty' when tracked files differ from it)."""
    return version_at(Path(__file__).resolve().parent)


def version_at(here: Path) -> str:
    """code_version() of the git work tree at `here`. Git only reads (--no-optional-locks: a plain
    `git status` rewrites the index under .git/index.lock, which a job killed meanwhile would leave
    behind, and every later git command in the clone would then refuse to run)."""

    def git(*args):
        return subprocess.run(
            ["git", "--no-optional-locks", *args], capture_output=True, text=True, timeout=10, cwd=here
        ).stdout.strip()

    try:
        sha = git("rev-parse", "--short", "HEAD")
        dirty = bool(sha) and bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        sha, dirty = "", False
    version = gru4rec.__version__
    return f"{version}+{sha}{'-dirty' if dirty else ''}" if sha else version


def enabled(uri) -> bool:
    return bool(uri) and str(uri).lower() != "none"


def default_artifact_location(uri: str | None) -> str | None:
    """`mlartifacts/` beside a SQLite database; None (the server decides) otherwise."""
    if uri and str(uri).startswith("sqlite:///"):
        return (Path(str(uri)[len("sqlite:///") :]).resolve().parent / "mlartifacts").as_uri()
    return None


def _quiet():
    """MLflow's and alembic's INFO lines (store migrations, run URLs) would drown the progress."""
    for name in ("mlflow", "alembic", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)


_quiet()  # after the import: importing mlflow sets its loggers to INFO


WORKSPACE_FILE = ".mlflow_workspace"


def workspace_id(results_dir) -> str:
    """The results directory's identity in MLflow: a random id, written once into
    `<results_dir>/.mlflow_workspace` by whichever job comes first (a hard link never replaces a
    file: parallel first writers agree) and read by every later one. Two results directories that
    share a tracking store and an experiment (two people on one server, two checkouts) so keep
    their final runs apart, whereas a directory shared by several machines is one workspace."""
    path = Path(results_dir) / WORKSPACE_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_text(uuid.uuid4().hex + "\n")
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links (vfat, SMB, some FUSE): created exclusively
                try:
                    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    pass
                else:
                    with os.fdopen(fd, "w") as f:
                        f.write(tmp.read_text())
        finally:
            tmp.unlink(missing_ok=True)
    for _ in range(50):  # an exclusively created file is empty until its writer has written it
        if value := path.read_text().strip():
            break
        time.sleep(0.02)
    if len(value) != 32 or any(c not in "0123456789abcdef" for c in value):
        raise GRU4RecError(
            f"{path}: expected the 32 hex digits of a workspace id, got {value[:40]!r} (delete it to make a new one)"
        )
    return value


class Tracker:
    """A thin, retrying wrapper over MLflow's client API; every method is a no-op when the
    tracking URI is None / 'none' (and for run None), so callers need no `if tracking:`.
    `workspace` (see workspace_id) scopes the runs that `run` replaces to one results directory."""

    def __init__(
        self,
        uri: str | None,
        experiment: str = "gru4rec",
        artifact_location: str | None = None,
        workspace: str | None = None,
    ):
        self.enabled = enabled(uri)
        self.uri, self.experiment, self.workspace = uri, experiment, workspace
        self.artifact_location = artifact_location or default_artifact_location(uri)
        self._client = None
        self._experiment_id = None

    def __getstate__(self):  # the client holds a database engine: not for other processes
        return dict(self.__dict__, _client=None)

    @property
    def client(self):
        if self._client is None:
            _quiet()  # the store's first connection (alembic) may have reset them
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def experiment_id(self) -> str:
        if self._experiment_id is None:
            exp = _retry(self.client.get_experiment_by_name, self.experiment)
            if exp is None:
                try:
                    self._experiment_id = _retry(
                        self.client.create_experiment, self.experiment, artifact_location=self.artifact_location
                    )
                except Exception:  # created by a parallel job in the meantime
                    exp = _retry(self.client.get_experiment_by_name, self.experiment)
                    if exp is None:
                        raise
                    self._experiment_id = exp.experiment_id
            else:
                self._experiment_id = exp.experiment_id
        return self._experiment_id

    def start(
        self, name: str, parent: str | None = None, tags: dict | None = None, start_time: int | None = None
    ) -> str | None:
        """Create a run (nested under `parent`; started at `start_time`, ms since the epoch, or now);
        returns its id."""
        if not self.enabled:
            return None
        token = uuid.uuid4().hex
        tags = {str(k): str(v) for k, v in dict(tags or {}, code_version=code_version(), create_token=token).items()}
        if parent:
            tags["mlflow.parentRunId"] = parent
        tries = 0

        def create():
            nonlocal tries
            tries += 1
            if tries > 1:  # the lost answer may have followed the run's creation: not a second run
                found = self.client.search_runs([self.experiment_id()], f"tags.create_token = '{token}'", max_results=1)
                if found:
                    return found[0]
            return self.client.create_run(self.experiment_id(), start_time=start_time, tags=tags, run_name=name)

        run = _retry(create)
        if tries > 1 or str(self.uri).startswith(("http://", "https://")):
            # MLflow's HTTP client repeats a request whose answer was lost (a timeout, a 5xx): the
            # server may have created the run twice; the first is kept, the other ends and goes
            try:
                twins = self._search(f"tags.create_token = '{token}'")
                if len(twins) > 1:
                    keep, *extra = _oldest_first(twins)
                    for twin in extra:
                        self.delete(twin.info.run_id, running=True)
                    run = keep
            except Exception as e:  # tidying only: the run exists, the job goes on
                print(
                    f"warning: could not check run {run.info.run_id} for a duplicate: {first_line(e)}", file=sys.stderr
                )
        pause_point(f"run-started:{name}")  # tests kill a job here, with its run RUNNING
        return run.info.run_id

    def exists(self, run_id: str) -> bool:
        if not self.enabled or not run_id:
            return False
        try:
            run = _retry(self.client.get_run, run_id)
        except Exception:  # unknown run id (e.g. a study moved to another tracking store)
            return False
        return run.info.lifecycle_stage == "active"

    def _search(self, condition: str, parent: str | None = None) -> list:
        """The experiment's runs that meet the filter `condition` (nested under `parent` if given),
        every page of them."""
        nested = f" and tags.mlflow.parentRunId = '{parent}'" if parent else ""
        runs, token = [], None
        while True:
            page = _retry(
                self.client.search_runs, [self.experiment_id()], filter_string=condition + nested, page_token=token
            )
            runs += page
            token = page.token
            if not token:
                return runs

    def tagged(self, key: str, value: str) -> list:
        """The experiment's runs tagged `key` = `value` (a word: letters, digits, '-'), oldest first."""
        if not self.enabled:
            return []
        return _oldest_first(self._search(f"tags.{key} = '{value}'"))

    def children(self, parent: str) -> list:
        """The runs nested under the run `parent`, whatever their status."""
        return self._search("attributes.status != 'SCHEDULED'", parent) if self.enabled else []

    def run_key(self, name: str) -> str:
        """The tag that identifies the runs of one job: its name within this tracker's workspace
        (a digest: a filter needs no quoting, whatever the name holds)."""
        return hashlib.sha256(f"{self.workspace or ''}\n{name}".encode()).hexdigest()[:32]

    def end_stale(self, name: str) -> int:
        """Mark KILLED the earlier runs of the job `name` in this workspace (same run_key) that starts
        again: those a killed job left RUNNING, and those that finished in a job killed before
        Snakemake recorded its outputs (Snakemake discarded them and runs the job again; tagged
        `superseded`). So the store holds one finished run per output, as the results directory does.
        Failed runs stay as they are; runs of another workspace (another key) are never touched."""
        if not self.enabled:
            return 0
        stale = self._search(f"tags.run_key = '{self.run_key(name)}' and attributes.status != 'FAILED'")
        for run in stale:
            if run.info.status == "FINISHED" and run.data.tags.get("superseded") != "true":
                _retry(self.client.set_tag, run.info.run_id, "superseded", "true")
            if run.info.status in ("RUNNING", "FINISHED"):
                self.end(run.info.run_id, "KILLED")
        return len(stale)

    def log(self, run, params: dict | None = None, metrics=(), tags: dict | None = None):
        """One run's parameters, metrics ((name, value, step) triples) and tags, in as few batches as
        MLflow takes (100 parameters, 100 tags, 1000 items per batch)."""
        if not run:
            return
        now = int(time.time() * 1000)
        items = [Param(str(k), str(v)[:6000]) for k, v in (params or {}).items()]
        marks = [RunTag(str(k), str(v)) for k, v in (tags or {}).items()]
        values = [Metric(str(k), float(v), now, int(step)) for k, v, step in metrics]
        while items or marks or values:
            p, items = items[:100], items[100:]
            t, marks = marks[:100], marks[100:]
            m, values = values[: 1000 - len(p) - len(t)], values[1000 - len(p) - len(t) :]
            _retry(self.client.log_batch, run, metrics=m, params=p, tags=t)

    def params(self, run, params: dict):
        if run:
            items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
            for i in range(0, len(items), 100):
                _retry(self.client.log_batch, run, params=items[i : i + 100])

    def metrics(self, run, metrics: dict, step: int = 0):
        if run:
            now = int(time.time() * 1000)
            items = [
                Metric(str(k), float(v), now, step)
                for k, v in metrics.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            ]
            if items:
                _retry(self.client.log_batch, run, metrics=items)

    def tags(self, run, tags: dict):
        if run:
            _retry(self.client.log_batch, run, tags=[RunTag(str(k), str(v)) for k, v in tags.items()])

    def artifact(self, run, path, subdir: str | None = None):
        if run and path and Path(path).exists():
            _retry(self.client.log_artifact, run, str(path), subdir)

    def artifact_json(self, run, obj, name: str):
        if run:
            with tempfile.TemporaryDirectory() as d:
                p = Path(d) / name
                p.write_text(json.dumps(obj, indent=2, default=str))
                self.artifact(run, p)

    def dataset_stats(self, run, stats_path):
        """The preprocessing statistics (stats.tsv: one row per split) as `data.<split>.<stat>`
        parameters, and the file itself as an artifact."""
        if not run or not stats_path or not Path(stats_path).exists():
            return
        self.params(run, stats_params(stats_path))
        self.artifact(run, stats_path, "data")

    def end(self, run, status: str = "FINISHED", end_time: int | None = None):
        if run:
            _retry(self.client.set_terminated, run, status, end_time)

    def delete(self, run_id: str, running: bool = False) -> None:
        """Delete a run (if another job has not already); a `running` one ends KILLED first, so that
        none stays RUNNING among the deleted runs."""
        try:
            if running:
                self.end(run_id, "KILLED")
            _retry(self.client.delete_run, run_id)
        except MlflowException:
            if self.exists(run_id):
                raise

    @contextmanager
    def run(self, name, parent=None, tags=None):
        """A run that ends FINISHED, or FAILED when the body raises; earlier runs of the same name
        in this workspace that a killed job left behind are marked KILLED first (end_stale)."""
        self.end_stale(name)
        keys = {"run_key": self.run_key(name)} | ({"workspace": self.workspace} if self.workspace else {})
        run_id = self.start(name, parent, dict(tags or {}, **keys))
        try:
            yield run_id
        except BaseException:
            self.end(run_id, "FAILED")
            raise
        self.end(run_id)

    def epoch_logger(self, run):
        """A GRU4Rec.fit callback that logs the loss and speed of every epoch (step = epoch)."""

        def log(info):
            self.metrics(
                run,
                {
                    "train_loss": info["loss"],
                    "epoch_seconds": info["seconds"],
                    "mb_per_s": info["mb_per_s"],
                    "events_per_s": info["events_per_s"],
                },
                step=info["epoch"],
            )

        return log


def stats_params(stats_path) -> dict:
    """The preprocessing statistics (stats.tsv: one row per split) as `data.<split>.<stat>`."""
    if not stats_path or not Path(stats_path).exists():
        return {}
    stats = pd.read_csv(stats_path, sep="\t", index_col=0)
    cols = [c for c in ("events", "sessions", "items") if c in stats.columns]
    return {f"data.{split}.{col}": stats.loc[split, col] for split in stats.index for col in cols}


def init_store(uri: str | None, experiment: str = "gru4rec", artifact_location: str | None = None) -> str | None:
    """Create the tracking store and the experiment (run once, before parallel jobs start)."""
    if not enabled(uri):
        return None
    if str(uri).startswith("sqlite:///"):
        Path(str(uri)[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    return Tracker(uri, experiment, artifact_location).experiment_id()
