"""mode 'reproduce': the published best parameters, in the same file format as a study's result."""

from experiments.jobs import job
from experiments.outputs import write_json

p = snakemake.params
with job(snakemake.log[0]):
    write_json(snakemake.output.best, {"study": f"published/{p.paper}", "params": dict(p.published)})
    print(f"published parameters of '{p.paper}' -> {snakemake.output.best}")
