"""Reading and checking event data: one row per event with a session id, an item id and a time.

TSV/TXT (tab), CSV and Parquet, read by gru4rec.fileio.read_table, only the three needed columns.
Every problem is a one-line DataError that names the file and what is wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .errors import DataError
from .fileio import format_of, read_table

# an id is read as an integer only when that is lossless: '007' or '+7' stay strings, so that
# they can never collide with '7'; 18 digits always fit in int64
_INTEGER_ID = r"^-?(?:0|[1-9][0-9]{0,17})$"


def read_events(
    path, session_key: str = "SessionId", item_key: str = "ItemId", time_key: str = "Time", fmt: str | None = None
) -> pd.DataFrame:
    """Read the session, item and time columns of an event file and check them.

    Integer-looking text ids become int64, all other ids stay str (never float); datetime
    times become float seconds since the epoch.
    """
    ids = [session_key, item_key]
    kind = format_of(path, fmt) if Path(path).is_file() else fmt  # read_table says what is wrong otherwise
    table = read_table(
        path,
        [session_key, item_key, time_key],
        fmt=kind,
        types={c: pa.string() for c in ids},
        hint="set the column names with -sk/-ik/-tk, or check the separator",
    )
    if kind != "parquet":
        table = _integer_ids(table, ids)
    # integer ids with gaps (nulls) become pandas' nullable Int64, never float
    nullable = any(table[c].null_count for c in ids) and {pa.int64(): pd.Int64Dtype()}.get
    df = table.to_pandas(types_mapper=nullable) if nullable else table.to_pandas()
    return validate_events(df, session_key, item_key, time_key, source=str(path))


def _integer_ids(table: pa.Table, ids) -> pa.Table:
    """Text id columns as int64 where every value is an integer written plainly."""
    for name in ids:
        col = table[name]
        if col.null_count < len(col) and pc.all(pc.match_substring_regex(col, _INTEGER_ID)).as_py():
            table = table.set_column(table.schema.get_field_index(name), name, pc.cast(col, pa.int64()))
    return table


def validate_events(
    df: pd.DataFrame,
    session_key: str = "SessionId",
    item_key: str = "ItemId",
    time_key: str = "Time",
    source: str = "<DataFrame>",
) -> pd.DataFrame:
    """Check an events DataFrame and return its three columns (ids as int64 or str, time as float).

    Raises DataError for missing columns, no rows, missing ids and non-numeric times.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
    wanted = [session_key, item_key, time_key]
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)}; the data has: "
            f"{', '.join(map(str, df.columns[:12]))} (pass session_key/item_key/time_key to name the columns)"
        )
    if len(df) == 0:
        raise DataError(f"{source}: no events (there is a header but no rows)")
    for key in (session_key, item_key):
        _no_missing(source, key, df[key].isna().to_numpy())
    return pd.DataFrame(
        {
            session_key: _plain_ids(df[session_key]),
            item_key: _plain_ids(df[item_key]),
            time_key: _seconds(source, time_key, df[time_key]),
        },
        index=df.index,
    )


def _no_missing(source, key, bad: np.ndarray, what="missing value(s)"):
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(f"{source}: column {key} has {int(bad.sum())} {what} (first at data row {first + 1})")


def _seconds(source, key, t: pd.Series) -> np.ndarray:
    """Numeric times as float64; datetimes as seconds since the epoch; anything else is an error."""
    if isinstance(t.dtype, pd.CategoricalDtype):
        t = t.astype(t.cat.categories.dtype)
    if pd.api.types.is_datetime64_any_dtype(t):
        _no_missing(source, key, t.isna().to_numpy())
        if getattr(t.dt, "tz", None) is not None:
            t = t.dt.tz_convert("UTC").dt.tz_localize(None)
        return ((t - pd.Timestamp("1970-01-01")) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64)
    if pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t):
        num = t
    else:
        num = pd.to_numeric(t, errors="coerce")
        bad = (num.isna() & t.notna()).to_numpy()
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{source}: column {key} must be numeric; {int(bad.sum())} value(s) are not "
                f"(first at data row {first + 1}: {t.iloc[first]!r})"
            )
    values = num.to_numpy(dtype=np.float64, na_value=np.nan)
    _no_missing(source, key, ~np.isfinite(values), "missing or infinite value(s)")
    return values


def _plain_ids(col: pd.Series) -> np.ndarray:
    """Integer ids as int64 (never float), everything else as str."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype(col.cat.categories.dtype)
    if pd.api.types.is_bool_dtype(col):
        return col.astype(str).to_numpy(dtype=object)
    if pd.api.types.is_integer_dtype(col):
        return col.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(col):
        v = col.to_numpy(dtype=np.float64)
        if np.all(np.mod(v, 1) == 0) and np.all(np.abs(v) < 2**53):
            return v.astype(np.int64)
    elif col.dtype == object and pd.api.types.infer_dtype(col, skipna=False) == "integer":
        return col.to_numpy(dtype=np.int64)  # Python ints in an object column
    return col.astype(str).to_numpy(dtype=object)
