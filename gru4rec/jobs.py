"""Helpers for the workflow's job scripts: output to the job's log and the console, one-line errors."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path


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
    config, bad data, diverged training) ends it with a one-line message and exit code 1."""
    from .errors import GRU4RecError
    try:
        from preprocessing.errors import PreprocessingError
    except ImportError:  # pragma: no cover
        PreprocessingError = GRU4RecError
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w") if log_path else None
    old = sys.stdout, sys.stderr
    if log:
        sys.stdout, sys.stderr = _Tee(old[0], log), _Tee(old[1], log)
    try:
        yield
    except (GRU4RecError, PreprocessingError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.stdout, sys.stderr = old
        if log:
            log.close()
        sys.exit(1)
    finally:
        sys.stdout, sys.stderr = old
        if log and not log.closed:
            log.close()
