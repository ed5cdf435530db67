"""Fetching raw data where it can be fetched, and saying exactly what to place where otherwise.

Kaggle datasets are fetched with the Kaggle API when the `kaggle` package is installed and
credentials exist (~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY). Coveo and Diginetica
need a sign-up on their sites and are always placed by hand. Files arrive in a temporary
directory, are checked (present, non-empty, and at least a known minimum size), and only then are
moved into place, so a broken download never looks complete.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .errors import DownloadError

SOURCES = {
    # dataset: (kaggle slug or None, page for manual download, {file: minimum size in bytes})
    "yoochoose": ("chadgostopp/recsys-challenge-2015", "https://www.kaggle.com/datasets/chadgostopp/recsys-challenge-2015",
                  {"yoochoose-clicks.dat": 1_000_000_000, "yoochoose-test.dat": 300_000_000}),
    "rsc15": ("chadgostopp/recsys-challenge-2015", "https://www.kaggle.com/datasets/chadgostopp/recsys-challenge-2015",
              {"yoochoose-clicks.dat": 1_000_000_000}),
    "rees46": ("mkechinov/ecommerce-behavior-data-from-multi-category-store",
               "https://www.kaggle.com/datasets/mkechinov/ecommerce-behavior-data-from-multi-category-store",
               {"2019-Oct.csv": 5_000_000_000, "2019-Nov.csv": 8_000_000_000}),
    "retailrocket": ("retailrocket/ecommerce-dataset", "https://www.kaggle.com/datasets/retailrocket/ecommerce-dataset",
                     {"events.csv": 90_000_000}),
    "coveo": (None, "https://github.com/coveooss/shopper-intent-prediction-nature-2020 (browsing data, after sign-up)",
              {"release_10_23_2020.csv": 100_000_000}),
    "diginetica": (None, "https://competitions.codalab.org/competitions/11161 (CIKM Cup 2016, after sign-up)",
                   {"train-item-views.csv": 10_000_000}),
}


def _have_kaggle() -> bool:
    try:
        import kaggle  # noqa: F401  (imports authenticate, and raise without credentials)
        return True
    except Exception:
        return False


def _missing_message(dataset, raw, files, page, why):
    where = "; ".join(f"{raw / f}" for f in files)
    return DownloadError(f"{dataset}: {why}; place {', '.join(files)} from {page} at: {where}")


def download(dataset: str, raw_dir, min_sizes: bool = True) -> list[Path]:
    """Make sure the raw files of `dataset` are in raw_dir, fetching them where possible."""
    if dataset in ("synthetic", "custom"):
        return []
    if dataset not in SOURCES:
        raise DownloadError(f"no download source for dataset '{dataset}'")
    slug, page, files = SOURCES[dataset]
    raw = Path(raw_dir)
    missing = [f for f in files if not (raw / f).is_file() or (raw / f).stat().st_size == 0]
    if not missing:
        return [raw / f for f in files]
    if slug is None:
        raise _missing_message(dataset, raw, missing, page, "needs a manual download")
    if not _have_kaggle():
        raise _missing_message(dataset, raw, missing, page,
                               "the Kaggle API is not available (pip install kaggle, and put your API token in "
                               "~/.kaggle/kaggle.json), or download by hand")
    raw.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download.", dir=raw))
    try:
        import kaggle
        print(f"Downloading {slug} from Kaggle into {raw} ...", flush=True)
        kaggle.api.dataset_download_files(slug, path=str(tmp), unzip=True, quiet=False)
        fetch_into(tmp, raw, {f: files[f] for f in missing} if min_sizes else {f: 1 for f in missing}, dataset, page)
    except DownloadError:
        raise
    except Exception as e:
        raise _missing_message(dataset, raw, missing, page, f"the Kaggle download failed ({str(e).splitlines()[0]})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [raw / f for f in files]


def fetch_into(tmp: Path, raw: Path, expected: dict, dataset: str, page: str):
    """Check the files that arrived in tmp, then move them into raw (only if all are good)."""
    found = {}
    for name, min_size in expected.items():
        hits = [p for p in tmp.rglob(name) if p.is_file()]
        if not hits:
            raise _missing_message(dataset, raw, [name], page, f"{name} was not in the download")
        size = hits[0].stat().st_size
        if size < min_size:
            raise _missing_message(dataset, raw, [name], page,
                                   f"{name} arrived incomplete ({size:,} bytes, expected at least {min_size:,})")
        found[name] = hits[0]
    for name, path in found.items():
        os.replace(path, raw / name)
