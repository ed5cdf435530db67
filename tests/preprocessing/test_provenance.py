"""PROVENANCE.tsv: the download records each raw file (name, size, modification time, SHA-256,
source, date), every later run verifies it (hashing it again only when its time changed) and stops
with one line when a file changed; the statistics carry the hashes. No network: file:// URLs and a
stand-in for the Kaggle API."""

import gzip
import hashlib
import os
import sys
import tempfile
import types
import zipfile
from pathlib import Path

import pandas as pd
import pytest

import preprocessing
from preprocessing import fetch, provenance
from preprocessing.fetch import RawFile, Source
from preprocessing.provenance import ProvenanceError

from .test_checks import retailrocket

BODY = "event_time,event_type,product_id,category_id\n" + "2019-10-01 00:00:00 UTC,view,1,2\n" * 200


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_download_records_each_file_and_a_later_run_catches_a_change(tmp_path, monkeypatch):
    src = tmp_path / "server" / "2019-Oct.csv.gz"
    src.parent.mkdir()
    src.write_bytes(gzip.compress(BODY.encode()))
    monkeypatch.setitem(
        fetch.SOURCES, "rees46", Source((RawFile("2019-Oct.csv", 100, "event_time", src.as_uri()),), "page")
    )
    raw = tmp_path / "raw"
    fetch.download("rees46", raw, quiet=True)
    (entry,) = provenance.load(raw).values()
    assert (entry.name, entry.size, entry.sha256, entry.source) == (
        "2019-Oct.csv",
        len(BODY),
        sha(BODY.encode()),  # of the file on disk (decompressed), what later runs verify
        src.as_uri(),
    )
    assert len(entry.recorded) == 10 and (raw / "PROVENANCE.tsv").read_text().startswith(
        "name\tsize\tmtime_ns\tsha256\t"
    )
    assert entry.mtime_ns == (raw / "2019-Oct.csv").stat().st_mtime_ns
    assert fetch.download("rees46", raw, quiet=True) == [raw / "2019-Oct.csv"]  # unchanged: fine
    (raw / "2019-Oct.csv").write_text(BODY.replace("view", "cart"))  # same size, other bytes
    os.utime(raw / "2019-Oct.csv", ns=(entry.mtime_ns + 10**9, entry.mtime_ns + 10**9))  # a later write
    with pytest.raises(ProvenanceError) as e:
        fetch.download("rees46", raw, quiet=True)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{raw / '2019-Oct.csv'}: changed since it was recorded: SHA-256 ")
    assert f"recorded {entry.recorded} from {src.as_uri()}" in msg and "delete its line in" in msg
    (raw / "2019-Oct.csv").write_text(BODY[:-10])
    with pytest.raises(ProvenanceError, match=f"{len(BODY) - 10:,} bytes, expected {len(BODY):,}"):
        fetch.download("rees46", raw, quiet=True)


def test_preprocessing_records_hand_placed_files_after_success_verifies_them_and_reports_the_hash(tmp_path):
    raw = retailrocket(tmp_path)
    good = (raw / "events.csv").read_bytes()
    (raw / "events.csv").write_bytes(good.replace(b",", b";"))  # a broken copy: fails, is not recorded
    with pytest.raises(preprocessing.PreprocessingError, match="wrong separator"):
        preprocessing.preprocess("retailrocket", raw, tmp_path / "out", quiet=True, published={})
    assert not (raw / "PROVENANCE.tsv").exists()
    (raw / "events.csv").write_bytes(good)  # the fixed file: no false alarm
    preprocessing.preprocess("retailrocket", raw, tmp_path / "out", quiet=True, published={})
    entry = provenance.load(raw)["events.csv"]
    assert entry.sha256 == sha(good) and entry.source.startswith("placed by hand (from https://www.kaggle.com/")
    stats = pd.read_csv(tmp_path / "out" / "stats.tsv", sep="\t", index_col=0)
    assert set(stats["raw_sha256"]) == {f"events.csv:{sha(good)}"}  # every row: the raw file's hash
    assert f"| events.csv | {len(good)} | {sha(good)} | placed by hand" in (tmp_path / "out" / "stats.md").read_text()
    before = (tmp_path / "out" / "stats.tsv").read_bytes()
    (raw / "events.csv").write_bytes(good + good.splitlines(keepends=True)[-1])  # one line more
    with pytest.raises(ProvenanceError, match=r"events.csv: changed since it was recorded") as e:
        preprocessing.preprocess("retailrocket", raw, tmp_path / "out", quiet=True, published={})
    assert "\n" not in str(e.value) and (tmp_path / "out" / "stats.tsv").read_bytes() == before  # outputs kept


def test_a_broken_record_is_a_one_line_error(tmp_path):
    raw = retailrocket(tmp_path)
    (raw / "PROVENANCE.tsv").write_text(
        "name\tsize\tmtime_ns\tsha256\tsource\trecorded\nevents.csv\tlots\t1\tx\ty\tz\n"
    )
    with pytest.raises(
        ProvenanceError, match=r"PROVENANCE.tsv: line 2 is not 'name, size, mtime_ns, sha256, source, recorded'"
    ):
        preprocessing.preprocess("retailrocket", raw, tmp_path / "out", quiet=True)


def test_retailrocket_from_kaggle_fetches_only_events_csv_and_records_its_source(tmp_path, monkeypatch):
    events = (retailrocket(tmp_path / "server") / "events.csv").read_bytes()
    calls = []

    class Api:
        def dataset_download_file(self, slug, file_name, path=None, quiet=True):
            calls.append(("file", slug, file_name))
            with zipfile.ZipFile(f"{path}/{file_name}.zip", "w") as z:  # Kaggle zips large files
                z.writestr(file_name, events)

        def dataset_download_files(self, slug, path=None, unzip=False, quiet=True):
            calls.append(("all", slug))

    shipped = fetch.SOURCES["retailrocket"]  # before the stand-in replaces it
    monkeypatch.setitem(sys.modules, "kaggle", types.SimpleNamespace(api=Api()))
    monkeypatch.setitem(
        fetch.SOURCES,
        "retailrocket",
        Source((RawFile("events.csv", 100, "timestamp,visitorid"),), "page", "retailrocket/ecommerce-dataset", True),
    )
    raw = tmp_path / "raw"
    assert fetch.download("retailrocket", raw, quiet=True) == [raw / "events.csv"]
    assert calls == [("file", "retailrocket/ecommerce-dataset", "events.csv")]  # not the item properties
    assert (raw / "events.csv").read_bytes() == events and sorted(p.name for p in raw.iterdir()) == [
        "PROVENANCE.tsv",
        "events.csv",
    ]
    assert provenance.load(raw)["events.csv"].source == "kaggle:retailrocket/ecommerce-dataset"
    assert shipped.kaggle_files and shipped.kaggle == "retailrocket/ecommerce-dataset"  # the shipped source too
    assert [f.name for f in shipped.files] == ["events.csv"]


def counting_hashes(monkeypatch) -> list:
    """The paths provenance hashes, from now on."""
    calls, real = [], provenance.sha256_of

    def counted(path):
        calls.append(path.name)
        return real(path)

    monkeypatch.setattr(provenance, "sha256_of", counted)
    return calls


def test_an_unchanged_file_is_not_read_again_a_touched_one_is_hashed_and_accepted(tmp_path, monkeypatch):
    raw = retailrocket(tmp_path)
    calls = counting_hashes(monkeypatch)
    preprocessing.preprocess("retailrocket", raw, tmp_path / "out", quiet=True, published={})
    assert calls == ["events.csv"]  # recorded once
    recorded = provenance.load(raw)["events.csv"]
    preprocessing.preprocess("retailrocket", raw, tmp_path / "out", quiet=True, published={})
    assert calls == ["events.csv"]  # size and time as recorded: not read again
    later = recorded.mtime_ns + 5 * 10**9
    os.utime(raw / "events.csv", ns=(later, later))  # touched: same bytes, new time
    preprocessing.preprocess("retailrocket", raw, tmp_path / "out", quiet=True, published={})
    assert calls == ["events.csv"] * 2  # hashed again, the same: accepted
    entry = provenance.load(raw)["events.csv"]
    assert entry.mtime_ns == later and (entry.sha256, entry.source, entry.recorded) == (
        recorded.sha256,
        recorded.source,
        recorded.recorded,
    )
    preprocessing.preprocess("retailrocket", raw, tmp_path / "out", quiet=True, published={})
    assert calls == ["events.csv"] * 2  # the new time was recorded: not read again
    preprocessing.preprocess("retailrocket", raw, tmp_path / "out", quiet=True, published={}, verify_raw=True)
    assert calls == ["events.csv"] * 3  # unless asked to
    assert fetch.download("retailrocket", raw, quiet=True) == [raw / "events.csv"] and len(calls) == 3


def test_a_changed_file_of_the_same_size_with_a_new_time_is_caught(tmp_path, monkeypatch):
    raw = retailrocket(tmp_path)
    preprocessing.preprocess("retailrocket", raw, tmp_path / "out", quiet=True, published={})
    recorded = provenance.load(raw)["events.csv"]
    good = (raw / "events.csv").read_bytes()
    (raw / "events.csv").write_bytes(good.replace(b"view", b"VIEW"))  # same size, other bytes
    later = recorded.mtime_ns + 10**9
    os.utime(raw / "events.csv", ns=(later, later))
    with pytest.raises(ProvenanceError, match=r"events.csv: changed since it was recorded: SHA-256"):
        preprocessing.preprocess("retailrocket", raw, tmp_path / "out", quiet=True, published={})
    with pytest.raises(ProvenanceError, match=r"events.csv: changed since it was recorded: SHA-256"):
        fetch.download("retailrocket", raw, quiet=True)
    assert provenance.load(raw)["events.csv"] == recorded  # the record is never rewritten to the new file


def test_a_read_only_raw_directory_leaves_the_outputs_and_warns(tmp_path, monkeypatch, capsys):
    """Tests run as root (chmod does not stop a write): the raw directory refuses the temporary file."""
    raw = retailrocket(tmp_path)
    real = tempfile.mkstemp

    def refuse(*args, **kwargs):
        if Path(kwargs.get("dir") or tempfile.gettempdir()) == raw:
            raise PermissionError(13, "Permission denied", str(raw))
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    stats = preprocessing.preprocess("retailrocket", raw, tmp_path / "out", quiet=True, published={})
    out, err = capsys.readouterr()
    assert stats["test"]["events"] == 3 and (tmp_path / "out" / "test.parquet").is_file() and out == ""
    assert err == (
        f"WARNING: raw files not recorded: {raw / 'PROVENANCE.tsv'}: cannot write the provenance record "
        "(Permission denied)\n"
    )
    assert sorted(p.name for p in raw.iterdir()) == ["events.csv"]  # nothing half-written left


def test_the_record_is_an_ordinary_file_readable_by_all_under_the_umask(tmp_path):
    raw = retailrocket(tmp_path)
    for umask in (0o022, 0o077):
        (raw / "PROVENANCE.tsv").unlink(missing_ok=True)
        old = os.umask(umask)
        try:
            preprocessing.preprocess("retailrocket", raw, tmp_path / "out", quiet=True, published={})
        finally:
            os.umask(old)
        assert (raw / "PROVENANCE.tsv").stat().st_mode & 0o777 == 0o666 & ~umask
