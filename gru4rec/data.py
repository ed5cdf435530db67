"""Reading and checking event data: one row per event with a session id, an item id and a time.

TSV/TXT (tab), CSV and Parquet, only the three needed columns. Every problem is a one-line
DataError that names the file and what is wrong.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError

FORMATS = {".tsv": "tsv", ".txt": "tsv", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _format_of(path: Path, fmt):
    if fmt:
        fmt = fmt.lower().lstrip(".")
        if fmt not in ("tsv", "txt", "csv", "parquet", "pq"):
            raise DataError(f"{path}: unknown format '{fmt}' (expected tsv, csv or parquet)")
        return {"txt": "tsv", "pq": "parquet"}.get(fmt, fmt)
    suffixes = [s.lower() for s in path.suffixes]
    for s in reversed(suffixes):
        if s in FORMATS:
            return FORMATS[s]
    raise DataError(f"{path}: cannot tell the format from the extension '{path.suffix}' "
                    f"(expected one of {', '.join(FORMATS)})")


def _missing_columns(path, wanted, present):
    missing = [c for c in wanted if c not in present]
    shown = ", ".join(map(str, present[:12])) + (" ..." if len(present) > 12 else "")
    return DataError(f"{path}: missing column(s) {', '.join(missing)}; the file has: {shown} "
                     f"(set the column names with -sk/-ik/-tk, or check the separator)")


def read_events(path, session_key: str = "SessionId", item_key: str = "ItemId", time_key: str = "Time",
                fmt: str | None = None) -> pd.DataFrame:
    """Read the session, item and time columns of an event file and check them."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected an events file")
    kind = _format_of(path, fmt)
    wanted = [session_key, item_key, time_key]
    if kind == "parquet":
        import pyarrow.parquet as pq
        try:
            pf = pq.ParquetFile(path)
        except Exception as e:
            raise DataError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0]})") from None
        present = pf.schema_arrow.names
        if any(c not in present for c in wanted):
            raise _missing_columns(path, wanted, present)
        df = pf.read(columns=wanted).to_pandas()
    else:
        sep = "\t" if kind == "tsv" else ","
        if path.stat().st_size == 0:
            raise DataError(f"{path}: the file is empty")
        try:
            header = pd.read_csv(path, sep=sep, nrows=0).columns.tolist()
        except pd.errors.EmptyDataError:
            raise DataError(f"{path}: the file is empty") from None
        if any(c not in header for c in wanted):
            raise _missing_columns(path, wanted, header)
        try:
            df = pd.read_csv(path, sep=sep, usecols=wanted, dtype={session_key: str, item_key: str},
                             keep_default_na=False, na_values=["", "NA", "NaN", "nan", "null", "None"])
        except (ValueError, pd.errors.ParserError) as e:
            raise DataError(f"{path}: cannot parse as {kind.upper()}: {str(e).splitlines()[0]}") from None
        df[session_key] = _ids(df[session_key])
        df[item_key] = _ids(df[item_key])
    return validate_events(df, session_key, item_key, time_key, source=str(path))


def _ids(col: pd.Series) -> pd.Series:
    """Text ids become int64 when every one of them is an integer, else stay strings."""
    values = col.dropna()
    if len(values) and values.str.fullmatch(r"[-+]?\d{1,18}").all():
        return pd.to_numeric(col, errors="coerce").astype("Int64") if col.isna().any() else col.astype(np.int64)
    return col


def validate_events(df: pd.DataFrame, session_key: str = "SessionId", item_key: str = "ItemId",
                    time_key: str = "Time", source: str = "<DataFrame>") -> pd.DataFrame:
    """Check an events DataFrame and return its three columns (ids as int64 or str, time numeric)."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
    wanted = [session_key, item_key, time_key]
    if any(c not in df.columns for c in wanted):
        raise _missing_columns(source, wanted, [str(c) for c in df.columns])
    if len(df) == 0:
        raise DataError(f"{source}: no events (the data has a header but no rows)")
    df = df[wanted]
    for key in (session_key, item_key):
        bad = df[key].isna().to_numpy()
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise DataError(f"{source}: column {key} has {int(bad.sum())} missing value(s) (first at data row {first + 1})")
    t = df[time_key]
    if pd.api.types.is_datetime64_any_dtype(t):
        if getattr(t.dt, "tz", None) is not None:
            t = t.dt.tz_convert("UTC").dt.tz_localize(None)
        t = (t - pd.Timestamp("1970-01-01")) / pd.Timedelta(seconds=1)
    elif not pd.api.types.is_numeric_dtype(t) or pd.api.types.is_bool_dtype(t):
        num = pd.to_numeric(t, errors="coerce")
        bad = num.isna().to_numpy() & t.notna().to_numpy() | t.isna().to_numpy()
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise DataError(f"{source}: column {time_key} must be numeric; {int(bad.sum())} value(s) are not "
                            f"(first at data row {first + 1}: {t.iloc[first]!r})")
        t = num
    if t.isna().any():
        bad = t.isna().to_numpy()
        first = int(np.flatnonzero(bad)[0])
        raise DataError(f"{source}: column {time_key} has {int(bad.sum())} missing value(s) (first at data row {first + 1})")
    out = pd.DataFrame({session_key: _plain_ids(df[session_key]), item_key: _plain_ids(df[item_key]),
                        time_key: t.to_numpy()}, index=df.index)
    return out


def _plain_ids(col: pd.Series):
    """Integer ids as int64 (never float), everything else as str."""
    if pd.api.types.is_integer_dtype(col):
        return col.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(col):
        v = col.to_numpy()
        if np.all(np.mod(v, 1) == 0):
            return v.astype(np.int64)
    return col.astype(str).to_numpy(dtype=object)
