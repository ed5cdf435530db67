"""Result tables of the workflow: every final run (GRU4Rec and the baselines), per dataset the ICLR 2016
comparison and every metric, and our GRU4Rec figures beside the published ones.

Each table is one DataFrame written three ways (Markdown, CSV, LaTeX booktabs) by `write`. Metrics
are read generically from the keys of metrics.json (`<metric>_at_<N>`: whatever the evaluator
measured); with several seeds a cell is `mean ± std` (sample standard deviation) and the CSV has
the mean and a `<column> std` column.

The per-dataset comparison marks, per model, whether its Recall@20 and MRR@20 differ significantly
from the best baseline's (†) and, for GRU4Rec, from the best GRU4Rec's (‡): a paired bootstrap
over the test events (experiments.significance) on the models' ranks.parquet, Holm-Bonferroni
corrected over the table's tests; the CSV has the difference, its 95% CI and the p-values.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from gru4rec.baselines import BASELINES

from . import significance as sig
from .outputs import latex_table, markdown_table, write_text_atomic

CUTOFFS = (1, 5, 10, 20)
METRIC_KEY = re.compile(r"^(?P<name>[a-z]+)_at_(?P<n>\d+)$")
METRIC_LABEL = re.compile(r"^[A-Za-z]+@\d+$")  # a metric column: 'Recall@20', not 'Recall@20 std'
METRIC_NAMES = {"recall": "Recall", "mrr": "MRR", "ndcg": "NDCG", "coverage": "Coverage", "popularity": "Popularity"}
# The ICLR 2016 table's rows first, in its order; the other baselines after them, GRU4Rec last.
BASELINE_ORDER = ("pop", "spop", "itemknn", "bprmf", "random", "sknn", "vsknn")
REFERENCE = "itemknn"  # the ICLR 2016 paper gives GRU4Rec's change over Item-KNN, its best baseline
INTEGER_COLUMNS = ("seeds", "test_predictions", "events_per_s")
SIGNIFICANCE_CUTOFF = 20
# the references of the significance tests: (name in the columns, marker in the tables)
REFERENCES = {"best baseline": "†", "best GRU4Rec": "‡"}


def metric_label(key: str) -> str | None:
    """'recall_at_20' -> 'Recall@20'; None for a key that is not a metric at a cut-off."""
    m = METRIC_KEY.match(key)
    if not m:
        return None
    return f"{METRIC_NAMES.get(m['name'], m['name'].capitalize())}@{m['n']}"


def model_label(model: str, loss: str = "", embedding: str = "") -> str:
    """How a row names its model: the baseline's name (Item-KNN), or GRU4Rec with its loss and embedding."""
    if model == "gru4rec":
        return f"GRU4Rec ({loss}, {embedding})"
    return BASELINES[model].NAME


def _order(model: str, loss: str, embedding: str) -> tuple:
    rank = BASELINE_ORDER.index(model) if model in BASELINE_ORDER else len(BASELINE_ORDER)
    return (rank, loss, embedding)


def collect(metrics_paths) -> pd.DataFrame:
    """One row per final run, from results/{dataset}/final/{loss}-{embedding or baseline}/metrics.json:
    dataset, model, loss, embedding, seeds, every metric (mean over the seeds) and its std, time, speed."""
    rows = []
    for path in metrics_paths:
        p = Path(path)
        m = json.loads(p.read_text())
        model = m.get("model", "gru4rec")
        loss, embedding = p.parent.name.rsplit("-", 1) if model == "gru4rec" else ("", "")
        row = {"dataset": p.parent.parent.parent.name, "model": model, "loss": loss, "embedding": embedding}
        row["name"] = model_label(model, loss, embedding)
        row["seeds"] = m.get("n_seeds", 1)
        std = m.get("std") or {}
        for key, value in m.items():
            label = metric_label(key)
            if label:
                row[label] = value
                row[f"{label} std"] = std.get(key)
        row.update(
            train_seconds=round(m["train_seconds"], 2),
            events_per_s=round(m["events_per_s"]),
            device=m.get("device", ""),
            test_predictions=m.get("n_predictions"),
            tie_mode=m.get("tie_mode", ""),
            ranks=str(p.parent / sig.RANKS_FILE),
        )
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    for c in INTEGER_COLUMNS:
        df[c] = df[c].astype("Int64")  # counts stay integers beside a run that lacks them
    df["_order"] = [_order(*r) for r in zip(df.model, df.loss, df.embedding)]
    return df.sort_values(["dataset", "_order"]).drop(columns="_order").reset_index(drop=True)


def metric_columns(df: pd.DataFrame, cutoffs=None) -> list[str]:
    """The metric columns present (not their std), grouped by metric in a fixed order, then by cut-off;
    only those at `cutoffs` when given."""
    cols = [c for c in df.columns if METRIC_LABEL.match(c)]
    if cutoffs is not None:
        cols = [c for c in cols if int(c.split("@")[1]) in set(cutoffs)]
    names = list(METRIC_NAMES.values())

    def key(c):
        name, n = c.split("@")
        return (names.index(name) if name in names else len(names), name, int(n))

    return sorted(cols, key=key)


def summary_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Every run: Recall@N and MRR@N at the papers' cut-offs (mean), seeds, time and speed; the
    significance markers of Recall@20 and MRR@20 where `summary` has them (`<c> sig`)."""
    cols = [c for c in metric_columns(summary, CUTOFFS) if c.split("@")[0] in ("Recall", "MRR")]
    keep = ["dataset", "model", "loss", "embedding", "seeds"]
    for c in cols:
        keep += [c, f"{c} sig"]
    keep += ["train_seconds", "events_per_s", "device", "test_predictions"]
    return summary[[c for c in keep if c in summary.columns]]


def with_std(df: pd.DataFrame, summary: pd.DataFrame, columns) -> pd.DataFrame:
    """`df` with, after each metric column, its std column (from `summary`, row-aligned)."""
    out = df.copy()
    for c in columns:
        if f"{c} std" in summary.columns:
            out.insert(out.columns.get_loc(c) + 1, f"{c} std", summary[f"{c} std"].to_numpy())
    return out


def comparison(
    runs: pd.DataFrame, cutoff: int = 20, published: dict | None = None, tests: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The ICLR 2016 layout for one dataset's runs: rows are models, columns Recall@N and MRR@N (mean
    and std) and the change of each over Item-KNN in %; with `published` ({model key: {recall_at_N,
    mrr_at_N}}) also the published figures of the models the paper had; with `tests` (significance,
    row-aligned with `runs`) each metric's marker column and, at the end, the tests' columns."""
    cols = [f"Recall@{cutoff}", f"MRR@{cutoff}"]
    runs = runs.reset_index(drop=True)
    out = with_std(pd.DataFrame({"Model": runs["name"], **{c: runs.get(c) for c in cols}}), runs, cols)
    if tests is not None:
        tests = tests.reset_index(drop=True)
        for c in cols:
            after = f"{c} std" if f"{c} std" in out.columns else c
            out.insert(out.columns.get_loc(after) + 1, f"{c} sig", tests[f"{c} sig"])
    ref = runs[runs.model == REFERENCE]
    for c in cols:
        base = float(ref[c].iloc[0]) if len(ref) and c in runs else math.nan
        out[f"{c} vs Item-KNN (%)"] = [100 * (v - base) / base if base else math.nan for v in runs.get(c)]
    if published:
        for c in cols:
            key = _metric_key(c)
            out[f"{c} published"] = [published.get(m, {}).get(key) for m in runs.model]
    if tests is not None:
        out = pd.concat([out, tests[[t for t in tests.columns if t not in out.columns]]], axis=1)
    return out


def _test_columns(metric: str, reference: str) -> list[str]:
    head = f"{metric} vs {reference}"
    return [f"{head} Δ", f"{head} CI low", f"{head} CI high", f"{head} p", f"{head} p Holm"]


def significance(runs: pd.DataFrame, cutoff: int = SIGNIFICANCE_CUTOFF, n_resamples: int = sig.N_RESAMPLES):
    """Paired tests of one dataset's runs (experiments.significance), row-aligned with `runs`.

    Each model against the best baseline (the baseline with the highest mean of the metric) and each
    GRU4Rec run against the best GRU4Rec, in Recall@N and MRR@N: the difference (model - reference),
    its 95% CI, the p-value and the Holm-Bonferroni adjusted p-value over every test of the
    dataset, and per metric a marker column `<metric> sig` († / ‡: significant at ALPHA against
    the best baseline / the best GRU4Rec). Returns (table, info): info has 'references'
    ({(metric, reference): model name}), 'missing' (the runs without ranks.parquet: not tested),
    'n_tests' and 'n_events' (the fewest paired events of a test)."""
    runs = runs.reset_index(drop=True)
    metrics = {f"Recall@{cutoff}": "hit", f"MRR@{cutoff}": "rr"}
    out = pd.DataFrame(index=runs.index)
    for m in metrics:
        for ref in REFERENCES:
            for c in _test_columns(m, ref):
                out[c] = math.nan
    scores, missing, references, n_events = {}, [], {}, []
    if runs.empty:
        runs = pd.DataFrame(columns=["dataset", "model", "name", "ranks", *metrics])
    for i, path in runs.get("ranks", pd.Series([None] * len(runs))).items():
        ranks = sig.read_ranks(path) if path else None
        if ranks is None:
            missing.append(runs.loc[i, "name"])
        else:
            scores[i] = sig.event_scores(ranks, cutoff)
    is_gru = runs.model == "gru4rec"
    dataset = runs["dataset"].iloc[0] if len(runs) else ""
    for m, column in metrics.items():
        if m not in runs:
            continue
        # the best of the runs that can be tested (a run without ranks.parquet is named in the note)
        tested = runs.index.isin(list(scores))
        groups = {"best baseline": runs[~is_gru & tested], "best GRU4Rec": runs[is_gru & tested]}
        for ref, group in groups.items():
            if group.empty or group[m].isna().all():
                continue
            best = group[m].astype(float).idxmax()
            references[(m, ref)] = runs.loc[best, "name"]
            compared = runs.index if ref == "best baseline" else group.index
            for i in compared:
                if i == best or i not in scores or best not in scores:
                    continue
                a, b = sig.paired(scores[i], scores[best], column)
                rng = sig.stream(dataset, runs.loc[i, "name"], runs.loc[best, "name"], m)
                t = sig.paired_bootstrap(a, b, n_resamples, rng)
                out.loc[i, _test_columns(m, ref)[:4]] = [t.difference, t.low, t.high, t.p]
                n_events.append(t.n)
    p_cols = [c for c in out.columns if c.endswith(" p")]
    adjusted = sig.holm(out[p_cols].to_numpy().ravel()).reshape(len(out), len(p_cols))
    out[[f"{c} Holm" for c in p_cols]] = adjusted
    for m in metrics:
        marks = pd.Series("", index=out.index)
        for ref, marker in REFERENCES.items():
            marks += np.where(out[f"{m} vs {ref} p Holm"] < sig.ALPHA, marker, "")
        out.insert(0, f"{m} sig", marks)
    out = out[[f"{m} sig" for m in metrics] + [c for c in out.columns if not c.endswith(" sig")]]
    info = dict(
        references=references, missing=missing, n_tests=int((~np.isnan(adjusted)).sum()), n_events=min(n_events or [0])
    )
    return out, info


def significance_note(info: dict, n_resamples: int = sig.N_RESAMPLES) -> str:
    """What the markers mean, the test, its resamples and seed, the correction, and what was not tested."""
    refs = []
    for ref in REFERENCES:
        named = {m: name for (m, r), name in info["references"].items() if r == ref}
        if len(set(named.values())) == 1:
            refs.append(f"{ref}: {next(iter(named.values()))}")
        elif named:
            refs.append(f"{ref}: " + ", ".join(f"{name} ({m})" for m, name in named.items()))
    refs = "; ".join(refs)
    note = (
        f" Significance (Recall@{SIGNIFICANCE_CUTOFF}, MRR@{SIGNIFICANCE_CUTOFF}): † differs from the best baseline, "
        f"‡ (GRU4Rec) from the best GRU4Rec ({refs or 'none'}), by a paired bootstrap over the same test events "
        f"(per-event hits and reciprocal ranks from ranks.parquet, the mean over the seeds; {n_resamples:,} "
        f"resamples, seed {sig.SEED} with the names compared; two-sided), Holm-Bonferroni corrected over the "
        f"{info['n_tests']} tests of the table, p < {sig.ALPHA}; the CSV has each difference, its 95% "
        "percentile CI (not corrected) and the raw and corrected p-values. The trained models are held fixed: "
        "a marker says these models differ on these test events, not that the method would across training "
        "seeds (that spread is the ±)"
    )
    if info["missing"]:
        note += (
            "; significance not computed for "
            + ", ".join(info["missing"])
            + " (no ranks.parquet: a run from before per-event ranks were written; rerun its final training)"
        )
    return note + "."


def _metric_key(label: str) -> str:
    name, n = label.split("@")
    inverse = {v: k for k, v in METRIC_NAMES.items()}
    return f"{inverse.get(name, name.lower())}_at_{n}"


def every_metric(runs: pd.DataFrame) -> pd.DataFrame:
    """One dataset's runs with every metric the evaluator measured, at the configured cut-offs."""
    runs = runs.reset_index(drop=True)
    cols = metric_columns(runs, CUTOFFS)
    df = pd.DataFrame({"Model": runs["name"], "seeds": runs["seeds"], **{c: runs[c] for c in cols}})
    return with_std(df, runs, cols)


def paper_comparison(summary: pd.DataFrame, datasets: dict, published: dict) -> pd.DataFrame:
    """Long form: each published dataset's figures beside ours, one row per metric: the run of the
    config dataset whose `paper` names it, with the published loss and the shared embedding."""
    rows = []
    for paper_name, pub in published["results"].items():
        loss = published["params"][paper_name]["loss"]
        ours_ds = [d for d, cfg in datasets.items() if cfg.get("paper") == paper_name]
        match = summary[
            (summary.dataset.isin(ours_ds))
            & (summary.get("model", "gru4rec") == "gru4rec")
            & (summary.loss == loss)
            & (summary.embedding == "shared")
        ]
        for n in CUTOFFS:
            for kind in ("Recall", "MRR"):
                p = pub[f"{kind.lower()}_at_{n}"]
                o = float(match[f"{kind}@{n}"].iloc[0]) if len(match) else None
                rows.append(
                    {
                        "dataset": paper_name,
                        "config_dataset": ours_ds[0] if ours_ds else "",
                        "loss": loss,
                        "metric": f"{kind}@{n}",
                        "published": p,
                        "ours": None if o is None else round(o, 4),
                        "difference": None if o is None else round(o - p, 4),
                        "relative_%": None if o is None else round(100 * (o - p) / p, 1),
                    }
                )
    return pd.DataFrame(rows)


def paper_comparison_wide(long: pd.DataFrame, metrics=("Recall@20", "MRR@20")) -> pd.DataFrame:
    """The seed README's layout: one row per dataset; for each of `metrics` the published figure,
    ours and the difference in % (the long table, and its CSV, has every cut-off)."""
    rows = []
    if long.empty:
        return pd.DataFrame(columns=["Dataset"])
    for dataset, g in long.groupby("dataset", sort=False):
        row = {"Dataset": dataset}
        for r in g.to_dict("records"):
            if r["metric"] not in metrics:
                continue
            row[f"{r['metric']} published"] = r["published"]
            row[f"{r['metric']} ours"] = r["ours"]
            row[f"{r['metric']} Δ%"] = r["relative_%"]
        rows.append(row)
    return pd.DataFrame(rows)


def _decimals(column: str) -> int:
    """Metrics get 4 decimals; times 2; percentages 1; other floats 4."""
    if column.endswith("seconds"):
        return 2
    if column.endswith("%") or column.endswith("(%)"):
        return 1
    return 4


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _cell(value, column) -> str:
    if _missing(value):
        return "—"
    if isinstance(value, float):
        if column in INTEGER_COLUMNS and value.is_integer():
            return str(int(value))
        return f"{value:.{_decimals(column)}f}"
    return str(value)


def display(df: pd.DataFrame) -> pd.DataFrame:
    """For Markdown and LaTeX: each `<c> std` column folded into `<c>` as 'mean ± std' (std shown
    when there is one: several seeds) and each marker column `<c> sig` after it, every cell as text."""
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        if c.endswith(" std") or (c.endswith(" sig") and c[: -len(" sig")] in df.columns):
            continue
        cells = [_cell(v, c) for v in df[c]]
        if f"{c} std" in df.columns:
            cells = [t if _missing(s) else f"{t} ± {s:.4f}" for t, s in zip(cells, df[f"{c} std"])]
        if f"{c} sig" in df.columns:
            cells = [f"{t} {m}" if isinstance(m, str) and m else t for t, m in zip(cells, df[f"{c} sig"])]
        out[c] = cells
    return out


def to_markdown(df: pd.DataFrame, title: str, note: str = "") -> str:
    return "\n".join([f"# {title}", ""] + ([note, ""] if note else [])) + "\n" + markdown_table(display(df))


def write(df: pd.DataFrame, md_path, csv_path, title, note="", tex_path=None, label="", csv_only=()):
    """One table as Markdown (title and note above it), CSV (numbers only) and, given `tex_path`,
    LaTeX booktabs (the title and note as its caption); the columns `csv_only` only in the CSV."""
    narrow = df.drop(columns=[c for c in csv_only if c in df.columns])
    write_text_atomic(md_path, to_markdown(narrow, title, note))
    write_text_atomic(csv_path, df.to_csv(index=False))
    if tex_path:
        caption = f"{title}. {note}".strip()
        write_text_atomic(tex_path, latex_table(display(narrow), caption=caption, label=label))


TIE_NOTES = {
    "conservative": "a target tied with other items is ranked below all of them, so no model gains from "
    "ties (baselines that score only some items tie massively)",
    "standard": "a target tied with other items is ranked above all of them (optimistic: models that tie gain)",
    "median": "a target tied with other items is ranked in the middle of them",
    "tiebreaking": "ties are broken at random",
}


def _notes(tie_mode: str, runs: pd.DataFrame) -> str:
    seeds = int(runs["seeds"].max()) if len(runs) else 1
    spread = (
        f" Mean ± standard deviation over {seeds} seeds (GRU4Rec and the seeded baselines, RANDOM and BPR-MF; "
        "the deterministic baselines run once)."
        if seeds > 1
        else " One seed."
    )
    return f"Test set; tie mode `{tie_mode}`: {TIE_NOTES.get(tie_mode, tie_mode)}.{spread}"


def table_files(tables_dir, dataset: str) -> dict:
    """{table: {md, csv, tex}} of a dataset's tables under results/tables/{dataset}/."""
    d = Path(tables_dir) / dataset
    return {t: {ext: d / f"{t}.{ext}" for ext in ("md", "csv", "tex")} for t in ("comparison", "all_metrics")}


def write_dataset_tables(
    runs: pd.DataFrame, dataset: str, tables_dir, tie_mode: str, published_baselines=None, tests=None
):
    """The ICLR 2016 comparison and the every-metric table of one dataset (Markdown, CSV, LaTeX);
    `tests`: significance(runs) (computed here when not given)."""
    tests, info = tests if tests is not None else significance(runs)
    files, note = table_files(tables_dir, dataset), _notes(tie_mode, runs)
    comp_note = (
        note + " Change over Item-KNN in %" + ("" if (runs.model == REFERENCE).any() else " (no Item-KNN run: —)")
    )
    if published_baselines:
        comp_note += f"; published: {published_baselines.get('source', 'config/published.yaml')}"
    comp_note += "." + significance_note(info)
    published = {k: v for k, v in (published_baselines or {}).items() if k != "source"}
    comp, every = files["comparison"], files["all_metrics"]
    title = f"{dataset}: Recall@20 and MRR@20 (ICLR 2016 layout)"
    table = comparison(runs, 20, published, tests)
    csv_only = [c for c in tests.columns if not c.endswith(" sig")]
    write(table, comp["md"], comp["csv"], title, comp_note, comp["tex"], f"tab:{dataset}", csv_only)
    title = f"{dataset}: every metric"
    write(every_metric(runs), every["md"], every["csv"], title, note, every["tex"], f"tab:{dataset}-metrics")


def write_tables(metrics_paths, datasets: dict, published: dict, tables_dir, tie_mode: str = "conservative") -> int:
    """results/tables: summary.{md,csv} of every final run, per dataset comparison.* and all_metrics.*,
    and paper_comparison.{md,csv} (GRU4Rec beside the published figures); returns the number of runs."""
    tables_dir = Path(tables_dir)
    summary = collect(metrics_paths)
    tests = {}
    for dataset in datasets:
        runs = summary[summary.dataset == dataset] if len(summary) else summary
        table, info = significance(runs)
        tests[dataset] = (table.set_axis(runs.index), info)
    if tests and len(summary):
        marks = pd.concat([t[[c for c in t.columns if c.endswith(" sig")]] for t, _ in tests.values()])
        summary = summary.join(marks)
    cols = metric_columns(summary_table(summary))
    not_tested = sorted({f"{d}: {name}" for d, (_, info) in tests.items() for name in info["missing"]})
    write(
        with_std(summary_table(summary), summary, cols),
        tables_dir / "summary.md",
        tables_dir / "summary.csv",
        "Results of every final run",
        "Test set, every dataset x model (GRU4Rec: loss x embedding mode); training time and speed of "
        "the final runs (mean over the seeds). "
        + _notes(tie_mode, summary)
        + f" † / ‡ at Recall@{SIGNIFICANCE_CUTOFF} and MRR@{SIGNIFICANCE_CUTOFF}: significantly different from the "
        "dataset's best baseline / best GRU4Rec (paired bootstrap, Holm-Bonferroni: tables/{dataset}/comparison.*)"
        + (f"; not tested: {', '.join(not_tested)} (no ranks.parquet)" if not_tested else "")
        + ".",
    )
    for dataset, cfg in datasets.items():
        runs = summary[summary.dataset == dataset] if len(summary) else summary
        baselines = published.get("baselines", {}).get(cfg.get("paper"))
        write_dataset_tables(runs, dataset, tables_dir, tie_mode, baselines, tests[dataset])
    long = paper_comparison(summary, datasets, published)
    write_text_atomic(tables_dir / "paper_comparison.csv", long.to_csv(index=False))
    write_text_atomic(
        tables_dir / "paper_comparison.md",
        to_markdown(
            paper_comparison_wide(long),
            "Our results beside the published ones",
            "Published: the original GRU4Rec README (A30 GPU, full datasets); ours: the run with the published "
            "loss and the shared embedding. Δ%: (ours - published) / published. '—': the dataset is not in "
            "this config (config/paper.yaml runs them). Differences of a few percent are expected (the README "
            "says so). The CSV has every cut-off (1, 5, 10, 20), one row per metric.",
        ),
    )
    return len(summary)
