"""Run (or continue) one Optuna study up to its budget; write its best parameters."""

from experiments.jobs import job
from experiments.tuning import ValidationScore, fixed_params, paper_space, run_study
from gru4rec.fileio import write_json

w, p, tuning = snakemake.wildcards, snakemake.params, snakemake.params.tuning
with job(snakemake.log[0]):
    # trials in parallel up to the cores Snakemake gave this job, each with threads_per_trial of them
    # (read from the config, not a param: changing it must not rerun a finished study)
    per_trial = max(1, int(snakemake.config["tuning"]["threads_per_trial"]))
    workers = max(1, snakemake.threads // per_trial)
    score = ValidationScore(
        snakemake.input.train,
        snakemake.input.valid,
        cutoff=tuning["cutoff"],
        metric=tuning["metric"],
        device=tuning["device"],
        seed=p.seed,
        eval_targets=p.eval_targets,
        threads=max(1, snakemake.threads // workers),
    )
    summary = run_study(
        study_name=f"{w.dataset}/{w.loss}-{w.embedding}",
        storage=p.storage,
        score=score,
        space=(tuning["space"] or {}).get(w.loss) or paper_space(w.loss),
        fixed=fixed_params(w.loss, w.embedding, tuning["overrides"], p.dataset_overrides),
        n_trials=p.n_trials,
        workers=workers,
        seed=p.seed,
        metric_name=f"{tuning['metric'].upper()}@{tuning['cutoff']}",
        tracking_uri=p.tracking_uri,
        experiment=p.experiment,
        label=f"{w.dataset}/{w.loss}-{w.embedding}",
        stats_path=snakemake.input.stats,
        pruner=tuning["pruner"],
    )
    write_json(snakemake.output.best, summary)
