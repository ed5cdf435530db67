rule tables:
    """Every dataset x loss x embedding mode, and our figures beside the published ones."""
    input:
        metrics=all_metrics(),
    output:
        summary_md=report(
            f"{RESULTS}/tables/summary.md",
            category="Tables",
            caption="../report/summary.rst",
        ),
        summary_csv=f"{RESULTS}/tables/summary.csv",
        paper_md=report(
            f"{RESULTS}/tables/paper_comparison.md",
            category="Tables",
            caption="../report/paper.rst",
        ),
        paper_csv=f"{RESULTS}/tables/paper_comparison.csv",
    log:
        f"{RESULTS}/logs/tables.log",
    conda:
        "../envs/pipeline.yaml"
    params:
        datasets=config["datasets"],
        published=PUBLISHED,
    script:
        "../scripts/tables.py"


rule plots:
    """Test metrics and training speed of every final run."""
    input:
        summary=rules.tables.output.summary_csv,
    output:
        metrics=report(
            f"{RESULTS}/plots/metrics.png",
            category="Plots",
            caption="../report/metrics.rst",
        ),
        speed=report(
            f"{RESULTS}/plots/speed.png",
            category="Plots",
            caption="../report/speed.rst",
        ),
    log:
        f"{RESULTS}/logs/plots.log",
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/plots.py"
