"""Custom datasets: both split modes, the config options, and every config mistake."""

import pandas as pd
import pytest

import preprocessing
from preprocessing.errors import PreprocessingError


def workouts(tmp_path, n_users=40):
    """A workout log like the second seed's: one sequence per user, sports as items."""
    sports = ["run", "bike", "walk", "swim", "hike"]
    rows = []
    for user in range(n_users):
        for k in range(6):
            rows.append({"user": user, "sport": sports[(user + k) % 5] if k != 2 else "run", "ts": 1000 * user + k})
    df = pd.DataFrame(rows)
    df.to_csv(tmp_path / "workouts.csv", index=False)
    return df


LAST = {
    "files": ["workouts.csv"],
    "columns": {"session": "user", "item": "sport", "time": "ts"},
    "dedup": False,
    "min_item_support": 1,
    "split": {"mode": "last"},
}


def test_last_item_split_holds_out_each_sequences_last_event(tmp_path):
    raw = workouts(tmp_path)
    stats = preprocessing.preprocess("custom", tmp_path, tmp_path / "out", LAST, quiet=True)
    read = lambda name: pd.read_parquet(tmp_path / "out" / f"{name}.parquet")  # noqa: E731
    train, test, tr, valid = read("train_full"), read("test"), read("train_tr"), read("train_valid")
    # train_full: every sequence without its last event; test: the same sequences in full, whose
    # last event is the only one scored (the prefix warms up the hidden state)
    assert stats["train_full"]["events"] == 40 * 5 and stats["test"]["events"] == 40 * 6
    last = raw.sort_values("ts").groupby("user").tail(1)
    assert set(
        zip(
            test.sort_values("Time").groupby("SessionId").tail(1).SessionId,
            test.sort_values("Time").groupby("SessionId").tail(1).ItemId,
        )
    ) == set(zip(last.user, last.sport))
    assert train.merge(last, left_on=["SessionId", "Time"], right_on=["user", "ts"]).empty
    # the re-split does the same to train_full: train_tr drops one more event per sequence
    assert tr.groupby("SessionId").size().eq(4).all() and valid.equals(train)
    assert pd.api.types.is_string_dtype(test.ItemId)  # string ids kept as in the source


def test_last_item_split_needs_three_events_to_keep_a_sequence(tmp_path):
    pd.DataFrame({"s": [1, 1, 1, 2, 2], "i": [1, 2, 3, 1, 2], "t": [1, 2, 3, 4, 5]}).to_csv(
        tmp_path / "x.csv", index=False
    )
    config = {
        "files": "x.csv",
        "columns": {"session": "s", "item": "i", "time": "t"},
        "min_item_support": 1,
        "split": {"mode": "last"},
    }
    with pytest.raises(PreprocessingError, match="train_tr, train_valid split.s. would be empty"):
        preprocessing.preprocess("custom", tmp_path, tmp_path / "out", config, quiet=True)


def test_time_split_with_users_gap_event_filter_and_parquet(tmp_path):
    rows = []
    for u in range(30):
        base = u * 600
        rows += [(u, "view", 1 + u % 3, base), (u, "cart", 9, base + 30), (u, "view", 1 + (u + 1) % 3, base + 60)]
        rows += [(u, "view", 1 + (u + 2) % 3, base + 60 + 3601)]  # just over 1 h later: a new session
    df = pd.DataFrame(rows, columns=["uid", "kind", "item", "t"])
    # users 20-24 come two days later (the validation period), users 25-29 three days later (the test period)
    df["t"] = df["t"] + (df["uid"] >= 20) * 86400 * 2 + (df["uid"] >= 25) * 86400
    df.to_parquet(tmp_path / "log.parquet")
    config = {
        "files": "log.parquet",
        "columns": {"user": "uid", "item": "item", "time": "t", "event": "kind"},
        "session_gap": 3600,
        "keep_event": "view",
        "min_item_support": 1,
        "split": {"mode": "time", "test_days": 1},
    }
    preprocessing.preprocess("custom", tmp_path, tmp_path / "out", config, quiet=True)
    full = pd.read_parquet(tmp_path / "out" / "full.parquet")
    assert set(full.ItemId) == {1, 2, 3} and full.groupby("SessionId").size().eq(2).all()
    assert full.SessionId.nunique() == 30  # the lone view 1 h 1 s later is a length-1 session: dropped
    assert pd.read_parquet(tmp_path / "out" / "test.parquet").SessionId.nunique() == 5
    assert pd.read_parquet(tmp_path / "out" / "train_valid.parquet").SessionId.nunique() == 5


def test_text_times_tsv_dedup_and_thresholds(tmp_path):
    lines = ["sid\titem\twhen"]
    day = lambda d, h: f"2024-01-{d:02d} {h:02d}:00:00"  # noqa: E731
    for s in range(12):
        d = 1 + s // 4 * 2  # sessions on days 1, 3 and 5
        for k, item in enumerate(["a", "a", "b", "c"] if s % 2 else ["b", "c", "c", "a"]):
            lines.append(f"{s}\t{item}\t{day(d, k)}")
    (tmp_path / "log.tsv").write_text("\n".join(lines) + "\n")
    config = {
        "files": ["log.tsv"],
        "columns": {"session": "sid", "item": "item", "time": "when"},
        "time_unit": "%Y-%m-%d %H:%M:%S",
        "min_item_support": 4,
        "min_session_length": 3,
        "split": {"mode": "time", "test_days": 1.5},
    }
    preprocessing.preprocess("custom", tmp_path, tmp_path / "out", config, quiet=True)
    full = pd.read_parquet(tmp_path / "out" / "full.parquet")
    assert full.groupby("SessionId").size().eq(3).all()  # repeats dropped, length >= 3 kept
    assert full.Time.min() == pd.Timestamp("2024-01-01", tz="UTC").timestamp()  # seconds since the epoch
    assert set(pd.read_parquet(tmp_path / "out" / "test.parquet").SessionId) == {8, 9, 10, 11}
    assert set(pd.read_parquet(tmp_path / "out" / "train_valid.parquet").SessionId) == {4, 5, 6, 7}
    config["dedup"] = False
    preprocessing.preprocess("custom", tmp_path, tmp_path / "out2", config, quiet=True)
    assert pd.read_parquet(tmp_path / "out2" / "full.parquet").groupby("SessionId").size().eq(4).all()


def test_config_from_yaml_file(tmp_path):
    workouts(tmp_path)
    import yaml

    (tmp_path / "c.yaml").write_text(yaml.safe_dump(LAST))
    stats = preprocessing.preprocess(
        "custom", tmp_path, tmp_path / "out", {"config": str(tmp_path / "c.yaml")}, quiet=True
    )
    assert stats["test"]["sessions"] == 40


BASE = {"files": ["x.csv"], "columns": {"session": "a", "item": "b", "time": "c"}}


@pytest.mark.parametrize(
    "change,match",
    [
        ({"files": None}, "needs 'files'"),
        ({"columns": {"item": "b", "time": "c"}}, "exactly one of 'session'"),
        ({"columns": {"session": "a", "item": "b"}}, "'time' is required"),
        ({"splitt": 1}, "unknown key.s. splitt"),
        ({"columns": {"user": "a", "item": "b", "time": "c"}}, "needs 'session_gap'"),
        ({"keep_event": "view"}, "needs an 'event' column"),
        ({"min_item_support": 0}, "min_item_support' must be an integer >= 1"),
        ({"dedup": "yes"}, "'dedup' must be true or false"),
        ({"split": {"mode": "random"}}, "split.mode must be 'time' or 'last'"),
        ({"split": {"test_days": -1}}, "test_days must be a positive number"),
        ({"split": {"t_split": "2024-01-01"}}, "split.t_split must be a time in the data's unit"),
        ({"files": ["missing.csv"]}, "missing.csv: file not found"),
        (
            {"columns": {"session": "a", "item": "B", "time": "c"}},
            r"x.csv: missing column\(s\) B; the file has: a, b, c",
        ),
        ({"time_unit": "days"}, "time_unit must be s, ms, iso8601 or a strptime format"),
    ],
)
def test_config_errors_are_one_line(tmp_path, change, match):
    (tmp_path / "x.csv").write_text("a,b,c\n1,2,3\n")
    config = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(PreprocessingError, match=match) as e:
        preprocessing.preprocess("custom", tmp_path, tmp_path / "out", config, quiet=True)
    assert "\n" not in str(e.value) and not (tmp_path / "out").exists()


def test_unparsable_text_time_names_file_row_and_value(tmp_path):
    (tmp_path / "x.csv").write_text("a,b,c\n1,2,2024-01-01 00:00:00\n1,3,soon\n")
    with pytest.raises(PreprocessingError, match=r"x.csv: column c: cannot parse time 'soon' at data row 2"):
        preprocessing.preprocess(
            "custom", tmp_path, tmp_path / "out", {**BASE, "time_unit": "%Y-%m-%d %H:%M:%S"}, quiet=True
        )
