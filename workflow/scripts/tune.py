"""Run (or continue) one Optuna study (GRU4Rec's loss x embedding, or a baseline's) up to its budget;
write its best parameters."""

from experiments.jobs import job
from experiments.outputs import write_json
from experiments.tuning import ValidationScore, run_study, study_setup

w, p, tuning = snakemake.wildcards, snakemake.params, snakemake.params.tuning
with job(snakemake.log[0]):
    # trials in parallel up to the cores Snakemake gave this job, each with threads_per_trial of them
    # (read from the config, not a param: changing it must not rerun a finished study)
    per_trial = max(1, int(snakemake.config["tuning"]["threads_per_trial"]))
    workers = max(1, snakemake.threads // per_trial)
    study = p.model if p.model != "gru4rec" else f"{w.loss}-{w.embedding}"
    space, fixed, check = study_setup(
        p.model, tuning, getattr(w, "loss", None), getattr(w, "embedding", None), p.dataset_overrides
    )
    score = ValidationScore(
        snakemake.input.train,
        snakemake.input.valid,
        cutoff=tuning["cutoff"],
        metric=tuning["metric"],
        device=tuning["device"],
        seed=p.seed,
        eval_targets=p.eval_targets,
        threads=max(1, snakemake.threads // workers),
        model=p.model,
        mode=p.tie_mode,
    )
    summary = run_study(
        study_name=f"{w.dataset}/{study}",
        storage=p.storage,
        score=score,
        space=space,
        fixed=fixed,
        n_trials=p.n_trials,
        workers=workers,
        seed=p.seed,
        metric_name=f"{tuning['metric'].upper()}@{tuning['cutoff']}",
        tracking_uri=p.tracking_uri,
        experiment=p.experiment,
        label=f"{w.dataset}/{study}",
        stats_path=snakemake.input.stats,
        check=check,
        pruner=tuning["pruner"],
    )
    write_json(snakemake.output.best, summary)
