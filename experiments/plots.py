"""results/plots: test metrics and training speed of every final run, as bar charts."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on a cluster node
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from gru4rec.fileio import atomic_output  # noqa: E402


def bars(df: pd.DataFrame, columns, ylabel, path, title):
    """One group of bars per run (df.run), one bar per column; written atomically as PNG."""
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(df)), 4.5))
    width = 0.8 / len(columns)
    for k, col in enumerate(columns):
        ax.bar([i + k * width for i in range(len(df))], df[col], width, label=col)
    ax.set_xticks([i + width * (len(columns) - 1) / 2 for i in range(len(df))])
    ax.set_xticklabels(df.run, fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(columns) > 1:  # headroom above the bars for a one-row legend
        ax.set_ylim(0, 1.2 * float(df[columns].max().max()))
        ax.legend(fontsize=8, ncol=len(columns), loc="upper center")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def plot_summary(summary_csv, metrics_png, speed_png) -> int:
    """The test metrics and the training speed of the runs in results/tables/summary.csv; returns
    the number of runs."""
    df = pd.read_csv(summary_csv)
    df["run"] = df.dataset + "\n" + df.loss + "\n" + df.embedding + "\n(" + df.device.astype(str) + ")"
    bars(df, ["Recall@20", "MRR@20", "Recall@5", "MRR@5"], "metric", metrics_png, "Test metrics")
    bars(df, ["events_per_s"], "training events / s", speed_png, "Training speed (final runs)")
    return len(df)
