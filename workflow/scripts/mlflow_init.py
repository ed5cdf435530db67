from gru4rec.tracking import init_store

init_store(snakemake.params.uri, snakemake.params.experiment)
open(snakemake.output[0], "w").close()
