"""Raw events -> the four splits, full.parquet and the statistics of one dataset."""

from pathlib import Path

import preprocessing
from experiments.jobs import job

p = snakemake.params
with job(snakemake.log[0]):
    raw = None if p.source == "synthetic" else p.raw
    preprocessing.preprocess(p.source, raw, Path(snakemake.output.stats).parent, dict(p.options))
