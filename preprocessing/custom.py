"""Your own data, driven by a config (YAML file or dict); see preprocessing/README.md.

    files: [events.csv]             # CSV / TSV / Parquet, relative to the raw directory
    columns: {session: session_id, item: item_id, time: timestamp}   # user / event optional
    time_unit: s                    # s or ms (numbers), or a strptime format for text times
    session_gap: 3600               # with a user column: a larger gap starts a new session
    keep_event: view                # with an event column: the value to keep
    sessionise_first: false         # build sessions on all events before keeping keep_event
    dedup: true                     # drop consecutive repeats of an item
    min_item_support: 5
    min_session_length: 2
    split: {mode: time, test_days: 1}   # or {mode: last}: hold out each sequence's last event
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import readers
from .common import I, S, T, TimeUnit
from .errors import PreprocessingError
from .recipes import Recipe

KEYS = {"files", "columns", "separator", "time_unit", "session_gap", "keep_event", "sessionise_first", "dedup",
        "min_item_support", "min_session_length", "split", "name"}


def load_config(config) -> dict:
    if config is None:
        raise PreprocessingError("the custom dataset needs a config (--config FILE.yaml, or options in the workflow config)")
    if isinstance(config, (str, Path)):
        import yaml
        path = Path(config)
        if not path.is_file():
            raise PreprocessingError(f"{path}: config file not found")
        try:
            config = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise PreprocessingError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(config, dict):
        raise PreprocessingError("the custom config must be a mapping")
    unknown = set(config) - KEYS
    if unknown:
        raise PreprocessingError(f"unknown custom config key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(KEYS))}")
    for key in ("files", "columns"):
        if key not in config:
            raise PreprocessingError(f"the custom config needs '{key}'")
    cols = config["columns"]
    for key in ("session", "item", "time"):
        if key not in cols and not (key == "session" and "user" in cols):
            raise PreprocessingError(f"custom config columns: '{key}' is required (or 'user' instead of 'session')")
    return config


def _read_file(path: Path, wanted: dict, sep) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        readers._require(path)
        present = pq.ParquetFile(path).schema_arrow.names
        missing = [c for c in wanted.values() if c not in present]
        if missing:
            raise PreprocessingError(f"{path}: missing column(s) {', '.join(missing)}; the file has: {', '.join(present[:12])}")
        table = pq.read_table(path, columns=list(wanted.values()))
        table = table.rename_columns([next(k for k, v in wanted.items() if v == c) for c in table.column_names])
    else:
        sep = sep or ("\t" if suffix in (".tsv", ".txt") else ",")
        table = readers.read_csv_columns(path, {k: [v] for k, v in wanted.items()}, sep=sep)
    return table


def read(raw_dir, config: dict) -> pd.DataFrame:
    cols = config["columns"]
    wanted = {"ItemId": cols["item"], "Time": cols["time"]}
    if "user" in cols:
        wanted["User"] = cols["user"]
    else:
        wanted["SessionId"] = cols["session"]
    if "event" in cols:
        wanted["Event"] = cols["event"]
    files = config["files"] if isinstance(config["files"], list) else [config["files"]]
    parts = []
    for name in files:
        path = Path(raw_dir) / name
        table = _read_file(path, wanted, config.get("separator"))
        unit = str(config.get("time_unit", "s"))
        if unit not in ("s", "ms"):
            table = readers.parse_time(table, "Time", unit, "s", path)
        elif not (pa.types.is_integer(table["Time"].type) or pa.types.is_floating(table["Time"].type)):
            raise PreprocessingError(f"{path}: column {cols['time']} is not numeric; set time_unit to its strptime "
                                     f"format (e.g. '%Y-%m-%d %H:%M:%S')")
        parts.append(readers.to_frame(table, path, id_columns=("SessionId", "User") + (() if "Event" in wanted else ("ItemId",))))
    return pd.concat(parts, ignore_index=True)


def recipe(config: dict) -> Recipe:
    unit = TimeUnit(1000 if str(config.get("time_unit", "s")) == "ms" else 1)
    split = dict(config.get("split") or {"mode": "time", "test_days": 1})
    mode = split.get("mode", "time")
    if mode not in ("time", "last"):
        raise PreprocessingError(f"custom config split.mode must be 'time' or 'last', got {mode!r}")
    gap = config.get("session_gap")
    if "user" in config["columns"] and gap is None:
        raise PreprocessingError("custom config: a 'user' column needs 'session_gap' (in time units, e.g. 3600)")
    keep = config.get("keep_event")
    if keep is not None and "event" not in config["columns"]:
        raise PreprocessingError("custom config: 'keep_event' needs an 'event' column in 'columns'")
    return Recipe(name=config.get("name", "custom"), files=tuple(), read=None, unit=unit,
                  test_days=float(split.get("test_days", 1)),
                  session_gap_hours=None if gap is None else float(gap) / unit.hour,
                  keep_event=None if keep is None else (keep, not config.get("sessionise_first", False)),
                  dedup=bool(config.get("dedup", True)), min_item_support=int(config.get("min_item_support", 5)),
                  min_session_length=int(config.get("min_session_length", 2)), split=mode)
