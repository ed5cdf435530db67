"""Result tables: one row per final run, published figures beside ours, per-column formatting."""

import json

import pandas as pd
import pytest

from experiments import reporting


def _metrics(tmp_path, dataset, name, recall20, seconds):
    d = tmp_path / dataset / "final" / name
    d.mkdir(parents=True)
    m = {f"recall_at_{n}": recall20 * n / 20 for n in reporting.CUTOFFS}
    m.update({f"mrr_at_{n}": recall20 / 4 for n in reporting.CUTOFFS})
    m.update(train_seconds=seconds, events_per_s=12345.6, device="cpu", n_predictions=100)
    (d / "metrics.json").write_text(json.dumps(m))
    return d / "metrics.json"


def test_collect_and_compare(tmp_path):
    paths = [
        _metrics(tmp_path, "rr", "bpr-max-shared", 0.5, 1234.567),
        _metrics(tmp_path, "rr", "cross-entropy-none", 0.4, 3.0),
    ]
    summary = reporting.collect(paths)
    assert list(summary.loss) == ["bpr-max", "cross-entropy"]  # "bpr-max" keeps its hyphen
    assert list(summary.embedding) == ["shared", "none"]
    assert summary.loc[0, "Recall@20"] == pytest.approx(0.5)
    published = {
        "params": {"retailrocket": {"loss": "bpr-max"}},
        "results": {"retailrocket": {f"{k}_at_{n}": 0.25 for n in reporting.CUTOFFS for k in ("recall", "mrr")}},
    }
    comp = reporting.paper_comparison(summary, {"rr": {"paper": "retailrocket"}}, published)
    row = comp[comp.metric == "Recall@20"].iloc[0]
    assert row.ours == pytest.approx(0.5) and row.difference == pytest.approx(0.25)
    assert row["relative_%"] == pytest.approx(100.0)


def test_markdown_formats_per_column():
    df = pd.DataFrame({"Recall@20": [0.51818412], "train_seconds": [3.14159], "relative_%": [-2.345], "note": [None]})
    md = reporting.to_markdown(df, "T")
    assert "| 0.5182 | 3.14 | -2.3 | — |" in md
