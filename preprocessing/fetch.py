"""Fetching raw data where it can be fetched, and saying exactly what to place where otherwise.

- Direct URLs (Rees46 is published by REES46 itself as .csv.gz) are streamed to a hidden
  `.NAME.part` file beside the destination, decompressed on the fly (gzip's CRC checks the
  whole stream), checked (byte count against Content-Length, SHA-256 where known, a minimum
  size, the expected header line) and only then renamed into place.
- Kaggle datasets are fetched with the Kaggle API when the `kaggle` package is installed and
  credentials exist (~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY), into a temporary
  directory, checked the same way, then moved into place. Where a dataset holds large files no
  recipe reads (RetailRocket's item properties), only the needed files are fetched.
- Coveo and Diginetica need a sign-up on their sites: they are always placed by hand.
- Every raw file is recorded in `{raw_dir}/PROVENANCE.tsv` (size, modification time, SHA-256,
  source, date; provenance.py) the first time it is seen, and verified against that record on
  every later run.

Whatever cannot be fetched ends in a DownloadError whose message has one line per file: where
to get it and the exact path to put it at.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from gru4rec.errors import first_line

from . import provenance
from .errors import DownloadError

CHUNK = 1 << 20


@dataclass(frozen=True)
class RawFile:
    name: str
    min_size: int  # bytes of the (decompressed) file: less means a broken download
    header: str | None = None  # the start of the first line, where the file has a header
    url: str | None = None  # a direct download (may be .gz, decompressed on the fly)
    sha256: str | None = None  # of the downloaded bytes, where published


@dataclass(frozen=True)
class Source:
    files: tuple
    page: str  # where a person gets the files by hand
    kaggle: str | None = None  # owner/dataset slug for the Kaggle API
    kaggle_files: bool = False  # fetch only `files` from the Kaggle dataset, not the whole dataset
    wrong: tuple = ()  # (file name, why it is not this dataset): files people place by mistake


_RSC = Source(
    (RawFile("yoochoose-clicks.dat", 1_000_000_000), RawFile("yoochoose-test.dat", 300_000_000)),
    "https://www.kaggle.com/datasets/chadgostopp/recsys-challenge-2015",
    "chadgostopp/recsys-challenge-2015",
)
_REES46_URL = "https://data.rees46.com/datasets/marketplace/{}.csv.gz"
COVEO_SIGIR_2021 = (
    "the SIGIR eCom 2021 Data Challenge release (browsing_train.csv, column product_sku_hash) is a "
    "different dataset; the coveo recipe expects the 2020 shopper-intent release "
    "(release_10_23_2020.csv, column product_skus_hash)"
)
SOURCES = {
    "yoochoose": _RSC,
    "rsc15": Source(_RSC.files[:1], _RSC.page, _RSC.kaggle),
    "rees46": Source(
        tuple(
            RawFile(f"{m}.csv", size, "event_time,event_type,product_id", _REES46_URL.format(m))
            for m, size in (("2019-Oct", 5_000_000_000), ("2019-Nov", 8_000_000_000))
        ),
        # the page the GRU4Rec README links for Rees46 (its direct URLs above come first)
        "https://www.kaggle.com/datasets/mkechinov/ecommerce-behavior-data-from-multi-category-store",
        "mkechinov/ecommerce-behavior-data-from-multi-category-store",
    ),
    "retailrocket": Source(
        (RawFile("events.csv", 90_000_000, "timestamp,visitorid,event,itemid"),),
        "https://www.kaggle.com/datasets/retailrocket/ecommerce-dataset (events.csv only)",
        "retailrocket/ecommerce-dataset",
        kaggle_files=True,  # not the ~1 GB of item_properties_part*.csv and category_tree.csv
    ),
    "coveo": Source(
        (RawFile("release_10_23_2020.csv", 100_000_000, "session_id_hash"),),
        "https://github.com/coveooss/shopper-intent-prediction-nature-2020 (the 2020 shopper-intent "
        "release: browsing data after sign-up, release_10_23_2020.csv; not the SIGIR eCom 2021 challenge data)",
        wrong=(("browsing_train.csv", COVEO_SIGIR_2021),),
    ),
    "diginetica": Source(
        (RawFile("train-item-views.csv", 10_000_000),),
        "CodaLab competition 11161, CIKM Cup 2016 Track 2 (DIGINETICA), after sign-up: CodaLab Competitions "
        "moved from competitions.codalab.org to https://codalab.lisn.upsaclay.fr; train-item-views.csv "
        "is in dataset-train-diginetica.zip",
    ),
}


def download(
    dataset: str, raw_dir, options: dict | None = None, quiet: bool = False, verify_raw: bool = False
) -> list[Path]:
    """Make sure the raw files of `dataset` are in raw_dir, fetching them where possible.

    Returns the paths of the raw files. verify_raw: hash every recorded file again, whatever its
    modification time (provenance.verify). For 'custom' (given its config as `options`) it checks
    that the configured files exist; for 'synthetic' there is nothing to fetch.
    """
    raw = Path(raw_dir)
    if dataset == "synthetic":
        return []
    if dataset == "custom":
        return _custom_files(raw, options)
    if dataset not in SOURCES:
        raise DownloadError(f"no download source for dataset '{dataset}'; known: {', '.join(SOURCES)}")
    source = SOURCES[dataset]
    # files already there are verified against their record before anything is fetched (files
    # placed by hand are recorded by the first preprocessing run that reads them)
    absent = _missing(raw, source.files)
    recorded = provenance.load(raw)
    verified = provenance.entries_for(
        raw, [f.name for f in source.files if f not in absent and f.name in recorded], rehash=verify_raw
    )
    problems, fetched = {}, {}
    for f in _missing(raw, source.files):
        if f.url:
            try:
                fetch_url(f.url, raw / f.name, f, quiet=quiet)
                fetched[f.name] = f.url
            except DownloadError as e:
                problems[f.name] = str(e)
    missing = _missing(raw, source.files)
    if missing and source.kaggle:
        why = _kaggle_unavailable()
        if why is None:
            try:
                fetch_kaggle(source.kaggle, raw, missing, quiet=quiet, only_files=source.kaggle_files)
                fetched.update({f.name: f"kaggle:{source.kaggle}" for f in missing})
            except DownloadError as e:
                why = str(e)
        problems.update({f.name: problems.get(f.name, why) for f in missing})
    new = provenance.entries_for(raw, list(fetched), fetched)
    if new:
        provenance.record(raw, verified + new)
    else:  # only modification times to refresh: a read-only raw directory is no reason to stop
        provenance.record_or_warn(raw, verified)
    missing = _missing(raw, source.files)
    for name, why in source.wrong:
        if missing and (raw / name).is_file():
            problems.update({f.name: f"found {name} instead: {why}" for f in missing})
    if missing:
        raise missing_files_error(dataset, raw, missing, source.page, problems)
    return [raw / f.name for f in source.files]


def _missing(raw: Path, files) -> list[RawFile]:
    return [f for f in files if not (raw / f.name).is_file() or (raw / f.name).stat().st_size == 0]


def missing_files_error(dataset, raw: Path, files, page, problems: dict | None = None) -> DownloadError:
    """One line per file: which file, where to get it, the exact path, and why it was not fetched."""
    lines = [f"{dataset}: {len(files)} raw file(s) to place by hand (from {page}):"]
    for f in files:
        why = (problems or {}).get(f.name) or "needs a manual download"
        lines.append(f"  {f.name} -> {(raw / f.name).resolve()}  [{why}]")
    return DownloadError("\n".join(lines))


def _custom_files(raw: Path, options) -> list[Path]:
    if not options:
        return []
    from . import custom

    paths = custom.files(raw, custom.load_config(options))
    absent = [p for p in paths if not p.is_file()]
    if absent:
        lines = [f"custom: {len(absent)} configured file(s) not found:"] + [
            f"  {p.name} -> {p.resolve()}" for p in absent
        ]
        raise DownloadError("\n".join(lines))
    return paths


# ---------------------------------------------------------------- direct URLs
def fetch_url(url: str, dest: Path, expect: RawFile | None = None, quiet: bool = False) -> Path:
    """Stream `url` into dest (gunzipped if it ends in .gz), verified, via a hidden .part file.

    Nothing is left at `dest` unless every check passed; the .part file is removed on failure.
    """
    from tqdm import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.part")
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None

            class Counting:  # hashes and counts the compressed bytes as gzip pulls them
                def read(self, n=-1):
                    nonlocal received
                    data = response.read(n)
                    received += len(data)
                    digest.update(data)
                    bar.update(len(data))
                    return data

            with (
                tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=quiet) as bar,
                open(part, "wb") as out,
            ):
                stream = gzip.GzipFile(fileobj=Counting()) if url.endswith(".gz") else Counting()
                shutil.copyfileobj(stream, out, CHUNK)
        if total is not None and received != total:
            raise DownloadError(f"{url}: transfer stopped at {received:,} of {total:,} bytes")
        if expect is not None:
            if expect.sha256 and digest.hexdigest() != expect.sha256:
                raise DownloadError(f"{url}: SHA-256 {digest.hexdigest()} differs from the published {expect.sha256}")
            check_file(part, expect, url)
        os.replace(part, dest)
        return dest
    except DownloadError:
        raise
    except (OSError, EOFError, gzip.BadGzipFile, ValueError) as e:
        raise DownloadError(
            f"{url}: download failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        ) from None
    finally:
        part.unlink(missing_ok=True)


def check_file(path: Path, expect: RawFile, origin) -> None:
    """Size and header checks of a file that arrived, before it is moved into place."""
    size = path.stat().st_size
    if size < expect.min_size:
        raise DownloadError(
            f"{origin}: {expect.name} arrived incomplete ({size:,} bytes, expected at least {expect.min_size:,})"
        )
    if expect.header:
        with open(path, "rb") as f:
            first = f.readline(4096).decode("utf-8", errors="replace").lstrip("\ufeff")
        if not first.startswith(expect.header):
            raise DownloadError(
                f"{origin}: {expect.name} does not start with the header '{expect.header}' (got {first[:60]!r})"
            )


# ---------------------------------------------------------------- Kaggle
def _kaggle_unavailable() -> str | None:
    """None when the Kaggle API can be used, else why not."""
    try:
        import kaggle  # noqa: F401  (importing authenticates, and raises without credentials)
    except ImportError:
        return "the Kaggle API is not installed (pip install kaggle) or download by hand"
    except Exception as e:
        return f"no Kaggle credentials (~/.kaggle/kaggle.json): {first_line(e)}"
    return None


def fetch_kaggle(slug: str, raw: Path, files, quiet=False, only_files=False):
    """The Kaggle dataset `slug` (only `files` of it with only_files) into a temporary directory,
    unzipped, checked, then moved into raw."""
    raw.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download.", dir=raw))
    try:
        import kaggle

        what = ", ".join(f.name for f in files) if only_files else "the dataset"
        if not quiet:
            print(f"Downloading {what} of {slug} from Kaggle into {raw} ...", flush=True)
        try:
            if only_files:
                for f in files:  # one file each; Kaggle may send it zipped (NAME.zip)
                    kaggle.api.dataset_download_file(slug, f.name, path=str(tmp), quiet=quiet)
                _unzip_all(tmp)
            else:
                kaggle.api.dataset_download_files(slug, path=str(tmp), unzip=True, quiet=quiet)
        except DownloadError:
            raise
        except Exception as e:
            raise DownloadError(f"the Kaggle download failed ({first_line(e)})") from None
        move_verified(tmp, raw, files, f"kaggle:{slug}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _unzip_all(directory: Path):
    """Extract every .zip that arrived in `directory` beside it (then delete the archive)."""
    for archive in sorted(directory.rglob("*.zip")):
        try:
            with zipfile.ZipFile(archive) as z:
                z.extractall(archive.parent)
        except (zipfile.BadZipFile, OSError) as e:
            raise DownloadError(f"{archive.name}: the Kaggle download is not a readable ZIP ({e})") from None
        archive.unlink()


def move_verified(tmp: Path, raw: Path, files, origin):
    """Check every expected file that arrived in tmp, then move them into raw (all or none)."""
    found = {}
    for f in files:
        hits = sorted(p for p in tmp.rglob(f.name) if p.is_file())
        if not hits:
            raise DownloadError(f"{origin}: {f.name} was not in the download")
        check_file(hits[0], f, origin)
        found[f.name] = hits[0]
    for name, path in found.items():
        os.replace(path, raw / name)
