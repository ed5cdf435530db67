"""Optuna's optimisation-history and parameter-importance plots of every study."""

from experiments.jobs import job
from experiments.plots import plot_study

p, out = snakemake.params, snakemake.output
with job(snakemake.log[0]):
    for (study, storage), history, importance in zip(p.studies, out.history, out.importance):
        n = plot_study(study, storage, history, importance)
        print(f"study '{study}': {n} complete trials -> {history}, {importance}", flush=True)
    print(f"{len(p.studies)} studies plotted")
