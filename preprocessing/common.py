"""The preprocessing steps shared by the datasets, written once.

Inside the pipeline every id column holds integer codes (pandas.factorize with sort=True, so the
code order is the order of the original ids); the original ids are restored only when the splits
are written. Codes keep a 100M-event log in a few GiB and let the per-session and per-item counts
be np.bincount calls instead of hash group-bys, which matters because the filter below is
repeated until it is stable.

Every step takes and returns a DataFrame with SessionId, ItemId, Time (User / Event before
sessions are built) and prints one progress line with what is left.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.outputs import markdown_table

from .errors import PreprocessingError

S, I, T = "SessionId", "ItemId", "Time"  # noqa: E741 (the column names, short as in the papers' notation)
USER, EVENT = "User", "Event"
SPLITS = ("train_full", "test", "train_tr", "train_valid")


# ---------------------------------------------------------------- progress and counting
def n_distinct(values) -> int:
    """Distinct non-missing values; cheap for integer codes and categoricals."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        values = values.cat.codes.to_numpy()
        values = values[values >= 0]
    v = np.asarray(values)
    if len(v) == 0:
        return 0
    if v.dtype.kind in "iu" and v.min() >= 0 and v.max() <= 4 * len(v) + 1024:
        return int(np.count_nonzero(np.bincount(v)))
    return int(pd.Series(v).nunique())


def log(step: str, df: pd.DataFrame | None = None, quiet: bool = False):
    if quiet:
        return
    if df is not None:
        groups = f"{n_distinct(df[S]):,} sessions" if S in df else f"{n_distinct(df[USER]):,} users"
        step = f"{step}: {len(df):,} events, {groups}, {n_distinct(df[I]):,} items"
    print(step, flush=True)


def require_events(df: pd.DataFrame, what: str):
    if len(df) == 0:
        raise PreprocessingError(f"no events left {what}")


# ---------------------------------------------------------------- ids
def encode(df: pd.DataFrame, column: str) -> pd.Index:
    """Replace `column` by integer codes in place (missing values become -1); return the labels."""
    codes, labels = pd.factorize(df[column], sort=True)
    df[column] = codes.astype(np.int32 if len(labels) < 2**31 - 1 else np.int64, copy=False)
    labels = pd.Index(labels)
    if labels.dtype.kind == "f" and np.all(np.mod(labels.to_numpy(), 1) == 0):
        labels = labels.astype(np.int64)  # integer ids read as float because some were missing
    return labels


def _take(df: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    return df[mask].reset_index(drop=True)


# ---------------------------------------------------------------- steps
def _reorder(df: pd.DataFrame, order: np.ndarray, drop=(), **extra) -> pd.DataFrame:
    """df's rows in `order`, column by column (one copy of each column, never of the frame)."""
    columns = {c: df[c].to_numpy()[order] for c in df.columns if c not in drop}
    return pd.DataFrame({**columns, **extra}, copy=False)


def sessionise(df: pd.DataFrame, gap) -> pd.DataFrame:
    """A new session starts when the user changes or when the gap to the user's previous event is
    strictly greater than `gap` (Time units). Session codes are 0, 1, ... in (user, time) order;
    the User column is dropped."""
    order = np.lexsort((df[I].to_numpy(), df[T].to_numpy(), df[USER].to_numpy()))  # also sorts sessions by (time, item)
    u, t = df[USER].to_numpy()[order], df[T].to_numpy()[order]
    new = np.ones(len(df), dtype=bool)
    new[1:] = (u[1:] != u[:-1]) | ((t[1:] - t[:-1]) > gap)
    del u
    session = (np.cumsum(new) - 1).astype(np.int32 if len(df) < 2**31 - 1 else np.int64)
    return _reorder(df, order, drop=(USER, T), **{S: session, T: t})


def mark_events(df: pd.DataFrame, value):
    """Replace the Event column by a flag: does the event equal `value` (e.g. an item view)?
    One byte an event instead of a category, and it travels through the re-sorting."""
    df[EVENT] = (df[EVENT] == value).to_numpy(dtype=bool, na_value=False)


def keep_events(df: pd.DataFrame) -> pd.DataFrame:
    """Keep the flagged events (see mark_events), drop the flag."""
    return _take(df, df[EVENT].to_numpy()).drop(columns=[EVENT])


def drop_missing_items(df: pd.DataFrame, quiet=False) -> pd.DataFrame:
    """Events without an item (code -1) cannot be recommended; say how many go."""
    missing = df[I].to_numpy() < 0
    if missing.any():
        log(f"Dropped {int(missing.sum()):,} event(s) without an item id", quiet=quiet)
        df = _take(df, ~missing)
    return df


def sort_events(df: pd.DataFrame) -> pd.DataFrame:
    """Sort by (session, time, item); codes sort like the ids they stand for. Events that come
    out of sessionise() are in this order already: checking is O(n), sorting is not."""
    s, t, i = df[S].to_numpy(), df[T].to_numpy(), df[I].to_numpy()
    ds, dt = np.diff(s), np.diff(t)
    if np.all((ds > 0) | ((ds == 0) & ((dt > 0) | ((dt == 0) & (np.diff(i) >= 0))))):
        return df
    return _reorder(df, np.lexsort((i, t, s)))


def drop_consecutive_duplicates(df: pd.DataFrame) -> pd.DataFrame:
    """Drop an event when it repeats the item of the previous event of the same session (df sorted)."""
    s, i = df[S].to_numpy(), df[I].to_numpy()
    repeat = np.zeros(len(df), dtype=bool)
    repeat[1:] = (s[1:] == s[:-1]) & (i[1:] == i[:-1])
    return _take(df, ~repeat)


def _counts_of(codes: np.ndarray) -> np.ndarray:
    """How often each event's own code occurs (a group size broadcast to the events)."""
    return np.bincount(codes)[codes] if len(codes) else codes


def drop_short_sessions(df: pd.DataFrame, min_length: int = 2) -> pd.DataFrame:
    return _take(df, _counts_of(df[S].to_numpy()) >= min_length)


def drop_rare_items(df: pd.DataFrame, min_support: int = 5) -> pd.DataFrame:
    return _take(df, _counts_of(df[I].to_numpy()) >= min_support)


def filter_until_stable(df: pd.DataFrame, min_session_length=2, min_item_support=5, quiet=False) -> pd.DataFrame:
    """Repeat "drop sessions shorter than min_session_length, then items with less support"
    until a round changes nothing (dropping an item can make a session too short and back)."""
    rounds = 0
    while True:
        n = len(df)
        df = drop_rare_items(drop_short_sessions(df, min_session_length), min_item_support)
        rounds += 1
        if len(df) == n:
            break
    log(
        f"Filtered sessions < {min_session_length} events and items < {min_item_support} events "
        f"({rounds} round(s) until stable)",
        df,
        quiet,
    )
    return df


# ---------------------------------------------------------------- splits (df sorted by session, time)
# A split is a boolean mask over the cleaned events: every split is a subset of them, so the four
# splits cost 4 bytes an event instead of four copies of the data.
def _session_starts(df: pd.DataFrame) -> np.ndarray:
    s = df[S].to_numpy()
    start = np.ones(len(s), dtype=bool)
    start[1:] = s[1:] != s[:-1]
    return start


def session_first_time(df: pd.DataFrame) -> np.ndarray:
    """Each event's session start time."""
    start = _session_starts(df)
    return df[T].to_numpy()[start][np.cumsum(start) - 1]


def _events_in_session(s: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """For every event, how many events of its session are in `mask`."""
    return np.bincount(s[mask], minlength=int(s.max()) + 1)[s] if len(s) else np.zeros(0, dtype=np.int64)


def _all(df) -> np.ndarray:
    return np.ones(len(df), dtype=bool)


def time_split(df: pd.DataFrame, boundary, within: np.ndarray | None = None):
    """(train, test) masks. test = sessions whose first event is at or after `boundary`; train =
    the events before it, in sessions that keep more than one event (a session straddling the
    boundary is cut, and its first part stays in train). `within` restricts both to a subset of
    whole sessions whose first events it contains (train_full, for the re-split)."""
    within = _all(df) if within is None else within
    test = within & (session_first_time(df) >= boundary)
    train = within & (df[T].to_numpy() < boundary)
    train &= _events_in_session(df[S].to_numpy(), train) > 1
    return train, test


def last_event_split(df: pd.DataFrame, within: np.ndarray | None = None):
    """(train, test) masks for the sequence-aware "last item" protocol: train = every sequence
    without its last event (at least 2 events left); test = those sequences in full, scored on
    their last event only after warming the model up on the rest."""
    within = _all(df) if within is None else within
    s = df[S].to_numpy()
    idx = np.flatnonzero(within)
    is_last = np.ones(len(idx), dtype=bool)
    is_last[:-1] = s[idx][1:] != s[idx][:-1]
    train = within.copy()
    train[idx[is_last]] = False
    train &= _events_in_session(s, train) > 1
    test = within & (_events_in_session(s, train) > 0)
    return train, test


# ---------------------------------------------------------------- statistics and output
@dataclass(frozen=True)
class TimeUnit:
    per_second: int  # Time units in one second (1 for seconds, 1000 for milliseconds)

    @property
    def day(self):
        return 86400 * self.per_second

    @property
    def hour(self):
        return 3600 * self.per_second

    def to_timestamp(self, t) -> str:
        ms = int(round(float(t) * 1000 / self.per_second))
        return pd.Timestamp(ms, unit="ms").isoformat()


def split_stats(df: pd.DataFrame, unit: TimeUnit) -> dict:
    if len(df) == 0:
        return {
            "events": 0,
            "sessions": 0,
            "items": 0,
            "days": 0.0,
            "first_time": "",
            "last_time": "",
            "session_length_mean": 0.0,
            "session_length_min": 0,
            "session_length_max": 0,
            "item_support_mean": 0.0,
        }
    lengths = np.diff(np.flatnonzero(np.append(_session_starts(df), True)))
    n_items = n_distinct(df[I])
    t = df[T].to_numpy()
    t0, t1 = t.min(), t.max()
    return {
        "events": int(len(df)),
        "sessions": int(len(lengths)),
        "items": n_items,
        "days": round(float(t1 - t0) / unit.day, 3),
        "first_time": unit.to_timestamp(t0),
        "last_time": unit.to_timestamp(t1),
        "session_length_mean": round(float(lengths.mean()), 3),
        "session_length_min": int(lengths.min()),
        "session_length_max": int(lengths.max()),
        "item_support_mean": round(len(df) / n_items, 3),
    }


def write_outputs(
    out_dir, df: pd.DataFrame, splits: dict, labels: dict, unit: TimeUnit, quiet=False, columns=None, review=None
) -> dict:
    """Write the splits (masks over df, written with the original ids), full.parquet (df) and the
    statistics into out_dir, all or nothing.

    Everything goes into a temporary directory beside out_dir first and is moved into place only
    when every file is complete, so a failure never leaves a mix of old and half-new files.
    columns: extra columns of stats.tsv, the same value on every row (the raw files' hashes);
    review(stats) -> Markdown appended to stats.md, called once the statistics are known and before
    anything is moved into place: it may raise (a failed check with strict) and nothing is written.
    """
    out_dir = Path(out_dir)
    try:
        return _write_outputs(out_dir, df, splits, labels, unit, quiet, columns or {}, review)
    except OSError as e:  # disk full, no permission, a file where a directory should be
        where = e.filename or out_dir
        raise PreprocessingError(
            f"{where}: cannot write the outputs ({e.strerror or e}); nothing was written"
        ) from None


def _write_outputs(out_dir: Path, df, splits, labels, unit, quiet, columns, review) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    stats = {}
    try:
        for name, mask in list(splits.items()) + [("full", None)]:
            part = df if mask is None else df[mask]  # one split in memory at a time
            stats[name] = split_stats(part, unit)
            table = pa.table(
                {
                    c: pa.array(labels[c].take(part[c].to_numpy()))
                    if labels.get(c) is not None
                    else pa.array(part[c].to_numpy())
                    for c in (S, I, T)
                }
            )
            pq.write_table(table, tmp / f"{name}.parquet")
            del part, table
        for name in SPLITS:
            s = stats[name]
            log(
                f"{name}: {s['events']:,} events, {s['sessions']:,} sessions, {s['items']:,} items, {s['days']} days",
                quiet=quiet,
            )
        notes = review(stats) if review is not None else ""
        table = pd.DataFrame(stats).T.rename_axis("split").assign(**columns)
        table.to_csv(tmp / "stats.tsv", sep="\t")
        (tmp / "stats.md").write_text(markdown_table(table.drop(columns=list(columns)).reset_index()) + notes)
        out_dir.mkdir(parents=True, exist_ok=True)
        for f in sorted(tmp.iterdir()):
            os.replace(f, out_dir / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return stats
