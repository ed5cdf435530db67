rule download:
    """Fetch and verify the raw files where possible, or stop naming each file to place, and where."""
    output:
        touch(f"{RAW}/{{dataset}}/.complete"),
    params:
        source=lambda w: dataset_config(w)["source"],
        raw=lambda w: raw_dir(w.dataset),
    log:
        f"{RESULTS}/logs/download/{{dataset}}.log",
    script:
        "../scripts/download.py"


rule preprocess:
    """Raw events -> train_full / test / train_tr / train_valid (+ full and statistics)."""
    input:
        preprocess_input,
    output:
        **{s: f"{RESULTS}/{{dataset}}/splits/{s}.parquet" for s in ("train_full", "test", "train_tr", "train_valid", "full")},
        stats=f"{RESULTS}/{{dataset}}/splits/stats.tsv",
        stats_md=report(f"{RESULTS}/{{dataset}}/splits/stats.md", category="Datasets", subcategory="{dataset}",
                        caption="../report/stats.rst"),
    params:
        source=lambda w: dataset_config(w)["source"],
        options=lambda w: dataset_config(w).get("options") or {},
        raw=lambda w: raw_dir(w.dataset),
    log:
        f"{RESULTS}/logs/preprocess/{{dataset}}.log",
    script:
        "../scripts/preprocess.py"
