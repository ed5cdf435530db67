"""python -m preprocessing DATASET --raw DIR --out DIR [--download] [--config FILE.yaml] [synthetic options]
    [--strict] [--tolerance T] [--train-window-days W] [--verify-raw]
python -m preprocessing download DATASET --raw DIR [--config FILE.yaml] [--verify-raw]"""

from __future__ import annotations

import argparse
import sys

from gru4rec.errors import GRU4RecError

from . import DATASETS, PreprocessingError, download, preprocess

SYNTHETIC = (
    ("n_sessions", int, "number of sessions (default 8000)"),
    ("n_items", int, "number of items (default 1000)"),
    ("days", int, "days covered (default 30)"),
    ("seed", int, "random seed (default 42)"),
    ("test_days", float, "test period D in days (default 1)"),
)


VERIFY_RAW = (
    "hash every raw file recorded in PROVENANCE.tsv again (by default a file whose size and modification "
    "time are as recorded is not read)"
)


def _error(e: Exception) -> int:
    print(f"preprocessing: error: {e}", file=sys.stderr)
    return 2


def _download_main(argv) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m preprocessing download",
        description="Fetch a dataset's raw files (direct URL or Kaggle API where possible) "
        "and verify them; otherwise say which file to place where.",
    )
    ap.add_argument("dataset", choices=DATASETS)
    ap.add_argument("--raw", required=True, help="directory for the raw files")
    ap.add_argument("--config", help="custom: the dataset config (YAML); checks that its files exist")
    ap.add_argument("--verify-raw", action="store_true", help=VERIFY_RAW)
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    a = ap.parse_args(argv)
    try:
        options = {"config": a.config} if a.config else None
        for path in download(a.dataset, a.raw, options, quiet=a.quiet, verify_raw=a.verify_raw):
            print(f"ok: {path}")
    except GRU4RecError as e:  # PreprocessingError and the reader's DataError alike
        return _error(e)
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["download"]:
        return _download_main(argv[1:])
    ap = argparse.ArgumentParser(
        prog="python -m preprocessing",
        description="Preprocess a dataset into train_full/test/train_tr/train_valid splits, "
        "full.parquet and statistics (see preprocessing/README.md).",
        epilog="Fetch raw files only: python -m preprocessing download DATASET --raw DIR",
    )
    ap.add_argument("dataset", choices=DATASETS)
    ap.add_argument("--raw", help="directory with the raw files (not needed for synthetic)")
    ap.add_argument("--out", required=True, help="output directory for the splits and statistics")
    ap.add_argument("--config", help="custom: the dataset config (YAML)")
    ap.add_argument("--download", action="store_true", help="fetch and verify the raw files first, where possible")
    for name, kind, text in SYNTHETIC:
        ap.add_argument(f"--{name.replace('_', '-')}", type=kind, help=f"synthetic: {text}")
    ap.add_argument(
        "--strict",
        action="store_true",
        help="stop (and write nothing) when a check fails: statistics beyond the tolerance, a time leak",
    )
    ap.add_argument(
        "--tolerance",
        type=float,
        help="largest relative difference from a published statistic that passes (default 0.01: 1%%)",
    )
    ap.add_argument(
        "--train-window-days",
        type=float,
        help="train only on the sessions starting in the last W days before the test (validation) period",
    )
    ap.add_argument("--verify-raw", action="store_true", help=VERIFY_RAW)
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress lines (failed checks are still printed)")
    a = ap.parse_args(argv)
    given = {name: getattr(a, name) for name, _, _ in SYNTHETIC if getattr(a, name) is not None}
    if given and a.dataset != "synthetic":
        return _error(
            PreprocessingError(f"--{', --'.join(n.replace('_', '-') for n in given)}: only for the synthetic dataset")
        )
    options = given if a.dataset == "synthetic" else ({"config": a.config} if a.config else {})
    try:
        if a.download:
            download(
                a.dataset, a.raw, options if a.dataset == "custom" else None, quiet=a.quiet, verify_raw=a.verify_raw
            )
        preprocess(
            a.dataset,
            a.raw,
            a.out,
            options,
            quiet=a.quiet,
            strict=a.strict,
            tolerance=a.tolerance,
            train_window_days=a.train_window_days,
            verify_raw=a.verify_raw and not a.download,  # the download has just hashed them
        )
    except GRU4RecError as e:  # PreprocessingError and the reader's DataError alike
        return _error(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
