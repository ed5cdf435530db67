"""Bad raw input as a hostile new user gives it: every case is a one-line error naming the file
(and the column or config key) and what was expected, exit code 2 on the command lines, no
traceback, and no output written. Plus the look-alikes that must simply work (a UTF-8 byte order
mark, CRLF line ends, compressed files under compressed names).

The raw files are tiny and generated here, in each dataset's format (preprocessing/readers.py).
"""

import bz2
import gzip
import io
import lzma
import subprocess
import sys
import zipfile
from datetime import datetime, timezone

import pandas as pd
import pyarrow as pa
import pytest

import preprocessing
from gru4rec import read_events
from gru4rec.errors import DataError, GRU4RecError
from preprocessing import readers
from preprocessing.errors import PreprocessingError

EVENTS = b"SessionId\tItemId\tTime\n" + b"".join(b"%d\t%d\t%d\n" % (s, i, 1000 * s + i) for s in (1, 2) for i in (1, 2))
MANY = EVENTS + b"".join(b"%d\t%d\t%d\n" % (s, s % 97, s) for s in range(3, 100_000))
RR_HEAD = b"timestamp,visitorid,event,itemid,transactionid\n"
RR_ROW = b"1442545200000,1,view,3,\n"
REES_HEAD = b"event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
REES_ROW = b"2019-11-30 10:00:00 UTC,view,1,1,,,1.0,7,x\n"
DIGI_HEAD = b"sessionId;userId;itemId;timeframe;eventdate\n"
COVEO_HEAD = b"session_id_hash,event_type,product_action,product_skus_hash,server_timestamp_epoch_ms,hashed_url\n"
YOO_ROW = b"1,2014-04-01T10:00:00.000Z,1,0\n"
CUSTOM_CSV = b"s,i,t\n" + b"".join(b"%d,%d,%d\n" % (s, i, 86400 * s + i) for s in range(1, 9) for i in (1, 2, 3))
LATIN1_BRAND = b"SessionId\tItemId\tbrand\tTime\n" + b"".join(
    b"%d\t%d\t%s\t%d\n" % (s, i, b"Citro\xebn", 1000 * s + i) for s in (1, 2) for i in (1, 2)
)
MS_CSV = b"s,i,t\n" + b"".join(
    b"%d,%d,%d\n" % (s, i, 1_600_000_000_000 + 86_400_000 * s + i) for s in (1, 2) for i in (1, 2)
)
CONFIG = "files: [e.csv]\ncolumns: {session: s, item: i, time: t}\nmin_item_support: 1\n"


def gz(data: bytes, mtime=0) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=mtime) as f:
        f.write(data)
    return out.getvalue()


def zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as f:
        f.write(data)
    return sink.getvalue().to_pybytes()


def zipped(data: bytes, member="events.csv") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(member, data)
    return out.getvalue()


def utf16(data: bytes) -> bytes:
    return data.decode().encode("utf-16")  # with its byte order mark


def place(directory, files: dict):
    """files: name -> bytes, or None for a directory of that name."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        if data is None:
            (directory / name).mkdir()
        else:
            (directory / name).write_bytes(data)


def one_line(e: BaseException, *names):
    msg = str(e)
    assert "\n" not in msg and "Traceback" not in msg, msg
    for name in names:
        assert name in msg, (name, msg)
    return msg


def nothing_written(tmp_path, out="out"):
    assert not (tmp_path / out).exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(f".{out}.")]  # no temporary directory left


# ------------------------------------------------------------------------- the events reader
READER_CASES = [
    # compression the name does not say, or says wrongly
    ("e.tsv", gz(EVENTS), r"gzip-compressed data behind a plain \.tsv name \(rename it to e\.tsv\.gz"),
    ("e.tsv", bz2.compress(EVENTS), r"bzip2-compressed data behind a plain \.tsv name \(rename it to e\.tsv\.bz2"),
    ("e.tsv", zstd(EVENTS), r"zstd-compressed data behind a plain \.tsv name \(rename it to e\.tsv\.zst"),
    ("e.tsv", lzma.compress(EVENTS), r"xz-compressed data, which cannot be read directly \(unpack it first: unxz"),
    ("e.tsv.xz", lzma.compress(EVENTS), r"xz-compressed data, which cannot be read directly"),
    ("e.csv", zipped(EVENTS), r"a ZIP archive, which cannot be read directly \(unpack it first: unzip e\.csv\)"),
    ("e.csv.zip", zipped(EVENTS), r"a ZIP archive, which cannot be read directly"),
    ("e.tsv.gz", EVENTS, r"not gzip-compressed data, although the name ends in \.gz \(rename it to e\.tsv\)"),
    ("e.tsv.bz2", gz(EVENTS), r"gzip-compressed data, but the name ends in \.bz2 \(rename it to e\.tsv\.gz\)"),
    ("e.tsv.gz", gz(MANY)[: len(gz(MANY)) // 2], r"cannot (decompress the gzip data|read the file) \(Truncated"),
    ("e.parquet", gz(EVENTS), r"gzip-compressed data, not a Parquet file"),
    ("e.csv", b"PAR1" + bytes(100), r"Parquet data, not text \(rename it to e\.parquet\)"),
    # encodings
    ("e.tsv", EVENTS.replace(b"ItemId", b"ItemId\xe9"), r"the header line is not UTF-8 text \(byte 0xe9"),
    ("e.tsv", EVENTS.replace(b"\n", b"\tna\xefve\n", 1).replace(b"\n", b"\tx\n"), "the header line is not UTF-8"),
    ("e.tsv", EVENTS + b"3\tcaf\xe9\t9\n", r"column ItemId: a value is not UTF-8 text; save the file as UTF-8"),
    ("e.tsv", utf16(EVENTS), r"UTF-16 text \(byte order mark FF FE\), expected UTF-8"),
    ("e.tsv", EVENTS.decode().encode("utf-16-be"), "UTF-16 text without a byte order mark"),
    ("e.tsv", EVENTS.decode().encode("utf-32"), "UTF-32 text"),
    ("e.tsv", EVENTS + b"3\t1\x002\t9\n", r"NUL bytes at line 6: binary data"),
    (
        "e.tsv",
        EVENTS + b"".join(b"%d\t1\t%d\n" % (s, s) for s in range(9, 9000)) + b"3\t1\x002\t9\n",
        r"column ItemId: NUL",
    ),
    # shape
    ("e.tsv", b"", "the file is empty"),
    ("e.tsv", b"\n  \n", "the first line is blank, expected a header line"),
    ("e.tsv", b"SessionId\tItemId\tTime\n", r"no events \(a header but no rows\)"),
    ("e.tsv", EVENTS.replace(b"\t", b","), r"wrong separator\? expected '\\t'"),
    ("e.tsv", EVENTS.replace(b"ItemId", b"item_id"), r"missing column\(s\) ItemId; the file has: SessionId, item_id"),
    (
        "e.tsv",
        EVENTS + b"3\t1\tnoon\n",
        r"column Time must be numeric; 1 value\(s\) are not \(first at data row 5: 'noon'\)",
    ),
    ("e.tsv", None, "is a directory, expected a file"),
]


@pytest.mark.parametrize("name,data,match", READER_CASES, ids=[f"{k:02d}-{c[0]}" for k, c in enumerate(READER_CASES)])
def test_reader_bad_input_is_one_line_naming_the_file(tmp_path, name, data, match):
    place(tmp_path, {name: data})
    with pytest.raises(DataError, match=match) as e:
        read_events(tmp_path / name)
    one_line(e.value, str(tmp_path / name))


@pytest.mark.parametrize(
    "name,data",
    [
        ("e.tsv", b"\xef\xbb\xbf" + EVENTS),  # a UTF-8 byte order mark (Excel, Notepad)
        ("e.tsv", EVENTS.replace(b"\n", b"\r\n")),  # Windows line ends
        ("e.csv", b"\xef\xbb\xbf" + EVENTS.replace(b"\t", b",").replace(b"\n", b"\r\n")),
        ("e.tsv.gz", gz(EVENTS, mtime=38 * 1234567)),
        ("e.tsv.bz2", bz2.compress(EVENTS)),
        ("e.tsv.zst", zstd(EVENTS)),
        ("E.TSV.GZ", gz(EVENTS)),
        ("e.tsv", LATIN1_BRAND),
    ],
    ids=["utf8-bom", "crlf", "bom-crlf-csv", "gz", "bz2", "zst", "upper-case-gz", "latin1-in-an-unused-column"],
)
def test_look_alikes_that_must_work(tmp_path, name, data):
    place(tmp_path, {name: data})
    df = read_events(tmp_path / name)
    assert list(df.columns) == ["SessionId", "ItemId", "Time"]
    assert df.SessionId.tolist() == [1, 1, 2, 2] and df.ItemId.tolist() == [1, 2, 1, 2]
    assert df.Time.tolist() == [1001, 1002, 2001, 2002]


def test_a_missing_file_points_at_its_compressed_copy(tmp_path):
    (tmp_path / "e.tsv.gz").write_bytes(gz(EVENTS))
    with pytest.raises(
        DataError, match=r"e.tsv: file not found \(there is e.tsv.gz beside it: give that name, or decomp"
    ):
        read_events(tmp_path / "e.tsv")


# ------------------------------------------------------------------------- the six raw formats
RAW_CASES = [
    (
        "retailrocket",
        {"events.csv": gz(RR_HEAD + RR_ROW)},
        r"events.csv: gzip-compressed data behind a plain \.csv "
        r"name, expected text \(decompress it",
    ),
    ("retailrocket", {"events.csv": bz2.compress(RR_HEAD + RR_ROW)}, "events.csv: bzip2-compressed data"),
    ("retailrocket", {"events.csv": zipped(RR_HEAD + RR_ROW)}, "events.csv: a ZIP archive"),
    ("retailrocket", {"events.csv": utf16(RR_HEAD + RR_ROW)}, "events.csv: UTF-16 text"),
    ("retailrocket", {"events.csv": None}, "events.csv: is a directory, expected a file"),
    ("retailrocket", {"events.csv": b""}, "events.csv: the file is empty"),
    (
        "retailrocket",
        {"events.csv": RR_HEAD + b"99999999999999999,1,view,3,\n"},
        r"events.csv: column timestamp: time 99999999999999999 at data row 1 is out of range \(expected between 1677",
    ),
    (
        "retailrocket",
        {"events.csv": RR_HEAD + b"1442545200000,1,view,3,\n,1,view,3,\n"},
        r"events.csv: column timestamp has 1 missing value\(s\) \(first at data row 2\)",
    ),
    (
        "retailrocket",
        {"events.csv": RR_HEAD.replace(b"visitorid", b"visitor_id") + RR_ROW},
        r"events.csv: missing column\(s\) visitorid; the file has: timestamp, visitor_id",
    ),
    (
        "rees46",
        {"2019-Oct.csv.gz": gz(REES_HEAD + REES_ROW), "2019-Nov.csv.gz": gz(REES_HEAD + REES_ROW)},
        r"2019-Oct.csv: file not found \(there is 2019-Oct.csv.gz beside it",
    ),
    (
        "rees46",
        {
            "2019-Oct.csv": REES_HEAD + REES_ROW + REES_ROW.replace(b"2019-11-30", b"2500-01-01"),
            "2019-Nov.csv": REES_HEAD,
        },
        r"2019-Oct.csv: column event_time: time '2500-01-01 10:00:00 UTC' at data row 2 is out of range",
    ),
    (
        "rees46",
        {"2019-Oct.csv": REES_HEAD + REES_ROW.replace(b"view", b"vi\xe9w"), "2019-Nov.csv": REES_HEAD},
        r"2019-Oct.csv: column event_type: a value is not UTF-8 text",
    ),
    (
        "rees46",
        {"2019-Oct.csv": REES_HEAD.replace(b"brand", b"marqu\xe9") + REES_ROW, "2019-Nov.csv": REES_HEAD},
        "2019-Oct.csv: the header line is not UTF-8 text",
    ),
    (
        "rees46",
        {"2019-Oct.csv": REES_HEAD + REES_ROW.replace(b" UTC", b""), "2019-Nov.csv": REES_HEAD},
        r"2019-Oct.csv: column event_time: cannot parse time '2019-11-30 10:00:00' at data row 1 \(expected format",
    ),
    (
        "yoochoose",
        {"yoochoose-clicks.dat": b"session,time,item,category\n" + YOO_ROW, "yoochoose-test.dat": YOO_ROW},
        r"yoochoose-clicks.dat: column 1 \(SessionId\): expected an integer, found 'session' in the first line "
        r"\(the file has no header line",
    ),
    (
        "yoochoose",
        {"yoochoose-clicks.dat": YOO_ROW.replace(b",", b"\t"), "yoochoose-test.dat": YOO_ROW},
        r"yoochoose-clicks.dat: cannot parse as CSV .*wrong separator\? expected ','",
    ),
    (
        "yoochoose",
        {"yoochoose-clicks.dat": YOO_ROW.replace(b"2014", b"2300"), "yoochoose-test.dat": YOO_ROW},
        r"yoochoose-clicks.dat: column 2 \(time\): time '2300-04-01T10:00:00.000Z' at data row 1 is out of range",
    ),
    (
        "yoochoose",
        {"yoochoose-clicks.dat": YOO_ROW.replace(b"-04-", b"-13-"), "yoochoose-test.dat": YOO_ROW},
        r"yoochoose-clicks.dat: column 2 \(time\): cannot parse time '2014-13-01T10:00:00.000Z'",
    ),
    (
        "yoochoose",
        {"yoochoose-clicks.dat": YOO_ROW + b"2,\x00\x00\x00,1,0\n", "yoochoose-test.dat": YOO_ROW},
        "yoochoose-clicks.dat: NUL bytes at line 2",
    ),
    (
        "rsc15",
        {"yoochoose-clicks.dat": gz(YOO_ROW * 50)},
        r"yoochoose-clicks.dat: gzip-compressed data behind a "
        r"plain \.dat name",
    ),
    (
        "diginetica",
        {"train-item-views.csv": DIGI_HEAD + b"1;NA;2;3;2016-13-45\n"},
        r"train-item-views.csv: column eventdate: expected a date \(YYYY-MM-DD\), found '2016-13-45'",
    ),
    (
        "diginetica",
        {"train-item-views.csv": DIGI_HEAD + b"1;NA;2;3;1500-01-01\n"},
        r"train-item-views.csv: column eventdate: time '1500-01-01' at data row 1 is out of range",
    ),
    (
        "diginetica",
        {"train-item-views.csv": DIGI_HEAD.replace(b"\n", b";r\xe9f\n") + b"1;NA;2;3;2016-01-01;x\n"},
        "train-item-views.csv: the header line is not UTF-8 text",
    ),
    (
        "diginetica",
        {"train-item-views.csv": DIGI_HEAD.replace(b";", b",") + b"1,NA,2,3,2016-01-01\n"},
        r"train-item-views.csv: missing column\(s\) sessionId / session_id.*wrong separator\? expected ';'",
    ),
    ("coveo", {"release_10_23_2020.csv": COVEO_HEAD}, r"release_10_23_2020.csv: no events \(a header but no rows\)"),
    (
        "coveo",
        {"release_10_23_2020.csv": COVEO_HEAD + b"h\x001,x,detail,s1,1,u\n"},
        "release_10_23_2020.csv: NUL bytes",
    ),
    ("coveo", {"release_10_23_2020.csv": lzma.compress(COVEO_HEAD)}, "release_10_23_2020.csv: xz-compressed data"),
    (
        "coveo",
        {"release_10_23_2020.csv": COVEO_HEAD + b"h1,x,detail,s1,2020-01-01T00:00:00Z,u\n"},
        r"release_10_23_2020.csv: column server_timestamp_epoch_ms: expected an integer, found '2020-01-01T00:00:00Z'",
    ),
]


@pytest.mark.parametrize("dataset,files,match", RAW_CASES, ids=[f"{k:02d}-{c[0]}" for k, c in enumerate(RAW_CASES)])
def test_raw_format_bad_input_is_one_line_and_writes_nothing(tmp_path, dataset, files, match):
    place(tmp_path / "raw", files)
    with pytest.raises(PreprocessingError, match=match) as e:
        preprocessing.preprocess(dataset, tmp_path / "raw", tmp_path / "out", quiet=True)
    one_line(e.value, str(tmp_path / "raw"))
    nothing_written(tmp_path)


def test_latin1_in_a_column_no_recipe_reads_is_fine(tmp_path):
    place(tmp_path, {"2019-Nov.csv": REES_HEAD + REES_ROW.replace(b",,,1.0", b",,Citro\xebn,1.0")})
    df = readers.read_rees46(tmp_path, files=("2019-Nov.csv",), quiet=True)
    assert df.ItemId.tolist() == [1] and df.Time.tolist() == [1575108000]


def test_times_beyond_2262_no_longer_wrap_around():
    """Times were computed in nanoseconds: 2500-01-01 came out as a time in 1915, silently."""
    table = pa.table({"Time": pa.array(["2262-04-10 00:00:00 UTC", "2019-10-01 00:00:00 UTC"])})
    out = readers.parse_time(table, "Time", "%Y-%m-%d %H:%M:%S UTC", "f.csv", 0)["Time"].to_pylist()
    assert out == [int(datetime(2262, 4, 10, tzinfo=timezone.utc).timestamp()), 1569888000]
    late = pa.table({"Time": pa.array(["2019-10-01T00:00:00.250Z", "2500-01-01T00:00:00Z"])})
    with pytest.raises(PreprocessingError, match=r"f.csv: column t: time '2500-01-01T00:00:00Z' at data row 12 is out"):
        readers.parse_time(late, "Time", "ISO8601", "f.csv", 10, "float", "t")
    assert (
        readers.parse_time(late.slice(0, 1), "Time", "ISO8601", "f.csv", 0, "float")["Time"][0].as_py() == 1569888000.25
    )


def test_a_failed_run_leaves_the_previous_outputs_as_they_were(tmp_path):
    place(tmp_path / "raw", {"e.csv": CUSTOM_CSV, "c.yaml": CONFIG.encode()})
    config = {"config": str(tmp_path / "raw" / "c.yaml")}
    preprocessing.preprocess("custom", tmp_path / "raw", tmp_path / "out", config, quiet=True)
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    (tmp_path / "raw" / "e.csv").write_bytes(gz(CUSTOM_CSV))
    with pytest.raises(PreprocessingError, match="e.csv: gzip-compressed data"):
        preprocessing.preprocess("custom", tmp_path / "raw", tmp_path / "out", config, quiet=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


# ------------------------------------------------------------------------- custom data and its YAML
CUSTOM_CASES = [
    ({"c.yaml": CONFIG + "min_support: 3\n"}, r"custom config: unknown key\(s\) min_support; valid: ", "min_support"),
    (
        {"c.yaml": CONFIG.replace("support: 1", "support: '5'")},
        "'min_item_support' must be an integer >= 1, got '5'",
        "min_item_support",
    ),
    ({"c.yaml": CONFIG + "split: {mode: lats}\n"}, "split.mode must be 'time' or 'last', got 'lats'", "split.mode"),
    (
        {"c.yaml": CONFIG + "split: {mode: time, test_days: 0}\n"},
        "split.test_days must be a positive number",
        "test_days",
    ),
    ({"c.yaml": CONFIG + "time_unit: sec\n"}, "time_unit must be s, ms, iso8601 or a strptime format", "time_unit"),
    (
        {"c.yaml": CONFIG.replace("session: s", "user: s") + "session_gap: 1h\n"},
        "needs 'session_gap', a positive",
        "session_gap",
    ),
    (
        {"c.yaml": "files: [e.csv]\ncolumns: {session: 1, item: 2, time: 3}\n"},
        r"columns.session must be a column name \(text\), got 1",
        "columns.session",
    ),
    ({"c.yaml": CONFIG + "separator: ';;'\n"}, "'separator' must be one character", "separator"),
    ({"c.yaml": "files: [e.csv]\ncolumns: [s, i, t]\n"}, "'columns' maps event, item, session", "columns"),
    ({"c.yaml": CONFIG.replace("e.csv", "none.csv")}, "none.csv: file not found", "none.csv"),
    ({"c.yaml": CONFIG.replace("e.csv", "d.csv"), "d.csv": None}, "d.csv: is a directory, expected a file", "d.csv"),
    (
        {"c.yaml": (CONFIG + "name: caf\xe9\n").encode("latin-1")},
        r"c.yaml: the config is not UTF-8 text \(byte 0xe9",
        "c.yaml",
    ),
    ({"c.yaml": None}, r"c.yaml: is a directory, expected the config file", "c.yaml"),
    ({"c.yaml": ""}, r"c.yaml: the config is empty", "c.yaml"),
    ({"c.yaml": "- files: [e.csv]\n"}, "c.yaml: the config must be a mapping of keys to values", "c.yaml"),
    ({"c.yaml": "files: [e.csv\n"}, "c.yaml: invalid YAML: ", "c.yaml"),
    ({"e.csv": gz(CUSTOM_CSV)}, r"e.csv: gzip-compressed data behind a plain \.csv name", "e.csv"),
    (
        {"e.xlsx": zipped(CUSTOM_CSV, "xl/workbook.xml"), "c.yaml": CONFIG.replace("e.csv", "e.xlsx")},
        r"e.xlsx: a ZIP archive, which cannot be read directly",
        "e.xlsx",
    ),
    (
        {
            "e.csv": b"s,i,t\n1,1,2020-01-01T00:00:00Z\n1,2,2500-01-01T00:00:00Z\n",
            "c.yaml": CONFIG + "time_unit: iso8601\n",
        },
        r"e.csv: column t: time '2500-01-01T00:00:00Z' at data row 2 is out of range",
        "e.csv",
    ),
    (
        {"e.csv": MS_CSV},  # milliseconds, said to be seconds
        r"e.csv: column t: time 1600086400001 at data row 1 is out of range .*is time_unit right\?",
        "e.csv",
    ),
    (
        {"e.csv": b"s,i,t\n1,1,2020/01/01\n", "c.yaml": CONFIG + "time_unit: '%Y-%m-%d'\n"},
        r"e.csv: column t: cannot parse time '2020/01/01' at data row 1 \(expected format %Y-%m-%d\)",
        "e.csv",
    ),
]


@pytest.mark.parametrize("files,match,named", CUSTOM_CASES, ids=[f"{k:02d}" for k in range(len(CUSTOM_CASES))])
def test_custom_bad_config_or_data_is_one_line_and_writes_nothing(tmp_path, files, match, named):
    files = {"e.csv": CUSTOM_CSV, "c.yaml": CONFIG, **files}
    place(tmp_path / "raw", {k: v.encode() if isinstance(v, str) else v for k, v in files.items()})
    with pytest.raises(PreprocessingError, match=match) as e:
        preprocessing.preprocess(
            "custom", tmp_path / "raw", tmp_path / "out", {"config": str(tmp_path / "raw" / "c.yaml")}, quiet=True
        )
    one_line(e.value, named)
    nothing_written(tmp_path)


@pytest.mark.parametrize(
    "files",
    [
        {"e.tsv.gz": gz(CUSTOM_CSV.replace(b",", b"\t")), "c.yaml": CONFIG.replace("e.csv", "e.tsv.gz").encode()},
        {
            "e.csv": b"\xef\xbb\xbf" + CUSTOM_CSV.replace(b"\n", b"\r\n"),
            "c.yaml": b"\xef\xbb\xbf" + CONFIG.replace("\n", "\r\n").encode(),
        },
    ],
    ids=["tsv.gz-read-as-tab-separated", "bom-and-crlf-in-data-and-config"],
)
def test_custom_look_alikes_that_must_work(tmp_path, files):
    place(tmp_path / "raw", files)
    stats = preprocessing.preprocess(
        "custom", tmp_path / "raw", tmp_path / "out", {"config": str(tmp_path / "raw" / "c.yaml")}, quiet=True
    )
    assert stats["full"]["events"] == 24
    assert pd.read_parquet(tmp_path / "out" / "full.parquet").ItemId.tolist()[:3] == [1, 2, 3]


def test_output_and_raw_paths_that_are_files(tmp_path):
    place(tmp_path, {"events.csv": RR_HEAD + RR_ROW, "out": b"x"})
    with pytest.raises(PreprocessingError, match=r"out: is a file, expected a directory for the outputs$"):
        preprocessing.preprocess("retailrocket", tmp_path, tmp_path / "out", quiet=True)
    with pytest.raises(
        PreprocessingError, match=r"out: is a file, expected a directory for the outputs \(in the output"
    ):
        preprocessing.preprocess("retailrocket", tmp_path, tmp_path / "out" / "splits", quiet=True)
    with pytest.raises(PreprocessingError, match=r"events.csv: is a file; --raw is the directory"):
        preprocessing.preprocess("retailrocket", tmp_path / "events.csv", tmp_path / "o", quiet=True)
    assert (tmp_path / "out").read_bytes() == b"x" and not (tmp_path / "o").exists()


# ------------------------------------------------------------------------- the command lines, as a user runs them
CLI_CASES = [
    (
        "preprocessing",
        ["retailrocket"],
        {"events.csv": gz(RR_HEAD + RR_ROW, mtime=38 * 1234567)},
        "events.csv: gzip-compressed data behind a plain .csv name",
    ),
    (
        "preprocessing",
        ["diginetica"],
        {"train-item-views.csv": DIGI_HEAD.replace(b"\n", b";r\xe9f\n")},
        "train-item-views.csv: the header line is not UTF-8 text",
    ),
    (
        "preprocessing",
        ["rees46"],
        {"2019-Oct.csv": utf16(REES_HEAD + REES_ROW), "2019-Nov.csv": REES_HEAD},
        "2019-Oct.csv: UTF-16 text",
    ),
    (
        "preprocessing",
        ["custom", "--config", "{raw}/c.yaml"],
        {"e.csv": CUSTOM_CSV, "c.yaml": (CONFIG + "name: caf\xe9\n").encode("latin-1")},
        "c.yaml: the config is not UTF-8",
    ),
    (
        "preprocessing",
        ["custom", "--config", "{raw}/c.yaml"],
        {"e.csv": CUSTOM_CSV, "c.yaml": (CONFIG + "split: {mode: lats}\n").encode()},
        "split.mode must be 'time' or 'last'",
    ),
    (
        "preprocessing",
        ["retailrocket", "--out", "{raw}/events.csv"],
        {"events.csv": RR_HEAD + RR_ROW},
        "events.csv: is a file, expected a directory for the outputs",
    ),
    (
        "gru4rec",
        ["train", "{raw}/e.tsv"],
        {"e.tsv": gz(b"SessionId\tItemId\tTime\n" * 100, mtime=38 * 1234567)},
        "e.tsv: gzip-compressed data behind a plain .tsv name (rename it to e.tsv.gz",
    ),
]


def test_command_lines_exit_2_with_one_line_and_no_output(tmp_path):
    """The cases run side by side: each is a fresh interpreter, as a user's shell gives it."""
    runs = []
    for k, (module, args, files, expected) in enumerate(CLI_CASES):
        case = tmp_path / f"c{k}"
        place(case / "raw", files)
        argv = [a.format(raw=case / "raw") for a in args]
        if module == "preprocessing":
            argv = (
                [argv[0], "--raw", str(case / "raw")]
                + (["--out", str(case / "out")] if "--out" not in argv else [])
                + argv[1:]
                + ["-q"]
            )
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        runs.append((case, module, expected, proc))
    for case, module, expected, proc in runs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (expected, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert err.startswith(f"{module}: error: ") and expected in err, err
        assert not (case / "out").exists() and not [p for p in case.iterdir() if p.name.startswith(".out.")]


def test_errors_share_one_base():
    assert issubclass(PreprocessingError, GRU4RecError) and issubclass(DataError, GRU4RecError)
