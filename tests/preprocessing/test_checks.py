"""The checks of the splits (preprocessing/checks.py): the statistics gate against published
figures and its tolerance, the time-leak and unknown-item checks (RSC15's overlap by protocol),
the training window, and the Coveo release check, on small generated raw files."""

import numpy as np
import pandas as pd
import pytest

import preprocessing
from preprocessing import checks
from preprocessing.checks import CheckError, Settings
from preprocessing.errors import PreprocessingError

from .test_datasets import expected, iso, item_seqs, scenario

T_SPLIT = 1442545200  # RetailRocket's fixed split point (s; ms in the file)
DAY = 86400


def retailrocket(tmp_path):
    """The hand-checked scenario of test_datasets in RetailRocket's format: test 3 events / 1
    session / 3 items, train_full 17 events / 7 sessions / 3 items."""
    rows = scenario(T_SPLIT, 7 * DAY, True, last_before_split=600)
    lines = ["timestamp,visitorid,event,itemid,transactionid"]
    users = {}
    for u, item, t, ev in rows:
        lines.append(
            f"{t * 1000},{users.setdefault(u, 1000 + len(users))},{'view' if ev == 'view' else 'addtocart'},{item},"
        )
    raw = tmp_path / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "events.csv").write_text("\n".join(lines) + "\n")
    return raw


def published(**splits):
    return {"statistics": {"retailrocket": {"source": "a test table", **splits}}}


# ---------------------------------------------------------------- statistics gate
def test_compare_reports_the_relative_difference_and_the_tolerance():
    stats = {
        "train_full": {"events": 110, "sessions": 10, "items": 5},
        "test": {"events": 20, "sessions": 4, "items": 3},
    }
    pub = {"train_full": {"events": 100, "sessions": 10, "items": None}, "test": {"events": 20}}
    rows = {(r["split"], r["stat"]): r for r in checks.compare(stats, pub, 0.05)}
    assert rows["train_full", "events"]["diff"] == pytest.approx(0.10) and rows["train_full", "events"]["ok"] is False
    assert rows["train_full", "sessions"]["ok"] is True and rows["test", "events"]["diff"] == 0
    assert rows["train_full", "items"]["ok"] is None and rows["train_full", "items"]["why"] == "no published figure"
    assert checks.compare(stats, pub, 0.10)[0]["ok"] is True  # 10 % is within a 10 % tolerance
    assert checks.compare(stats, None, 0.05) == []


def test_statistics_within_tolerance_pass_and_are_written_with_the_tables(tmp_path, capsys):
    raw = retailrocket(tmp_path)
    pub = published(
        train_full={"events": 17, "sessions": 7, "items": 3}, test={"events": 3, "sessions": 1, "items": None}
    )
    preprocessing.preprocess("retailrocket", raw, tmp_path / "out", published=pub, strict=True)
    out = capsys.readouterr().out
    assert "ok: train_full events: 17 vs published 17 (+0.00%, tolerance 1.00%)" in out and "WARNING" not in out
    assert "no published figure (not compared): test items" in out
    md = (tmp_path / "out" / "stats.md").read_text()
    assert "## Published statistics (tolerance 1.00%)" in md and "Source: a test table" in md
    assert "| train_full | events | 17 | 17 | +0.00% | ok |" in md


def test_beyond_the_tolerance_warns_loudly_or_stops_with_strict(tmp_path, capsys):
    raw = retailrocket(tmp_path)
    pub = published(train_full={"events": 19, "sessions": 7, "items": 3})  # ours: 17 = -10.53 %
    stats = preprocessing.preprocess("retailrocket", raw, tmp_path / "out", published=pub, tolerance=0.10)
    out, err = capsys.readouterr()
    assert "WARNING: train_full events: 17 vs published 19 (-10.53%, tolerance 10.00%)" in err
    assert "WARNING: retailrocket: 1 check(s) failed" in err and stats["train_full"]["events"] == 17
    assert "WARNING" not in out and "Published statistics (a test table):" in out
    assert "| train_full | events | 17 | 19 | -10.53% | WARNING |" in (tmp_path / "out" / "stats.md").read_text()
    preprocessing.preprocess("retailrocket", raw, tmp_path / "wide", published=pub, tolerance=0.15, quiet=True)
    assert "WARNING" not in (tmp_path / "wide" / "stats.md").read_text()  # 10.53 % is within 15 %
    with pytest.raises(
        CheckError,
        match=r"retailrocket: 1 check\(s\) failed with strict: true \(nothing was written\): "
        r"train_full events: 17 vs published 19",
    ) as e:
        preprocessing.preprocess("retailrocket", raw, tmp_path / "strict", published=pub, tolerance=0.10, strict=True)
    assert "\n" not in str(e.value) and not (tmp_path / "strict").exists()


def test_failed_checks_are_printed_to_stderr_also_when_quiet(tmp_path, capsys):
    raw = retailrocket(tmp_path)
    pub = published(train_full={"events": 19, "sessions": 7, "items": 3})
    preprocessing.preprocess("retailrocket", raw, tmp_path / "out", published=pub, quiet=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "WARNING: train_full events: 17 vs published 19 (-10.53%, tolerance 1.00%)",
        "WARNING: retailrocket: 1 check(s) failed; check the raw files' release (PROVENANCE.tsv) and the recipe "
        "before training on these splits (strict: true stops here)",
    ]


def test_a_dataset_without_published_figures_says_so(tmp_path, capsys):
    preprocessing.preprocess(
        "synthetic", None, tmp_path / "o", {"n_sessions": 1500, "seed": 3}, published={}, strict=True
    )
    assert "Published statistics: none listed for 'synthetic'" in capsys.readouterr().out


def test_the_shipped_published_statistics_name_their_source_and_invent_nothing():
    import yaml

    stats = yaml.safe_load(checks.PUBLISHED.read_text())["statistics"]
    assert set(stats) == set(preprocessing.PUBLIC_DATASETS)
    rsc15 = stats["rsc15"]
    assert "ICLR 2016" in rsc15["source"] and rsc15["train_full"] == {
        "events": 31637239,
        "sessions": 7966257,
        "items": 37483,
    }
    assert rsc15["test"]["events"] == 71222 and rsc15["test"]["sessions"] == 15324
    for name, entry in stats.items():
        assert entry["source"]
        figures = [
            v for split in ("train_full", "test", "train_tr", "train_valid") for v in (entry.get(split) or {}).values()
        ]
        if name != "rsc15":  # no figure could be sourced for them: null, and the source says so
            assert all(v is None for v in figures) and entry["source"].startswith("not transcribed")


@pytest.mark.parametrize(
    "value, shown",
    [(0, "0"), ("31.6M", "'31.6M'"), (-5, "-5"), (31637239.0, "31637239.0"), (True, "True")],
)
def test_a_bad_published_figure_is_a_one_line_error_naming_it(tmp_path, value, shown):
    pub = published(train_full={"events": 17, "sessions": value}, test={"events": None})
    with pytest.raises(PreprocessingError) as e:
        preprocessing.preprocess("retailrocket", retailrocket(tmp_path), tmp_path / "out", published=pub)
    assert str(e.value) == (
        f"config/published.yaml: statistics.retailrocket.train_full.sessions: {shown} is not a published figure "
        "(expected a positive integer, e.g. 31637239, or null where no source gives it)"
    )
    assert not (tmp_path / "out").exists()


def test_a_published_split_must_hold_known_statistics():
    with pytest.raises(PreprocessingError, match=r"statistics.x.test: unknown statistic 'event' \(expected events"):
        checks.load_published("x", {"statistics": {"x": {"source": "s", "test": {"event": 5}}}})
    with pytest.raises(PreprocessingError, match=r"statistics.x.test: expected a mapping of events"):
        checks.load_published("x", {"statistics": {"x": {"source": "s", "test": 71222}}})
    for name in preprocessing.PUBLIC_DATASETS:  # the shipped figures pass
        assert checks.load_published(name)["source"]


# ---------------------------------------------------------------- protocol checks
def leaking_split():
    """Two sessions: the test session starts (t=100) before the training session ends (t=150)."""
    df = pd.DataFrame({"SessionId": [0, 0, 0, 1, 1], "ItemId": [0, 1, 2, 1, 3], "Time": [50, 120, 150, 100, 200]})
    return df, np.array([True, True, True, False, False]), np.array([False, False, False, True, True])


def test_the_time_leak_check_fires_on_a_leaking_split(capsys):
    df, train, test = leaking_split()
    assert checks.time_leak(df, train, test)["leaking_events"] == 1  # the event at t=100 < 150
    assert checks.time_leak(df, train & (df.Time < 100).to_numpy(), test)["leaking_events"] == 0
    assert checks.unknown_items(df, train, test) == {"events": 1, "of_events": 2, "items": 1}  # item 3
    splits = {"train_full": train, "test": test, "train_tr": train, "train_valid": test}
    review = checks.prepare("x", df, splits, Settings(published={}), quiet=True)
    assert "TIME LEAK: 1 test event(s) precede the end of train_full" in review({})
    err = capsys.readouterr().err  # quiet, and still said
    assert "WARNING: TIME LEAK: 1 test event(s) precede the end of train_full" in err
    assert "WARNING: x: 2 check(s) failed" in err
    with pytest.raises(CheckError, match=r"x: 2 check\(s\) failed .*TIME LEAK: 1 test event\(s\)"):
        checks.prepare("x", df, splits, Settings(strict=True, published={}), quiet=True)({})


def rsc15(raw):
    """An RSC15-shaped yoochoose-clicks.dat around its last day (boundary = t_end - 1 day):
    - sessions 1-5 (items 1, 3) 6 days before the end: item 3 is known only from them;
    - sessions 10-19 (items 1, 2) 2.5 days before the end; session 30 (1, 2) ends 60 s before the
      boundary: the last training event;
    - session 40 crosses the boundary: events at boundary - 3 h and - 30 min precede the end of
      train_full (by 10,740 s = 3.0 h), its last one is after the boundary: a test session whole;
    - session 50 (1, 3, 2) in the last day;
    - item 8 (5 events) only in the last day's sessions 60-64: the recipe drops its 5 test events,
      and those sessions, left with one event, go too."""
    t_end = 1_400_000_000
    b = t_end - DAY
    rows = [(k, item, t_end - 6 * DAY + 100 * k + 10 * j) for k in range(1, 6) for j, item in enumerate((1, 3))]
    rows += [(k, 1 + k % 2, t_end - 2.5 * DAY + 100 * k) for k in range(10, 20)]
    rows += [(k, 2 - k % 2, t_end - 2.5 * DAY + 100 * k + 50) for k in range(10, 20)]
    rows += [(30, 1, b - 7200), (30, 2, b - 60)]
    rows += [(40, 1, b - 3 * 3600), (40, 2, b - 1800), (40, 1, b + 600)]
    rows += [(50, 1, t_end - 3600), (50, 3, t_end - 1800), (50, 2, t_end - 900)]
    rows += [(60, 8, t_end - 600), (60, 1, t_end)]
    rows += [(k, item, t_end - 100 + 10 * (k - 61) + j) for k in range(61, 65) for j, item in enumerate((8, 2))]
    raw.mkdir(parents=True, exist_ok=True)
    lines = [f"{s},{iso(int(t), '%Y-%m-%dT%H:%M:%S')}.000Z,{i},0" for s, i, t in sorted(rows, key=lambda r: r[2])]
    (raw / "yoochoose-clicks.dat").write_text("\n".join(lines) + "\n")
    return raw


def test_rsc15s_split_by_session_end_overlaps_by_protocol_not_a_leak(tmp_path, capsys):
    raw = rsc15(tmp_path / "raw")
    stats = preprocessing.preprocess("rsc15", raw, tmp_path / "out", published={}, strict=True)
    out, err = capsys.readouterr()
    assert err == "" and stats["test"]["events"] == 6 and stats["test"]["sessions"] == 2
    assert (
        "Overlap by protocol: 2 test event(s) precede the end of train_full, by up to 3.0 h (the published split "
        "on each session's last event: a session crossing the boundary goes whole to the test set; not a leak)"
    ) in out
    assert "Overlap by protocol: none (train_valid starts at or after the end of train_tr)" in out
    assert "TIME LEAK" not in out
    # the count of the test events the recipe dropped for unknown items (the evaluator then finds none)
    assert (
        "Unknown items: the recipe dropped 5 of 16 test events (31.25%), 1 item(s), not in train_full "
        "(the published protocol)"
    ) in out
    assert "Unknown items: the recipe dropped 0 of 2 train_valid events" in out
    assert "the evaluator drops them" not in out
    assert "Overlap by protocol: 2 test event(s)" in (tmp_path / "out" / "stats.md").read_text()


def test_a_time_split_has_no_leak_and_counts_unknown_test_items(tmp_path, capsys):
    raw = retailrocket(tmp_path)
    preprocessing.preprocess("retailrocket", raw, tmp_path / "out", published={}, strict=True)
    out = capsys.readouterr().out
    assert "Time leak: none (test starts at or after the end of train_full)" in out
    assert "Time leak: none (train_valid starts at or after the end of train_tr)" in out
    assert "Unknown items: 0 of 3 test events (0.00%), 0 item(s), not in train_full" in out


# ---------------------------------------------------------------- training window
def test_the_training_window_keeps_the_sessions_starting_in_the_window(tmp_path, capsys):
    """Window W = 14 days - 7 h: train_full keeps the sessions starting at or after
    t_split - 7 d - W = early + 7 h (early = t_split - 21 d): s3 (early + 10 h), u9 (early + 20 h),
    s6 and s8; s1 (early), s2 (early + 5 h) and s5 (early + 2.3 h) go whole. train_tr is cut from
    train_full before its window, and its own window (W before t_split - 14 d) reaches back to
    before the data: train_tr is as without the window. test and train_valid never change."""
    raw = retailrocket(tmp_path)
    days = 14 - 7 / 24
    stats = preprocessing.preprocess("retailrocket", raw, tmp_path / "w", published={}, train_window_days=days)
    full = expected(bridge=True)
    got = {split: item_seqs(pd.read_parquet(tmp_path / "w" / f"{split}.parquet")) for split in full}
    assert got["test"] == full["test"] and got["train_valid"] == full["train_valid"]
    assert got["train_tr"] == full["train_tr"] == {(1, 2, 3): 1, (1, 2): 3, (2, 3, 1): 1}
    assert got["train_full"] == {(2, 3, 1): 1, (1, 2): 2, (3, 1, 2): 1}
    assert stats["train_full"]["events"] == 10 and stats["test"]["events"] == 3
    assert "Training window: 13.7083 days" in capsys.readouterr().out
    with pytest.raises(PreprocessingError, match=r"train_tr split\(s\) would be empty.*0.5-day training window"):
        preprocessing.preprocess("retailrocket", raw, tmp_path / "w05", published={}, train_window_days=0.5, quiet=True)


def test_a_window_no_longer_than_the_test_period_keeps_w_days_of_each_training_split(tmp_path):
    """W = 7 days - 7 h <= D = 7 days. train_full: sessions starting at or after t_split - 14 d + 7 h:
    s6 only (its part before t_split - 7 d), not s8 (t_split - 14 d + 2 h). train_tr: W before its own
    boundary t_split - 14 d, i.e. at or after early + 7 h: s3 and u9, not s1, s2, s5 (the window
    cut from an already windowed train_full left W - D < 0 days: empty, an error)."""
    raw = retailrocket(tmp_path)
    preprocessing.preprocess("retailrocket", raw, tmp_path / "w", published={}, train_window_days=7 - 7 / 24)
    full = expected(bridge=True)
    got = {split: item_seqs(pd.read_parquet(tmp_path / "w" / f"{split}.parquet")) for split in full}
    assert got["train_full"] == {(1, 2): 1}
    assert got["train_tr"] == {(2, 3, 1): 1, (1, 2): 1}
    assert got["test"] == full["test"] and got["train_valid"] == full["train_valid"]
    preprocessing.preprocess("retailrocket", raw, tmp_path / "w7", published={}, train_window_days=7, quiet=True)
    got = item_seqs(pd.read_parquet(tmp_path / "w7" / "train_tr.parquet"))
    assert got == full["train_tr"]  # W = D: train_tr reaches back to early, the first session's start


def test_rsc15s_window_changes_only_its_training_splits(tmp_path, capsys):
    """W = 3 days: sessions 1-5 (the only ones with item 3) leave train_full and train_tr; test and
    train_valid are the files of a run without the window (item 3 stays in session 50, as the
    published filter on the whole train_full keeps it); the evaluator drops that event, and the
    check says so."""
    raw = rsc15(tmp_path / "raw")
    preprocessing.preprocess("rsc15", raw, tmp_path / "all", published={}, quiet=True)
    capsys.readouterr()
    stats = preprocessing.preprocess("rsc15", raw, tmp_path / "w", published={}, train_window_days=3, strict=True)
    for split in ("test", "train_valid"):
        assert pd.read_parquet(tmp_path / "w" / f"{split}.parquet").equals(
            pd.read_parquet(tmp_path / "all" / f"{split}.parquet")
        ), split
    train = pd.read_parquet(tmp_path / "w" / "train_full.parquet")
    assert 3 not in set(train.ItemId) and set(train.SessionId) == set(range(10, 20)) | {30}
    assert set(pd.read_parquet(tmp_path / "w" / "train_tr.parquet").SessionId) == set(range(10, 20))
    assert stats["test"]["events"] == 6
    out = capsys.readouterr().out
    assert "Unknown items: the recipe dropped 5 of 16 test events" in out
    assert (
        "Unknown items: 1 of 6 test events (16.67%), 1 item(s), not in train_full (the evaluator drops them "
        "before scoring)"
    ) in out


def test_with_a_window_the_training_splits_are_not_compared_but_the_test_split_is(tmp_path, capsys):
    raw = retailrocket(tmp_path)
    pub = published(train_full={"events": 17}, test={"events": 3})
    preprocessing.preprocess("retailrocket", raw, tmp_path / "w", published=pub, train_window_days=13.7, strict=True)
    out = capsys.readouterr().out
    assert "ok: test events: 3 vs published 3" in out and "train_full events" not in out
    assert "train_full / train_tr not compared: train_window_days changes the training data" in out


def test_the_window_needs_a_time_split_and_a_positive_number(tmp_path):
    config = {"files": ["log.csv"], "columns": {"session": "s", "item": "i", "time": "t"}, "split": {"mode": "last"}}
    with pytest.raises(PreprocessingError, match="train_window_days needs a time split"):
        preprocessing.preprocess("custom", tmp_path, tmp_path / "o", config, train_window_days=3)
    with pytest.raises(PreprocessingError, match=r"train_window_days must be a number of days > 0, got -1"):
        preprocessing.preprocess("synthetic", None, tmp_path / "o", train_window_days=-1)


# ---------------------------------------------------------------- the right Coveo release
SIGIR_HEADER = "session_id_hash,event_type,product_action,product_sku_hash,server_timestamp_epoch_ms,hashed_url\n"


def test_the_sigir_2021_coveo_data_is_rejected_naming_both_releases(tmp_path):
    (tmp_path / "release_10_23_2020.csv").write_text(SIGIR_HEADER + "h1,event_product,detail,sku1,1590000000000,u\n")
    with pytest.raises(PreprocessingError) as e:
        preprocessing.preprocess("coveo", tmp_path, tmp_path / "out")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{tmp_path / 'release_10_23_2020.csv'}: has the column product_sku_hash")
    assert "SIGIR eCom 2021 Data Challenge release (browsing_train.csv" in msg
    assert "2020 shopper-intent release (release_10_23_2020.csv, column product_skus_hash)" in msg
    assert not (tmp_path / "out").exists()
    (tmp_path / "release_10_23_2020.csv").unlink()
    (tmp_path / "browsing_train.csv").write_text(SIGIR_HEADER)
    with pytest.raises(
        PreprocessingError, match=r"release_10_23_2020.csv: not found, but .*browsing_train.csv is: the SIGIR"
    ):
        preprocessing.preprocess("coveo", tmp_path, tmp_path / "out")


def test_the_download_names_both_coveo_releases(tmp_path):
    (tmp_path / "browsing_train.csv").write_text(SIGIR_HEADER)
    with pytest.raises(
        PreprocessingError, match=r"release_10_23_2020.csv -> .*\[found browsing_train.csv instead: the SIGIR"
    ):
        preprocessing.download("coveo", tmp_path)
