"""Reading and writing the project's files, for every package: event tables in, results out.

One reader of Parquet, CSV and TSV files (`read_table`: only the needed columns, one list of
null tokens, every problem a one-line error naming the file) and atomic writes (readers never see
half a file).

Text files are UTF-8 (a byte order mark and CRLF line ends are fine), plain or compressed as the
name says (.gz, .bz2, .zst, .lz4). The first bytes are checked before Arrow parses anything, so
compressed data behind a plain name (or the reverse), ZIP/xz archives, UTF-16 text, NUL bytes and
a header that is not UTF-8 are each a one-line error saying what the file holds and what to do.
"""

from __future__ import annotations

import codecs
import os
import re
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import DataError, first_line

# Text cells read as missing values, in every text file the project reads.
NULL_TOKENS = ("", "NA", "N/A", "NaN", "nan", "NULL", "null", "None")
FORMATS = {".tsv": "tsv", ".txt": "tsv", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_FORMAT_NAMES = {ext.lstrip("."): kind for ext, kind in FORMATS.items()}  # fmt= takes 'tsv' or '.tsv'
BLOCK_BYTES = 1 << 24  # text parsed per block when a reader reduces the blocks as they come
SNIFF_BYTES = 1 << 16  # the head of a text file checked for compression and encoding before parsing
# compressed names Arrow reads (a suffix after the format's, events.tsv.gz) -> (Arrow codec, what)
CODECS = {".gz": ("gzip", "gzip"), ".bz2": ("bz2", "bzip2"), ".zst": ("zstd", "zstd"), ".lz4": ("lz4", "lz4")}
# leading bytes of data that is not text: (regex, what it is, the suffix Arrow reads it under or None)
_MAGIC = (
    (rb"\x1f\x8b", "gzip-compressed data", ".gz"),
    (rb"BZh[1-9](?:1AY&SY|\x17rE8P\x90)", "bzip2-compressed data", ".bz2"),
    (rb"\x28\xb5\x2f\xfd", "zstd-compressed data", ".zst"),
    (rb"\x04\x22\x4d\x18", "lz4-compressed data", ".lz4"),
    (rb"\xfd7zXZ\x00", "xz-compressed data", None),
    (rb"PK\x03\x04|PK\x05\x06", "a ZIP archive", None),
    (rb"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", None),
    (rb"PAR1", "Parquet data", ".parquet"),
)
_UNPACK = {"xz-compressed data": "unxz -k", "a ZIP archive": "unzip", "a 7-Zip archive": "7z x"}


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
    compressed: bool = True,
) -> pa.Table:
    """Read some columns of a Parquet, CSV or TSV file into an Arrow table, named as asked.

    columns: the names to read, or {output name: accepted names in the file (first match wins)}.
    fmt: 'parquet', 'csv' or 'tsv' (default: from the extension); sep: a text file's delimiter
    (default: tab for TSV, comma for CSV); names: the columns of a text file without a header.
    types: {output name: Arrow type} for text files (other columns are inferred over the whole
    file). reduce(block, first_row) shrinks each block of a text file (filter, parse times)
    before the next block is read, so the memory follows what is kept, not the file's size.
    Every problem raises `error` with one line naming the file (`hint` says how to fix a
    missing column). compressed: whether the caller reads compressed names (events.tsv.gz), which
    decides how a message about compressed data behind a plain name tells to fix it.
    """
    path = Path(path)
    if not path.exists():
        raise error(f"{path}: file not found{_compressed_sibling(path, compressed)}")
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
            table = _read_text(path, kind, wanted, sep, names, types or {}, reduce, hint, error, compressed)
    except OSError as e:  # a truncated or corrupt compressed stream too: never part of the data
        raise error(f"{path}: cannot read the file ({first_line(e)})") from None
    if table.num_rows == 0:
        raise error(f"{path}: no events (a header but no rows)")
    if kind != "parquet":
        _no_nul_bytes(path, table, error)
    return table


def _compressed_sibling(path: Path, compressed: bool) -> str:
    """' (there is events.csv.gz beside it: ...)' where the file is missing but a compressed copy is there."""
    for ext in [*CODECS, ".zip", ".xz", ".7z"]:
        other = path.with_name(path.name + ext)
        if other.is_file():
            fix = "give that name, or decompress it" if compressed and ext in CODECS else "decompress it"
            return f" (there is {other.name} beside it: {fix})"
    return ""


def _magic(raw: bytes) -> tuple[str | None, str | None]:
    """(what the leading bytes say the data is, the suffix Arrow reads it under), or (None, None)."""
    return next(((what, ext) for magic, what, ext in _MAGIC if re.match(magic, raw)), (None, None))


def _sniff(path: Path, header: bool, compressed: bool, error) -> tuple[str | None, bytes]:
    """(the Arrow codec to read a text file with or None, its first bytes as text), after checking
    them: the name and the data agree on compression, the text is not UTF-16 and has no NUL bytes,
    and the header line (if any) is UTF-8. Every mismatch is a one-line error saying what to do."""
    named = CODECS.get(path.suffix.lower())
    with open(path, "rb") as f:
        raw = f.read(SNIFF_BYTES)
    what, ext = _magic(raw)
    if named is not None and what == f"{named[1]}-compressed data":
        try:
            with pa.input_stream(path, compression=named[0]) as f:
                head = f.read(SNIFF_BYTES)
        except (OSError, pa.ArrowException) as e:
            raise error(f"{path}: cannot decompress the {named[1]} data ({first_line(e)})") from None
        whole = len(head) < SNIFF_BYTES
    elif what is not None or named is not None:
        raise error(f"{path}: {_mismatch(path, what, ext, named, compressed)}")
    else:
        head, whole = raw, len(raw) < SNIFF_BYTES
    _check_text(path, head, whole, header, error)
    return (named[0] if named else None), head


def _mismatch(path: Path, what, ext, named, compressed: bool) -> str:
    """What the data is against what its name says, and how to fix it."""
    name, suffix = path.name, path.suffix
    if what is None:  # text behind a compressed name
        return f"not {named[1]}-compressed data, although the name ends in {suffix} (rename it to {path.stem})"
    if ext is None:  # an archive Arrow cannot read
        return f"{what}, which cannot be read directly (unpack it first: {_UNPACK[what]} {name})"
    if ext == ".parquet":
        base = Path(path.stem) if suffix.lower() in CODECS else path
        base = base.stem if base.suffix.lower() in FORMATS else base.name
        return f"Parquet data, not text (rename it to {base}.parquet)"
    if named is not None:
        return f"{what}, but the name ends in {suffix} (rename it to {path.stem}{ext})"
    plain = f"a plain {suffix} name" if suffix else "a name without an extension"
    if compressed:
        return f"{what} behind {plain} (rename it to {name}{ext}, or decompress it)"
    return f"{what} behind {plain}, expected text (decompress it: mv {name} {name}{ext}, then decompress {name}{ext})"


def _check_text(path: Path, head: bytes, whole: bool, header: bool, error):
    """UTF-16/32 text, NUL bytes and a header that is not UTF-8 in the first bytes of a text file."""
    boms = (("UTF-32", codecs.BOM_UTF32_LE), ("UTF-32", codecs.BOM_UTF32_BE))  # before UTF-16: FF FE 00 00
    boms += (("UTF-16", codecs.BOM_UTF16_LE), ("UTF-16", codecs.BOM_UTF16_BE))
    for name, bom in boms:
        if head.startswith(bom):
            raise error(
                f"{path}: {name} text (byte order mark {bom.hex(' ').upper()}), expected UTF-8 (save it as UTF-8)"
            )
    nul = head.find(b"\x00")
    if nul >= 0:
        if head[: 2 * 8].count(b"\x00") >= 4:  # every other byte: ASCII written as UTF-16
            raise error(f"{path}: UTF-16 text without a byte order mark, expected UTF-8 (save it as UTF-8)")
        line = head.count(b"\n", 0, nul) + 1
        raise error(f"{path}: NUL bytes at line {line:,}: binary data, not text")
    if header:
        first = head[len(codecs.BOM_UTF8) :] if head.startswith(codecs.BOM_UTF8) else head
        first, *rest = first.split(b"\n", 1)
        try:
            codecs.getincrementaldecoder("utf-8")().decode(first, final=bool(rest) or whole)
        except UnicodeDecodeError as e:
            raise error(
                f"{path}: the header line is not UTF-8 text (byte 0x{first[e.start]:02x} at position {e.start + 1}); "
                f"save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
            ) from None


def _no_nul_bytes(path: Path, table: pa.Table, error):
    """A NUL byte in a text value (past the checked head) is binary data, never an id."""
    for name in table.column_names:
        col = table[name]
        if pa.types.is_dictionary(col.type):
            col = pa.chunked_array([c.dictionary for c in col.chunks], type=col.type.value_type)
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)) or len(col) == 0:
            continue
        if pc.any(pc.match_substring(col, "\x00")).as_py():
            raise error(f"{path}: column {name}: NUL bytes in a value: binary data, not text")


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
        with open(path, "rb") as f:
            what, ext = _magic(f.read(64))
        if what is not None and ext != ".parquet":
            raise error(f"{path}: {what}, not a Parquet file") from None
        raise error(f"{path}: not a readable Parquet file ({first_line(e)})") from None
    chosen = _choose(path, pf.schema_arrow.names, wanted, hint, error)
    try:
        table = pf.read(columns=list(dict.fromkeys(chosen.values())))
    except pa.ArrowException as e:
        raise error(f"{path}: cannot read the Parquet data ({first_line(e)})") from None
    return pa.table({out: table[c] for out, c in chosen.items()})


def _read_text(path: Path, kind, wanted, sep, names, types, reduce, hint, error, compressed=True) -> pa.Table:
    if not (isinstance(sep, str) and len(sep) == 1 and sep not in '\r\n"\x00'):
        raise error(f"{path}: the separator must be one character (not a quote or a line end), got {sep!r}")
    codec, head = _sniff(path, not names, compressed, error)

    def source():
        return pa.input_stream(path, compression=codec)

    parse = pacsv.ParseOptions(delimiter=sep)
    read = pacsv.ReadOptions(column_names=list(names) if names else None)
    try:
        with source() as f, pacsv.open_csv(f, read_options=read, parse_options=parse) as reader:  # the first block
            present = reader.schema.names
    except pa.ArrowInvalid as e:
        if "Empty CSV file" in str(e):
            raise error(f"{path}: the file is empty") from None
        raise error(f"{path}: {_explain(str(e), [], kind, None, sep)}") from None
    except UnicodeDecodeError as e:  # the header is checked above; this is a last resort
        raise error(f"{path}: the column names are not UTF-8 text ({e.reason}); save the file as UTF-8") from None
    if present and not any(str(c).strip() for c in present):
        raise error(f"{path}: the first line is blank, expected a header line naming the columns")
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
            with source() as f:
                return _renamed(
                    pacsv.read_csv(f, read_options=read, parse_options=parse, convert_options=convert), chosen
                )
        blocks = []
        read = pacsv.ReadOptions(column_names=read.column_names, block_size=BLOCK_BYTES)
        with (
            source() as f,
            pacsv.open_csv(f, read_options=read, parse_options=parse, convert_options=convert) as reader,
        ):
            for batch in reader:
                blocks.append(reduce(_renamed(pa.Table.from_batches([batch]), chosen), row))
                row += batch.num_rows
    except pa.ArrowInvalid as e:
        where = present if not names else [f"{k + 1} ({c})" for k, c in enumerate(present)]
        line = head.split(b"\n", 1)[0].decode("utf-8", "replace").removeprefix("\ufeff").rstrip("\r") if names else ""
        raise error(f"{path}: {_explain(str(e), where, kind, row if reduce else None, sep, line)}") from None
    if not blocks:
        return _renamed(pa.Table.from_batches([], schema=reader.schema), chosen)
    return pa.concat_tables(blocks)


def _renamed(table: pa.Table, chosen: dict) -> pa.Table:
    return pa.table({out: table[c] for out, c in chosen.items()})


def _explain(
    message: str, columns: list[str], kind: str, row: int | None, sep: str = ",", first_data_line: str = ""
) -> str:
    """Arrow's 'In CSV column #1: CSV conversion error to int64: invalid value 'x'' as a line naming
    the column (and non-UTF-8 text in a column likewise); other parse errors (ragged rows) keep
    Arrow's first line, with a hint where the row looks split on another separator."""
    raw = message.strip().splitlines()[0] if message.strip() else message
    first = _printable(raw)
    where = f" (after data row {row:,})" if row else ""
    m = re.search(r"column #(\d+): CSV conversion error to ([\w\[\]]+): invalid value '(.*)'", first)
    if m and int(m.group(1)) < len(columns):
        kind_of = m.group(2).split("[")[0]
        expected = {"int64": "an integer", "double": "a number", "date32": "a date (YYYY-MM-DD)"}.get(kind_of, kind_of)
        if first_data_line and not row and m.group(3) in first_data_line.split(sep):
            where = " in the first line (the file has no header line: its first line must be data)"
        return f"column {columns[int(m.group(1))]}: expected {expected}, found {m.group(3)!r}{where}"
    m = re.search(r"column #(\d+): CSV conversion error to \w+: invalid UTF8 data", first)
    if m and int(m.group(1)) < len(columns):
        return (
            f"column {columns[int(m.group(1))]}: a value is not UTF-8 text{where}; save the file as UTF-8 "
            f"(e.g. iconv -f latin1 -t utf-8)"
        )
    m = re.search(r"Expected (\d+) columns, got 1: (.*)", raw)
    if m and int(m.group(1)) > 1:
        other = next((s for s in ("\t", ",", ";", "|") if s != sep and s in m.group(2)), None)
        if other is not None:
            return f"cannot parse as {kind.upper()} ({first}; wrong separator? expected {sep!r}, the row has {other!r})"
    return f"cannot parse as {kind.upper()} ({first})"


def _printable(text: str, limit: int = 200) -> str:
    """Text for a one-line message: control characters escaped, at most `limit` characters."""
    text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextmanager
def atomic_output(path):
    """Yield a temporary path next to `path`; on success it replaces `path`, on failure it is removed.

    Readers never see a half-written file, and an existing file survives a failed write. The
    temporary file is named `.{name}.{pid}-{random}.tmp`: a writer killed outright (SIGKILL, a lost
    node) cannot remove it, and whoever cleans up can tell by the pid whether its writer still runs.
    """
    path = Path(path)
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
