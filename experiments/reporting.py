"""Result tables of the workflow: every final run (GRU4Rec and the baselines), per dataset the ICLR 2016
comparison and every metric, and our GRU4Rec figures beside the published ones.

Each table is one DataFrame written three ways (Markdown, CSV, LaTeX booktabs) by `write`. Metrics
are read generically from the keys of metrics.json (`<metric>_at_<N>`: whatever the evaluator
measured); with several seeds a cell is `mean ± std` (sample standard deviation) and the CSV has
the mean and a `<column> std` column.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd

from gru4rec.baselines import BASELINES

from .outputs import latex_table, markdown_table, write_text_atomic

CUTOFFS = (1, 5, 10, 20)
METRIC_KEY = re.compile(r"^(?P<name>[a-z]+)_at_(?P<n>\d+)$")
METRIC_NAMES = {"recall": "Recall", "mrr": "MRR", "ndcg": "NDCG", "coverage": "Coverage", "popularity": "Popularity"}
# The ICLR 2016 table's rows first, in its order; the other baselines after them, GRU4Rec last.
BASELINE_ORDER = ("pop", "spop", "itemknn", "bprmf", "random", "sknn", "vsknn")
REFERENCE = "itemknn"  # the ICLR 2016 paper gives GRU4Rec's change over Item-KNN, its best baseline


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
        )
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["_order"] = [_order(*r) for r in zip(df.model, df.loss, df.embedding)]
    return df.sort_values(["dataset", "_order"]).drop(columns="_order").reset_index(drop=True)


def metric_columns(df: pd.DataFrame, cutoffs=None) -> list[str]:
    """The metric columns present (not their std), grouped by metric in a fixed order, then by cut-off;
    only those at `cutoffs` when given."""
    cols = [c for c in df.columns if "@" in c and not c.endswith(" std")]
    if cutoffs is not None:
        cols = [c for c in cols if int(c.split("@")[1]) in set(cutoffs)]
    names = list(METRIC_NAMES.values())

    def key(c):
        name, n = c.split("@")
        return (names.index(name) if name in names else len(names), name, int(n))

    return sorted(cols, key=key)


def summary_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Every run: Recall@N and MRR@N at the papers' cut-offs (mean), seeds, time and speed."""
    cols = [c for c in metric_columns(summary, CUTOFFS) if c.split("@")[0] in ("Recall", "MRR")]
    keep = ["dataset", "model", "loss", "embedding", "seeds", *cols]
    keep += ["train_seconds", "events_per_s", "device", "test_predictions"]
    return summary[[c for c in keep if c in summary.columns]]


def with_std(df: pd.DataFrame, summary: pd.DataFrame, columns) -> pd.DataFrame:
    """`df` with, after each metric column, its std column (from `summary`, row-aligned)."""
    out = df.copy()
    for c in columns:
        if f"{c} std" in summary.columns:
            out.insert(out.columns.get_loc(c) + 1, f"{c} std", summary[f"{c} std"].to_numpy())
    return out


def comparison(runs: pd.DataFrame, cutoff: int = 20, published: dict | None = None) -> pd.DataFrame:
    """The ICLR 2016 layout for one dataset's runs: rows are models, columns Recall@N and MRR@N (mean
    and std) and the change of each over Item-KNN in %; with `published` ({model key: {recall_at_N,
    mrr_at_N}}) also the published figures of the models the paper had."""
    cols = [f"Recall@{cutoff}", f"MRR@{cutoff}"]
    runs = runs.reset_index(drop=True)
    out = with_std(pd.DataFrame({"Model": runs["name"], **{c: runs.get(c) for c in cols}}), runs, cols)
    ref = runs[runs.model == REFERENCE]
    for c in cols:
        base = float(ref[c].iloc[0]) if len(ref) and c in runs else math.nan
        out[f"{c} vs Item-KNN (%)"] = [100 * (v - base) / base if base else math.nan for v in runs.get(c)]
    if published:
        for c in cols:
            key = _metric_key(c)
            out[f"{c} published"] = [published.get(m, {}).get(key) for m in runs.model]
    return out


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


def paper_comparison_wide(long: pd.DataFrame) -> pd.DataFrame:
    """The seed README's layout: one row per dataset; for every metric the published figure, ours
    and the difference in %."""
    rows = []
    if long.empty:
        return pd.DataFrame(columns=["Dataset"])
    for dataset, g in long.groupby("dataset", sort=False):
        row = {"Dataset": dataset}
        for r in g.to_dict("records"):
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
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell(value, column) -> str:
    if _missing(value):
        return "—"
    if isinstance(value, float):
        return f"{value:.{_decimals(column)}f}"
    return str(value)


def display(df: pd.DataFrame) -> pd.DataFrame:
    """For Markdown and LaTeX: each `<c> std` column folded into `<c>` as 'mean ± std' (std shown
    when there is one: several seeds), every cell as text."""
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        if c.endswith(" std"):
            continue
        cells = [_cell(v, c) for v in df[c]]
        if f"{c} std" in df.columns:
            cells = [t if _missing(s) else f"{t} ± {s:.4f}" for t, s in zip(cells, df[f"{c} std"])]
        out[c] = cells
    return out


def to_markdown(df: pd.DataFrame, title: str, note: str = "") -> str:
    return "\n".join([f"# {title}", ""] + ([note, ""] if note else [])) + "\n" + markdown_table(display(df))


def write(df: pd.DataFrame, md_path, csv_path, title, note="", tex_path=None, label=""):
    """One table as Markdown (title and note above it), CSV (numbers only) and, given `tex_path`,
    LaTeX booktabs (the title and note as its caption)."""
    write_text_atomic(md_path, to_markdown(df, title, note))
    write_text_atomic(csv_path, df.to_csv(index=False))
    if tex_path:
        caption = f"{title}. {note}".strip()
        write_text_atomic(tex_path, latex_table(display(df), caption=caption, label=label))


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


def write_dataset_tables(runs: pd.DataFrame, dataset: str, tables_dir, tie_mode: str, published_baselines=None):
    """The ICLR 2016 comparison and the every-metric table of one dataset (Markdown, CSV, LaTeX)."""
    files, note = table_files(tables_dir, dataset), _notes(tie_mode, runs)
    comp_note = (
        note + " Change over Item-KNN in %" + ("" if (runs.model == REFERENCE).any() else " (no Item-KNN run: —)")
    )
    if published_baselines:
        comp_note += f"; published: {published_baselines.get('source', 'config/published.yaml')}"
    published = {k: v for k, v in (published_baselines or {}).items() if k != "source"}
    comp, every = files["comparison"], files["all_metrics"]
    title = f"{dataset}: Recall@20 and MRR@20 (ICLR 2016 layout)"
    write(
        comparison(runs, 20, published), comp["md"], comp["csv"], title, comp_note + ".", comp["tex"], f"tab:{dataset}"
    )
    title = f"{dataset}: every metric"
    write(every_metric(runs), every["md"], every["csv"], title, note, every["tex"], f"tab:{dataset}-metrics")


def write_tables(metrics_paths, datasets: dict, published: dict, tables_dir, tie_mode: str = "conservative") -> int:
    """results/tables: summary.{md,csv} of every final run, per dataset comparison.* and all_metrics.*,
    and paper_comparison.{md,csv} (GRU4Rec beside the published figures); returns the number of runs."""
    tables_dir = Path(tables_dir)
    summary = collect(metrics_paths)
    cols = metric_columns(summary_table(summary))
    write(
        with_std(summary_table(summary), summary, cols),
        tables_dir / "summary.md",
        tables_dir / "summary.csv",
        "Results of every final run",
        "Test set, every dataset x model (GRU4Rec: loss x embedding mode); training time and speed of "
        "the final runs (mean over the seeds). " + _notes(tie_mode, summary),
    )
    for dataset, cfg in datasets.items():
        runs = summary[summary.dataset == dataset]
        write_dataset_tables(runs, dataset, tables_dir, tie_mode, published.get("baselines", {}).get(cfg.get("paper")))
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
            "says so). The CSV has the same figures one row per metric.",
        ),
    )
    return len(summary)
