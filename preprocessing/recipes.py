"""Each public dataset is a reader plus a few settings; the steps themselves are in common.py.

Facts per dataset (the papers' preprocessing, Hidasi & Czapp 2023 and Hidasi et al. 2016):

| dataset      | sessions                 | event filter                 | unit | t_split        | D      |
|--------------|--------------------------|------------------------------|------|----------------|--------|
| yoochoose    | given                    | (clicks only)                | s    | last event     | 1 day  |
| rees46       | user + 1 h gap           | views, BEFORE sessionising   | s    | 2019-12-01 UTC | 1 day  |
| coveo        | hashed session + 1 h gap | views, AFTER sessionising    | ms   | last event     | 1 day  |
| retailrocket | visitor + 1 h gap        | views, AFTER sessionising    | ms   | 1442545200000  | 7 days |
| diginetica   | given                    | (views only)                 | ms   | last event     | 7 days |

All of them: sort by (session, time, item), drop consecutive duplicates, then repeat "drop
length-1 sessions, drop items with fewer than 5 events" until stable; test = sessions starting
in the last D before t_split; train_tr/train_valid the same with 2D. RSC15 keeps the first
paper's recipe (rsc15()). A training window limits train_full and train_tr only (split()).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from . import checks, common, readers
from .common import EVENT, USER, I, S, T, TimeUnit, log
from .errors import PreprocessingError

SECONDS, MILLISECONDS = TimeUnit(1), TimeUnit(1000)


@dataclass(frozen=True)
class Recipe:
    name: str
    read: Callable[..., pd.DataFrame] | None  # read(raw_dir, quiet=...) -> events
    unit: TimeUnit
    test_days: float = 1
    t_split: float | None = None  # None: the time of the last event
    session_gap_hours: float | None = None  # sessions from users: a gap above this starts a new one
    keep_event: object = None  # the Event value to keep (item views), if the reader has Event
    sessionise_first: bool = False  # build sessions on ALL events, then keep keep_event
    dedup: bool = True
    min_item_support: int = 5
    min_session_length: int = 2
    split: str = "time"  # "time" or "last" (hold out each sequence's last event)


RECIPES = {
    "yoochoose": Recipe("yoochoose", readers.read_yoochoose, SECONDS, test_days=1),
    # the reader keeps only the views, before sessions are built
    "rees46": Recipe("rees46", readers.read_rees46, SECONDS, test_days=1, t_split=1575158400, session_gap_hours=1),
    "coveo": Recipe(
        "coveo",
        readers.read_coveo,
        MILLISECONDS,
        test_days=1,
        session_gap_hours=1,
        keep_event="detail",
        sessionise_first=True,
    ),
    "retailrocket": Recipe(
        "retailrocket",
        readers.read_retailrocket,
        MILLISECONDS,
        test_days=7,
        t_split=1442545200000,
        session_gap_hours=1,
        keep_event="view",
        sessionise_first=True,
    ),
    "diginetica": Recipe("diginetica", readers.read_diginetica, MILLISECONDS, test_days=7),
}


def clean(df: pd.DataFrame, recipe: Recipe, quiet=False):
    """Ids to codes, event filter, sessions, dedup and the repeated filter: everything before the
    split. Returns (events with coded ids sorted by session and time, labels to decode them)."""
    labels = {I: common.encode(df, I)}
    if S in df:
        labels[S] = common.encode(df, S)
    if USER in df:
        common.encode(df, USER)
    if recipe.keep_event is not None:
        if EVENT not in df:
            raise PreprocessingError(f"{recipe.name}: keeping '{recipe.keep_event}' events needs an event column")
        common.mark_events(df, recipe.keep_event)
    pa.default_memory_pool().release_unused()  # the raw ids' Arrow buffers: give them back now
    log(f"Read {recipe.name}", df, quiet)
    if recipe.keep_event is not None and not recipe.sessionise_first:
        df = common.keep_events(df)
        log(f"Kept '{recipe.keep_event}' events", df, quiet)
    if recipe.session_gap_hours is not None:
        if USER not in df:
            raise PreprocessingError(f"{recipe.name}: sessions from a gap need a user column")
        df = common.sessionise(df, recipe.session_gap_hours * recipe.unit.hour)
        labels[S] = pd.RangeIndex(1, int(df[S].max()) + 2 if len(df) else 1)  # new sessions: ids 1, 2, ...
        log(f"Built sessions: same user, gaps up to {recipe.session_gap_hours:g} h", df, quiet)
    if recipe.keep_event is not None and recipe.sessionise_first:
        df = common.keep_events(df)
        log(f"Kept '{recipe.keep_event}' events", df, quiet)
    df = common.drop_missing_items(df, quiet)
    common.require_events(
        df, f"after keeping the '{recipe.keep_event}' events" if recipe.keep_event is not None else "to process"
    )
    df = common.sort_events(df)
    if recipe.dedup:
        df = common.drop_consecutive_duplicates(df)
        log("Dropped consecutive duplicates", df, quiet)
    df = common.filter_until_stable(df, recipe.min_session_length, recipe.min_item_support, quiet)
    common.require_events(
        df,
        f"after filtering sessions shorter than {recipe.min_session_length} and items "
        f"with fewer than {recipe.min_item_support} events",
    )
    return df, labels


def check_window(recipe: Recipe, window_days: float | None):
    """A training window needs a time split."""
    if window_days and recipe.split == "last":
        raise PreprocessingError(
            f"{recipe.name}: train_window_days needs a time split (this dataset holds out each sequence's "
            "last event: split mode 'last')"
        )


def split(df: pd.DataFrame, recipe: Recipe, window_days: float | None = None) -> dict:
    """The four splits as boolean masks over the cleaned events. window_days: train_full keeps only
    the sessions starting in the last window_days before the test period, and train_tr those in the
    last window_days before the validation period (checks.window). The tuning split is made from
    train_full before its window, so the window changes train_full and train_tr only: test and
    train_valid are the same with and without it (whatever W is, also W <= D)."""
    check_window(recipe, window_days)
    if recipe.split == "last":
        train_full, test = common.last_event_split(df)
        train_tr, train_valid = common.last_event_split(df, within=train_full)
        why = "too few sequences with 3 or more events"
    else:
        t_split = recipe.t_split if recipe.t_split is not None else df[T].max()
        d = recipe.test_days * recipe.unit.day
        train_full, test = common.time_split(df, t_split - d)
        train_tr, train_valid = common.time_split(df, t_split - 2 * d, within=train_full)
        if window_days:
            train_full = checks.window(df, train_full, t_split - d, window_days, recipe.unit)
            train_tr = checks.window(df, train_tr, t_split - 2 * d, window_days, recipe.unit)
        why = f"the data must cover more than {2 * recipe.test_days:g} days before the split point"
        if window_days:
            why += f", and the {window_days:g}-day training window must hold sessions"
    return _nonempty(
        recipe.name, {"train_full": train_full, "test": test, "train_tr": train_tr, "train_valid": train_valid}, why
    )


def _nonempty(name: str, splits: dict, why: str) -> dict:
    empty = [split for split, mask in splits.items() if not mask.any()]
    if empty:
        raise PreprocessingError(f"{name}: the {', '.join(empty)} split(s) would be empty: {why}")
    return splits


def window_note(days: float | None) -> str | None:
    if not days:
        return None
    return (
        f"Training window: {days:g} days (train_full: sessions starting in the {days:g} days before the test "
        "period; train_tr: before the validation period; test and train_valid unchanged)"
    )


def raw_columns(raw_files) -> dict:
    """The raw files' hashes as a column of stats.tsv (the same value on every row)."""
    return {"raw_sha256": " ".join(f"{e.name}:{e.sha256}" for e in raw_files)} if raw_files else {}


def run(
    recipe: Recipe, df: pd.DataFrame, out_dir, quiet=False, settings: checks.Settings | None = None, raw_files=()
) -> dict:
    """Clean, split, check and write one dataset; the whole recipe in one place."""
    settings = settings or checks.Settings()
    df, labels = clean(df, recipe, quiet)
    splits = split(df, recipe, settings.train_window_days)
    review = checks.prepare(
        recipe.name,
        df,
        splits,
        settings,
        quiet,
        time_split=recipe.split != "last",
        window_note=window_note(settings.train_window_days),
        raw_files=raw_files,
    )
    stats = common.write_outputs(
        out_dir, df, splits, labels, recipe.unit, quiet, columns=raw_columns(raw_files), review=review
    )
    log(
        f"Done: {recipe.name} -> {out_dir}: train_full {stats['train_full']['events']:,} events, "
        f"test {stats['test']['events']:,} events, {stats['full']['items']:,} items",
        quiet=quiet,
    )
    return stats


# ------------------------------------------------------------------------------------------------
def rsc15(raw: Path, out_dir, quiet=False, settings: checks.Settings | None = None, raw_files=()) -> dict:
    """The first paper's RSC15 recipe: clicks only, no dedup, one pass of each filter (sessions of
    length 1, items below 5, sessions below 2), split on each session's LAST event. With a training
    window the splits are made as without it (the test's unknown-item filter included) and only
    then are train_full and train_tr limited to the window: test and train_valid do not change."""
    settings = settings or checks.Settings()
    days = settings.train_window_days
    df = readers.read_yoochoose(Path(raw), files=("yoochoose-clicks.dat",), seconds="float", quiet=quiet)
    labels = {I: common.encode(df, I), S: common.encode(df, S)}
    log("Read rsc15", df, quiet)
    df = common.drop_short_sessions(df, 2)
    df = common.drop_rare_items(df, 5)
    df = common.drop_short_sessions(df, 2)
    log("Filtered sessions < 2, items < 5, sessions < 2 (one pass each)", df, quiet)
    common.require_events(df, "after filtering short sessions and rare items")
    df = common.sort_events(df)
    train_full, test, boundary, dropped_test = _rsc15_split(df)
    train_tr, train_valid, boundary_tr, dropped_valid = _rsc15_split(df, within=train_full)
    if days:
        train_full = checks.window(df, train_full, boundary, days, SECONDS)
        train_tr = checks.window(df, train_tr, boundary_tr, days, SECONDS)
    splits = _nonempty(
        "rsc15",
        {"train_full": train_full, "test": test, "train_tr": train_tr, "train_valid": train_valid},
        "the data must cover more than two days"
        + (f" and the {days:g}-day training window hold sessions" if days else ""),
    )
    review = checks.prepare(
        "rsc15",
        df,
        splits,
        settings,
        quiet,
        window_note=window_note(days),
        raw_files=raw_files,
        dropped={("train_full", "test"): dropped_test, ("train_tr", "train_valid"): dropped_valid},
        overlap_hours=SECONDS.hour,
    )
    stats = common.write_outputs(
        out_dir, df, splits, labels, SECONDS, quiet, columns=raw_columns(raw_files), review=review
    )
    log(
        f"Done: rsc15 -> {out_dir}: train_full {stats['train_full']['events']:,} events, "
        f"test {stats['test']['events']:,} events",
        quiet=quiet,
    )
    return stats


def _rsc15_split(df: pd.DataFrame, within: np.ndarray | None = None):
    """(train, test, boundary, dropped): test = sessions ending in the last day (of `within`), less
    the items unknown to train, then sessions of at least 2 events; train = the sessions ending
    before; boundary: the start of that last day; dropped: checks.unknown_items of the test events
    the item filter dropped (of the sessions ending in the last day)."""
    within = np.ones(len(df), dtype=bool) if within is None else within
    s, t, i = df[S].to_numpy(), df[T].to_numpy(), df[I].to_numpy()
    start = np.ones(len(df), dtype=bool)
    start[1:] = s[1:] != s[:-1]
    last = np.maximum.reduceat(t, np.flatnonzero(start))[np.cumsum(start) - 1]  # each event's session end
    boundary = t[within].max() - 86400
    train = within & (last < boundary)
    ending = within & (last >= boundary)
    dropped = checks.unknown_items(df, train, ending)
    test = ending & (np.bincount(i[train], minlength=int(i.max()) + 1)[i] > 0)
    test &= np.bincount(s[test], minlength=int(s.max()) + 1)[s] >= 2
    return train, test, boundary, dropped
