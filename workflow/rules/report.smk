rule tables:
    """Every run; per dataset the ICLR 2016 comparison (with paired significance tests) and every metric; our figures beside the published ones."""
    input:
        metrics=all_metrics(),
        ranks=all_ranks(),
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
        comparison_md=report(
            expand(
                f"{RESULTS}/tables/{{dataset}}/comparison.md",
                dataset=config["datasets"],
            ),
            category="Tables",
            caption="../report/comparison.rst",
        ),
        metrics_md=report(
            expand(
                f"{RESULTS}/tables/{{dataset}}/all_metrics.md",
                dataset=config["datasets"],
            ),
            category="Tables",
            caption="../report/all_metrics.rst",
        ),
        other=table_outputs(),
    log:
        f"{RESULTS}/logs/tables.log",
    conda:
        "../envs/pipeline.yaml"
    params:
        datasets=config["datasets"],
        published=PUBLISHED,
        tie_mode=config["tie_mode"],
        tables_dir=lambda w, output: os.path.dirname(output.summary_csv),
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


rule curves:
    """Recall@N and MRR@N against N per model of a dataset, with the spread over the seeds."""
    input:
        metrics=lambda w: [m for m in all_metrics() if f"/{w.dataset}/final/" in m],
    output:
        report(
            f"{RESULTS}/plots/{{dataset}}/curves.png",
            category="Plots",
            subcategory="{dataset}",
            caption="../report/curves.rst",
        ),
    log:
        f"{RESULTS}/logs/plots/{{dataset}}-curves.log",
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/curves.py"


rule study_plots:
    """Optuna's optimisation history and parameter importances of every study (one job: one start-up)."""
    input:
        best=[f"{RESULTS}/{d}/tuning/{s}/best_params.json" for d, s in study_dirs()],
    output:
        history=report(
            study_plot_files("history"),
            category="Studies",
            caption="../report/history.rst",
        ),
        importance=report(
            study_plot_files("importance"),
            category="Studies",
            caption="../report/importance.rst",
        ),
    log:
        f"{RESULTS}/logs/plots/studies.log",
    conda:
        "../envs/pipeline.yaml"
    params:
        studies=[(f"{d}/{s}", storage_of(d, s)) for d, s in study_dirs()],
    script:
        "../scripts/study_plots.py"
