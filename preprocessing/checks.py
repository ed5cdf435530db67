"""Checks of the splits before any GPU time is spent on them, printed and written with the tables.

- Statistics gate: the events, sessions and items of the splits against the figures the papers
  published (`statistics` in config/published.yaml, with their source and the split each figure is
  of), as a relative difference; beyond the tolerance a loud warning, or an error with strict.
  A figure no source gave is null there, and said to be missing here, never guessed.
- Time leak: no test event may precede the end of its training data (train_full/test and
  train_tr/train_valid); with strict, a leak is an error. RSC15's split on each session's LAST
  event overlaps by design (a test session that crosses the boundary starts before the last
  training event): the published protocol, so it is reported as "overlap by protocol" (events and
  the largest overlap in hours), never a failure.
- Unknown items: test events whose item is not in the training data are counted (the evaluator
  drops them before scoring, so they are a loss of test data, not an error). Where the recipe
  itself drops them (RSC15), the count of the events it dropped is reported instead.
- Training window (`train_window_days`): keep only the training sessions that start within the last
  W days before the test (validation) period (see window()); the test and validation splits do not
  change. The published figures of the training splits are then not comparable and are not
  compared; the test splits still are.

Failed checks are printed to stderr, also with quiet.

Everything here works on the cleaned events and the boolean split masks of recipes.py.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .common import I, T, log, session_first_time
from .errors import PreprocessingError

PUBLISHED = Path(__file__).resolve().parents[1] / "config" / "published.yaml"
COMPARED = ("events", "sessions", "items")
SPLITS = ("train_full", "test", "train_tr", "train_valid")
PAIRS = (("train_full", "test"), ("train_tr", "train_valid"))
DEFAULT_TOLERANCE = 0.01


class CheckError(PreprocessingError):
    """A check failed with strict: true (nothing was written)."""


@dataclass(frozen=True)
class Settings:
    """How the checks run: strict makes a failed check an error; tolerance is the largest relative
    difference from a published figure that passes; train_window_days limits the training data."""

    strict: bool = False
    tolerance: float = DEFAULT_TOLERANCE
    train_window_days: float | None = None
    published: dict | None = field(default=None, compare=False)  # None: load config/published.yaml

    def __post_init__(self):
        if not (isinstance(self.tolerance, (int, float)) and 0 <= self.tolerance):
            raise PreprocessingError(f"checks: tolerance must be a number >= 0, got {self.tolerance!r}")
        w = self.train_window_days
        if w is not None and not (isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0):
            raise PreprocessingError(f"train_window_days must be a number of days > 0, got {w!r}")


def load_published(dataset: str, published: dict | None = None, path: Path = PUBLISHED) -> dict | None:
    """The published statistics of a dataset ({source, note, <split>: {events, sessions, items}}),
    or None when none are listed. `published`: the whole published.yaml, already loaded. Every
    figure must be null or a positive integer (a one-line PreprocessingError otherwise)."""
    if published is None:
        import yaml

        try:
            published = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise PreprocessingError(f"{path}: cannot read the published statistics ({e})") from None
    statistics = published.get("statistics") if isinstance(published, dict) else None
    entry = (statistics if isinstance(statistics, dict) else {}).get(dataset)
    if entry is not None:
        _check_figures(dataset, entry)
    return entry


def _check_figures(dataset: str, entry) -> None:
    where = f"config/published.yaml: statistics.{dataset}"
    if not isinstance(entry, dict):
        raise PreprocessingError(f"{where}: expected a mapping (source and, per split, {', '.join(COMPARED)})")
    for split in SPLITS:
        figures = entry.get(split)
        if figures is None:
            continue
        if not isinstance(figures, dict):
            raise PreprocessingError(f"{where}.{split}: expected a mapping of {', '.join(COMPARED)}, got {figures!r}")
        for stat, value in figures.items():
            if stat not in COMPARED:
                raise PreprocessingError(
                    f"{where}.{split}: unknown statistic '{stat}' (expected {', '.join(COMPARED)})"
                )
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise PreprocessingError(
                    f"{where}.{split}.{stat}: {value!r} is not a published figure (expected a positive "
                    "integer, e.g. 31637239, or null where no source gives it)"
                )


# ---------------------------------------------------------------- training window
def window(df: pd.DataFrame, train: np.ndarray, boundary, days: float, unit) -> np.ndarray:
    """The training mask limited to the sessions that start at or after `boundary - days`
    (boundary: where the test period starts). Whole sessions: a session starting before the window
    goes entirely, as a session starting in the test period goes entirely to the test set."""
    return train & (session_first_time(df) >= boundary - days * unit.day)


# ---------------------------------------------------------------- statistics gate
def compare(stats: dict, published: dict | None, tolerance: float, skip=()) -> list[dict]:
    """One row per published split and statistic: ours, theirs, the relative difference and
    whether it is within the tolerance (None where nothing can be compared, with the reason)."""
    rows = []
    if not published:
        return rows
    for split in SPLITS:
        if split not in published:
            continue
        figures = published.get(split) or {}
        for stat in COMPARED:
            theirs = figures.get(stat)
            ours = stats.get(split, {}).get(stat)
            row = {"split": split, "stat": stat, "ours": ours, "published": theirs, "diff": None, "ok": None}
            if split in skip:
                row["why"] = "not compared: train_window_days changes the training data"
            elif theirs is None:
                row["why"] = "no published figure"
            else:
                row["diff"] = (ours - theirs) / theirs
                row["ok"] = abs(row["diff"]) <= tolerance
            rows.append(row)
    return rows


# ---------------------------------------------------------------- protocol checks
def time_leak(df: pd.DataFrame, train: np.ndarray, test: np.ndarray) -> dict:
    """Test events earlier than the last training event: the model would be trained on what
    happened after the events it is asked to predict. overlap: how far the earliest of them lies
    before that end (in the time unit; 0 without a leak)."""
    t = df[T].to_numpy()
    end = t[train].max() if train.any() else None
    early = int((t[test] < end).sum()) if end is not None else 0
    start = t[test].min() if test.any() else None
    overlap = end - start if early else 0
    return {"train_end": end, "test_start": start, "leaking_events": early, "overlap": overlap}


def unknown_items(df: pd.DataFrame, train: np.ndarray, test: np.ndarray) -> dict:
    """Test events (and distinct items) whose item never occurs in the training data."""
    i = df[I].to_numpy()
    known = np.zeros(int(i.max()) + 1 if len(i) else 0, dtype=bool)
    known[i[train]] = True
    unknown = test & ~known[i] if len(i) else test
    return {
        "events": int(unknown.sum()),
        "of_events": int(test.sum()),
        "items": int(len(np.unique(i[unknown]))),
    }


@dataclass
class Review:
    """The checks of one dataset: computed before the outputs are written, judged once their
    statistics are known (review()), which prints them and returns the Markdown for stats.md."""

    name: str
    settings: Settings
    published: dict | None
    protocol: dict  # (train, test) -> {"leak": ..., "unknown": ..., "dropped": ...}, or {} for a last-event split
    window_note: str | None = None
    quiet: bool = False
    raw_files: list = field(default_factory=list)  # provenance.Entry of the raw files
    overlap_hours: float | None = None  # the protocol splits on session ends: 1 h in the time unit

    def __call__(self, stats: dict) -> str:
        return self.review(stats)

    def review(self, stats: dict) -> str:
        s = self.settings
        skip = ("train_full", "train_tr") if s.train_window_days else ()
        rows = compare(stats, self.published, s.tolerance, skip)
        lines, failures, warned = [], [], set()
        source = (self.published or {}).get("source", "no source given")
        if self.published is None:
            lines.append(f"Published statistics: none listed for '{self.name}' in config/published.yaml")
        elif all(r["published"] is None for r in rows):
            lines.append(f"Published statistics: no figure for '{self.name}' in config/published.yaml ({source})")
            rows = []
        else:
            lines.append(f"Published statistics ({source}):")
            for r in rows:
                if r["ok"] is None:
                    continue
                text = (
                    f"{r['split']} {r['stat']}: {r['ours']:,} vs published {r['published']:,} "
                    f"({r['diff']:+.2%}, tolerance {s.tolerance:.2%})"
                )
                if r["ok"]:
                    lines.append(f"  ok: {text}")
                else:
                    warned.add(len(lines))
                    lines.append(f"  WARNING: {text}")
                    failures.append(text)
            missing = sorted({f"{r['split']} {r['stat']}" for r in rows if r.get("why") == "no published figure"})
            if missing:
                lines.append(f"  no published figure (not compared): {', '.join(missing)}")
            if skip:
                lines.append("  train_full / train_tr not compared: train_window_days changes the training data")
        if self.window_note:
            lines.append(self.window_note)
        if not self.protocol:
            lines.append("Time leak: not checked (last-event split: test targets lie within the training period)")
        for (train, test), found in self.protocol.items():
            leak, unknown, dropped = found["leak"], found["unknown"], found.get("dropped")
            if leak["leaking_events"] and self.overlap_hours:
                lines.append(
                    f"Overlap by protocol: {leak['leaking_events']:,} {test} event(s) precede the end of {train}, "
                    f"by up to {leak['overlap'] / self.overlap_hours:.1f} h (the published split on each "
                    "session's last event: a session crossing the boundary goes whole to the test set; not a leak)"
                )
            elif leak["leaking_events"]:
                text = (
                    f"TIME LEAK: {leak['leaking_events']:,} {test} event(s) precede the end of {train} "
                    "(the model would train on what followed the events it predicts)"
                )
                warned.add(len(lines))
                lines.append(f"  WARNING: {text}")
                failures.append(text)
            elif self.overlap_hours:
                lines.append(f"Overlap by protocol: none ({test} starts at or after the end of {train})")
            else:
                lines.append(f"Time leak: none ({test} starts at or after the end of {train})")
            if dropped is not None:
                share = dropped["events"] / dropped["of_events"] if dropped["of_events"] else 0.0
                lines.append(
                    f"Unknown items: the recipe dropped {dropped['events']:,} of {dropped['of_events']:,} {test} "
                    f"events ({share:.2%}), {dropped['items']:,} item(s), not in {train} (the published protocol)"
                )
            if dropped is None or unknown["events"]:
                share = unknown["events"] / unknown["of_events"] if unknown["of_events"] else 0.0
                lines.append(
                    f"Unknown items: {unknown['events']:,} of {unknown['of_events']:,} {test} events ({share:.2%}), "
                    f"{unknown['items']:,} item(s), not in {train} (the evaluator drops them before scoring)"
                )
        for k, line in enumerate(lines):
            if k in warned:  # a failed check: said where errors go, also with quiet
                print(line.strip(), file=sys.stderr, flush=True)
            else:
                log(line, quiet=self.quiet)
        if failures and s.strict:
            raise CheckError(
                f"{self.name}: {len(failures)} check(s) failed with strict: true (nothing was written): "
                + "; ".join(failures)
            )
        if failures:
            print(
                f"WARNING: {self.name}: {len(failures)} check(s) failed; check the raw files' release "
                "(PROVENANCE.tsv) and the recipe before training on these splits (strict: true stops here)",
                file=sys.stderr,
                flush=True,
            )
        return self.markdown(rows, lines)

    def markdown(self, rows, lines) -> str:
        from experiments.outputs import markdown_table

        out = []
        if self.raw_files:
            table = pd.DataFrame(
                [[e.name, e.size, e.sha256, e.source, e.recorded] for e in self.raw_files],
                columns=["raw file", "bytes", "SHA-256", "source", "recorded"],
            )
            out += ["", "## Raw files", "", markdown_table(table).rstrip()]
        if rows:
            table = pd.DataFrame(
                [
                    [
                        r["split"],
                        r["stat"],
                        r["ours"],
                        "" if r["published"] is None else r["published"],
                        "" if r["diff"] is None else f"{r['diff']:+.2%}",
                        r.get("why") or ("ok" if r["ok"] else "WARNING"),
                    ]
                    for r in rows
                ],
                columns=["split", "statistic", "ours", "published", "difference", "check"],
            )
            out += [
                "",
                f"## Published statistics (tolerance {self.settings.tolerance:.2%})",
                "",
                f"Source: {self.published.get('source', '')}",
                "",
                markdown_table(table).rstrip(),
            ]
        out += ["", "## Checks", ""] + [f"- {line.strip()}" for line in lines]
        return "\n".join(out) + "\n"


def prepare(
    name,
    df,
    splits: dict,
    settings: Settings,
    quiet=False,
    time_split=True,
    window_note=None,
    raw_files=(),
    dropped: dict | None = None,
    overlap_hours: float | None = None,
):
    """The protocol checks of the splits (masks over df) and the published figures to compare.
    time_split=False (the last-event split): no time-leak or window checks, by design.
    dropped: {(train, test): unknown_items(...)} of the test events the recipe itself dropped for
    unknown items (RSC15). overlap_hours: set (one hour in the time unit) where the protocol splits
    on session ends, so that a test session may start before the end of training (RSC15): the
    overlap is then reported, not a leak."""
    protocol = {}
    if time_split:
        for train, test in PAIRS:
            protocol[(train, test)] = {
                "leak": time_leak(df, splits[train], splits[test]),
                "unknown": unknown_items(df, splits[train], splits[test]),
                "dropped": (dropped or {}).get((train, test)),
            }
    published = load_published(name, settings.published)
    return Review(name, settings, published, protocol, window_note, quiet, list(raw_files), overlap_hours)
