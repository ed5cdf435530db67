"""Reading events: formats, id types, column names, and every bad input as a one-line DataError."""
import numpy as np
import pandas as pd
import pytest

from gru4rec import read_events
from gru4rec.errors import DataError

EVENTS = pd.DataFrame({"SessionId": [1, 1, 2, 2], "ItemId": [10, 11, 10, 12], "Time": [5, 6, 7, 8]})


@pytest.mark.parametrize("name,writer", [
    ("e.tsv", lambda df, p: df.to_csv(p, sep="\t", index=False)),
    ("e.txt", lambda df, p: df.to_csv(p, sep="\t", index=False)),
    ("e.csv", lambda df, p: df.to_csv(p, index=False)),
    ("e.parquet", lambda df, p: df.to_parquet(p)),
])
def test_formats_give_the_same_events(tmp_path, name, writer):
    writer(EVENTS.assign(Extra="x"), tmp_path / name)
    df = read_events(tmp_path / name)
    assert list(df.columns) == ["SessionId", "ItemId", "Time"]
    assert df.ItemId.dtype == np.int64 and df.ItemId.tolist() == [10, 11, 10, 12]


def test_string_ids_and_custom_columns(tmp_path):
    df = pd.DataFrame({"sess": ["a", "a"], "item": ["x1", "007"], "ts": [1.5, 2.5]})
    df.to_csv(tmp_path / "e.csv", index=False)
    out = read_events(tmp_path / "e.csv", session_key="sess", item_key="item", time_key="ts")
    assert out.item.tolist() == ["x1", "007"]  # mixed ids stay strings, leading zeros kept


def test_parquet_timestamps_become_seconds(tmp_path):
    df = EVENTS.assign(Time=pd.to_datetime([0, 1, 2, 3], unit="s"))
    df.to_parquet(tmp_path / "e.parquet")
    assert read_events(tmp_path / "e.parquet").Time.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_events(tmp_path / "nope.tsv")
    with pytest.raises(DataError, match="is a directory"):
        read_events(tmp_path)


def test_empty_file_and_header_only(tmp_path):
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(DataError, match="empty"):
        read_events(tmp_path / "empty.tsv")
    (tmp_path / "header.tsv").write_text("SessionId\tItemId\tTime\n")
    with pytest.raises(DataError, match="no events"):
        read_events(tmp_path / "header.tsv")


def test_missing_column_and_wrong_separator(tmp_path):
    EVENTS.rename(columns={"ItemId": "item"}).to_csv(tmp_path / "e.tsv", sep="\t", index=False)
    with pytest.raises(DataError, match=r"missing column\(s\) ItemId; the file has: SessionId, item, Time"):
        read_events(tmp_path / "e.tsv")
    EVENTS.to_csv(tmp_path / "comma.tsv", index=False)  # commas in a .tsv
    with pytest.raises(DataError, match="SessionId,ItemId,Time"):
        read_events(tmp_path / "comma.tsv")


def test_non_numeric_time_and_nan_ids(tmp_path):
    EVENTS.assign(Time=["5", "6", "yesterday", "8"]).to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    with pytest.raises(DataError, match=r"Time must be numeric; 1 value\(s\).*row 3: 'yesterday'"):
        read_events(tmp_path / "t.tsv")
    EVENTS.assign(ItemId=[10, None, 10, 12]).to_csv(tmp_path / "n.tsv", sep="\t", index=False)
    with pytest.raises(DataError, match=r"ItemId has 1 missing value\(s\) \(first at data row 2\)"):
        read_events(tmp_path / "n.tsv")


def test_unknown_extension_and_corrupt_parquet(tmp_path):
    (tmp_path / "e.xlsx").write_text("x")
    with pytest.raises(DataError, match="extension"):
        read_events(tmp_path / "e.xlsx")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="not a readable Parquet"):
        read_events(tmp_path / "bad.parquet")
