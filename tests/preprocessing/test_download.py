"""Downloads without the network: file:// URLs, a stubbed Kaggle, and the 'place it here' message."""

import gzip
import hashlib

import pytest

from preprocessing import fetch
from preprocessing.errors import DownloadError
from preprocessing.fetch import RawFile, Source

HEADER = "event_time,event_type,product_id,category_id\n"
BODY = HEADER + "2019-10-01 00:00:00 UTC,view,1,2\n" * 200


def gz(tmp_path, name="2019-Oct.csv.gz", data=BODY):
    path = tmp_path / "server" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(gzip.compress(data.encode()))
    return path


def leftovers(d):
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_fetch_url_decompresses_verifies_and_renames(tmp_path):
    src = gz(tmp_path)
    expect = RawFile(
        "2019-Oct.csv", len(BODY), "event_time,event_type", sha256=hashlib.sha256(src.read_bytes()).hexdigest()
    )
    dest = fetch.fetch_url(src.as_uri(), tmp_path / "raw" / "2019-Oct.csv", expect, quiet=True)
    assert dest.read_text() == BODY and leftovers(tmp_path / "raw") == ["2019-Oct.csv"]


@pytest.mark.parametrize(
    "expect,corrupt,match",
    [
        (RawFile("f.csv", 10), "truncate", "download failed"),  # gzip stream cut short
        (RawFile("f.csv", 10**9), None, "arrived incomplete"),  # smaller than the known size
        (RawFile("f.csv", 10, "timestamp,visitorid"), None, "does not start with the header"),
        (RawFile("f.csv", 10, sha256="0" * 64), None, "SHA-256"),
    ],
)
def test_fetch_url_leaves_nothing_when_a_check_fails(tmp_path, expect, corrupt, match):
    src = gz(tmp_path)
    if corrupt == "truncate":
        src.write_bytes(src.read_bytes()[:-30])
    with pytest.raises(DownloadError, match=match):
        fetch.fetch_url(src.as_uri(), tmp_path / "raw" / "f.csv", expect, quiet=True)
    assert leftovers(tmp_path / "raw") == []  # neither the file nor a .part


def test_download_fetches_direct_urls(tmp_path, monkeypatch):
    src = gz(tmp_path)
    monkeypatch.setitem(
        fetch.SOURCES, "rees46", Source((RawFile("2019-Oct.csv", 100, "event_time", src.as_uri()),), "page")
    )
    raw = tmp_path / "raw"
    assert fetch.download("rees46", raw, quiet=True) == [raw / "2019-Oct.csv"]
    assert (raw / "2019-Oct.csv").read_text() == BODY
    src.unlink()  # present files are not fetched again
    assert fetch.download("rees46", raw, quiet=True) == [raw / "2019-Oct.csv"]


def test_missing_files_message_has_one_line_per_file_with_the_exact_path(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "_kaggle_unavailable", lambda: "the Kaggle API is not installed")
    monkeypatch.setitem(
        fetch.SOURCES,
        "rees46",
        Source(
            tuple(
                RawFile(n, 10, url=(tmp_path / "nowhere" / f"{n}.gz").as_uri())
                for n in ("2019-Oct.csv", "2019-Nov.csv")
            ),
            "https://rees46.com/en/open-cdp",
            "owner/slug",
        ),
    )
    raw = tmp_path / "raw"
    with pytest.raises(DownloadError) as e:
        fetch.download("rees46", raw, quiet=True)
    lines = str(e.value).splitlines()
    assert len(lines) == 3 and "rees46: 2 raw file(s)" in lines[0] and "rees46.com" in lines[0]
    assert lines[1].startswith(f"  2019-Oct.csv -> {raw.resolve() / '2019-Oct.csv'}") and "download failed" in lines[1]
    assert lines[2].startswith(f"  2019-Nov.csv -> {raw.resolve() / '2019-Nov.csv'}")
    assert leftovers(raw) == []


def test_manual_only_datasets_name_the_file_and_path(tmp_path):
    with pytest.raises(DownloadError, match=r"train-item-views.csv -> .*raw/train-item-views.csv  \[needs a manual"):
        fetch.download("diginetica", tmp_path / "raw")
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "train-item-views.csv").write_text("x")
    assert fetch.download("diginetica", tmp_path / "raw") == [tmp_path / "raw" / "train-item-views.csv"]


def test_kaggle_files_are_checked_before_they_are_moved(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    monkeypatch.setattr(fetch, "_kaggle_unavailable", lambda: None)

    def fake_kaggle(slug, raw_dir, files, quiet=False, only_files=False):  # fetch_kaggle after the API call
        arrived = tmp_path / "arrived" / "sub"
        arrived.mkdir(parents=True, exist_ok=True)
        (arrived / "events.csv").write_text(content)
        fetch.move_verified(tmp_path / "arrived", raw_dir, files, f"kaggle:{slug}")

    monkeypatch.setattr(fetch, "fetch_kaggle", fake_kaggle)
    raw.mkdir()
    content = "timestamp,visitorid,event,itemid\n1,2,view,3\n"
    with pytest.raises(
        DownloadError,
        match=r"events.csv -> .*\[kaggle:retailrocket/ecommerce-dataset: events.csv "
        r"arrived incomplete",
    ):
        fetch.download("retailrocket", raw)
    assert leftovers(raw) == []
    monkeypatch.setitem(
        fetch.SOURCES,
        "retailrocket",
        Source((RawFile("events.csv", 10, "timestamp,visitorid"),), "page", "retailrocket/ecommerce-dataset"),
    )
    assert fetch.download("retailrocket", raw) == [raw / "events.csv"] and (raw / "events.csv").read_text() == content


def test_synthetic_and_custom(tmp_path):
    assert fetch.download("synthetic", tmp_path) == []
    config = {"files": ["a.csv", "b.csv"], "columns": {"session": "s", "item": "i", "time": "t"}}
    (tmp_path / "a.csv").write_text("s,i,t\n")
    with pytest.raises(DownloadError, match=r"custom: 1 configured file\(s\) not found:\n  b.csv -> "):
        fetch.download("custom", tmp_path, config)
    (tmp_path / "b.csv").write_text("s,i,t\n")
    assert fetch.download("custom", tmp_path, config) == [tmp_path / "a.csv", tmp_path / "b.csv"]
