"""Result tables: one row per final run, published figures beside ours, per-column formatting."""

import json

import pandas as pd
import pytest

from experiments import reporting
from experiments.config import seeds_for
from experiments.runs import aggregate


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


def test_seeds_aggregate_to_mean_and_sample_std():
    per_seed = [
        {"recall_at_20": 0.2, "mrr_at_20": 0.1, "device": "cpu"},
        {"recall_at_20": 0.4, "mrr_at_20": 0.1, "device": "cpu"},
        {"recall_at_20": 0.6, "mrr_at_20": 0.1, "device": "cpu"},
    ]
    agg = aggregate(per_seed)
    assert agg["recall_at_20"] == pytest.approx(0.4) and agg["mrr_at_20"] == pytest.approx(0.1)
    assert agg["std"]["recall_at_20"] == pytest.approx(0.2)  # sqrt(((-.2)^2 + 0 + .2^2) / (3 - 1))
    assert agg["std"]["mrr_at_20"] == pytest.approx(0.0) and agg["n_seeds"] == 3
    assert "device" not in agg
    one = aggregate(per_seed[:1])
    assert one["recall_at_20"] == pytest.approx(0.2) and one["std"]["recall_at_20"] is None


def test_seeds_of_each_model():
    assert seeds_for("gru4rec", 42, 3) == [42, 43, 44]
    assert seeds_for("BPR-MF", 1, 2) == [1, 2] and seeds_for("random", 1, 2) == [1, 2]
    assert seeds_for("itemknn", 7, 5) == [7]  # deterministic: one run says all


def _final(tmp_path, dataset, name, model, per_seed):
    """A final run's metrics.json as final_run writes it, from per-seed metrics."""
    d = tmp_path / dataset / "final" / name
    d.mkdir(parents=True)
    base = dict(train_seconds=1.0, events_per_s=10.0, device="cpu", n_predictions=50)
    per_seed = [dict(base, **m) for m in per_seed]
    m = dict(aggregate(per_seed), model=model, per_seed=per_seed, device="cpu", tie_mode="conservative")
    (d / "metrics.json").write_text(json.dumps(m))
    return d / "metrics.json"


def _runs(tmp_path):
    return [
        _final(tmp_path, "ds", "pop", "pop", [{"recall_at_20": 0.1, "mrr_at_20": 0.05}]),
        _final(tmp_path, "ds", "itemknn", "itemknn", [{"recall_at_20": 0.4, "mrr_at_20": 0.2, "ndcg_at_20": 0.25}]),
        _final(
            tmp_path,
            "ds",
            "cross-entropy-shared",
            "gru4rec",
            [{"recall_at_20": 0.5, "mrr_at_20": 0.3}, {"recall_at_20": 0.7, "mrr_at_20": 0.3}],
        ),
    ]


def test_comparison_in_the_iclr_layout(tmp_path):
    summary = reporting.collect(_runs(tmp_path))
    assert list(summary.name) == ["POP", "Item-KNN", "GRU4Rec (cross-entropy, shared)"]  # the paper's order
    comp = reporting.comparison(summary, 20, published={"itemknn": {"recall_at_20": 0.5065, "mrr_at_20": 0.2048}})
    gru = comp.iloc[2]
    assert gru["Recall@20"] == pytest.approx(0.6) and gru["Recall@20 std"] == pytest.approx(0.1414214)
    assert gru["Recall@20 vs Item-KNN (%)"] == pytest.approx(50.0) and gru["MRR@20 vs Item-KNN (%)"] == pytest.approx(
        50.0
    )
    assert comp.iloc[0]["Recall@20 vs Item-KNN (%)"] == pytest.approx(-75.0)
    assert comp.iloc[1]["Recall@20 published"] == 0.5065 and pd.isna(comp.iloc[0]["Recall@20 published"])
    md = reporting.to_markdown(comp, "T")
    assert "| GRU4Rec (cross-entropy, shared) | 0.6000 ± 0.1414 |" in md and "| 50.0 |" in md
    without_knn = reporting.comparison(summary[summary.model != "itemknn"], 20)
    assert without_knn["Recall@20 vs Item-KNN (%)"].isna().all()


def test_every_metric_table_follows_the_keys_present(tmp_path):
    summary = reporting.collect(_runs(tmp_path))
    table = reporting.every_metric(summary)
    assert [c for c in table.columns if not c.endswith(" std")] == ["Model", "seeds", "Recall@20", "MRR@20", "NDCG@20"]
    assert table["NDCG@20"].iloc[1] == pytest.approx(0.25) and pd.isna(table["NDCG@20"].iloc[0])


def test_dataset_tables_in_three_formats(tmp_path):
    paths = _runs(tmp_path / "runs")
    published = {"params": {}, "results": {}, "baselines": {}}
    n = reporting.write_tables(paths, {"ds": {"source": "synthetic"}}, published, tmp_path / "tables")
    assert n == 3
    files = reporting.table_files(tmp_path / "tables", "ds")
    tex = files["comparison"]["tex"].read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"0.6000 $\pm$ 0.1414" in tex
    assert r"vs Item-KNN (\%)" in tex and "conservative" in tex
    csv = pd.read_csv(files["comparison"]["csv"])
    assert csv["Recall@20 std"].iloc[2] == pytest.approx(0.1414214)
    md = files["all_metrics"]["md"].read_text()
    assert "tie mode `conservative`" in md and "Mean ± standard deviation over 2 seeds" in md


def test_paper_comparison_is_one_row_per_dataset(tmp_path):
    paths = [_metrics(tmp_path, "rr", "bpr-max-shared", 0.5, 1.0)]
    published = {
        "params": {"retailrocket": {"loss": "bpr-max"}, "coveo": {"loss": "bpr-max"}},
        "results": {
            p: {f"{k}_at_{n}": 0.25 for n in reporting.CUTOFFS for k in ("recall", "mrr")}
            for p in ("retailrocket", "coveo")
        },
    }
    long = reporting.paper_comparison(reporting.collect(paths), {"rr": {"paper": "retailrocket"}}, published)
    wide = reporting.paper_comparison_wide(long)
    assert list(wide.Dataset) == ["retailrocket", "coveo"]
    assert wide.loc[0, "Recall@20 ours"] == pytest.approx(0.5) and wide.loc[0, "Recall@20 Δ%"] == pytest.approx(100.0)
    assert pd.isna(wide.loc[1, "Recall@20 ours"]) and wide.loc[1, "Recall@20 published"] == 0.25
