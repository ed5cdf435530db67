"""experiments.plots: pictures a reader can tell apart, on axes that show what they claim."""

import json

import pandas as pd
import pytest

from experiments import plots, tuning

GRU4REC = [("gru4rec", loss, mode) for loss in ("cross-entropy", "bpr-max") for mode in ("none", "separate", "shared")]
BASELINES = [(b, "", "") for b in ("pop", "spop", "itemknn", "bprmf", "random", "sknn", "vsknn")]


@pytest.fixture
def figures(monkeypatch):
    """The figures the plots would write, by file name (drawn, not closed)."""
    out = {}

    def keep(fig, path):
        fig.canvas.draw()
        out[str(path).rsplit("/", 1)[-1]] = fig

    monkeypatch.setattr(plots, "_save", keep)
    return out


def test_no_two_models_look_alike_and_gru4rec_is_one_family():
    style = plots.styles(GRU4REC + BASELINES)
    looks = {(s["color"], s["linestyle"], s["marker"]) for s in style.values()}
    assert len(looks) == len(style) == 13
    blues = {style[k]["color"] for k in GRU4REC}
    assert all(style[k]["linestyle"] == "-" for k in GRU4REC) and blues <= set(plots._GRU4REC_SHADES.values())
    assert all(style[k]["linestyle"] == "--" and style[k]["marker"] for k in BASELINES)
    assert len({style[k]["color"] for k in BASELINES}) == len(BASELINES) and not blues & {
        style[k]["color"] for k in BASELINES
    }


def test_curves_put_the_legend_outside_the_axes(tmp_path, figures):
    paths = []
    for k, (model, loss, mode) in enumerate(GRU4REC + BASELINES):
        d = tmp_path / (f"{loss}-{mode}" if model == "gru4rec" else model)
        d.mkdir()
        at = {f"{m}_at_{n}": 0.01 * k * n for m in ("recall", "mrr") for n in (1, 5, 20)}
        (d / "metrics.json").write_text(json.dumps({"model": model, "per_seed": [at, at]}))
        paths.append(d / "metrics.json")
    assert plots.plot_curves(paths, tmp_path / "curves.png", title="synthetic") == 13
    fig = figures["curves.png"]
    [legend] = fig.legends
    assert [t.get_text() for t in legend.get_texts()][:2] == [
        "GRU4Rec (cross-entropy, none)",
        "GRU4Rec (cross-entropy, separate)",
    ]
    legend_box = legend.get_window_extent()
    assert all(legend_box.x0 >= ax.get_window_extent().x1 for ax in fig.axes)  # beside the axes, not over them


def test_the_speed_plot_mixes_scales_on_a_log_axis(tmp_path, figures):
    rows = [
        {"dataset": "d", "model": m, "loss": loss, "embedding": mode, "device": "cpu", "events_per_s": v}
        | {c: 0.1 for c in ("Recall@20", "MRR@20", "Recall@5", "MRR@5")}
        for (m, loss, mode), v in [(GRU4REC[0], 8000.0), (BASELINES[0], 3.0e6), (BASELINES[2], 5.0e4)]
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "summary.csv", index=False)
    plots.plot_summary(tmp_path / "summary.csv", tmp_path / "metrics.png", tmp_path / "speed.png")
    ax = figures["speed.png"].axes[0]
    assert ax.get_yscale() == "log" and ax.get_ylim()[0] < 8000  # the smallest bar is visible
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["8,000", "3,000,000", "50,000"]
    assert figures["metrics.png"].axes[0].get_yscale() == "linear"


def test_a_long_study_name_keeps_the_importance_title_inside_the_figure(tmp_path, figures):
    name = "a-long-dataset-name/cross-entropy-separate"
    study = tuning.load_study(name, str(tmp_path / "s.journal"))
    for k in range(6):
        trial = study.ask()
        lr, hidden = trial.suggest_float("learning_rate", 0.01, 0.5), trial.suggest_int("layers", 64, 512)
        study.tell(trial, lr * (k % 3) + hidden / 1000)
    plots.plot_study(name, str(tmp_path / "s.journal"), tmp_path / "history.png", tmp_path / "importance.png")
    for file in ("history.png", "importance.png"):
        fig = figures[file]
        title = fig.axes[0].title
        box, width = title.get_window_extent(), fig.get_window_extent().width
        assert name in title.get_text() and 0 <= box.x0 and box.x1 <= width, file
        assert fig.axes[0].get_title(loc="left") == fig.axes[0].get_title(loc="right") == "", file  # one title
