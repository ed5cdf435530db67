"""Reading and checking event data: one row per event with a session id, an item id and a time.

TSV/TXT (tab), CSV and Parquet, read with pyarrow, only the three needed columns. Every problem
is a one-line DataError that names the file and what is wrong.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError, first_line

FORMATS = {".tsv": "tsv", ".txt": "tsv", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_FMT_NAMES = {ext.lstrip("."): kind for ext, kind in FORMATS.items()}  # fmt= takes 'tsv' or '.tsv'
_NULLS = ["", "NA", "N/A", "NaN", "nan", "NULL", "null", "None"]
# an id is read as an integer only when that is lossless: '007' or '+7' stay strings, so that
# they can never collide with '7'; 18 digits always fit in int64
_INTEGER_ID = r"^-?(?:0|[1-9][0-9]{0,17})$"


def _format_of(path: Path, fmt):
    if fmt:
        key = str(fmt).lower().lstrip(".")
        if key not in _FMT_NAMES:
            raise DataError(f"{path}: unknown format '{fmt}' (expected one of {', '.join(_FMT_NAMES)})")
        return _FMT_NAMES[key]
    for s in reversed([s.lower() for s in path.suffixes]):  # events.tsv.gz is a (compressed) TSV
        if s in FORMATS:
            return FORMATS[s]
    raise DataError(f"{path}: cannot tell the format from the extension '{path.suffix}' "
                    f"(supported: {', '.join(FORMATS)}, optionally compressed, e.g. .tsv.gz)")


def _missing_columns(source, wanted, present, in_file=True):
    missing = [c for c in wanted if c not in present]
    shown = ", ".join(map(str, present[:12])) + (" ..." if len(present) > 12 else "")
    hint = "set the column names with -sk/-ik/-tk, or check the separator" if in_file else \
        "pass session_key/item_key/time_key to name the columns"
    return DataError(f"{source}: missing column(s) {', '.join(missing)}; the {'file' if in_file else 'data'} has: "
                     f"{shown} ({hint})")


def read_events(path, session_key: str = "SessionId", item_key: str = "ItemId", time_key: str = "Time",
                fmt: str | None = None) -> pd.DataFrame:
    """Read the session, item and time columns of an event file and check them.

    Integer-looking text ids become int64, all other ids stay str (never float); datetime
    times become float seconds since the epoch.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected an events file")
    kind = _format_of(path, fmt)
    wanted = [session_key, item_key, time_key]
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: the file is empty")
        df = _read_parquet(path, wanted) if kind == "parquet" else _read_text(path, wanted, kind)
    except OSError as e:
        raise DataError(f"{path}: cannot read the file ({first_line(e)})") from None
    return validate_events(df, session_key, item_key, time_key, source=str(path))


def _read_parquet(path: Path, wanted) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(path)
    except pa.ArrowException as e:
        raise DataError(f"{path}: not a readable Parquet file ({first_line(e)})") from None
    present = pf.schema_arrow.names
    if any(c not in present for c in wanted):
        raise _missing_columns(path, wanted, present)
    try:
        return pf.read(columns=wanted).to_pandas()
    except pa.ArrowException as e:
        raise DataError(f"{path}: cannot read the Parquet data ({first_line(e)})") from None


def _read_text(path: Path, wanted, kind: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as csv
    parse = csv.ParseOptions(delimiter="\t" if kind == "tsv" else ",")
    try:
        with csv.open_csv(path, parse_options=parse) as reader:  # reads the first block only
            present = reader.schema.names
    except pa.ArrowInvalid as e:
        if "Empty CSV file" in str(e):
            raise DataError(f"{path}: the file is empty") from None
        raise DataError(f"{path}: cannot parse as {kind.upper()} ({first_line(e)})") from None
    if any(c not in present for c in wanted):
        # a wrong separator shows up here, as one mashed header name
        raise _missing_columns(path, wanted, present)
    ids = wanted[:2]
    # ids as text, converted below only when lossless; the time column's type is inferred over the
    # whole file (a text value anywhere makes it text, which validate_events reports with its row)
    convert = csv.ConvertOptions(include_columns=wanted, column_types={c: pa.string() for c in ids},
                                 null_values=_NULLS, strings_can_be_null=True)
    try:
        table = csv.read_csv(path, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as e:
        raise DataError(f"{path}: cannot parse as {kind.upper()} ({first_line(e)})") from None
    for name in ids:
        col = table[name]
        if col.null_count < len(col) and pc.all(pc.match_substring_regex(col, _INTEGER_ID)).as_py():
            table = table.set_column(table.schema.get_field_index(name), name, pc.cast(col, pa.int64()))
    # integer ids with gaps (nulls) become pandas' nullable Int64, never float
    return table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get) \
        if any(table[c].null_count for c in ids) else table.to_pandas()


def validate_events(df: pd.DataFrame, session_key: str = "SessionId", item_key: str = "ItemId",
                    time_key: str = "Time", source: str = "<DataFrame>") -> pd.DataFrame:
    """Check an events DataFrame and return its three columns (ids as int64 or str, time as float).

    Raises DataError for missing columns, no rows, missing ids and non-numeric times.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
    wanted = [session_key, item_key, time_key]
    if any(c not in df.columns for c in wanted):
        raise _missing_columns(source, wanted, [str(c) for c in df.columns], in_file=False)
    if len(df) == 0:
        raise DataError(f"{source}: no events (there is a header but no rows)")
    for key in (session_key, item_key):
        _no_missing(source, key, df[key].isna().to_numpy())
    return pd.DataFrame({session_key: _plain_ids(df[session_key]), item_key: _plain_ids(df[item_key]),
                         time_key: _seconds(source, time_key, df[time_key])}, index=df.index)


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
            raise DataError(f"{source}: column {key} must be numeric; {int(bad.sum())} value(s) are not "
                            f"(first at data row {first + 1}: {t.iloc[first]!r})")
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
        if np.all(np.mod(v, 1) == 0) and np.all(np.abs(v) < 2 ** 53):
            return v.astype(np.int64)
    elif col.dtype == object and pd.api.types.infer_dtype(col, skipna=False) == "integer":
        return col.to_numpy(dtype=np.int64)  # Python ints in an object column
    return col.astype(str).to_numpy(dtype=object)
