"""Reading and writing the project's files, for every package: event tables in, results out.

One reader of Parquet, CSV and TSV files (`read_table`: only the needed columns, one list of
null tokens, every problem a one-line error naming the file), atomic writes (readers never see
half a file) and one markdown-table writer.
"""

from __future__ import annotations

import glob
import json
import os
import re
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import DataError, first_line
from .processes import process_alive

# Text cells read as missing values, in every text file the project reads.
NULL_TOKENS = ("", "NA", "N/A", "NaN", "nan", "NULL", "null", "None")
FORMATS = {".tsv": "tsv", ".txt": "tsv", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_FORMAT_NAMES = {ext.lstrip("."): kind for ext, kind in FORMATS.items()}  # fmt= takes 'tsv' or '.tsv'
BLOCK_BYTES = 1 << 24  # text parsed per block when a reader reduces the blocks as they come


def format_of(path, fmt: str | None = None, error=DataError) -> str:
    """'parquet', 'csv' or 'tsv': `fmt` if given, else from the extension (events.tsv.gz is a TSV)."""
    path = Path(path)
    if fmt:
        key = str(fmt).lower().lstrip(".")
        if key not in _FORMAT_NAMES:
            raise error(f"{path}: unknown format '{fmt}' (expected one of {', '.join(_FORMAT_NAMES)})")
        return _FORMAT_NAMES[key]
    for s in reversed([s.lower() for s in path.suffixes]):
        if s in FORMATS:
            return FORMATS[s]
    raise error(
        f"{path}: cannot tell the format from the extension '{path.suffix}' "
        f"(supported: {', '.join(FORMATS)}, optionally compressed, e.g. .tsv.gz)"
    )


def read_table(
    path,
    columns,
    *,
    fmt: str | None = None,
    sep: str | None = None,
    names: list[str] | None = None,
    types: dict | None = None,
    reduce: Callable[[pa.Table, int], pa.Table] | None = None,
    hint: str = "",
    error=DataError,
) -> pa.Table:
    """Read some columns of a Parquet, CSV or TSV file into an Arrow table, named as asked.

    columns: the names to read, or {output name: accepted names in the file (first match wins)}.
    fmt: 'parquet', 'csv' or 'tsv' (default: from the extension); sep: a text file's delimiter
    (default: tab for TSV, comma for CSV); names: the columns of a text file without a header.
    types: {output name: Arrow type} for text files (other columns are inferred over the whole
    file). reduce(block, first_row) shrinks each block of a text file (filter, parse times)
    before the next block is read, so the memory follows what is kept, not the file's size.
    Every problem raises `error` with one line naming the file (`hint` says how to fix a
    missing column).
    """
    path = Path(path)
    if not path.exists():
        raise error(f"{path}: file not found")
    if path.is_dir():
        raise error(f"{path}: is a directory, expected a file")
    kind = format_of(path, fmt, error)
    if path.stat().st_size == 0:
        raise error(f"{path}: the file is empty")
    wanted = {c: [c] for c in columns} if not isinstance(columns, dict) else columns
    wanted = {out: [accepted] if isinstance(accepted, str) else list(accepted) for out, accepted in wanted.items()}
    try:
        if kind == "parquet":
            table = _read_parquet(path, wanted, hint, error)
        else:
            sep = sep or ("\t" if kind == "tsv" else ",")
            table = _read_text(path, kind, wanted, sep, names, types or {}, reduce, hint, error)
    except OSError as e:
        raise error(f"{path}: cannot read the file ({first_line(e)})") from None
    if table.num_rows == 0:
        raise error(f"{path}: no events (a header but no rows)")
    return table


def _choose(path, present: list[str], wanted: dict, hint: str, error) -> dict:
    """{output name: the file's column}, or a one-line error listing what is missing and what is there."""
    chosen = {out: next((c for c in accepted if c in present), None) for out, accepted in wanted.items()}
    missing = [" / ".join(wanted[out]) for out, c in chosen.items() if c is None]
    if missing:
        shown = ", ".join(map(str, present[:12])) + (" ..." if len(present) > 12 else "")
        raise error(
            f"{path}: missing column(s) {', '.join(missing)}; the file has: {shown}" + (f" ({hint})" if hint else "")
        )
    return chosen


def _read_parquet(path: Path, wanted: dict, hint: str, error) -> pa.Table:
    try:
        pf = pq.ParquetFile(path)
    except pa.ArrowException as e:
        raise error(f"{path}: not a readable Parquet file ({first_line(e)})") from None
    chosen = _choose(path, pf.schema_arrow.names, wanted, hint, error)
    try:
        table = pf.read(columns=list(dict.fromkeys(chosen.values())))
    except pa.ArrowException as e:
        raise error(f"{path}: cannot read the Parquet data ({first_line(e)})") from None
    return pa.table({out: table[c] for out, c in chosen.items()})


def _read_text(path: Path, kind, wanted, sep, names, types, reduce, hint, error) -> pa.Table:
    parse = pacsv.ParseOptions(delimiter=sep)
    read = pacsv.ReadOptions(column_names=list(names) if names else None)
    try:
        with pacsv.open_csv(path, read_options=read, parse_options=parse) as reader:  # the first block only
            present = reader.schema.names
    except pa.ArrowInvalid as e:
        if "Empty CSV file" in str(e):
            raise error(f"{path}: the file is empty") from None
        raise error(f"{path}: cannot parse as {kind.upper()} ({first_line(e)})") from None
    if len(present) == 1 and len(wanted) > 1:  # a wrong separator shows up as one mashed header name
        hint = "; ".join(filter(None, [f"wrong separator? expected {sep!r}", hint]))
    chosen = _choose(path, present, wanted, hint, error)
    convert = pacsv.ConvertOptions(
        include_columns=list(dict.fromkeys(chosen.values())),
        column_types={chosen[out]: t for out, t in types.items() if out in chosen},
        null_values=list(NULL_TOKENS),
        strings_can_be_null=True,
    )
    row = 0
    try:
        if reduce is None:  # whole file at once: column types are inferred over all of it
            return _renamed(
                pacsv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert), chosen
            )
        blocks = []
        read = pacsv.ReadOptions(column_names=read.column_names, block_size=BLOCK_BYTES)
        with pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert) as reader:
            for batch in reader:
                blocks.append(reduce(_renamed(pa.Table.from_batches([batch]), chosen), row))
                row += batch.num_rows
    except pa.ArrowInvalid as e:
        raise error(f"{path}: {_explain(str(e), present, kind, row if reduce else None)}") from None
    if not blocks:
        return _renamed(pa.Table.from_batches([], schema=reader.schema), chosen)
    return pa.concat_tables(blocks)


def _renamed(table: pa.Table, chosen: dict) -> pa.Table:
    return pa.table({out: table[c] for out, c in chosen.items()})


def _explain(message: str, columns: list[str], kind: str, row: int | None) -> str:
    """Arrow's 'In CSV column #1: CSV conversion error to int64: invalid value 'x'' as a line naming
    the column; other parse errors (ragged rows) keep Arrow's first line."""
    first = message.strip().splitlines()[0]
    m = re.search(r"column #(\d+): CSV conversion error to (\w+): invalid value '(.*)'", first)
    if m and int(m.group(1)) < len(columns):
        expected = {"int64": "an integer", "double": "a number", "date32": "a date (YYYY-MM-DD)"}.get(
            m.group(2), m.group(2)
        )
        where = f" (after data row {row:,})" if row is not None else ""
        return f"column {columns[int(m.group(1))]}: expected {expected}, found {m.group(3)!r}{where}"
    return f"cannot parse as {kind.upper()} ({first})"


@contextmanager
def atomic_output(path):
    """Yield a temporary path next to `path`; on success it replaces `path`, on failure it is removed.

    Readers never see a half-written file, and an existing file survives a failed write. A writer
    killed outright (SIGKILL, a lost node) cannot remove its temporary file: the next write of the
    same output does, unless the process that wrote it is alive (the pid is in the name).
    """
    path = Path(path)
    # mkstemp's names for this output only (not another's, e.g. table.csv.gz beside table.csv); the
    # pid is absent from those of earlier versions
    mine = re.compile(rf"\.{re.escape(path.name)}\.(?:(\d{{1,10}})-)?\w+\.tmp")
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        m = mine.fullmatch(stale.name)
        if not m:
            continue
        # a file named with this process's pid is a killed writer's (a container reuses pids)
        writer = int(m.group(1)) if m.group(1) else None
        if writer is None or writer == os.getpid() or not process_alive(writer):
            stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; the output is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path, text: str) -> None:
    """Write a text file (UTF-8) atomically, creating the directory."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


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
_LATEX_SYMBOLS = {"±": r"$\pm$", "—": "--", "Δ": r"$\Delta$"}


def latex_escape(text: str) -> str:
    """Text as LaTeX source: its special characters escaped, ± and — as LaTeX symbols."""
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
