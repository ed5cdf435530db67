"""The embedded demo dataset: deterministic for a seed, sequential, and complete splits."""

import pandas as pd
import pytest

import preprocessing
from preprocessing.errors import PreprocessingError
from preprocessing.synthetic import generate_events


def test_deterministic_for_a_seed():
    a = generate_events(n_sessions=500, n_items=100, seed=3)
    pd.testing.assert_frame_equal(a, generate_events(n_sessions=500, n_items=100, seed=3))
    assert not a.equals(generate_events(n_sessions=500, n_items=100, seed=4))
    assert list(a.columns) == ["SessionId", "ItemId", "Time"] and a.ItemId.between(1, 100).all()


def test_sequential_structure_beats_popularity():
    """One guess from the transitions (the item's most common successor) is right more often than
    twenty guesses from popularity."""
    df = generate_events(n_sessions=3000, n_items=500, seed=0)
    same = df.SessionId.values[:-1] == df.SessionId.values[1:]
    pairs = pd.DataFrame({"a": df.ItemId.values[:-1][same], "b": df.ItemId.values[1:][same]})
    top_successor_share = pairs.groupby("a").b.agg(lambda s: s.value_counts().iloc[0]).sum() / len(pairs)
    top20_share = pairs.b.isin(df.ItemId.value_counts().index[:20]).mean()
    assert top_successor_share > 0.45 and top_successor_share > top20_share + 0.05
    lengths = df.groupby("SessionId").size()
    assert 4 < lengths.mean() < 6 and lengths.min() >= 2


def test_default_demo_size_and_splits(tmp_path):
    stats = preprocessing.preprocess("synthetic", None, tmp_path / "syn", {"seed": 1}, quiet=True)
    assert 30_000 <= stats["full"]["events"] <= 60_000 and 300 <= stats["full"]["items"] <= 2000
    for name in ("train_full", "test", "train_tr", "train_valid", "full"):
        assert (tmp_path / "syn" / f"{name}.parquet").is_file() and stats[name]["events"] > 0
    assert stats["test"]["sessions"] >= 100 and stats["train_valid"]["sessions"] >= 100
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


@pytest.mark.parametrize(
    "options,match",
    [({"n_sesions": 5}, "unknown synthetic option.s. n_sesions"), ({"p_follow": 2}, "0 <= p_follow <= 1")],
)
def test_bad_options(tmp_path, options, match):
    with pytest.raises(PreprocessingError, match=match):
        preprocessing.preprocess("synthetic", None, tmp_path / "o", options, quiet=True)
