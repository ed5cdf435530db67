"""results/plots: test metrics and training speed of every final run."""

from experiments.jobs import job
from experiments.plots import plot_summary

out = snakemake.output
with job(snakemake.log[0]):
    n = plot_summary(snakemake.input.summary, out.metrics, out.speed)
    print(f"{n} runs -> {out.metrics}, {out.speed}")
