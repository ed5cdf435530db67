def best_params(wildcards):
    kind = "published" if config["datasets"][wildcards.dataset]["mode"] == "reproduce" else "tuning"
    return f"{RESULTS}/{wildcards.dataset}/{kind}/{wildcards.loss}-{wildcards.embedding}/best_params.json"


rule train_final:
    """Train the best parameters on train_full (on the GPU when there is one), evaluate on test."""
    input:
        best=best_params,
        train=lambda w: split_file(w.dataset, "train_full"),
        test=lambda w: split_file(w.dataset, "test"),
        stats=f"{RESULTS}/{{dataset}}/splits/stats.tsv",
        mlflow=mlflow_ready(),
    output:
        metrics=f"{RESULTS}/{{dataset}}/final/{{loss}}-{{embedding}}/metrics.json",
        model=f"{RESULTS}/{{dataset}}/final/{{loss}}-{{embedding}}/model.safetensors",
    params:
        final=config["final"],
        eval_targets=lambda w: config["datasets"][w.dataset].get("eval_targets", "all"),
        tracking_uri=tracking_uri(),
        experiment=config["mlflow"]["experiment"],
    threads: config["final"]["threads"]
    resources:
        gpu=1,
    log:
        f"{RESULTS}/logs/final/{{dataset}}/{{loss}}-{{embedding}}.log",
    script:
        "../scripts/train_final.py"
