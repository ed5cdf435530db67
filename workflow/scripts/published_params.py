"""mode 'reproduce': the published best parameters, in the same file format as a study's result."""
from gru4rec.fileio import write_json
from gru4rec.jobs import job

with job(snakemake.log[0]):
    write_json(snakemake.output.best, {"study": f"published/{snakemake.params.paper}",
                                       "params": dict(snakemake.params.published)})
    print(f"published parameters of '{snakemake.params.paper}' -> {snakemake.output.best}")
