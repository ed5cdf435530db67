"""results/tables: every final run, and our figures beside the published ones."""

from experiments.jobs import job
from experiments.reporting import write_tables

out = snakemake.output
with job(snakemake.log[0]):
    n = write_tables(
        snakemake.input.metrics,
        snakemake.params.datasets,
        snakemake.params.published,
        out.summary_md,
        out.summary_csv,
        out.paper_md,
        out.paper_csv,
    )
    print(f"{n} runs -> {out.summary_md}; comparison with the published results -> {out.paper_md}")
