"""Result tables of the workflow: every run, and our figures beside the published ones."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .fileio import write_text_atomic

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
        row.update(train_seconds=round(m["train_seconds"], 2), events_per_s=round(m["events_per_s"]),
                   device=m.get("device", ""), test_predictions=m.get("n_predictions"))
        rows.append(row)
    cols = ["dataset", "loss", "embedding"] + [f"{k}@{n}" for n in CUTOFFS for k in ("Recall", "MRR")] + \
           ["train_seconds", "events_per_s", "device", "test_predictions"]
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
                rows.append({"dataset": paper_name, "config_dataset": ours_ds[0] if ours_ds else "",
                             "loss": loss, "metric": f"{kind}@{n}", "published": p,
                             "ours": None if o is None else round(o, 4),
                             "difference": None if o is None else round(o - p, 4),
                             "relative_%": None if o is None else round(100 * (o - p) / p, 1)})
    return pd.DataFrame(rows)


def _decimals(column: str) -> int:
    """Metrics get 4 decimals; times 2; percentages 1; other floats 4."""
    if column.endswith("seconds"):
        return 2
    if column.endswith("%"):
        return 1
    return 4


def to_markdown(df: pd.DataFrame, title: str, note: str = "") -> str:
    def fmt(v, column):
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return "—"
        if isinstance(v, float):
            return f"{v:.{_decimals(column)}f}"
        return str(v)
    lines = [f"# {title}", ""] + ([note, ""] if note else [])
    lines += ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v, c) for v, c in zip(row, df.columns)) + " |"
              for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write(df: pd.DataFrame, md_path, csv_path, title, note=""):
    for path, text in ((md_path, to_markdown(df, title, note)), (csv_path, df.to_csv(index=False))):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
