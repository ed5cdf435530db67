"""Train the best (or published, or default) parameters of GRU4Rec or a baseline on train_full once
per seed, evaluate on test, log to MLflow."""

import json
from pathlib import Path

import torch

from experiments.jobs import job
from experiments.mlflow_model import registered_name
from experiments.runs import final_run
from experiments.tracking import workspace_id

w, p, final = snakemake.wildcards, snakemake.params, snakemake.params.final
with job(snakemake.log[0]):
    torch.set_num_threads(max(1, snakemake.threads))
    best = json.loads(Path(snakemake.input.best).read_text())["params"] if snakemake.input.best else {}
    if p.model == "gru4rec":
        params = dict(best, **(final["overrides"] or {}))
        name = f"{w.loss}-{w.embedding}"
        tags = {"loss": w.loss, "embedding": w.embedding}
        tags["params_from"] = "published" if p.mode == "reproduce" else "tuning"
        register = registered_name(w.dataset, w.loss, w.embedding)
    else:  # a baseline: its tuned parameters, or its defaults (POP, S-POP, RANDOM)
        params, name, register = best, w.baseline, None
        tags = {"baseline": w.baseline, "params_from": "tuning" if best else "defaults"}
    final_run(
        snakemake.input.train,
        snakemake.input.test,
        params,
        out_dir=Path(snakemake.output.metrics).parent,
        model=p.model,
        cutoffs=p.cutoffs,
        device=final["device"],
        seeds=p.seeds,
        mode=p.tie_mode,
        tracking_uri=p.tracking_uri,
        experiment=p.experiment,
        label=f"{w.dataset}/{name}/final",
        eval_targets=p.eval_targets,
        stats_path=snakemake.input.stats,
        register_as=register,
        tags=dict(tags, dataset=w.dataset),
        # this results directory's own: a rerun replaces its earlier runs, not another directory's
        workspace=workspace_id(Path(snakemake.input.mlflow[0]).parent) if p.tracking_uri else None,
    )
