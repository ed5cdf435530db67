"""Create the MLflow store (schema migrations) and the experiment before parallel jobs use it."""

from experiments.jobs import job
from experiments.tracking import init_store

p = snakemake.params
with job(snakemake.log[0]):
    experiment_id = init_store(p.uri, p.experiment, p.artifact_location)
    print(f"MLflow: experiment '{p.experiment}' (id {experiment_id}) in {p.uri}")
