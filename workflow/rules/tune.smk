rule mlflow_init:
    """Create the MLflow store and experiment once, before parallel jobs write to it."""
    output:
        touch(f"{RESULTS}/.mlflow_ready"),
    log:
        f"{RESULTS}/logs/mlflow_init.log",
    conda:
        "../envs/pipeline.yaml"
    params:
        uri=tracking_uri(),
        experiment=config["mlflow"]["experiment"],
        artifact_location=config["mlflow"]["artifact_location"],
    script:
        "../scripts/mlflow_init.py"


rule tune:
    """One Optuna study (dataset x loss x embedding mode) on train_tr / train_valid, up to its budget."""
    input:
        train=rules.preprocess.output.train_tr,
        valid=rules.preprocess.output.train_valid,
        stats=rules.preprocess.output.stats,
        mlflow=mlflow_ready(),
    output:
        best=f"{RESULTS}/{{dataset}}/tuning/{{loss}}-{{embedding}}/best_params.json",
    log:
        f"{RESULTS}/logs/tune/{{dataset}}/{{loss}}-{{embedding}}.log",
    conda:
        "../envs/pipeline.yaml"
    # trials run in parallel up to these cores (fewer if snakemake --cores is lower)
    threads: config["tuning"]["workers"] * config["tuning"]["threads_per_trial"]
    resources:
        gpu=uses_gpu(config["tuning"]["device"]),
    params:
        storage=study_storage,
        # what defines the study (not workers / threads: changing those must not retrain anything)
        tuning={
            k: v
            for k, v in config["tuning"].items()
            if k not in ("workers", "threads_per_trial")
        },
        n_trials=lambda w: dataset_config(w).get(
            "n_trials", config["tuning"]["n_trials"]
        ),
        dataset_overrides=lambda w: dataset_config(w).get("tuning_overrides"),
        eval_targets=lambda w: dataset_config(w)["eval_targets"],
        tie_mode=config["tie_mode"],
        model="gru4rec",
        tracking_uri=tracking_uri(),
        experiment=config["mlflow"]["experiment"],
        seed=config["optuna"]["seed"],
    script:
        "../scripts/tune.py"


rule tune_baseline:
    """One Optuna study of a kNN baseline (or BPR-MF) on train_tr / train_valid: its small space, its budget."""
    input:
        train=rules.preprocess.output.train_tr,
        valid=rules.preprocess.output.train_valid,
        stats=rules.preprocess.output.stats,
        mlflow=mlflow_ready(),
    output:
        best=f"{RESULTS}/{{dataset}}/tuning/{{tuned}}/best_params.json",
    log:
        f"{RESULTS}/logs/tune/{{dataset}}/{{tuned}}.log",
    conda:
        "../envs/pipeline.yaml"
    threads: config["tuning"]["workers"] * config["tuning"]["threads_per_trial"]
    params:
        storage=study_storage,
        tuning={
            k: v
            for k, v in config["tuning"].items()
            if k not in ("workers", "threads_per_trial")
        },
        n_trials=config["tuning"]["baseline_trials"],
        dataset_overrides=None,
        eval_targets=lambda w: dataset_config(w)["eval_targets"],
        tie_mode=config["tie_mode"],
        model=lambda w: w.tuned,
        tracking_uri=tracking_uri(),
        experiment=config["mlflow"]["experiment"],
        seed=config["optuna"]["seed"],
    script:
        "../scripts/tune.py"


rule published_params:
    """mode 'reproduce': the published best parameters (config/published.yaml) instead of a study."""
    output:
        best=f"{RESULTS}/{{dataset}}/published/{{loss}}-{{embedding}}/best_params.json",
    log:
        f"{RESULTS}/logs/published/{{dataset}}/{{loss}}-{{embedding}}.log",
    conda:
        "../envs/pipeline.yaml"
    params:
        paper=lambda w: dataset_config(w)["paper"],
        published=lambda w: PUBLISHED["params"][dataset_config(w)["paper"]],
    script:
        "../scripts/published_params.py"
