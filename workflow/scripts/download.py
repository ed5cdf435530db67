from gru4rec.jobs import job

import preprocessing

with job(snakemake.log[0]):
    preprocessing.download(snakemake.params.source, snakemake.params.raw)
    open(snakemake.output[0], "w").close()
