"""Real servers for the multi-machine tests: a throwaway PostgreSQL cluster and an MLflow tracking
server, each started on 127.0.0.1 at a free port and stopped when the test ends.

Nothing here mocks a server: the tests run the same software a user runs on a cluster. Where the
PostgreSQL binaries are missing, `postgres_server` skips with the command that installs them
(`.ci/run` installs them, so in CI it runs)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

PG_INSTALL_HINT = "install PostgreSQL's server binaries: apt-get install -y postgresql (Debian/Ubuntu)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    """Poll check() until it returns true; fail with the server's log if it does not within timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s\n{tail}")


# ------------------------------------------------------------------------------------------- PostgreSQL
def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / name).exists():
            return str(d / name)
    return None


def _as_postgres_user(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; CI and these machines run tests as root
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


class PostgresServer:
    """A running throwaway cluster on 127.0.0.1; `database(name)` creates an empty database and
    returns its SQLAlchemy URL (one per test keeps the tests independent)."""

    def __init__(self, port: int):
        self.port = port

    def database(self, name: str) -> str:
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        try:
            con.autocommit = True
            con.cursor().execute(f'CREATE DATABASE "{name}"')
        finally:
            con.close()
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{name}"


def _run(cmd: list[str]):
    r = subprocess.run(_as_postgres_user(cmd), capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit code {r.returncode}):\n{r.stdout}{r.stderr}")


@contextlib.contextmanager
def postgres_server():
    """Start a throwaway cluster (initdb + pg_ctl in a temporary directory, trust authentication,
    no fsync); yield a PostgresServer. Skips, saying how to install them, where the binaries or
    the driver are missing."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip(f"PostgreSQL server binaries not found: {PG_INSTALL_HINT}")
    pytest.importorskip("psycopg2", reason="the PostgreSQL driver is missing: pip install psycopg2-binary")
    root = Path(tempfile.mkdtemp(prefix="pgtest-"))
    if os.geteuid() == 0:  # the cluster's files belong to the user that runs the server
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
    data, log, port = root / "data", root / "server.log", free_port()
    try:
        _run([initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"])
        options = f"-h 127.0.0.1 -p {port} -k {root} -F"  # TCP on localhost only, socket in the temp dir
        _run([pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "120", "start", "-o", options])
        yield PostgresServer(port)
    finally:
        subprocess.run(_as_postgres_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------------------------- MLflow
class MLflowServer:
    """`mlflow server` with a SQLite backend and a local artifact root; restartable on the same port."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = self.root / "mlflow-server.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120):
        self.root.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend-store-uri",
            f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.root / "artifacts"),
            "--workers",
            "1",
        ]
        self.proc = subprocess.Popen(cmd, stdout=self.log.open("a"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(
            lambda: urllib.request.urlopen(f"{self.uri}/health", timeout=2).status == 200,
            timeout,
            "mlflow server",
            self.proc,
            self.log,
        )
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()


@contextlib.contextmanager
def mlflow_server(root: Path):
    server = MLflowServer(root)
    try:
        yield server.start()
    finally:
        server.stop()
