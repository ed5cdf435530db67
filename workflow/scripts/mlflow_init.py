"""Create the MLflow store (schema migrations) and the experiment before parallel jobs use it."""
from gru4rec.jobs import job
from gru4rec.tracking import init_store

p = snakemake.params
with job(snakemake.log[0]):
    experiment_id = init_store(p.uri, p.experiment, p.artifact_location)
    print(f"MLflow: experiment '{p.experiment}' (id {experiment_id}) in {p.uri}")
    open(snakemake.output[0], "w").close()
