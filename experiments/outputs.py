"""The pipeline's result files: atomic writes that also clear what a killed job left, JSON, and the
markdown and LaTeX tables.

A job killed outright (SIGKILL, a lost node) cannot remove the temporary file of the write it was
in (gru4rec.fileio.atomic_output names it `.{name}.{pid}-{random}.tmp`); Snakemake reruns the job,
and the rerun's write of the same output removes it, unless the process that wrote it still runs.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from gru4rec import fileio

from .processes import process_alive


def clear_stale(path) -> None:
    """Remove the temporary files of killed writers of `path` (not another output's: table.csv.gz
    beside table.csv keeps its own; not those of a writer that still runs)."""
    path = Path(path)
    # the names of atomic_output's files for this output; the pid is absent from those of earlier versions
    mine = re.compile(rf"\.{re.escape(path.name)}\.(?:(\d{{1,10}})-)?\w+\.tmp")
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        m = mine.fullmatch(stale.name)
        if not m:
            continue
        # a file named with this process's pid is a killed writer's (a container reuses pids)
        writer = int(m.group(1)) if m.group(1) else None
        if writer is None or writer == os.getpid() or not process_alive(writer):
            stale.unlink(missing_ok=True)


@contextmanager
def atomic_output(path):
    """gru4rec.fileio.atomic_output, after clearing what killed writers of `path` left."""
    clear_stale(path)
    with fileio.atomic_output(path) as tmp:
        yield tmp


def write_text_atomic(path, text: str) -> None:
    """Write a text file (UTF-8) atomically, creating the directory."""
    clear_stale(path)
    fileio.write_text_atomic(path, text)


def write_json(path, obj) -> None:
    """Write JSON (indented; non-JSON values as text) atomically, creating the directory."""
    write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


def markdown_table(df: pd.DataFrame, fmt: Callable[[object, str], str] = lambda value, column: str(value)) -> str:
    """A pipe table of the DataFrame's columns (not its index); fmt(value, column) writes a cell."""
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += [
        "| " + " | ".join(fmt(v, c) for v, c in zip(row, df.columns)) + " |" for row in df.itertuples(index=False)
    ]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {"~": r"\textasciitilde{}", "^": r"\^{}", "\\": r"\textbackslash{}"}
_LATEX_SYMBOLS = {"±": r"$\pm$", "—": "--", "Δ": r"$\Delta$", "†": r"$^{\dagger}$", "‡": r"$^{\ddagger}$"}


def latex_escape(text: str) -> str:
    """Text as LaTeX source: its special characters escaped, ±, —, Δ, † and ‡ as LaTeX symbols."""
    out = "".join(_LATEX_SPECIAL.get(c, c) for c in str(text))
    for symbol, tex in _LATEX_SYMBOLS.items():
        out = out.replace(symbol, tex)
    return out


def latex_table(
    df: pd.DataFrame,
    fmt: Callable[[object, str], str] = lambda value, column: str(value),
    caption: str = "",
    label: str = "",
) -> str:
    """A booktabs table (\\toprule, \\midrule, \\bottomrule; needs \\usepackage{booktabs}) of the
    DataFrame's columns, cells written by fmt(value, column) as markdown_table does; the first
    column left-aligned, the others right-aligned."""
    cols = "l" + "r" * (len(df.columns) - 1)
    lines = [r"\begin{table}[t]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines += [rf"\begin{{tabular}}{{{cols}}}", r"\toprule", " & ".join(map(latex_escape, df.columns)) + r" \\"]
    lines.append(r"\midrule")
    lines += [
        " & ".join(latex_escape(fmt(v, c)) for v, c in zip(row, df.columns)) + r" \\"
        for row in df.itertuples(index=False)
    ]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
