"""Custom datasets (both split modes), the synthetic generator, downloads, and the CLI."""
import subprocess
import sys

import pandas as pd
import pytest

import preprocessing
from preprocessing import fetch as dl
from preprocessing.errors import DownloadError, PreprocessingError
from preprocessing.synthetic import generate_events


def workouts(tmp_path):
    """A workout log like the second seed's: one sequence per user, sports as items."""
    sports = ["run", "bike", "walk", "swim", "hike"]
    rows = []
    for user in range(40):
        for k in range(6):
            rows.append({"user": user, "sport": sports[(user + k) % 5] if k != 2 else "run", "ts": 1000 * user + k})
    df = pd.DataFrame(rows)
    df.to_csv(tmp_path / "workouts.csv", index=False)
    return df


def test_custom_last_item_split(tmp_path):
    workouts(tmp_path)
    config = {"files": ["workouts.csv"], "columns": {"session": "user", "item": "sport", "time": "ts"},
              "dedup": False, "min_item_support": 1, "split": {"mode": "last"}}
    stats = preprocessing.preprocess("custom", tmp_path, tmp_path / "out", config, quiet=True)
    train = pd.read_parquet(tmp_path / "out" / "train_full.parquet")
    test = pd.read_parquet(tmp_path / "out" / "test.parquet")
    # train: every sequence without its last event; test: the full sequences (scored on the last one)
    assert stats["train_full"]["events"] == 40 * 5 and stats["test"]["events"] == 40 * 6
    last = test.sort_values("Time").groupby("SessionId").tail(1)
    assert not train.merge(last, on=["SessionId", "Time"]).shape[0]
    assert pd.read_parquet(tmp_path / "out" / "train_tr.parquet").groupby("SessionId").size().eq(4).all()
    assert pd.api.types.is_string_dtype(test.ItemId)  # string ids kept as in the source


def test_custom_time_split_with_users_gap_and_event_filter(tmp_path):
    rows = []
    for u in range(30):
        base = u * 600
        rows += [(u, "view", 1 + u % 3, base), (u, "cart", 9, base + 30), (u, "view", 1 + (u + 1) % 3, base + 60)]
        rows += [(u, "view", 1 + (u + 2) % 3, base + 60 + 7200)]  # > 1 h later: a new session
    df = pd.DataFrame(rows, columns=["uid", "kind", "item", "t"])
    # users 20-24 come two days later (the validation period), users 25-29 three days later (the test period)
    df["t"] = df["t"] + (df["uid"] >= 20) * 86400 * 2 + (df["uid"] >= 25) * 86400
    df.to_parquet(tmp_path / "log.parquet")
    config = {"files": "log.parquet", "columns": {"user": "uid", "item": "item", "time": "t", "event": "kind"},
              "session_gap": 3600, "keep_event": "view", "min_item_support": 1,
              "split": {"mode": "time", "test_days": 1}}
    preprocessing.preprocess("custom", tmp_path, tmp_path / "out", config, quiet=True)
    full = pd.read_parquet(tmp_path / "out" / "full.parquet")
    assert set(full.ItemId) == {1, 2, 3} and full.groupby("SessionId").size().eq(2).all()
    assert full.SessionId.nunique() == 30  # the lone view 2 h later is a length-1 session: dropped
    test = pd.read_parquet(tmp_path / "out" / "test.parquet")
    assert test.SessionId.nunique() == 5


@pytest.mark.parametrize("config,match", [
    ({"columns": {"session": "a", "item": "b", "time": "c"}}, "needs 'files'"),
    ({"files": ["x.csv"], "columns": {"item": "b", "time": "c"}}, "'session' is required"),
    ({"files": ["x.csv"], "columns": {"session": "a", "item": "b", "time": "c"}, "splitt": 1}, "unknown custom config key"),
    ({"files": ["x.csv"], "columns": {"user": "a", "item": "b", "time": "c"}}, "session_gap"),
    ({"files": ["missing.csv"], "columns": {"session": "a", "item": "b", "time": "c"}}, "raw file not found"),
])
def test_custom_config_errors(tmp_path, config, match):
    (tmp_path / "x.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(PreprocessingError, match=match):
        preprocessing.preprocess("custom", tmp_path, tmp_path / "out", config, quiet=True)


def test_synthetic_is_deterministic_and_sequential():
    a = generate_events(n_sessions=500, n_items=100, seed=3)
    b = generate_events(n_sessions=500, n_items=100, seed=3)
    c = generate_events(n_sessions=500, n_items=100, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    # real sequential structure: the most common successor of an item is far more likely than chance
    pairs = pd.DataFrame({"a": a.ItemId.values[:-1], "b": a.ItemId.values[1:], "same": a.SessionId.values[:-1] == a.SessionId.values[1:]})
    pairs = pairs[pairs.same]
    top_share = pairs.groupby("a").b.agg(lambda s: s.value_counts().iloc[0] / len(s))
    assert top_share[pairs.groupby("a").size() >= 10].mean() > 0.3


def test_synthetic_preprocess_writes_all_outputs(tmp_path):
    stats = preprocessing.preprocess("synthetic", None, tmp_path / "syn", {"n_sessions": 2000, "seed": 1}, quiet=True)
    for name in ("train_full", "test", "train_tr", "train_valid", "full"):
        assert (tmp_path / "syn" / f"{name}.parquet").is_file() and stats[name]["events"] > 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_download_names_each_missing_file_and_path(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "_have_kaggle", lambda: False)
    with pytest.raises(DownloadError) as e:
        dl.download("rees46", tmp_path / "raw")
    msg = str(e.value)
    assert "2019-Oct.csv" in msg and str(tmp_path / "raw" / "2019-Nov.csv") in msg and "\n" not in msg
    with pytest.raises(DownloadError, match="manual download"):
        dl.download("diginetica", tmp_path / "raw")
    assert dl.download("synthetic", tmp_path) == []


def test_download_checks_what_arrived_before_moving_it(tmp_path):
    tmp, raw = tmp_path / "tmp", tmp_path / "raw"
    (tmp / "sub").mkdir(parents=True)
    raw.mkdir()
    (tmp / "sub" / "events.csv").write_text("short")
    with pytest.raises(DownloadError, match="incomplete"):
        dl.fetch_into(tmp, raw, {"events.csv": 1000}, "retailrocket", "page")
    assert not (raw / "events.csv").exists()
    dl.fetch_into(tmp, raw, {"events.csv": 3}, "retailrocket", "page")
    assert (raw / "events.csv").read_text() == "short"


def test_present_files_need_no_download(tmp_path):
    (tmp_path / "events.csv").write_text("x")
    assert dl.download("retailrocket", tmp_path) == [tmp_path / "events.csv"]


def test_cli_success_and_one_line_errors(tmp_path):
    r = subprocess.run([sys.executable, "-m", "preprocessing", "synthetic", "--out", str(tmp_path / "o"),
                        "--n-sessions", "1500", "--seed", "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "train_full:" in r.stdout and "Done: synthetic" in r.stdout
    r = subprocess.run([sys.executable, "-m", "preprocessing", "retailrocket", "--raw", str(tmp_path), "--out",
                        str(tmp_path / "rr")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("preprocessing: error: ") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "rr").exists()
