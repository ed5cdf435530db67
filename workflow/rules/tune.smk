rule mlflow_init:
    """Create the MLflow store and experiment once, before parallel jobs write to it."""
    output:
        touch(f"{RESULTS}/.mlflow_ready"),
    params:
        uri=tracking_uri(),
        experiment=config["mlflow"]["experiment"],
    script:
        "../scripts/mlflow_init.py"


rule tune:
    """One Optuna study (dataset x loss x embedding mode) on train_tr / train_valid, up to its budget."""
    input:
        train=lambda w: split_file(w.dataset, "train_tr"),
        valid=lambda w: split_file(w.dataset, "train_valid"),
        mlflow=mlflow_ready(),
    output:
        best=f"{RESULTS}/{{dataset}}/tuning/{{loss}}-{{embedding}}/best_params.json",
    params:
        storage=study_storage,
        tuning=lambda w: config["tuning"],
        dataset_cfg=lambda w: config["datasets"][w.dataset],
        tracking_uri=tracking_uri(),
        experiment=config["mlflow"]["experiment"],
        seed=config["optuna"]["seed"],
    threads: config["tuning"]["workers"]
    log:
        f"{RESULTS}/logs/tune/{{dataset}}/{{loss}}-{{embedding}}.log",
    script:
        "../scripts/tune.py"


rule published_params:
    """mode 'reproduce': the published best parameters instead of a study."""
    output:
        best=f"{RESULTS}/{{dataset}}/published/{{loss}}-{{embedding}}/best_params.json",
    params:
        published=lambda w: PUBLISHED["params"][config["datasets"][w.dataset]["paper"]],
    script:
        "../scripts/published_params.py"
