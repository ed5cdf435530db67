"""Readers of the raw formats: column-selective and streamed in blocks, ids as in the source.

A reader returns a DataFrame with ItemId, Time (a number in the dataset's time unit) and either
SessionId (sessions given by the source) or User (sessions built later), plus Event where the
source has several event types and the events are filtered after sessions are built. Only the
needed columns are parsed, with explicit types, block by block; a block is reduced (event filter,
time parsed to an integer) before the next one is read, so the peak memory follows what is kept,
not the size of the text file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gru4rec.fileio import read_table

from .errors import PreprocessingError

STRING_IDS = pa.dictionary(pa.int32(), pa.string())  # hashed ids: stored once, categorical in pandas
# times must lie in the range of nanosecond timestamps (1677-09-21 .. 2262-04-11 UTC), in seconds:
# anything outside is a corrupt value or a wrong unit (milliseconds read as seconds), never data
TIME_RANGE = (-9_223_372_036, 9_223_372_036)
TIME_RANGE_TEXT = "between 1677-09-21 and 2262-04-11 UTC"


def read_csv(
    path: Path,
    wanted: dict,
    types: dict,
    sep=",",
    names=None,
    reduce: Callable[[pa.Table, int], pa.Table] | None = None,
) -> pa.Table:
    """The needed columns of a raw delimited text file, renamed to the wanted output names
    (gru4rec.fileio.read_table, whatever the file's extension; names: the columns of a file
    without a header).

    wanted: output name -> accepted source names; types: output name -> Arrow type;
    reduce(block, first_row) shrinks each block (filter, parse times) before the next is read.
    """
    return read_table(
        path,
        wanted,
        fmt="csv",
        sep=sep,
        names=names,
        types=types,
        reduce=reduce,
        error=PreprocessingError,
        compressed=False,
    )


def parse_time(
    table: pa.Table, column: str, fmt: str, path: Path, first_row: int, seconds: str = "int", label: str | None = None
) -> pa.Table:
    """Parse a text time column (UTC) to a number: whole seconds (seconds='int', floored),
    fractional seconds ('float'), or milliseconds ('ms'). fmt: a strptime format or 'ISO8601'.
    label: the column's name in the file, for the error message."""
    col = table[column]
    label = label or column
    if col.null_count:
        idx = pc.indices_nonzero(pc.is_null(col))[0].as_py()
        raise PreprocessingError(f"{path}: column {label}: missing time at data row {first_row + idx + 1:,}")
    if fmt == "ISO8601":
        text = pd.Series(col.to_numpy(zero_copy_only=False))
        parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
        bad = parsed.isna().to_numpy()
        if bad.any():
            idx = int(np.flatnonzero(bad)[0])
            raise PreprocessingError(
                f"{path}: column {label}: cannot parse time {text.iloc[idx]!r} at data row "
                f"{first_row + idx + 1:,} (expected ISO 8601, e.g. 2014-04-01T03:00:00.124Z)"
            )
        # microseconds: int64 holds them for 292,000 years (nanoseconds overflow after 2262)
        us = parsed.dt.tz_localize(None).to_numpy().astype("datetime64[us]").astype(np.int64)
    else:
        ts = pc.strptime(col, format=fmt, unit="ms", error_is_null=True)
        if ts.null_count:
            idx = pc.indices_nonzero(pc.is_null(ts))[0].as_py()
            raise PreprocessingError(
                f"{path}: column {label}: cannot parse time {col[idx].as_py()!r} at data row "
                f"{first_row + idx + 1:,} (expected format {fmt})"
            )
        us = pc.cast(ts, pa.int64()).to_numpy() * 1000
    out_of_range(us / 1e6, 1, path, label, first_row, shown=lambda idx: col[idx].as_py())
    values = {"int": us // 1_000_000, "float": us / 1e6, "ms": us // 1000}[seconds]
    return table.set_column(table.column_names.index(column), column, pa.array(values))


def out_of_range(values, per_second: float, path: Path, label: str, first_row: int = 0, shown=None, hint: str = ""):
    """A time outside TIME_RANGE (values in units of 1/per_second s) is an error naming the file,
    the column, the value and its data row (first_row: the row of values[0])."""
    v = np.asarray(values)
    if len(v) == 0:
        return
    low, high = TIME_RANGE[0] * per_second, TIME_RANGE[1] * per_second
    bad = ~((v >= low) & (v <= high))
    if bad.any():
        idx = int(np.flatnonzero(bad)[0])
        value = shown(idx) if shown is not None else v[idx].item()
        raise PreprocessingError(
            f"{path}: column {label}: time {value!r} at data row {first_row + idx + 1:,} is out of range "
            f"(expected {TIME_RANGE_TEXT}{hint})"
        )


def require_numeric(
    table: pa.Table, column: str, path: Path, per_second: float | None = None, label: str | None = None, hint=""
) -> pa.Table:
    """No missing values in a numeric column; with per_second (a time column: units in a second)
    every value within TIME_RANGE. label: the column's name in the file."""
    col = table[column]
    label = label or column
    if col.null_count:
        idx = pc.indices_nonzero(pc.is_null(col))[0].as_py()
        raise PreprocessingError(
            f"{path}: column {label} has {col.null_count:,} missing value(s) (first at data row {idx + 1:,})"
        )
    if per_second is not None:
        out_of_range(col.to_numpy(), per_second, path, label, hint=hint)
    return table


def drop_null_ids(table: pa.Table, columns, path: Path, quiet=False) -> pa.Table:
    """Events without a session / user id cannot be placed in a session; say how many go."""
    for c in columns:
        if c in table.column_names and table[c].null_count:
            n = table[c].null_count
            table = table.filter(pc.is_valid(table[c]))
            if not quiet:
                print(f"{path.name}: dropped {n:,} event(s) without {c}", flush=True)
    return table


def to_frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(split_blocks=True, self_destruct=True)


# ------------------------------------------------------------------------------------------------
# One reader per raw format. Time units: Yoochoose and Rees46 in seconds, the others in ms.


def read_yoochoose(
    raw: Path, files=("yoochoose-clicks.dat", "yoochoose-test.dat"), seconds="int", quiet=False
) -> pd.DataFrame:
    """No header: session, ISO time, item, category. The newer recipe floors times to whole
    seconds; RSC15 (the first paper) keeps the fraction (seconds='float')."""
    names = ["SessionId", "TimeStr", "ItemId", "Category"]
    parts = []
    for name in files:
        path = raw / name

        def reduce(block, first_row, path=path):
            return parse_time(block, "Time", "ISO8601", path, first_row, seconds, "2 (time)")

        t = read_csv(
            path,
            {"SessionId": ["SessionId"], "Time": ["TimeStr"], "ItemId": ["ItemId"]},
            {"SessionId": pa.int64(), "Time": pa.string(), "ItemId": pa.int64()},
            names=names,
            reduce=reduce,
        )
        parts.append(drop_null_ids(t, ("SessionId", "ItemId"), path, quiet))
    return to_frame(pa.concat_tables(parts))


def read_rees46(raw: Path, files=("2019-Oct.csv", "2019-Nov.csv"), quiet=False) -> pd.DataFrame:
    """event_time ('2019-10-01 00:00:00 UTC'), event_type, product_id, ..., user_id. The views are
    kept block by block (Rees46 builds sessions on views only), so only they are ever held."""
    parts = []
    for name in files:
        path = raw / name

        def reduce(block, first_row, path=path):
            block = block.filter(pc.equal(block["Event"], "view")).drop_columns(["Event"])
            return parse_time(block, "Time", "%Y-%m-%d %H:%M:%S UTC", path, first_row, "int", "event_time")

        t = read_csv(
            path,
            {"Time": ["event_time"], "Event": ["event_type"], "ItemId": ["product_id"], "User": ["user_id"]},
            {"Time": pa.string(), "Event": pa.string(), "ItemId": pa.int64(), "User": pa.int64()},
            reduce=reduce,
        )
        parts.append(drop_null_ids(t, ("User",), path, quiet))
    return to_frame(pa.concat_tables(parts))


def read_coveo(raw: Path, files=("release_10_23_2020.csv",), quiet=False) -> pd.DataFrame:
    """browsing events: session_id_hash, product_action ('detail' = view), product_skus_hash,
    server_timestamp_epoch_ms. Sessions are built on ALL events (a pageview without a product
    bridges a gap), so every event is kept here with its action."""
    path = raw / files[0]
    _not_the_sigir_2021_release(raw, path)
    t = read_csv(
        path,
        {
            "User": ["session_id_hash"],
            "Event": ["product_action"],
            "ItemId": ["product_skus_hash"],
            "Time": ["server_timestamp_epoch_ms"],
        },
        {"User": STRING_IDS, "Event": STRING_IDS, "ItemId": STRING_IDS, "Time": pa.int64()},
    )
    t = require_numeric(t, "Time", path, 1000, "server_timestamp_epoch_ms")
    return to_frame(drop_null_ids(t, ("User",), path, quiet))


def _not_the_sigir_2021_release(raw: Path, path: Path):
    """Coveo published two browsing logs: the 2020 shopper-intent release the recipe is for, and the
    SIGIR eCom 2021 Data Challenge data (browsing_train.csv, product_sku_hash), which differs in
    sessions, period and size. Refuse the second, whatever its file is called."""
    from .fetch import COVEO_SIGIR_2021

    if not path.exists() and (raw / "browsing_train.csv").is_file():
        raise PreprocessingError(f"{path}: not found, but {raw / 'browsing_train.csv'} is: {COVEO_SIGIR_2021}")
    try:
        with open(path, "rb") as f:
            header = f.readline(4096).decode("utf-8", errors="replace").lstrip("\ufeff").strip()
    except OSError:
        return  # the reader says what is wrong with the file
    columns = [c.strip().strip('"') for c in header.split(",")]
    if "product_sku_hash" in columns and "product_skus_hash" not in columns:
        raise PreprocessingError(f"{path}: has the column product_sku_hash: {COVEO_SIGIR_2021}")


def read_retailrocket(raw: Path, files=("events.csv",), quiet=False) -> pd.DataFrame:
    """timestamp (ms), visitorid, event (view / addtocart / transaction), itemid, transactionid.
    Sessions are built on all events, then the views are kept."""
    path = raw / files[0]
    t = read_csv(
        path,
        {"Time": ["timestamp"], "User": ["visitorid"], "Event": ["event"], "ItemId": ["itemid"]},
        {"Time": pa.int64(), "User": pa.int64(), "Event": STRING_IDS, "ItemId": pa.int64()},
    )
    t = require_numeric(t, "Time", path, 1000, "timestamp")
    return to_frame(drop_null_ids(t, ("User",), path, quiet))


def read_diginetica(raw: Path, files=("train-item-views.csv",), quiet=False) -> pd.DataFrame:
    """';'-separated sessionId;userId;itemId;timeframe;eventdate (the shared sample spells the
    header in snake_case). Time (ms) = midnight UTC of the session's earliest eventdate + timeframe."""
    path = raw / files[0]
    t = read_csv(
        path,
        {
            "SessionId": ["sessionId", "session_id"],
            "ItemId": ["itemId", "item_id"],
            "timeframe": ["timeframe"],
            "eventdate": ["eventdate"],
        },
        {"SessionId": pa.int64(), "ItemId": pa.int64(), "timeframe": pa.int64(), "eventdate": pa.date32()},
        sep=";",
    )
    t = require_numeric(t, "timeframe", path, 1000)  # ms since the session's first day
    t = require_numeric(t, "eventdate", path)
    t = t.set_column(t.column_names.index("eventdate"), "eventdate", pc.cast(t["eventdate"], pa.int32()))
    days = t["eventdate"].to_numpy()
    out_of_range(days, 1 / 86400, path, "eventdate", shown=lambda i: str(np.datetime64(int(days[i]), "D")))
    df = to_frame(drop_null_ids(t, ("SessionId", "ItemId"), path, quiet))
    day_ms = df["eventdate"].to_numpy(dtype=np.int64) * 86_400_000  # days since 1970-01-01 -> ms
    start = pd.Series(day_ms).groupby(df["SessionId"].to_numpy()).transform("min").to_numpy()
    df["Time"] = start + df["timeframe"].to_numpy(dtype=np.int64)
    out_of_range(df["Time"].to_numpy(), 1000, path, "eventdate + timeframe")
    return df.drop(columns=["eventdate", "timeframe"])
