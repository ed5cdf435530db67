"""Raw events -> the four splits, full.parquet and the statistics (with the checks) of one dataset."""

from pathlib import Path

import preprocessing
from experiments.jobs import job

p = snakemake.params
with job(snakemake.log[0]):
    raw = None if p.source == "synthetic" else p.raw
    preprocessing.preprocess(
        p.source,
        raw,
        Path(snakemake.output.stats).parent,
        dict(p.options),
        strict=p.strict,
        tolerance=p.tolerance,
        train_window_days=p.train_window_days,
        published=p.published,
    )
