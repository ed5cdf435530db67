"""Glue for the workflow's job scripts: output to the job's log and the console, one-line errors;
and the test hook that holds a job at a named point."""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from gru4rec.errors import GRU4RecError

# Test hook: a job reaching the point named in $GRU4REC_TEST_PAUSE_AT (e.g. "trial-2") writes
# $GRU4REC_TEST_PAUSE_DIR/<point>.reached (its pid) and waits there until <point>.go exists. A test
# that kills a job this way knows exactly where the kill lands, on a fast or a loaded machine.
PAUSE_AT, PAUSE_DIR = "GRU4REC_TEST_PAUSE_AT", "GRU4REC_TEST_PAUSE_DIR"
PAUSE_LIMIT_SECONDS = 600


def pause_files(where, name: str) -> tuple[Path, Path]:
    """The files <point>.reached and <point>.go of a pause point in the directory `where` (a '/'
    of the point's name is '~' in the file names)."""
    stem = name.replace("/", "~")
    return Path(where) / f"{stem}.reached", Path(where) / f"{stem}.go"


def pause_point(name: str) -> None:
    """Hold here while a test asks for it (see PAUSE_AT); a no-op otherwise."""
    if os.environ.get(PAUSE_AT) != name:
        return
    reached, go = pause_files(os.environ[PAUSE_DIR], name)
    reached.write_text(f"{os.getpid()}\n")
    deadline = time.monotonic() + PAUSE_LIMIT_SECONDS
    while not go.exists():  # the test kills the job here, or lets it go on
        if time.monotonic() > deadline:
            raise RuntimeError(f"test pause at '{name}': {go} did not appear within {PAUSE_LIMIT_SECONDS} s")
        time.sleep(0.05)


def job_name(log_path) -> str:
    """A job's name for its pause points: its log's path below `logs/`, without the suffix
    (`preprocess/synthetic`, `final/synthetic/bpr-max-shared`, `tables`)."""
    parts = Path(log_path).with_suffix("").parts
    return "/".join(parts[len(parts) - parts[::-1].index("logs") :]) if "logs" in parts else Path(log_path).stem


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for st in self.streams:
            st.write(s)
            st.flush()
        return len(s)

    def flush(self):
        for st in self.streams:
            st.flush()

    def isatty(self):  # a job's output goes to its log too: no progress bars
        return False


@contextmanager
def job(log_path=None):
    """Run a job body: its output goes to the log file and the console; a user's mistake (bad
    config, bad data, diverged training: any GRU4RecError, preprocessing's included) ends it with
    a one-line message and exit code 1."""
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w") if log_path else None
    old = sys.stdout, sys.stderr
    if log:
        sys.stdout, sys.stderr = _Tee(old[0], log), _Tee(old[1], log)
    try:
        yield
        # its outputs are written, Snakemake has not seen the job end: a kill here leaves outputs
        # that Snakemake must treat as incomplete
        if log_path:
            pause_point(f"job-done:{job_name(log_path)}")
    except GRU4RecError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.stdout, sys.stderr = old
        if log:
            log.close()
        sys.exit(1)
    finally:
        sys.stdout, sys.stderr = old
        if log and not log.closed:
            log.close()
