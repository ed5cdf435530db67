"""Your own data, driven by a config (YAML file or dict); every key is in preprocessing/README.md.

files: [events.csv]             # CSV / TSV / Parquet, relative to the raw directory
columns: {session: session_id, item: item_id, time: timestamp}   # or user: instead of session; event: optional
time_unit: s                    # s or ms (numbers), iso8601, or a strptime format for text times
session_gap: 3600               # with a user column: a larger gap (time units) starts a new session
keep_event: view                # with an event column: the value to keep
sessionise_first: false         # build sessions on all events before keeping keep_event
dedup: true                     # drop consecutive repeats of an item
min_item_support: 5
min_session_length: 2
split: {mode: time, test_days: 1}   # or {mode: last}: hold out each sequence's last event
"""

from __future__ import annotations

import numbers
from pathlib import Path

import pandas as pd
import pyarrow as pa

from gru4rec.errors import first_line
from gru4rec.fileio import CODECS, read_table

from . import readers
from .common import EVENT, USER, I, S, T, TimeUnit
from .errors import PreprocessingError
from .recipes import Recipe

KEYS = {
    "name",
    "files",
    "columns",
    "separator",
    "time_unit",
    "id_type",
    "session_gap",
    "keep_event",
    "sessionise_first",
    "dedup",
    "min_item_support",
    "min_session_length",
    "split",
}
COLUMN_KEYS = {"session", "user", "item", "time", "event"}
SPLIT_KEYS = {"mode", "test_days", "t_split"}
OUT = {"session": S, "user": USER, "item": I, "time": T, "event": EVENT}


def _fail(message: str):
    raise PreprocessingError(f"custom config: {message}")


def load_config(config) -> dict:
    """A config dict, or the path of a YAML file holding one (also under the key 'config')."""
    if isinstance(config, dict) and set(config) == {"config"}:
        config = config["config"]
    if config is None or config == {}:
        _fail("missing; give --config FILE.yaml (or the options of the dataset in the workflow config)")
    if isinstance(config, (str, Path)):
        import yaml

        path = Path(config)
        if path.is_dir():
            raise PreprocessingError(f"{path}: is a directory, expected the config file (YAML)")
        if not path.is_file():
            raise PreprocessingError(f"{path}: config file not found")
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise PreprocessingError(
                f"{path}: the config is not UTF-8 text (byte 0x{e.object[e.start]:02x} at position {e.start + 1}); "
                "save it as UTF-8"
            ) from None
        except OSError as e:
            raise PreprocessingError(f"{path}: cannot read the config ({e.strerror or e})") from None
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise PreprocessingError(f"{path}: invalid YAML: {' '.join(str(e).split())}") from None
        if config is None:
            raise PreprocessingError(f"{path}: the config is empty (it needs at least 'files' and 'columns')")
        if not isinstance(config, dict):
            raise PreprocessingError(
                f"{path}: the config must be a mapping of keys to values (files: ..., columns: ...), "
                f"got a YAML {type(config).__name__}"
            )
    if not isinstance(config, dict):
        _fail(f"must be a mapping of keys to values, got {type(config).__name__}")
    _validate(config)
    return config


def _validate(c: dict):
    unknown = set(c) - KEYS
    if unknown:
        _fail(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; valid: {', '.join(sorted(KEYS))}")
    for key in ("files", "columns"):
        if key not in c:
            _fail(f"needs '{key}'")
    files = c["files"] if isinstance(c["files"], list) else [c["files"]]
    if not files or not all(isinstance(f, str) and f for f in files):
        _fail("'files' must be a file name or a list of file names (relative to the raw directory)")
    cols = c["columns"]
    if not isinstance(cols, dict) or set(cols) - COLUMN_KEYS:
        _fail(f"'columns' maps {', '.join(sorted(COLUMN_KEYS))} to column names of the files")
    for key in ("item", "time"):
        if key not in cols:
            _fail(f"columns: '{key}' is required")
    for key, name in cols.items():
        if not (isinstance(name, str) and name):
            _fail(f"columns.{key} must be a column name (text), got {name!r}")
    sep = c.get("separator")
    if sep is not None and not (isinstance(sep, str) and len(sep) == 1 and sep not in '\r\n"'):
        _fail(f"'separator' must be one character, e.g. ',' or '\\t' (quoted in YAML), got {sep!r}")
    unit = c.get("time_unit", "s")
    if not (isinstance(unit, str) and (unit in ("s", "ms") or unit.lower() == "iso8601" or "%" in unit)):
        _fail(f"time_unit must be s, ms, iso8601 or a strptime format such as '%Y-%m-%d %H:%M:%S', got {unit!r}")
    if ("session" in cols) == ("user" in cols):
        _fail("columns: give exactly one of 'session' (sessions given) or 'user' (sessions built with session_gap)")
    if "user" in cols and not _positive(c.get("session_gap")):
        _fail("a 'user' column needs 'session_gap', a positive number in time units (e.g. 3600 for 1 h in seconds)")
    if "session" in cols and "session_gap" in c:
        _fail("'session_gap' needs a 'user' column instead of 'session'")
    if "keep_event" in c and "event" not in cols:
        _fail("'keep_event' needs an 'event' column in 'columns'")
    if "event" in cols and "keep_event" not in c:
        _fail("an 'event' column needs 'keep_event' (the event type to keep, e.g. view)")
    for key in ("dedup", "sessionise_first"):
        if key in c and not isinstance(c[key], bool):
            _fail(f"'{key}' must be true or false, got {c[key]!r}")
    for key, low in (("min_item_support", 1), ("min_session_length", 2)):
        if key in c and not (isinstance(c[key], int) and not isinstance(c[key], bool) and c[key] >= low):
            _fail(f"'{key}' must be an integer >= {low}, got {c[key]!r}")
    if c.get("id_type", "auto") not in ("auto", "str"):
        _fail(f"'id_type' must be auto or str, got {c['id_type']!r}")
    split = c.get("split", {"mode": "time"})
    if not isinstance(split, dict) or set(split) - SPLIT_KEYS:
        _fail(f"'split' maps {', '.join(sorted(SPLIT_KEYS))}, e.g. {{mode: time, test_days: 1}} or {{mode: last}}")
    if split.get("mode", "time") not in ("time", "last"):
        _fail(f"split.mode must be 'time' or 'last', got {split['mode']!r}")
    if "test_days" in split and not _positive(split["test_days"]):
        _fail(f"split.test_days must be a positive number, got {split['test_days']!r}")
    if "t_split" in split and not _positive(split["t_split"]):
        _fail(f"split.t_split must be a time in the data's unit (a number), got {split['t_split']!r}")


def _positive(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and v > 0


def files(raw_dir, config: dict) -> list[Path]:
    names = config["files"] if isinstance(config["files"], list) else [config["files"]]
    return [Path(raw_dir) / name for name in names]


def read(raw_dir, config: dict, quiet=False) -> pd.DataFrame:
    cols = config["columns"]
    wanted = {OUT[k]: v for k, v in cols.items()}
    time_unit = str(config.get("time_unit", "s"))
    string_ids = pa.dictionary(pa.int32(), pa.string()) if config.get("id_type", "auto") == "str" else None
    parts = []
    for path in files(raw_dir, config):
        suffix = _format_suffix(path)
        if suffix in (".parquet", ".pq"):
            table = read_table(path, wanted, fmt="parquet", error=PreprocessingError)
        else:
            sep = config.get("separator") or ("\t" if suffix in (".tsv", ".tab") else ",")
            types = {T: pa.string()} if time_unit not in ("s", "ms") else {}
            if string_ids is not None:
                types.update({c: string_ids for c in (S, USER, I) if c in wanted})
            table = readers.read_csv(path, wanted, types, sep=sep)
        table = _time(table, time_unit, path, cols["time"])
        if time_unit in ("s", "ms"):
            readers.out_of_range(
                table[T].to_numpy(), 1000 if time_unit == "ms" else 1, path, cols["time"], hint=_UNIT_HINT
            )
        parts.append(readers.drop_null_ids(table, (S, USER), path, quiet))
    try:
        table = pa.concat_tables(parts, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise PreprocessingError(
            f"custom: the files disagree on column types ({first_line(e)}); set id_type: str"
        ) from None
    return readers.to_frame(table)


_UNIT_HINT = "; is time_unit right? s: seconds, ms: milliseconds since 1970-01-01"


def _format_suffix(path: Path) -> str:
    """The extension that says the format, under a compression suffix (events.tsv.gz: .tsv)."""
    suffixes = [s.lower() for s in path.suffixes]
    if len(suffixes) > 1 and suffixes[-1] in CODECS:
        return suffixes[-2]
    return suffixes[-1] if suffixes else ""


def _time(table: pa.Table, unit: str, path: Path, name: str) -> pa.Table:
    col = table[T]
    if unit in ("s", "ms"):
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
            raise PreprocessingError(
                f"{path}: column {name} is not a number ({col.type}); set time_unit to "
                f"iso8601 or a strptime format such as '%Y-%m-%d %H:%M:%S'"
            )
        return readers.require_numeric(table, T, path, label=name)
    if pa.types.is_timestamp(col.type):  # a Parquet timestamp column: already parsed
        secs = pa.array(col.cast(pa.timestamp("ms")).cast(pa.int64()).to_numpy() // 1000)
        return table.set_column(table.column_names.index(T), T, secs)
    fmt = "ISO8601" if unit.lower() == "iso8601" else unit
    if fmt != "ISO8601" and "%" not in fmt:
        raise PreprocessingError(f"custom config: time_unit must be s, ms, iso8601 or a strptime format, got {unit!r}")
    return readers.parse_time(
        table.set_column(table.column_names.index(T), T, col.cast(pa.string())), T, fmt, path, 0, "int", name
    )


def recipe(config: dict) -> Recipe:
    unit = TimeUnit(1000 if str(config.get("time_unit", "s")) == "ms" else 1)
    split = dict(config.get("split") or {})
    gap = config.get("session_gap")
    return Recipe(
        name=str(config.get("name", "custom")),
        read=None,
        unit=unit,
        test_days=float(split.get("test_days", 1)),
        t_split=split.get("t_split"),
        session_gap_hours=None if gap is None else float(gap) / unit.hour,
        keep_event=config.get("keep_event"),
        sessionise_first=bool(config.get("sessionise_first", False)),
        dedup=bool(config.get("dedup", True)),
        min_item_support=int(config.get("min_item_support", 5)),
        min_session_length=int(config.get("min_session_length", 2)),
        split=split.get("mode", "time"),
    )
