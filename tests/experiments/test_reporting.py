"""Result tables: one row per final run, published figures beside ours, per-column formatting."""

import json

import numpy as np
import pandas as pd
import pytest

from experiments import reporting, significance
from experiments.config import seeds_for
from experiments.runs import aggregate, write_ranks


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


# -- significance --------------------------------------------------------------------------------
def _scores(rank):
    rank = np.asarray(rank, dtype=float)
    hit = rank <= 20
    return hit.astype(float), np.where(hit, 1 / np.where(hit, rank, 1), 0.0)


def _ranks(rng, n, shift=0):
    """Ranks of n events: geometric (a fair model), `shift` places worse; beyond 20 censored (inf)."""
    rank = rng.geometric(0.15, size=n).astype(float) + shift
    return np.where(rank <= 20, rank, np.inf)


def test_identical_models_are_not_significantly_different():
    hit, rr = _scores(_ranks(np.random.default_rng(0), 5000))
    for x in (hit, rr):
        t = significance.paired_bootstrap(x, x.copy(), 2000)
        assert t.p == 1.0 and t.low == t.high == t.difference == 0.0 and t.n == 5000


def test_a_clearly_worse_model_is_significantly_different():
    rng = np.random.default_rng(1)
    good = _ranks(rng, 5000)
    worse = np.where(rng.random(5000) < 0.5, good + 4, good)  # half the events 4 places lower
    for a, b in zip(_scores(good), _scores(np.where(worse <= 20, worse, np.inf))):
        t = significance.paired_bootstrap(a, b, 2000, significance.stream("x"))
        assert t.difference == pytest.approx(a.mean() - b.mean()) and t.difference > 0
        assert 0 < t.low < t.difference < t.high and t.p == pytest.approx(1 / 2001)
        # the bootstrap's spread is the standard error of the mean difference
        se = (a - b).std() / np.sqrt(len(a))
        assert (t.high - t.low) / (2 * 1.96) == pytest.approx(se, rel=0.1)


def test_bootstrap_of_nearly_distinct_values_in_small_chunks_is_seeded():
    # continuous differences take the path that draws events; 3 resamples per chunk
    rng = np.random.default_rng(2)
    a, b = rng.normal(0.1, 1, 4000), rng.normal(0, 1, 4000)
    run = lambda: significance.paired_bootstrap(a, b, 999, significance.stream("c"), chunk_elements=3 * 4000)  # noqa: E731
    t = run()
    assert t == run() and t.low < a.mean() - b.mean() < t.high
    assert (t.high - t.low) / (2 * 1.96) == pytest.approx((a - b).std() / np.sqrt(4000), rel=0.1)
    with pytest.raises(ValueError, match="equally long"):
        significance.paired_bootstrap(a, b[:10])


def test_holm_bonferroni():
    got = significance.holm([0.01, 0.04, 0.03, np.nan])
    np.testing.assert_allclose(got[:3], [0.03, 0.06, 0.06])
    assert np.isnan(got[3]) and significance.holm([0.6, 0.7]).tolist() == [1.0, 1.0]


def _run_with_ranks(tmp_path, name, model, ranks_per_seed, seeds=None, sessions=None):
    """A final run's metrics.json and ranks.parquet, the metrics computed from the ranks."""
    seeds = seeds or list(range(1, len(ranks_per_seed) + 1))
    per_seed, frames = [], []
    for seed, rank in zip(seeds, ranks_per_seed):
        hit, rr = _scores(rank)
        per_seed.append({"recall_at_20": hit.mean(), "mrr_at_20": rr.mean(), "n_predictions": len(rank)})
        frames.append(
            pd.DataFrame(
                {"SessionId": sessions, "Position": 1, "ItemId": 7, "Rank": rank, "Seed": seed}
                if sessions is not None
                else {"SessionId": np.arange(len(rank)), "Position": 1, "ItemId": 7, "Rank": rank, "Seed": seed}
            )
        )
    path = _final(tmp_path, "ds", name, model, per_seed)
    write_ranks(path.parent / "ranks.parquet", frames)
    return path


def _significance_runs(tmp_path):
    rng = np.random.default_rng(5)
    n = 3000
    knn = _ranks(rng, n)
    worse = lambda r, k: np.where(r + k <= 20, r + k, np.inf)  # noqa: E731
    better = np.where(np.isinf(knn) & (rng.random(n) < 0.5), 10, np.maximum(knn - 3, 1))  # more hits, higher
    return [
        _run_with_ranks(tmp_path, "pop", "pop", [worse(knn, 8)]),
        _run_with_ranks(tmp_path, "itemknn", "itemknn", [knn]),
        # the same ranks as Item-KNN in both seeds: no difference to the best baseline
        _run_with_ranks(tmp_path, "cross-entropy-shared", "gru4rec", [knn, knn.copy()]),
        _run_with_ranks(tmp_path, "bpr-max-shared", "gru4rec", [better, np.maximum(knn - 2, 1)]),
    ]


def test_comparison_marks_the_significant_differences(tmp_path):
    paths = _significance_runs(tmp_path / "runs")
    published = {"params": {}, "results": {}, "baselines": {}}
    reporting.write_tables(paths, {"ds": {"source": "synthetic"}}, published, tmp_path / "tables")
    files = reporting.table_files(tmp_path / "tables", "ds")["comparison"]
    csv = pd.read_csv(files["csv"], keep_default_na=False, na_values=[""]).set_index("Model")
    same, better = csv.loc["GRU4Rec (cross-entropy, shared)"], csv.loc["GRU4Rec (bpr-max, shared)"]
    for m in ("Recall@20", "MRR@20"):
        col = f"{m} vs best baseline"
        assert same[f"{col} p"] == 1.0 and same[f"{col} CI low"] <= 0 <= same[f"{col} CI high"]
        assert pd.isna(same[f"{m} sig"]) or "†" not in same[f"{m} sig"]
        assert better[f"{col} p Holm"] < 0.05 and better[f"{col} CI low"] > 0 and "†" in better[f"{m} sig"]
        assert better[f"{col} Δ"] == pytest.approx(better[m] - csv.loc["Item-KNN", m])  # the table's difference
        assert csv.loc["POP", f"{col} p Holm"] < 0.05 and csv.loc["POP", f"{col} CI high"] < 0
        assert pd.isna(csv.loc["Item-KNN", f"{col} p"])  # the reference itself
        assert "‡" in same[f"{m} sig"] and pd.isna(better[f"{m} vs best GRU4Rec p"])  # vs the best GRU4Rec
        # Holm: the corrected p-values are at least the raw ones
        assert (csv[f"{col} p Holm"].dropna() >= csv[f"{col} p"].dropna()).all()
    md = files["md"].read_text()
    assert "| GRU4Rec (bpr-max, shared) |" in md and " ± " in md and "p Holm" not in md and "CI low" not in md
    assert "paired bootstrap" in md and "Holm-Bonferroni" in md and f"{significance.N_RESAMPLES:,} resamples" in md
    assert f"seed {significance.SEED}" in md and "best baseline: Item-KNN;" in md
    tex = files["tex"].read_text()
    assert r"$^{\dagger}$" in tex and "p Holm" not in tex
    first = files["csv"].read_text()
    reporting.write_tables(paths, {"ds": {"source": "synthetic"}}, published, tmp_path / "tables")
    assert files["csv"].read_text() == first  # seeded: the same inputs, the same table
    summary = (tmp_path / "tables" / "summary.md").read_text()
    assert "| 0." in summary and " †" in summary and "| 3000 |" in summary


def test_runs_without_ranks_are_not_tested(tmp_path):
    paths = _significance_runs(tmp_path / "runs")
    (paths[0].parent / "ranks.parquet").unlink()  # POP: a run from before the ranks were written
    published = {"params": {}, "results": {}, "baselines": {}}
    reporting.write_tables(paths, {"ds": {"source": "synthetic"}}, published, tmp_path / "tables")
    files = reporting.table_files(tmp_path / "tables", "ds")["comparison"]
    csv = pd.read_csv(files["csv"]).set_index("Model")
    assert csv.loc["POP", ["Recall@20 vs best baseline p", "MRR@20 vs best baseline CI low"]].isna().all()
    assert csv.loc["GRU4Rec (bpr-max, shared)", "Recall@20 vs best baseline p Holm"] < 0.05
    assert "significance not computed for POP (no ranks.parquet" in files["md"].read_text()
    assert "not tested: ds: POP" in (tmp_path / "tables" / "summary.md").read_text()


def test_paired_on_the_events_both_models_predicted(tmp_path):
    # Item-KNN predicted 4 events more (another item set): the test pairs the 100 shared ones
    rank = _ranks(np.random.default_rng(6), 104)
    paths = [
        _run_with_ranks(tmp_path, "itemknn", "itemknn", [rank], sessions=np.arange(104)),
        _run_with_ranks(tmp_path, "bpr-max-shared", "gru4rec", [rank[:100]], sessions=np.arange(100)),
    ]
    table, info = reporting.significance(reporting.collect(paths))
    assert info["n_events"] == 100 and table.loc[1, "MRR@20 vs best baseline p"] == 1.0
    (paths[0].parent / "ranks.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match="ranks.parquet: not a ranks file of a final run"):
        reporting.significance(reporting.collect(paths))


def test_integers_print_as_integers_and_the_paper_table_is_narrow(tmp_path):
    paths = [_metrics(tmp_path, "rr", "bpr-max-shared", 0.5, 1.0), _metrics(tmp_path, "rr", "pop", 0.1, 1.0)]
    m = json.loads(paths[1].read_text())
    del m["n_predictions"]  # a run that lacks a count: the column stays integer
    paths[1].write_text(json.dumps(dict(m, model="pop")))
    published = {
        "params": {"retailrocket": {"loss": "bpr-max"}},
        "results": {"retailrocket": {f"{k}_at_{n}": 0.25 for n in reporting.CUTOFFS for k in ("recall", "mrr")}},
        "baselines": {},
    }
    reporting.write_tables(paths, {"rr": {"paper": "retailrocket"}}, published, tmp_path / "tables")
    summary = (tmp_path / "tables" / "summary.md").read_text()
    assert "| 100 |" in summary and "100.0" not in summary and "| 12346 |" in summary
    assert pd.read_csv(tmp_path / "tables" / "summary.csv")["test_predictions"].dropna().tolist() == [100]
    assert "100.0" not in (tmp_path / "tables" / "summary.csv").read_text()
    paper = (tmp_path / "tables" / "paper_comparison.md").read_text()
    header = next(line for line in paper.splitlines() if line.startswith("| Dataset"))
    assert header.count("|") == 8 and "Recall@20 ours" in header and "Recall@5" not in header
    assert "Recall@5" in set(pd.read_csv(tmp_path / "tables" / "paper_comparison.csv").metric)
