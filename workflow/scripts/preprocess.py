from pathlib import Path

from gru4rec.jobs import job

import preprocessing

with job(snakemake.log[0]):
    out_dir = Path(snakemake.output.stats).parent
    source = snakemake.params.source
    raw = None if source == "synthetic" else snakemake.params.raw
    preprocessing.preprocess(source, raw, out_dir, dict(snakemake.params.options))
