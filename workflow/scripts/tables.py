"""results/tables: every final run, and our figures beside the published ones."""
from gru4rec.jobs import job
from gru4rec.reporting import collect, paper_comparison, write

out = snakemake.output
with job(snakemake.log[0]):
    summary = collect(snakemake.input.metrics)
    write(summary, out.summary_md, out.summary_csv, "GRU4Rec results",
          "Test set, every dataset x loss x embedding mode; training time and speed of the final run.")
    paper = paper_comparison(summary, snakemake.params.datasets, snakemake.params.published)
    write(paper, out.paper_md, out.paper_csv, "Our results beside the published ones",
          "Published: the original GRU4Rec README (A30 GPU, full datasets). '—': the dataset is not in this "
          "config (config/paper.yaml runs them). Differences of a few percent are expected (the README says so).")
    print(f"{len(summary)} runs -> {out.summary_md}; comparison with the published results -> {out.paper_md}")
