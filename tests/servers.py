"""Real servers for the multi-machine tests: a throwaway PostgreSQL cluster and an MLflow tracking
server, each started on 127.0.0.1 at a free port and stopped when the test ends.

Nothing here mocks a server: the tests run the same software a user runs on a cluster. Where the
PostgreSQL binaries are missing, `postgres_server` skips with the command that installs them
(`.ci/run` installs them, so in CI it runs)."""

from __future__ import annotations

import contextlib
import fcntl
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

from experiments.processes import process_alive

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


# ------------------------------------------------------------------------------------------- SLURM
SLURM_INSTALL_HINT = (
    "install a single-node SLURM: apt-get install -y slurm-wlm (Debian/Ubuntu), "
    "and pip install snakemake-executor-plugin-slurm"
)
SLURM_CONF_PATH = Path("/etc/slurm/slurm.conf")
SLURM_CONF_MARK = "# a one-node test cluster of the gru4rec tests (tests/servers.py); removed after the test"
SLURM_CONF = (
    SLURM_CONF_MARK
    + """
ClusterName=gru4rec-test
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmdSpoolDir={root}/spool
StateSaveLocation={root}/state
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
# squeue must still know a job when Snakemake asks for its state (no accounting database here)
MinJobAge=600
# the profile asks for more cores and memory than this machine has: take the node as declared
SlurmdParameters=config_overrides
NodeName=localhost CPUs=8 RealMemory=256000 State=UNKNOWN
# the partitions that profiles/slurm names
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
"""
)


def _munge_works() -> bool:
    munge, unmunge = shutil.which("munge"), shutil.which("unmunge")
    if not (munge and unmunge):
        return False
    cred = subprocess.run([munge, "-n"], capture_output=True)
    return cred.returncode == 0 and subprocess.run([unmunge], input=cred.stdout, capture_output=True).returncode == 0


def _start_munge() -> int | None:
    """SLURM authenticates with MUNGE: start its daemon (as Debian's package sets it up) unless it
    is running; returns its pid when this started it."""
    if _munge_works():
        return None
    Path("/run/munge").mkdir(parents=True, exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", shutil.which("munged") or "/usr/sbin/munged"], check=True)
    wait_until(_munge_works, 30, "munged")
    return int(Path("/run/munge/munged.pid").read_text())


def _stop(pidfile: Path):
    """A daemon that `scontrol shutdown` did not end within 30 s is killed (by its recorded pid)."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(pidfile.read_text())
        with contextlib.suppress(RuntimeError):
            wait_until(lambda: not process_alive(pid), 30, "daemon exit")
        if process_alive(pid):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def slurm_cluster():
    """A one-node SLURM cluster (slurmctld + slurmd on this machine, free ports, state in a temporary
    directory). Needs root, as CI has. Its config must be the default /etc/slurm/slurm.conf: inside a
    job, Snakemake's SLURM plugin drops every SLURM_* variable, SLURM_CONF included, before it calls
    srun; so the test skips where a real cluster's config is there already."""
    daemons = [shutil.which(d) or f"/usr/sbin/{d}" for d in ("slurmctld", "slurmd", "munged")]
    if not all(Path(d).exists() for d in daemons) or not shutil.which("sbatch"):
        pytest.skip(f"SLURM not found: {SLURM_INSTALL_HINT}")
    pytest.importorskip("snakemake_executor_plugin_slurm", reason=SLURM_INSTALL_HINT)
    if os.geteuid() != 0:
        pytest.skip("starting slurmctld and slurmd needs root (as in CI)")
    # one test cluster at a time on a machine (two test runs side by side): its config is the
    # machine's, which the other's would overwrite and, when it ends, remove
    with open(Path(tempfile.gettempdir()) / "gru4rec-test-slurm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with _slurm_daemons(daemons) as env:
            yield env


@contextlib.contextmanager
def _slurm_daemons(daemons):
    conf = SLURM_CONF_PATH
    if conf.exists() and SLURM_CONF_MARK not in conf.read_text():
        pytest.skip(f"{conf} exists: this machine has a SLURM cluster of its own, which the test leaves alone")
    munged = _start_munge()
    root = Path(tempfile.mkdtemp(prefix="slurmtest-"))
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(SLURM_CONF.format(root=root, ctld_port=free_port(), d_port=free_port()))
    env = dict(os.environ, SLURM_CONF=str(conf))
    try:
        subprocess.run([daemons[0], "-f", str(conf)], check=True, env=env)
        subprocess.run([daemons[1], "-f", str(conf)], check=True, env=env)
        up = lambda: " idle" in subprocess.run(["sinfo", "-h"], capture_output=True, text=True, env=env).stdout  # noqa: E731
        wait_until(up, 60, "slurmd", log=root / "slurmctld.log")
        yield env
    finally:
        subprocess.run(["scontrol", "shutdown"], env=env, capture_output=True)
        for pidfile in ("slurmctld.pid", "slurmd.pid"):
            _stop(root / pidfile)
        shutil.rmtree(root, ignore_errors=True)
        conf.unlink(missing_ok=True)
        if munged:
            os.kill(munged, signal.SIGTERM)
