rule train_final:
    """Train the best parameters on train_full (on the GPU when there is one), evaluate on test (metrics and per-event ranks)."""
    input:
        best=best_params,
        train=rules.preprocess.output.train_full,
        test=rules.preprocess.output.test,
        stats=rules.preprocess.output.stats,
        mlflow=mlflow_ready(),
    output:
        metrics=f"{RESULTS}/{{dataset}}/final/{{loss}}-{{embedding}}/metrics.json",
        model=f"{RESULTS}/{{dataset}}/final/{{loss}}-{{embedding}}/model.safetensors",
        params=f"{RESULTS}/{{dataset}}/final/{{loss}}-{{embedding}}/params.json",
        ranks=f"{RESULTS}/{{dataset}}/final/{{loss}}-{{embedding}}/ranks.parquet",
    log:
        f"{RESULTS}/logs/final/{{dataset}}/{{loss}}-{{embedding}}.log",
    conda:
        "../envs/pipeline.yaml"
    threads: config["final"]["threads"]
    resources:
        gpu=uses_gpu(config["final"]["device"]),
    params:
        final=config["final"],
        cutoffs=eval_cutoffs(),
        seeds=seeds("gru4rec"),
        tie_mode=config["tie_mode"],
        model="gru4rec",
        eval_targets=lambda w: dataset_config(w)["eval_targets"],
        mode=lambda w: dataset_config(w)["mode"],
        tracking_uri=tracking_uri(),
        experiment=config["mlflow"]["experiment"],
    script:
        "../scripts/train_final.py"


rule train_baseline:
    """Fit a baseline (its tuned or default parameters) on train_full once per seed, evaluate on test."""
    input:
        best=baseline_params,
        train=rules.preprocess.output.train_full,
        test=rules.preprocess.output.test,
        stats=rules.preprocess.output.stats,
        mlflow=mlflow_ready(),
    output:
        metrics=f"{RESULTS}/{{dataset}}/final/{{baseline}}/metrics.json",
        params=f"{RESULTS}/{{dataset}}/final/{{baseline}}/params.json",
        ranks=f"{RESULTS}/{{dataset}}/final/{{baseline}}/ranks.parquet",
    log:
        f"{RESULTS}/logs/final/{{dataset}}/{{baseline}}.log",
    conda:
        "../envs/pipeline.yaml"
    threads: config["final"]["threads"]
    params:
        final=config["final"],
        cutoffs=eval_cutoffs(),
        seeds=lambda w: seeds(w.baseline),
        tie_mode=config["tie_mode"],
        model=lambda w: w.baseline,
        eval_targets=lambda w: dataset_config(w)["eval_targets"],
        mode=lambda w: dataset_config(w)["mode"],
        tracking_uri=tracking_uri(),
        experiment=config["mlflow"]["experiment"],
    script:
        "../scripts/train_final.py"
