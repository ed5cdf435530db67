"""Each public dataset is a reader plus a few settings; the steps themselves are in common.py.

Facts per dataset (the papers' preprocessing, Hidasi & Czapp 2023 and Hidasi et al. 2016):

| dataset      | sessions                | event filter                 | unit | t_split        | D      |
|--------------|-------------------------|------------------------------|------|----------------|--------|
| yoochoose    | given                   | (clicks only)                | s    | last event     | 1 day  |
| rees46       | user + 1 h gap          | views, BEFORE sessionising   | s    | 2019-12-01 UTC | 1 day  |
| coveo        | hashed session + 1 h gap| views, AFTER sessionising    | ms   | last event     | 1 day  |
| retailrocket | visitor + 1 h gap       | views, AFTER sessionising    | ms   | 1442545200000  | 7 days |
| diginetica   | given                   | (views only)                 | ms   | last event     | 7 days |

All of them: sort by (session, time, item), drop consecutive duplicates, then repeat "drop
length-1 sessions, drop items with fewer than 5 events" until stable; test = sessions starting
in the last D before t_split; train_tr/train_valid the same with 2D. RSC15 keeps the first
paper's recipe (rsc15()).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import common, readers
from .common import I, S, T, TimeUnit, log
from .errors import PreprocessingError

SECONDS, MILLISECONDS = TimeUnit(1), TimeUnit(1000)


@dataclass
class Recipe:
    name: str
    files: tuple
    read: Callable[[Path], pd.DataFrame]
    unit: TimeUnit
    test_days: float
    t_split: float | None = None              # None: the time of the last event
    session_gap_hours: float | None = None    # sessions from users: a gap above this starts a new one
    keep_event: tuple | None = None           # (value of the Event column to keep, before sessionising?)
    dedup: bool = True
    min_item_support: int = 5
    min_session_length: int = 2
    split: str = "time"                       # "time" or "last" (hold out each sequence's last event)
    info: dict = field(default_factory=dict)


RECIPES = {
    "yoochoose": Recipe("yoochoose", ("yoochoose-clicks.dat", "yoochoose-test.dat"), readers.read_yoochoose,
                        SECONDS, test_days=1),
    "rees46": Recipe("rees46", ("2019-Oct.csv", "2019-Nov.csv"), readers.read_rees46, SECONDS, test_days=1,
                     t_split=1575158400, session_gap_hours=1),  # views are kept by the reader, before sessions
    "coveo": Recipe("coveo", ("release_10_23_2020.csv",), readers.read_coveo, MILLISECONDS, test_days=1,
                    session_gap_hours=1, keep_event=("detail", False)),
    "retailrocket": Recipe("retailrocket", ("events.csv",), readers.read_retailrocket, MILLISECONDS, test_days=7,
                           t_split=1442545200000, session_gap_hours=1, keep_event=("view", False)),
    "diginetica": Recipe("diginetica", ("train-item-views.csv",), readers.read_diginetica, MILLISECONDS,
                         test_days=7),
}


def clean(df: pd.DataFrame, recipe: Recipe, quiet=False) -> pd.DataFrame:
    """Event filter, sessions, dedup and the repeated filter: everything before the split."""
    if recipe.keep_event is not None and recipe.keep_event[1]:
        df = common.keep_events(df, "Event", recipe.keep_event[0])
        log(f"Kept '{recipe.keep_event[0]}' events", df, quiet)
    if recipe.session_gap_hours is not None:
        df = common.sessionise(df, recipe.session_gap_hours * recipe.unit.hour)
        log(f"Sessions: user + gap > {recipe.session_gap_hours:g} h", df, quiet)
    if recipe.keep_event is not None and not recipe.keep_event[1]:
        df = common.keep_events(df, "Event", recipe.keep_event[0])
        missing = df[I].isna().to_numpy()
        if missing.any():
            df = df[~missing].reset_index(drop=True)
            log(f"Dropped {int(missing.sum()):,} '{recipe.keep_event[0]}' event(s) without an item", quiet=quiet)
        log(f"Kept '{recipe.keep_event[0]}' events", df, quiet)
    common.require_events(df, f"after keeping the '{recipe.keep_event[0]}' events" if recipe.keep_event else "to process")
    if df[I].dtype == object:
        # pandas reads a column with missing values as float or object: restore integer ids where possible
        try:
            df[I] = df[I].astype(np.int64)
        except (ValueError, TypeError):
            pass
    df = common.sort_events(df)
    if recipe.dedup:
        df = common.drop_consecutive_duplicates(df)
        log("Dropped consecutive duplicates", df, quiet)
    df = common.filter_until_stable(df, recipe.min_session_length, recipe.min_item_support, quiet)
    common.require_events(df, "after filtering short sessions and rare items")
    return df


def split(df: pd.DataFrame, recipe: Recipe) -> dict:
    if recipe.split == "last":
        train_full, test = common.last_event_split(df)
        train_tr, train_valid = common.last_event_split(train_full)
    else:
        t_split = recipe.t_split if recipe.t_split is not None else df[T].max()
        d = recipe.test_days * recipe.unit.day
        train_full, test = common.time_split(df, t_split - d)
        train_tr, train_valid = common.time_split(train_full, t_split - 2 * d)
    splits = {"train_full": train_full, "test": test, "train_tr": train_tr, "train_valid": train_valid}
    for name, part in splits.items():
        if len(part) == 0:
            raise PreprocessingError(f"the {name} split is empty: the data covers too short a period for a "
                                     f"{recipe.test_days:g}-day test period (or too few sequences)")
    return splits


def run(recipe: Recipe, df: pd.DataFrame, out_dir, quiet=False) -> dict:
    log(f"Read {recipe.name}", df, quiet)
    df = clean(df, recipe, quiet)
    splits = split(df, recipe)
    stats = common.write_outputs(out_dir, splits, df, recipe.unit, quiet)
    log(f"Done: {recipe.name} -> {out_dir} ({stats['train_full']['events']:,} training and "
        f"{stats['test']['events']:,} test events)", quiet=quiet)
    return stats


# ------------------------------------------------------------------------------------------------
def rsc15(raw: Path, out_dir, quiet=False) -> dict:
    """The first paper's RSC15 recipe: no dedup, one pass of each filter, split on sessions' LAST event."""
    df = readers.read_yoochoose(Path(raw), files=("yoochoose-clicks.dat",))
    log("Read rsc15", df, quiet)
    df = common.drop_short_sessions(df, 2)
    df = common.drop_rare_items(df, 5)
    df = common.drop_short_sessions(df, 2)
    log("Filtered sessions < 2, items < 5, sessions < 2 (one pass each)", df, quiet)
    common.require_events(df, "after filtering short sessions and rare items")
    df = common.sort_events(df)
    train_full, test = _rsc15_split(df)
    train_tr, train_valid = _rsc15_split(train_full)
    splits = {"train_full": train_full, "test": test, "train_tr": train_tr, "train_valid": train_valid}
    for name, part in splits.items():
        if len(part) == 0:
            raise PreprocessingError(f"the {name} split is empty: the data covers less than two days")
    return common.write_outputs(out_dir, splits, df, SECONDS, quiet)


def _rsc15_split(df: pd.DataFrame):
    last = df.groupby(S, sort=False)[T].transform("max").to_numpy()
    boundary = df[T].max() - 86400
    train = df[last < boundary]
    test = df[last >= boundary]
    test = test[test[I].isin(train[I].unique())]
    test = common.drop_short_sessions(test, 2)
    return train.reset_index(drop=True), test.reset_index(drop=True)
