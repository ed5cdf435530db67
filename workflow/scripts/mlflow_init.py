"""Create the MLflow store (schema migrations) and the experiment before parallel jobs use it, and
the results directory's workspace id, which keys its final runs."""

from pathlib import Path

from experiments.jobs import job
from experiments.tracking import init_store, workspace_id

p = snakemake.params
with job(snakemake.log[0]):
    experiment_id = init_store(p.uri, p.experiment, p.artifact_location)
    workspace = workspace_id(Path(snakemake.output[0]).parent)  # the results directory
    print(f"MLflow: experiment '{p.experiment}' (id {experiment_id}) in {p.uri}, workspace {workspace}")
