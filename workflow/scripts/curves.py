"""results/plots/{dataset}/curves.png: Recall@N and MRR@N against N per model, spread over the seeds."""

from experiments.jobs import job
from experiments.plots import plot_curves

with job(snakemake.log[0]):
    n = plot_curves(snakemake.input.metrics, snakemake.output[0], title=snakemake.wildcards.dataset)
    print(f"{n} models -> {snakemake.output[0]}")
