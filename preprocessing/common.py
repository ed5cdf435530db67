"""The preprocessing steps shared by the datasets, written once.

Every step takes and returns a DataFrame with integer/str columns SessionId, ItemId, Time (and
User/Event where a reader provides them) and prints one progress line with what is left.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import PreprocessingError

S, I, T = "SessionId", "ItemId", "Time"
SPLITS = ("train_full", "test", "train_tr", "train_valid")


def log(step: str, df: pd.DataFrame | None = None, quiet: bool = False):
    if quiet:
        return
    if df is None:
        print(step, flush=True)
        return
    groups = f"{df[S].nunique():,} sessions" if S in df else f"{df['User'].nunique():,} users"
    print(f"{step}: {len(df):,} events, {groups}, {df[I].nunique():,} items", flush=True)


def sessionise(df: pd.DataFrame, gap, user: str = "User") -> pd.DataFrame:
    """A new session starts when the user changes or when the gap to their previous event is
    strictly greater than `gap` (same unit as Time). Session ids are 1, 2, ... in (user, time) order."""
    order = np.lexsort((df[T].to_numpy(), df[user].to_numpy()))
    df = df.iloc[order]
    u, t = df[user].to_numpy(), df[T].to_numpy()
    new = np.ones(len(df), dtype=bool)
    new[1:] = (u[1:] != u[:-1]) | ((t[1:] - t[:-1]) > gap)
    return df.assign(**{S: np.cumsum(new)}).drop(columns=[user]).reset_index(drop=True)


def keep_events(df: pd.DataFrame, column: str, value) -> pd.DataFrame:
    return df[df[column] == value].drop(columns=[column]).reset_index(drop=True)


def sort_events(df: pd.DataFrame) -> pd.DataFrame:
    """Sort by (session, time, item)."""
    order = np.lexsort((_sort_key(df[I]), df[T].to_numpy(), _sort_key(df[S])))
    return df.iloc[order].reset_index(drop=True)


def _sort_key(col: pd.Series):
    v = col.to_numpy()
    return v if v.dtype.kind in "iuf" else pd.factorize(col, sort=True)[0]


def drop_consecutive_duplicates(df: pd.DataFrame) -> pd.DataFrame:
    """Drop an event when it repeats the item of the previous event of the same session (df sorted)."""
    s, i = df[S].to_numpy(), df[I].to_numpy()
    repeat = np.zeros(len(df), dtype=bool)
    repeat[1:] = (s[1:] == s[:-1]) & (i[1:] == i[:-1])
    return df[~repeat].reset_index(drop=True)


def drop_short_sessions(df: pd.DataFrame, min_length: int = 2) -> pd.DataFrame:
    length = df.groupby(S, sort=False)[S].transform("size").to_numpy()
    return df[length >= min_length].reset_index(drop=True)


def drop_rare_items(df: pd.DataFrame, min_support: int = 5) -> pd.DataFrame:
    support = df.groupby(I, sort=False)[I].transform("size").to_numpy()
    return df[support >= min_support].reset_index(drop=True)


def filter_until_stable(df: pd.DataFrame, min_session_length=2, min_item_support=5, quiet=False) -> pd.DataFrame:
    """Repeat: drop sessions shorter than min_session_length, then items with less support, until nothing changes."""
    rounds = 0
    while True:
        n = len(df)
        df = drop_rare_items(drop_short_sessions(df, min_session_length), min_item_support)
        rounds += 1
        if len(df) == n:
            break
    log(f"Filtered sessions < {min_session_length} events and items < {min_item_support} events "
        f"({rounds} round(s) until stable)", df, quiet)
    return df


def time_split(df: pd.DataFrame, boundary):
    """test = sessions whose first event is at or after `boundary`; train = the events before it,
    in sessions that keep more than one event (a session straddling the boundary is cut)."""
    first = df.groupby(S, sort=False)[T].transform("min").to_numpy()
    test = df[first >= boundary]
    train = drop_short_sessions(df[df[T].to_numpy() < boundary])
    return train.reset_index(drop=True), test.reset_index(drop=True)


def last_event_split(df: pd.DataFrame):
    """Sequence-aware protocol: train = every sequence without its last event; test = the full
    sequences (the model warms up on the prefix and is scored on the last event only)."""
    is_last = np.zeros(len(df), dtype=bool)
    s = df[S].to_numpy()
    is_last[-1:] = True
    is_last[:-1] = s[1:] != s[:-1]
    train = drop_short_sessions(df[~is_last])
    test = df[df[S].isin(train[S].unique())]
    return train.reset_index(drop=True), test.reset_index(drop=True)


@dataclass
class TimeUnit:
    per_second: float   # Time units in one second (1 for seconds, 1000 for milliseconds)

    @property
    def day(self):
        return 86400 * self.per_second

    @property
    def hour(self):
        return 3600 * self.per_second

    def to_timestamp(self, t):
        return pd.Timestamp(float(t) / self.per_second, unit="s")


def split_stats(df: pd.DataFrame, unit: TimeUnit) -> dict:
    if len(df) == 0:
        return {"events": 0, "sessions": 0, "items": 0, "days": 0.0, "first_time": "", "last_time": "",
                "session_length_mean": 0.0, "session_length_min": 0, "session_length_max": 0,
                "item_support_mean": 0.0}
    lengths = df.groupby(S, sort=False).size()
    n_items = df[I].nunique()
    t0, t1 = df[T].min(), df[T].max()
    return {"events": int(len(df)), "sessions": int(len(lengths)), "items": int(n_items),
            "days": round(float(t1 - t0) / unit.day, 3),
            "first_time": unit.to_timestamp(t0).isoformat(), "last_time": unit.to_timestamp(t1).isoformat(),
            "session_length_mean": round(float(lengths.mean()), 3), "session_length_min": int(lengths.min()),
            "session_length_max": int(lengths.max()), "item_support_mean": round(len(df) / n_items, 3)}


def write_outputs(out_dir, splits: dict, full: pd.DataFrame, unit: TimeUnit, quiet=False) -> dict:
    """Write the splits, full.parquet and the statistics into out_dir, all or nothing.

    Everything is written into a temporary directory beside out_dir first and moved into place
    only when every file is complete.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stats = {name: split_stats(df, unit) for name, df in list(splits.items()) + [("full", full)]}
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for name, df in list(splits.items()) + [("full", full)]:
            table = pa.Table.from_pandas(df[[S, I, T]].reset_index(drop=True), preserve_index=False)
            pq.write_table(table, tmp / f"{name}.parquet")
        table = pd.DataFrame(stats).T.rename_axis("split")
        table.to_csv(tmp / "stats.tsv", sep="\t")
        (tmp / "stats.md").write_text(_markdown(table))
        out_dir.mkdir(parents=True, exist_ok=True)
        for f in tmp.iterdir():
            os.replace(f, out_dir / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for name in SPLITS:
        s = stats[name]
        log(f"{name}: {s['events']:,} events, {s['sessions']:,} sessions, {s['items']:,} items, "
            f"{s['days']} days", quiet=quiet)
    return stats


def _markdown(table: pd.DataFrame) -> str:
    cols = ["split"] + list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, row in table.iterrows():
        lines.append("| " + " | ".join([str(name)] + [str(v) for v in row.tolist()]) + " |")
    return "\n".join(lines) + "\n"


def require_events(df: pd.DataFrame, what: str):
    if len(df) == 0:
        raise PreprocessingError(f"no events left {what}")
