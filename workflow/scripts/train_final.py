"""Train the best (or published) parameters on train_full, evaluate on test, log to MLflow."""
import json

import torch

from gru4rec.experiment import train_and_evaluate
from gru4rec.jobs import job

w, p = snakemake.wildcards, snakemake.params
with job(snakemake.log[0]):
    torch.set_num_threads(max(1, snakemake.threads))
    best = json.load(open(snakemake.input.best))
    params = dict(best["params"], **(p.final.get("overrides") or {}))
    train_and_evaluate(snakemake.input.train, snakemake.input.test, params,
                       out_dir=snakemake.output.metrics.rsplit("/", 1)[0], cutoffs=p.final["cutoffs"],
                       device=p.final["device"], seed=p.final["seed"], tracking_uri=p.tracking_uri,
                       experiment=p.experiment, label=f"{w.dataset}/{w.loss}-{w.embedding}/final",
                       eval_targets=p.eval_targets, stats_path=snakemake.input.stats,
                       tags={"dataset": w.dataset, "loss": w.loss, "embedding": w.embedding,
                             "params_from": "published" if p.mode == "reproduce" else "tuning"})
