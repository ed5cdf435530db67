"""Train the best (or published) parameters on train_full, evaluate on test, log to MLflow."""

import json
from pathlib import Path

import torch

from experiments.jobs import job
from experiments.mlflow_model import registered_name
from experiments.runs import final_run

w, p, final = snakemake.wildcards, snakemake.params, snakemake.params.final
with job(snakemake.log[0]):
    torch.set_num_threads(max(1, snakemake.threads))
    best = json.loads(Path(snakemake.input.best).read_text())
    final_run(
        snakemake.input.train,
        snakemake.input.test,
        dict(best["params"], **(final["overrides"] or {})),
        out_dir=Path(snakemake.output.metrics).parent,
        cutoffs=final["cutoffs"],
        device=final["device"],
        seed=final["seed"],
        tracking_uri=p.tracking_uri,
        experiment=p.experiment,
        label=f"{w.dataset}/{w.loss}-{w.embedding}/final",
        eval_targets=p.eval_targets,
        stats_path=snakemake.input.stats,
        register_as=registered_name(w.dataset, w.loss, w.embedding),
        tags={
            "dataset": w.dataset,
            "loss": w.loss,
            "embedding": w.embedding,
            "params_from": "published" if p.mode == "reproduce" else "tuning",
        },
    )
