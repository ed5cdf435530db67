import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

df = pd.read_csv(snakemake.input.summary)
df["run"] = df.dataset + "\n" + df.loss + "\n" + df.embedding


def bars(columns, ylabel, path, title):
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(df)), 4.5))
    width = 0.8 / len(columns)
    for k, col in enumerate(columns):
        ax.bar([i + k * width for i in range(len(df))], df[col], width, label=col)
    ax.set_xticks([i + width * (len(columns) - 1) / 2 for i in range(len(df))])
    ax.set_xticklabels(df.run, fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(columns) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


bars(["Recall@20", "MRR@20", "Recall@5", "MRR@5"], "metric", snakemake.output.metrics, "Test metrics")
bars(["events_per_s"], "training events / s", snakemake.output.speed, "Training speed (final runs)")
