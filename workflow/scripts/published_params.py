from gru4rec.tuning import write_json

params = dict(snakemake.params.published)
write_json(snakemake.output.best, {"study": "published", "params": params})
