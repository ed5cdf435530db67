rule download:
    """Fetch the raw files (Kaggle API where possible) or stop naming each file to place, and where."""
    output:
        touch(f"{RAW}/{{dataset}}/.complete"),
    params:
        source=lambda w: config["datasets"][w.dataset]["source"],
        raw=lambda w: raw_dir(w.dataset),
    log:
        f"{RESULTS}/logs/download/{{dataset}}.log",
    script:
        "../scripts/download.py"


def preprocess_input(wildcards):
    source = config["datasets"][wildcards.dataset]["source"]
    return [] if source in ("synthetic", "custom") else [f"{RAW}/{wildcards.dataset}/.complete"]


rule preprocess:
    """Raw events -> train_full / test / train_tr / train_valid (+ full and statistics)."""
    input:
        preprocess_input,
    output:
        **{s: f"{RESULTS}/{{dataset}}/splits/{s}.parquet" for s in ("train_full", "test", "train_tr", "train_valid", "full")},
        stats=f"{RESULTS}/{{dataset}}/splits/stats.tsv",
        stats_md=f"{RESULTS}/{{dataset}}/splits/stats.md",
    params:
        source=lambda w: config["datasets"][w.dataset]["source"],
        options=lambda w: config["datasets"][w.dataset].get("options") or {},
        raw=lambda w: raw_dir(w.dataset),
    log:
        f"{RESULTS}/logs/preprocess/{{dataset}}.log",
    script:
        "../scripts/preprocess.py"
