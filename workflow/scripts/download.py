"""Fetch and verify a dataset's raw files (or stop, naming each file to place by hand)."""

import preprocessing
from experiments.jobs import job

with job(snakemake.log[0]):
    preprocessing.download(snakemake.params.source, snakemake.params.raw)
