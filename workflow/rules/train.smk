rule train_final:
    """Train the best parameters on train_full (on the GPU when there is one), evaluate on test."""
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
    log:
        f"{RESULTS}/logs/final/{{dataset}}/{{loss}}-{{embedding}}.log",
    conda:
        "../envs/pipeline.yaml"
    threads: config["final"]["threads"]
    resources:
        gpu=uses_gpu(config["final"]["device"]),
    params:
        final=config["final"],
        eval_targets=lambda w: dataset_config(w)["eval_targets"],
        mode=lambda w: dataset_config(w)["mode"],
        tracking_uri=tracking_uri(),
        experiment=config["mlflow"]["experiment"],
    script:
        "../scripts/train_final.py"
