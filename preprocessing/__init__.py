"""Raw session logs -> the four splits of the experiments (train_full/test, train_tr/train_valid).

    import preprocessing
    stats = preprocessing.preprocess("retailrocket", "resources/raw/retailrocket", "results/retailrocket/splits")
    stats = preprocessing.preprocess("synthetic", None, "out/", {"n_sessions": 8000, "seed": 1})
    config = {"files": ["log.csv"], "columns": {...}, "split": {"mode": "last"}}
    stats = preprocessing.preprocess("custom", "data/", "out/", config)
    paths = preprocessing.download("rees46", "resources/raw/rees46")

See preprocessing/README.md for every dataset, option and custom config key.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from . import provenance
from .errors import DownloadError, PreprocessingError
from .fetch import SOURCES, download

# the public datasets of the papers (their names in config/published.yaml too), then your own data
# and the embedded demo data
PUBLIC_DATASETS = ("rsc15", "yoochoose", "rees46", "coveo", "retailrocket", "diginetica")
DATASETS = PUBLIC_DATASETS + ("custom", "synthetic")


def preprocess(
    dataset: str,
    raw_dir,
    out_dir,
    options: dict | None = None,
    quiet: bool = False,
    *,
    strict: bool = False,
    tolerance: float | None = None,
    train_window_days: float | None = None,
    published: dict | None = None,
    verify_raw: bool = False,
) -> dict:
    """Run a dataset's recipe and write the splits, full.parquet, stats.tsv and stats.md into out_dir.

    options: for 'synthetic' the generator's arguments (n_sessions, n_items, days, seed, ...) plus
    test_days; for 'custom' the config dict (or {'config': 'file.yaml'}); nothing for the others.
    The checks (checks.py): the splits' statistics against the published ones (`published`: the
    loaded config/published.yaml, read from the repository when None) within `tolerance` (None:
    checks.DEFAULT_TOLERANCE, 1%), time
    leaks and unknown test items; `strict` makes a failed check an error; `train_window_days`
    limits the training data to the sessions of the last W days before the test period. The raw
    files of a public dataset are verified against (or recorded in) their PROVENANCE.tsv first
    (a file whose size and modification time are as recorded is not hashed again, unless
    `verify_raw`).
    Returns {split: {statistic: value}}. Nothing is written unless every output is complete.
    """
    from . import checks, custom, recipes, synthetic

    tolerance = checks.DEFAULT_TOLERANCE if tolerance is None else tolerance
    settings = checks.Settings(strict, tolerance, train_window_days, published)
    options = dict(options or {})
    if dataset not in DATASETS:
        raise PreprocessingError(f"unknown dataset '{dataset}'; expected one of: {', '.join(DATASETS)}")
    _check_out_dir(out_dir)  # before reading gigabytes, not after
    if dataset == "synthetic":
        valid = list(inspect.signature(synthetic.generate_events).parameters) + ["test_days"]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise PreprocessingError(f"unknown synthetic option(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
        test_days = float(options.pop("test_days", 1))
        try:
            df = synthetic.generate_events(**options)
        except (TypeError, ValueError) as e:
            raise PreprocessingError(f"synthetic: {e}") from None
        recipe = recipes.Recipe("synthetic", None, recipes.SECONDS, test_days=test_days)
        return recipes.run(recipe, df, out_dir, quiet, settings)
    if raw_dir is None:
        raise PreprocessingError(f"dataset '{dataset}' needs a raw data directory (--raw DIR)")
    raw = Path(raw_dir)
    if raw.exists() and not raw.is_dir():
        raise PreprocessingError(f"{raw}: is a file; --raw is the directory that holds the raw files")
    if not raw.is_dir():
        raise PreprocessingError(f"{raw}: raw data directory not found")
    if dataset == "custom":
        config = custom.load_config(options)
        recipe = custom.recipe(config)
        recipes.check_window(recipe, train_window_days)  # before reading the files, not after
        return recipes.run(recipe, custom.read(raw, config, quiet), out_dir, quiet, settings)
    if options:
        raise PreprocessingError(f"dataset '{dataset}' takes no options (got {', '.join(map(str, options))})")
    # a changed raw file stops the run before gigabytes are read; the hashes go into stats.tsv, and
    # files placed by hand are recorded once they were read and preprocessed successfully
    source = SOURCES[dataset]
    raw_files = provenance.entries_for(
        raw, [f.name for f in source.files], None, f"placed by hand (from {source.page})", rehash=verify_raw
    )
    if dataset == "rsc15":
        stats = recipes.rsc15(raw, out_dir, quiet, settings, raw_files)
    else:
        recipe = recipes.RECIPES[dataset]
        stats = recipes.run(recipe, recipe.read(raw, quiet=quiet), out_dir, quiet, settings, raw_files)
    provenance.record_or_warn(raw, raw_files)  # a read-only raw directory: the outputs stand, a warning
    return stats


def _check_out_dir(out_dir):
    """The output directory is a directory, or can be made: no file in its place or above it."""
    if out_dir is None:
        raise PreprocessingError("an output directory is needed (--out DIR)")
    out = Path(out_dir)
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                where = "" if p == out else f" (in the output directory {out})"
                raise PreprocessingError(f"{p}: is a file, expected a directory for the outputs{where}")
            break


__all__ = ["DATASETS", "PUBLIC_DATASETS", "preprocess", "download", "PreprocessingError", "DownloadError"]
