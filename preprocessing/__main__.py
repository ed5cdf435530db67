"""python -m preprocessing DATASET --raw DIR --out DIR   |   python -m preprocessing download DATASET --raw DIR"""
from __future__ import annotations

import argparse
import sys

from . import DATASETS, PreprocessingError, download, preprocess


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["download"]:
        ap = argparse.ArgumentParser(prog="python -m preprocessing download",
                                     description="Fetch a dataset's raw files (Kaggle API where possible), or say where to put them.")
        ap.add_argument("dataset", choices=DATASETS)
        ap.add_argument("--raw", required=True, help="directory for the raw files")
        a = ap.parse_args(argv[1:])
        try:
            for path in download(a.dataset, a.raw):
                print(f"ok: {path}")
        except PreprocessingError as e:
            print(f"preprocessing: error: {e}", file=sys.stderr)
            return 2
        return 0
    ap = argparse.ArgumentParser(prog="python -m preprocessing",
                                 description="Preprocess a dataset into train_full/test/train_tr/train_valid splits.",
                                 epilog="Also: python -m preprocessing download DATASET --raw DIR")
    ap.add_argument("dataset", choices=DATASETS)
    ap.add_argument("--raw", help="directory with the raw files (not needed for synthetic)")
    ap.add_argument("--out", required=True, help="output directory for the splits and statistics")
    ap.add_argument("--config", help="custom: the dataset config (YAML)")
    ap.add_argument("--download", action="store_true", help="fetch the raw files first (where possible)")
    ap.add_argument("--n-sessions", type=int, help="synthetic: number of sessions")
    ap.add_argument("--n-items", type=int, help="synthetic: number of items")
    ap.add_argument("--days", type=int, help="synthetic: days covered")
    ap.add_argument("--seed", type=int, help="synthetic: random seed")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args(argv)
    options = {}
    if a.dataset == "synthetic":
        options = {k: v for k, v in dict(n_sessions=a.n_sessions, n_items=a.n_items, days=a.days, seed=a.seed).items()
                   if v is not None}
    elif a.dataset == "custom":
        options = {"config": a.config} if a.config else {}
    try:
        if a.download:
            download(a.dataset, a.raw)
        preprocess(a.dataset, a.raw, a.out, options, quiet=a.quiet)
    except PreprocessingError as e:
        print(f"preprocessing: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
