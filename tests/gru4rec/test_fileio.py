"""gru4rec.fileio: the one reader of Parquet/CSV/TSV files (the model's events and preprocessing's
raw files alike) and atomic writes."""

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from gru4rec.errors import DataError
from gru4rec.fileio import NULL_TOKENS, atomic_output, read_table, write_text_atomic


class OtherError(Exception):
    pass


@pytest.mark.parametrize("streamed", [False, True])
def test_every_null_token_is_missing_whether_read_at_once_or_in_blocks(tmp_path, streamed):
    rows = [f"{k},{token}" for k, token in enumerate(NULL_TOKENS)] + ["99,7"]
    (tmp_path / "e.csv").write_text("a,b\n" + "\n".join(rows) + "\n")
    table = read_table(
        tmp_path / "e.csv",
        ["a", "b"],
        types={"b": pa.int64()},
        reduce=(lambda block, first_row: block) if streamed else None,
    )
    assert table["b"].null_count == len(NULL_TOKENS) and table["b"].to_pylist()[-1] == 7


def test_blocks_are_reduced_in_order_with_their_first_row(tmp_path):
    (tmp_path / "e.tsv").write_text("x\ty\n" + "".join(f"{i}\t{i % 3}\n" for i in range(200_000)))
    seen = []

    def reduce(block, first_row):
        seen.append((first_row, block.num_rows))
        return block.filter(pc.equal(block["keep"], 0))  # blocks come with the output names

    table = read_table(tmp_path / "e.tsv", {"keep": ["y"], "id": ["x"]}, reduce=reduce)
    assert table.column_names == ["keep", "id"] and table["id"].to_pylist() == list(range(0, 200_000, 3))
    assert seen[0][0] == 0 and all(a + n == b for (a, n), (b, _) in zip(seen, seen[1:]))


def test_a_bad_value_names_the_file_column_whatever_the_order_asked(tmp_path):
    (tmp_path / "e.csv").write_text("a,b,c\n1,2,3\nx,2,3\n")
    with pytest.raises(OtherError, match=r"e.csv: column a: expected an integer, found 'x'"):
        read_table(
            tmp_path / "e.csv", {"c": ["c"], "a": ["a"]}, types={"a": pa.int64(), "c": pa.int64()}, error=OtherError
        )


def test_accepted_names_missing_columns_and_a_wrong_separator(tmp_path):
    (tmp_path / "e.csv").write_text("session_id;item\n1;2\n")
    with pytest.raises(
        DataError,
        match=r"missing column\(s\) sessionId / session_id, item; the file has: "
        r"session_id;item \(wrong separator\? expected ','; see -sk\)",
    ):
        read_table(tmp_path / "e.csv", {"s": ["sessionId", "session_id"], "i": ["item"]}, hint="see -sk")
    table = read_table(tmp_path / "e.csv", {"s": ["sessionId", "session_id"], "i": ["item"]}, sep=";")
    assert table.to_pydict() == {"s": [1], "i": [2]}
    pd.DataFrame({"x": [1], "y": ["a"]}).to_parquet(tmp_path / "e.parquet")
    assert read_table(tmp_path / "e.parquet", {"why": ["y"]}).to_pydict() == {"why": ["a"]}


def test_an_atomic_write_replaces_the_file_whole_or_leaves_it(tmp_path):
    write_text_atomic(tmp_path / "new" / "t.md", "x\n")
    assert (tmp_path / "new" / "t.md").read_text() == "x\n" and len(list((tmp_path / "new").iterdir())) == 1
    with pytest.raises(OSError), atomic_output(tmp_path / "new" / "t.md") as tmp:
        Path(tmp).write_text("half")
        raise OSError("disk full")
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["t.md"]
    assert (tmp_path / "new" / "t.md").read_text() == "x\n"


@pytest.mark.parametrize(
    "name,data,kw,match",
    [
        (
            "e.csv",
            b"\x1f\x8b\x08\x00" + bytes(20),
            {},
            r"e.csv: gzip-compressed data behind a plain .csv name \(rename",
        ),
        (
            "e.csv",
            b"\x1f\x8b\x08\x00" + bytes(20),
            {"compressed": False},  # a reader of fixed names: renaming would not help
            r"e.csv: gzip-compressed data behind a plain .csv name, expected text \(decompress it: mv e.csv e.csv.gz",
        ),
        ("e.csv", b"a,b\n1,2\n", {"sep": ";;"}, r"e.csv: the separator must be one character .*got ';;'"),
        ("e.csv", b"a,b\n1,2\n3,2016-02-30\n", {"types": {"b": pa.date32()}}, r"e.csv: column b: expected a date"),
        ("e.csv", b"\xef\xbb\xbfa,b\r\n1,caf\xc3\xa9\r\n", {}, None),  # BOM, CRLF and UTF-8 values: fine
    ],
)
def test_leading_bytes_are_checked_before_arrow_parses(tmp_path, name, data, kw, match):
    (tmp_path / name).write_bytes(data)
    if match is None:
        assert read_table(tmp_path / name, ["a", "b"], **kw).to_pydict() == {"a": [1], "b": ["café"]}
        return
    with pytest.raises(OtherError, match=match) as e:  # the caller's error class, whatever the problem
        read_table(tmp_path / name, ["a", "b"], error=OtherError, **kw)
    assert "\n" not in str(e.value)


def test_a_nul_byte_past_the_checked_head_is_found_in_the_values(tmp_path):
    rows = "".join(f"{i},x{i}\n" for i in range(20_000))
    (tmp_path / "e.csv").write_bytes(b"a,b\n" + rows.encode() + b"1,x\x00y\n")
    with pytest.raises(DataError, match=r"e.csv: column b: NUL bytes in a value"):
        read_table(tmp_path / "e.csv", ["a", "b"], reduce=lambda block, first_row: block)
    ids = pa.dictionary(pa.int32(), pa.string())  # dictionary-encoded text is checked too
    with pytest.raises(DataError, match=r"column b: NUL bytes"):
        read_table(tmp_path / "e.csv", ["a", "b"], types={"b": ids})
