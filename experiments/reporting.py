"""Result tables of the workflow: every run, and our figures beside the published ones."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from gru4rec.fileio import markdown_table, write_text_atomic

CUTOFFS = (1, 5, 10, 20)


def collect(metrics_paths) -> pd.DataFrame:
    """One row per final run, from results/{dataset}/final/{loss}-{embedding}/metrics.json."""
    rows = []
    for path in metrics_paths:
        p = Path(path)
        m = json.loads(p.read_text())
        loss, embedding = p.parent.name.rsplit("-", 1)
        row = {"dataset": p.parent.parent.parent.name, "loss": loss, "embedding": embedding}
        for n in CUTOFFS:
            row[f"Recall@{n}"] = m.get(f"recall_at_{n}")
            row[f"MRR@{n}"] = m.get(f"mrr_at_{n}")
        row.update(
            train_seconds=round(m["train_seconds"], 2),
            events_per_s=round(m["events_per_s"]),
            device=m.get("device", ""),
            test_predictions=m.get("n_predictions"),
        )
        rows.append(row)
    cols = (
        ["dataset", "loss", "embedding"]
        + [f"{k}@{n}" for n in CUTOFFS for k in ("Recall", "MRR")]
        + ["train_seconds", "events_per_s", "device", "test_predictions"]
    )
    return pd.DataFrame(rows, columns=cols).sort_values(["dataset", "loss", "embedding"]).reset_index(drop=True)


def paper_comparison(summary: pd.DataFrame, datasets: dict, published: dict) -> pd.DataFrame:
    """Each published dataset's figures beside ours: the run of the config dataset whose `paper`
    names it, with the published loss and the shared embedding (the published configuration)."""
    rows = []
    for paper_name, pub in published["results"].items():
        loss = published["params"][paper_name]["loss"]
        ours_ds = [d for d, cfg in datasets.items() if cfg.get("paper") == paper_name]
        match = summary[(summary.dataset.isin(ours_ds)) & (summary.loss == loss) & (summary.embedding == "shared")]
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


def _decimals(column: str) -> int:
    """Metrics get 4 decimals; times 2; percentages 1; other floats 4."""
    if column.endswith("seconds"):
        return 2
    if column.endswith("%"):
        return 1
    return 4


def _cell(value, column) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{_decimals(column)}f}"
    return str(value)


def to_markdown(df: pd.DataFrame, title: str, note: str = "") -> str:
    return "\n".join([f"# {title}", ""] + ([note, ""] if note else [])) + "\n" + markdown_table(df, _cell)


def write(df: pd.DataFrame, md_path, csv_path, title, note=""):
    write_text_atomic(md_path, to_markdown(df, title, note))
    write_text_atomic(csv_path, df.to_csv(index=False))


def write_tables(metrics_paths, datasets: dict, published: dict, summary_md, summary_csv, paper_md, paper_csv) -> int:
    """results/tables: the summary of every final run, and the comparison with the published
    figures (markdown and CSV each); returns the number of runs."""
    summary = collect(metrics_paths)
    write(
        summary,
        summary_md,
        summary_csv,
        "GRU4Rec results",
        "Test set, every dataset x loss x embedding mode; training time and speed of the final run.",
    )
    write(
        paper_comparison(summary, datasets, published),
        paper_md,
        paper_csv,
        "Our results beside the published ones",
        "Published: the original GRU4Rec README (A30 GPU, full datasets). '—': the dataset is not in this "
        "config (config/paper.yaml runs them). Differences of a few percent are expected (the README says so).",
    )
    return len(summary)
