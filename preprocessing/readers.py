"""Readers of the public datasets' raw formats: column-selective, ids as in the source.

Each returns a DataFrame with ItemId, Time and either SessionId (sessions given by the source)
or User (sessions built later), plus Event where the source has several event types.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .errors import PreprocessingError


def _require(path: Path):
    if not path.exists():
        raise PreprocessingError(f"{path}: raw file not found (see `python -m preprocessing download --help`)")
    if path.is_dir():
        raise PreprocessingError(f"{path}: is a directory, expected the raw data file")
    if path.stat().st_size == 0:
        raise PreprocessingError(f"{path}: the file is empty")


def read_csv_columns(path: Path, wanted: dict, sep=",", header=True, names=None, types=None) -> pa.Table:
    """Read only the needed columns. wanted maps output name -> accepted source column names."""
    _require(path)
    read = pacsv.ReadOptions(column_names=names, block_size=1 << 26) if not header else pacsv.ReadOptions(block_size=1 << 26)
    try:
        if header:
            with open(path, "rb") as f:
                first = f.readline().decode("utf-8", errors="replace").rstrip("\r\n")
            present = first.split(sep)
        else:
            present = list(names)
        chosen = {}
        for out, options in wanted.items():
            match = next((c for c in options if c in present), None)
            if match is None:
                raise PreprocessingError(
                    f"{path}: missing column {' / '.join(options)}; the header has: {', '.join(present[:12])}"
                    f"{' (wrong separator? expected ' + repr(sep) + ')' if len(present) == 1 else ''}")
            chosen[out] = match
        convert = pacsv.ConvertOptions(include_columns=list(chosen.values()),
                                       column_types={chosen[k]: v for k, v in (types or {}).items()},
                                       strings_can_be_null=True, null_values=["", "NA", "NaN", "null"])
        table = pacsv.read_csv(path, read_options=read, parse_options=pacsv.ParseOptions(delimiter=sep),
                               convert_options=convert)
    except pa.ArrowInvalid as e:
        raise PreprocessingError(f"{path}: cannot parse: {str(e).splitlines()[0]}") from None
    if table.num_rows == 0:
        raise PreprocessingError(f"{path}: no events (header only)")
    return table.rename_columns([next(k for k, v in chosen.items() if v == c) for c in table.column_names])


def parse_time(table: pa.Table, column: str, fmt: str, unit: str, path: Path) -> pa.Table:
    """Parse a text time column to numbers (seconds or milliseconds since the epoch, UTC)."""
    col = table[column]
    try:
        if pa.types.is_date(col.type) or pa.types.is_timestamp(col.type):  # already parsed by the CSV reader
            ts = pc.cast(pc.cast(col, pa.timestamp("ms")) if pa.types.is_date(col.type) else col, pa.timestamp("ms"))
        elif fmt == "ISO8601":  # e.g. 2014-04-07T10:51:09.277Z
            parsed = pd.to_datetime(col.to_pandas(), format="ISO8601", utc=True, errors="coerce")
            ts = pa.chunked_array([pa.array(parsed.dt.tz_localize(None).astype("datetime64[ms]"))])
        else:
            ts = pc.strptime(col, format=fmt, unit="ms", error_is_null=True)
    except (pa.ArrowInvalid, ValueError) as e:
        raise PreprocessingError(f"{path}: column {column}: {str(e).splitlines()[0]}") from None
    bad = pc.and_(pc.is_null(ts), pc.is_valid(col))
    if pc.any(bad).as_py() or col.null_count:
        idx = pc.indices_nonzero(pc.or_(bad, pc.is_null(col)))[0].as_py()
        raise PreprocessingError(f"{path}: column {column}: cannot parse time {col[idx].as_py()!r} at data row "
                                 f"{idx + 1} (expected format {fmt})")
    ms = pc.cast(pc.cast(ts, pa.timestamp("ms")), pa.int64())
    values = ms if unit == "ms" else pc.divide(pc.cast(ms, pa.float64()), 1000.0)
    return table.set_column(table.column_names.index(column), column, values)


def numeric(table: pa.Table, column: str, path: Path) -> pa.Table:
    col = table[column]
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        if col.null_count:
            raise PreprocessingError(f"{path}: column {column} has {col.null_count} missing value(s)")
        return table
    raise PreprocessingError(f"{path}: column {column} must be numeric, found {col.type} "
                             f"(first value {col[0].as_py()!r})")


def to_frame(table: pa.Table, path: Path, id_columns=("ItemId", "SessionId", "User")) -> pd.DataFrame:
    for c in id_columns:
        if c in table.column_names and table[c].null_count:
            n = table[c].null_count
            table = table.filter(pc.is_valid(table[c]))
            print(f"{path.name}: dropped {n:,} event(s) without {c}", flush=True)
    return table.to_pandas()


# ------------------------------------------------------------------------------------------------
def read_yoochoose(raw: Path, files=("yoochoose-clicks.dat", "yoochoose-test.dat")) -> pd.DataFrame:
    parts = []
    for name in files:
        path = raw / name
        t = read_csv_columns(path, {"SessionId": ["SessionId"], "TimeStr": ["TimeStr"], "ItemId": ["ItemId"]},
                             header=False, names=["SessionId", "TimeStr", "ItemId", "Category"],
                             types={"SessionId": pa.int64(), "ItemId": pa.int64()})
        t = parse_time(t, "TimeStr", "ISO8601", "s", path)
        parts.append(to_frame(t.rename_columns(["Time" if c == "TimeStr" else c for c in t.column_names]), path))
    return pd.concat(parts, ignore_index=True)


def read_rees46(raw: Path, files=("2019-Oct.csv", "2019-Nov.csv")) -> pd.DataFrame:
    parts = []
    for name in files:
        path = raw / name
        t = read_csv_columns(path, {"Time": ["event_time"], "Event": ["event_type"], "ItemId": ["product_id"],
                                    "User": ["user_id"]}, types={"Event": pa.dictionary(pa.int32(), pa.string())})
        t = t.filter(pc.equal(pc.cast(t["Event"], pa.string()), "view")).drop_columns(["Event"])
        t = parse_time(t, "Time", "%Y-%m-%d %H:%M:%S UTC", "s", path)
        parts.append(to_frame(t, path))
    return pd.concat(parts, ignore_index=True)


def read_coveo(raw: Path, files=("release_10_23_2020.csv",)) -> pd.DataFrame:
    path = raw / files[0]
    t = read_csv_columns(path, {"User": ["session_id_hash"], "Event": ["product_action"],
                                "ItemId": ["product_skus_hash", "product_sku_hash"],
                                "Time": ["server_timestamp_epoch_ms"]})
    t = numeric(t, "Time", path)
    # sessions are built on ALL events (pageviews without a product included), views kept afterwards
    return t.to_pandas()


def read_retailrocket(raw: Path, files=("events.csv",)) -> pd.DataFrame:
    path = raw / files[0]
    t = read_csv_columns(path, {"Time": ["timestamp"], "User": ["visitorid"], "Event": ["event"], "ItemId": ["itemid"]})
    t = numeric(t, "Time", path)
    return to_frame(t, path, id_columns=("User",))


def read_diginetica(raw: Path, files=("train-item-views.csv",)) -> pd.DataFrame:
    path = raw / files[0]
    t = read_csv_columns(path, {"SessionId": ["sessionId", "session_id"], "ItemId": ["itemId", "item_id"],
                                "timeframe": ["timeframe"], "eventdate": ["eventdate"]}, sep=";")
    t = numeric(t, "timeframe", path)
    t = parse_time(t, "eventdate", "%Y-%m-%d", "ms", path)
    df = to_frame(t, path)
    # time (ms) = midnight of the session's earliest eventdate + timeframe
    start = df.groupby("SessionId")["eventdate"].transform("min")
    df["Time"] = start.to_numpy(dtype=np.int64) + df["timeframe"].to_numpy(dtype=np.int64)
    return df.drop(columns=["eventdate", "timeframe"])
