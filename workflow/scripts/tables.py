"""results/tables: every final run, per dataset the comparison and every metric, and our figures
beside the published ones."""

from experiments.jobs import job
from experiments.reporting import write_tables

p = snakemake.params
with job(snakemake.log[0]):
    n = write_tables(snakemake.input.metrics, p.datasets, p.published, p.tables_dir, p.tie_mode)
    print(f"{n} runs -> {p.tables_dir}/ (summary, per-dataset comparison and every metric, paper comparison)")
