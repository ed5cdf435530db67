"""Whether a process that left something behind (a temporary file, a server daemon) still runs."""

from __future__ import annotations

import os
from pathlib import Path


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def proc_stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (empty where unreadable): [0] is the
    state, [19] the start in clock ticks since boot."""
    return _read(f"/proc/{pid}/stat").rpartition(")")[2].split()  # the name in (...) may hold spaces


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (a zombie, exited but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return proc_stat(pid)[:1] != ["Z"]
