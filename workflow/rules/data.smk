rule download:
    """Fetch and verify the raw files where possible, or stop naming each file to place, and where."""
    output:
        touch(f"{RAW}/{{dataset}}/.complete"),
    log:
        f"{RESULTS}/logs/download/{{dataset}}.log",
    conda:
        "../envs/pipeline.yaml"
    params:
        source=lambda w: dataset_config(w)["source"],
        raw=lambda w: raw_dir(w.dataset),
    script:
        "../scripts/download.py"


rule preprocess:
    """Raw events -> train_full / test / train_tr / train_valid (+ full and statistics)."""
    input:
        preprocess_input,
    output:
        train_full=f"{RESULTS}/{{dataset}}/splits/train_full.parquet",
        test=f"{RESULTS}/{{dataset}}/splits/test.parquet",
        train_tr=f"{RESULTS}/{{dataset}}/splits/train_tr.parquet",
        train_valid=f"{RESULTS}/{{dataset}}/splits/train_valid.parquet",
        full=f"{RESULTS}/{{dataset}}/splits/full.parquet",
        stats=f"{RESULTS}/{{dataset}}/splits/stats.tsv",
        stats_md=report(
            f"{RESULTS}/{{dataset}}/splits/stats.md",
            category="Datasets",
            subcategory="{dataset}",
            caption="../report/stats.rst",
        ),
    log:
        f"{RESULTS}/logs/preprocess/{{dataset}}.log",
    conda:
        "../envs/pipeline.yaml"
    params:
        source=lambda w: dataset_config(w)["source"],
        options=lambda w: dataset_config(w).get("options") or {},
        raw=lambda w: raw_dir(w.dataset),
        strict=config["checks"]["strict"],
        tolerance=config["checks"]["tolerance"],
        train_window_days=lambda w: dataset_config(w).get("train_window_days"),
        published=lambda w: published_statistics(dataset_config(w)["source"]),
    script:
        "../scripts/preprocess.py"
