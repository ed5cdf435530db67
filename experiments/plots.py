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
from .reporting import BASELINE_ORDER, model_label  # noqa: E402

# GRU4Rec's variants: one colour family (blues; the embedding mode sets the shade, the loss the
# marker), solid lines. Each baseline: a colour of its own outside that family, dashed, a marker.
_GRU4REC_SHADES = {"none": "#9ecae1", "separate": "#4292c6", "shared": "#08306b"}
_GRU4REC_MARKERS = {"cross-entropy": "o", "bpr-max": "s"}
_BASELINE_COLOURS = ("#e6550d", "#31a354", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
_BASELINE_MARKERS = ("^", "v", "D", "P", "X", "*", "<", ">")
_OTHER_BLUES = ("#6baed6", "#2171b5", "#c6dbef", "#08519c")  # a loss or mode beyond the papers'


def _key(model: str, loss: str, embedding: str) -> tuple:
    """A model as the plots tell models apart: a baseline by its name alone."""
    return (model, loss, embedding) if model == "gru4rec" else (model, "", "")


def legend_order(key: tuple) -> tuple:
    """GRU4Rec's variants first (the papers' losses, then embedding modes), then the baselines in
    the tables' order."""
    model, loss, embedding = key
    if model == "gru4rec":
        losses, modes = list(_GRU4REC_MARKERS), list(_GRU4REC_SHADES)
        return (
            0,
            losses.index(loss) if loss in losses else 9,
            loss,
            modes.index(embedding) if embedding in modes else 9,
            embedding,
        )
    return (1, BASELINE_ORDER.index(model) if model in BASELINE_ORDER else 99, model, 0, "")


def styles(models) -> dict:
    """{(model, loss, embedding): matplotlib line style} for the models of one plot; no two alike."""
    out, baselines, extra = {}, 0, 0
    for key in sorted(set(models), key=legend_order):
        model, loss, embedding = key
        if model == "gru4rec":
            colour = _GRU4REC_SHADES.get(embedding)
            marker = _GRU4REC_MARKERS.get(loss)
            if (
                colour is None
                or marker is None
                or any(v["color"] == colour and v["marker"] == marker for v in out.values())
            ):
                colour, marker = _OTHER_BLUES[extra % len(_OTHER_BLUES)], "ohd^"[extra // len(_OTHER_BLUES) % 4]
                extra += 1
            out[key] = {"color": colour, "linestyle": "-", "marker": marker}
        else:
            k = baselines
            baselines += 1
            out[key] = {
                "color": _BASELINE_COLOURS[k % len(_BASELINE_COLOURS)],
                "linestyle": "--" if k < len(_BASELINE_COLOURS) else ":",
                "marker": _BASELINE_MARKERS[k % len(_BASELINE_MARKERS)],
            }
    return out


def _save(fig, path):
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png", bbox_inches="tight")  # keeps a legend outside the axes
    plt.close(fig)


def _run_names(df: pd.DataFrame) -> list[str]:
    """A bar's name: the model (GRU4Rec with its loss and embedding), the dataset where there are
    several, and the device."""
    several = df.dataset.nunique() > 1
    return [
        (f"{d}\n" if several else "")
        + (model_label(m, loss, emb).replace(" (", "\n(") if m == "gru4rec" else model_label(m))
        + f"\n[{dev}]"
        for d, m, loss, emb, dev in zip(df.dataset, df.model, df.loss, df.embedding, df.device.astype(str))
    ]


def bars(df: pd.DataFrame, columns, ylabel, path, title, log=False, colours=None):
    """One group of bars per run (df.run), one bar per column; written atomically as PNG. `log`: a
    logarithmic value axis, each bar labelled with its value (for values of several magnitudes);
    `colours`: one per run, for a single column."""
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(df) + 1.5), 5))
    width = 0.8 / len(columns)
    for k, col in enumerate(columns):
        rects = ax.bar([i + k * width for i in range(len(df))], df[col], width, label=col, color=colours)
        if log:
            ax.bar_label(rects, labels=[f"{v:,.0f}" for v in df[col]], fontsize=6, padding=2)
    ax.set_xticks([i + width * (len(columns) - 1) / 2 for i in range(len(df))])
    ax.set_xticklabels(df.run, fontsize=7, rotation=90 if len(df) > 8 else 0)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if log:
        ax.set_yscale("log")
        ax.set_ylim(top=float(df[columns].max().max()) * 5)  # room for the labels
    if len(columns) > 1:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)


def plot_summary(summary_csv, metrics_png, speed_png) -> int:
    """The test metrics and the training speed of the runs in results/tables/summary.csv; returns
    the number of runs. The speed is drawn on a log axis: counting baselines (POP, S-POP) process
    millions of events per second, GRU4Rec thousands."""
    df = pd.read_csv(summary_csv, keep_default_na=False)
    df["run"] = _run_names(df)
    bars(df, ["Recall@20", "MRR@20", "Recall@5", "MRR@5"], "test metric", metrics_png, "Test metrics (final runs)")
    speed = df[pd.to_numeric(df.events_per_s, errors="coerce") > 0].copy()
    speed["events_per_s"] = speed.events_per_s.astype(float)
    keys = [_key(m, loss, emb) for m, loss, emb in zip(speed.model, speed.loss, speed.embedding)]
    style = styles(keys)
    bars(
        speed,
        ["events_per_s"],
        "training events / s (log scale)",
        speed_png,
        "Training speed of the final runs (fitting the baselines is counting, not training)",
        log=True,
        colours=[style[k]["color"] for k in keys],
    )
    return len(df)


def curve(metrics: dict, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, per-seed values (seeds x N)) of `metric` at every cut-off 1..max measured in a final run's
    metrics.json (its per_seed entries; a file without them counts as one seed)."""
    per_seed = metrics.get("per_seed") or [metrics]
    ns = sorted(int(k.rsplit("_", 1)[1]) for k in per_seed[0] if k.startswith(f"{metric}_at_"))
    return np.array(ns), np.array([[m[f"{metric}_at_{n}"] for n in ns] for m in per_seed], dtype=float)


def plot_curves(metrics_paths, path, title="") -> int:
    """Recall@N and MRR@N against N, one line (mean over the seeds) per model with a band from the
    lowest to the highest seed; GRU4Rec's variants in blues with solid lines, each baseline in its
    own colour, dashed (`styles`); the legend outside the axes. Returns the number of models."""
    runs = []
    for p in metrics_paths:
        m = json.loads(Path(p).read_text())
        model = m.get("model", "gru4rec")
        loss, _, emb = Path(p).parent.name.rpartition("-")
        runs.append((_key(model, loss, emb), m))
    style = styles([key for key, _ in runs])
    runs.sort(key=lambda r: legend_order(r[0]))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for key, m in runs:
        label = model_label(*key)
        for ax, metric in zip(axes, ("recall", "mrr")):
            ns, values = curve(m, metric)
            ax.plot(ns, values.mean(axis=0), label=label, markersize=4, linewidth=1.4, **style[key])
            if len(values) > 1:
                ax.fill_between(ns, values.min(axis=0), values.max(axis=0), color=style[key]["color"], alpha=0.15)
    for ax, name in zip(axes, ("Recall@N", "MRR@N")):
        ax.xaxis.get_major_locator().set_params(integer=True)  # cut-offs are whole numbers
        ax.set_xlabel("N")
        ax.set_ylabel(name)
        ax.set_title(f"{title}: {name}" if title else name)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    _save(fig, path)
    return len(runs)


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
        ax.set_title(f"{study_name}\noptimisation history")  # replaces Optuna's title (same location)
        _save(ax.figure, history_png)
        try:
            ax = ovm.plot_param_importances(study)
            ax.set_title("", loc="left")  # Optuna's, on the left, runs past the right edge for a long study name
            ax.set_title(f"{study_name}\nparameter importances")
            fig = ax.figure
        except (RuntimeError, ValueError, ZeroDivisionError) as e:
            fig, ax = plt.subplots(figsize=(6, 3))
            _message(ax, f"{study_name}: no parameter importances\n({n} complete trials; {type(e).__name__})")
        _save(fig, importance_png)
    return n
