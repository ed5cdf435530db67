from gru4rec.jobs import job
from gru4rec.tuning import EMBEDDING_MODES, FIXED, paper_space, run_study, write_json

w, p = snakemake.wildcards, snakemake.params
with job(snakemake.log[0]):
    tuning, ds = p.tuning, p.dataset_cfg
    fixed = dict(FIXED[w.loss], **EMBEDDING_MODES[w.embedding], **(tuning.get("overrides") or {}),
                 **(ds.get("tuning_overrides") or {}))
    space = (tuning.get("space") or {}).get(w.loss) or paper_space(w.loss)
    summary = run_study(
        study_name=f"{w.dataset}/{w.loss}-{w.embedding}", storage=p.storage,
        train_path=snakemake.input.train, valid_path=snakemake.input.valid,
        n_trials=int(ds.get("n_trials", tuning["n_trials"])), space=space, fixed=fixed,
        cutoff=tuning["cutoff"], metric=tuning["metric"], workers=snakemake.threads, device=tuning["device"],
        seed=p.seed, tracking_uri=p.tracking_uri, experiment=p.experiment, label=f"{w.dataset}/{w.loss}-{w.embedding}",
        eval_targets=ds.get("eval_targets", "all"))
    write_json(snakemake.output.best, summary)
