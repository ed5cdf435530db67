"""Raw session logs -> the four splits of the experiments (train_full/test, train_tr/train_valid).

    import preprocessing
    stats = preprocessing.preprocess("retailrocket", raw_dir="resources/raw/retailrocket", out_dir="results/retailrocket/splits")
    stats = preprocessing.preprocess("synthetic", None, "out/", {"n_sessions": 8000, "seed": 1})
    stats = preprocessing.preprocess("custom", "data/", "out/", {"files": ["log.csv"], "columns": {...}, "split": {"mode": "last"}})
"""
from __future__ import annotations

from pathlib import Path

from .fetch import download
from .errors import DownloadError, PreprocessingError

DATASETS = ("rsc15", "yoochoose", "rees46", "coveo", "retailrocket", "diginetica", "custom", "synthetic")


def preprocess(dataset: str, raw_dir, out_dir, options: dict | None = None, quiet: bool = False) -> dict:
    """Run a dataset's recipe and write the splits, full.parquet, stats.tsv and stats.md into out_dir.

    Returns {split: {statistic: value}}. Nothing is written unless every output is complete.
    """
    from . import custom, recipes, synthetic
    options = dict(options or {})
    if dataset not in DATASETS:
        raise PreprocessingError(f"unknown dataset '{dataset}'; expected one of: {', '.join(DATASETS)}")
    if dataset == "synthetic":
        unknown = set(options) - set(synthetic.DEFAULTS) - {"n_successors", "p_follow", "zipf", "mean_length", "test_days"}
        if unknown:
            raise PreprocessingError(f"unknown synthetic option(s) {', '.join(sorted(unknown))}; valid: "
                                     f"{', '.join(list(synthetic.DEFAULTS) + ['n_successors', 'p_follow', 'zipf', 'mean_length', 'test_days'])}")
        test_days = float(options.pop("test_days", 1))
        df = synthetic.generate_events(**options)
        recipe = recipes.Recipe("synthetic", (), None, recipes.SECONDS, test_days=test_days)
        return recipes.run(recipe, df, out_dir, quiet)
    if raw_dir is None:
        raise PreprocessingError(f"dataset '{dataset}' needs a raw data directory")
    raw = Path(raw_dir)
    if not raw.is_dir():
        raise PreprocessingError(f"{raw}: raw data directory not found")
    if dataset == "rsc15":
        return recipes.rsc15(raw, out_dir, quiet)
    if dataset == "custom":
        config = custom.load_config(options.get("config", options) if options else None)
        return recipes.run(custom.recipe(config), custom.read(raw, config), out_dir, quiet)
    if options:
        raise PreprocessingError(f"dataset '{dataset}' takes no options (got {', '.join(options)})")
    recipe = recipes.RECIPES[dataset]
    return recipes.run(recipe, recipe.read(raw), out_dir, quiet)


__all__ = ["DATASETS", "preprocess", "download", "PreprocessingError", "DownloadError"]
