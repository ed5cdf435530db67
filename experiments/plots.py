"""results/plots: test metrics and training speed of every final run (bars), Recall@N and MRR@N
against N per model with the seed spread (lines), and Optuna's own plots of every study.

Optuna's plots are drawn with optuna.visualization.matplotlib, not the plotly backend: a PNG from
plotly needs kaleido (a headless browser, ~100 MB), and the report embeds PNGs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on a cluster node
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .outputs import atomic_output  # noqa: E402
from .reporting import model_label  # noqa: E402


def _save(fig, path):
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


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
    _save(fig, path)


def plot_summary(summary_csv, metrics_png, speed_png) -> int:
    """The test metrics and the training speed of the runs in results/tables/summary.csv; returns
    the number of runs."""
    df = pd.read_csv(summary_csv, keep_default_na=False)
    df["run"] = [
        f"{d}\n{m if m != 'gru4rec' else loss + chr(10) + emb}\n({dev})"
        for d, m, loss, emb, dev in zip(df.dataset, df.model, df.loss, df.embedding, df.device.astype(str))
    ]
    bars(df, ["Recall@20", "MRR@20", "Recall@5", "MRR@5"], "metric", metrics_png, "Test metrics")
    bars(df, ["events_per_s"], "training events / s", speed_png, "Training speed (final runs)")
    return len(df)


def curve(metrics: dict, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, per-seed values (seeds x N)) of `metric` at every cut-off 1..max measured in a final run's
    metrics.json (its per_seed entries; a file without them counts as one seed)."""
    per_seed = metrics.get("per_seed") or [metrics]
    ns = sorted(int(k.rsplit("_", 1)[1]) for k in per_seed[0] if k.startswith(f"{metric}_at_"))
    return np.array(ns), np.array([[m[f"{metric}_at_{n}"] for n in ns] for m in per_seed], dtype=float)


def plot_curves(metrics_paths, path, title="") -> int:
    """Recall@N and MRR@N against N, one line (mean over the seeds) per model with a band from the
    lowest to the highest seed; returns the number of models."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    n_models = 0
    for p in metrics_paths:
        m = json.loads(Path(p).read_text())
        model = m.get("model", "gru4rec")
        loss, _, emb = Path(p).parent.name.rpartition("-")
        label = model_label(model, loss, emb)
        for ax, metric in zip(axes, ("recall", "mrr")):
            ns, values = curve(m, metric)
            (line,) = ax.plot(ns, values.mean(axis=0), marker=".", label=label)
            if len(values) > 1:
                ax.fill_between(ns, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.2)
        n_models += 1
    for ax, name in zip(axes, ("Recall@N", "MRR@N")):
        ax.xaxis.get_major_locator().set_params(integer=True)  # cut-offs are whole numbers
        ax.set_xlabel("N")
        ax.set_ylabel(name)
        ax.set_title(f"{title}: {name}" if title else name)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="best")
    _save(fig, path)
    return n_models


def _message(ax, text):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def plot_study(study_name: str, storage, history_png, importance_png) -> int:
    """Optuna's optimisation history and parameter importances (fANOVA) of a study, as PNGs; where
    Optuna cannot compute importances (fewer than two complete trials, or no parameter varied) the
    figure says so. Returns the number of complete trials."""
    import optuna
    from optuna.visualization import matplotlib as ovm

    from .tuning import S, load_study

    study = load_study(study_name, storage)
    n = sum(1 for t in study.get_trials(deepcopy=False) if t.state == S.COMPLETE)
    with warnings.catch_warnings():  # optuna.visualization.matplotlib is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = ovm.plot_optimization_history(study)
        ax.set_title(f"{study_name}: optimisation history")  # replaces Optuna's title (same location)
        _save(ax.figure, history_png)
        try:
            ax = ovm.plot_param_importances(study)
            ax.set_title(f"{study_name}: parameter importances", loc="left")  # Optuna's is on the left
            fig = ax.figure
        except (RuntimeError, ValueError, ZeroDivisionError) as e:
            fig, ax = plt.subplots(figsize=(6, 3))
            _message(ax, f"{study_name}: no parameter importances\n({n} complete trials; {type(e).__name__})")
        _save(fig, importance_png)
    return n
