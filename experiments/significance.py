"""Paired significance tests of two models on the same test events, from their per-event ranks
(ranks.parquet of a final run: gru4rec.evaluate(ranks=True)).

Per test event a model scores a hit (target rank <= N) and a reciprocal rank (1/rank, 0 beyond N):
their means are Recall@N and MRR@N. With several seeds an event's score is the mean over the
seeds, so the mean over the events is the table's mean over the seeds. Two models are compared on
the events both predicted (joined on session and position) by a paired bootstrap: resample the
events with replacement B times, each time the mean of the per-event differences; the 95%
confidence interval is the percentile interval of those means, and the two-sided p-value is
(1 + #{|mean* - observed| >= |observed|}) / (B + 1): the bootstrap distribution shifted to the null
of no difference. Identical models differ by 0 on every event: p = 1, CI [0, 0].

Memory and time do not grow with events x resamples: the differences take few distinct values
(hits: 2S + 1 for S seeds; reciprocal ranks: a few hundred for one seed), and resampling n events
is drawing how many times each distinct value comes up (a multinomial over the K values, O(K) per
resample, in chunks of at most CHUNK_ELEMENTS numbers); where the values are nearly all distinct,
the events themselves are drawn, a chunk of resamples at a time. Every test has its own random
stream from SEED and the names of what it compares, so the same inputs give the same results in any
order and on any machine.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gru4rec.errors import DataError, first_line

N_RESAMPLES = 10_000
SEED = 20160502  # ICLR 2016
ALPHA = 0.05
CONFIDENCE = 0.95
CHUNK_ELEMENTS = 1 << 22  # random numbers drawn at once: bounds the memory of a test
KEYS = ["SessionId", "Position"]  # an event of the test set
RANKS_FILE = "ranks.parquet"  # beside a final run's metrics.json (experiments.runs writes it)


@dataclass(frozen=True)
class PairedTest:
    difference: float  # mean of a - b over the paired events
    low: float  # confidence interval of the difference
    high: float
    p: float  # two-sided, not corrected for multiple comparisons
    n: int  # paired events


def stream(*names) -> np.random.Generator:
    """A random generator seeded by SEED and the names (stable across runs, machines and orders)."""
    return np.random.default_rng([SEED, zlib.crc32("\x1f".join(map(str, names)).encode())])


def paired_bootstrap(
    a,
    b,
    n_resamples: int = N_RESAMPLES,
    rng: np.random.Generator | None = None,
    confidence: float = CONFIDENCE,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> PairedTest:
    """Paired bootstrap of mean(a - b) over events (a[i], b[i] are the two models' scores of event i)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or len(a) == 0:
        raise ValueError(f"paired_bootstrap: needs two equally long, non-empty 1-d arrays, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired_bootstrap: the per-event scores must be finite numbers")
    if n_resamples < 1 or not 0 < confidence < 1:
        raise ValueError(f"paired_bootstrap: n_resamples >= 1 and 0 < confidence < 1, got {n_resamples}, {confidence}")
    rng = rng if rng is not None else stream()
    d = a - b
    n, observed = len(d), float(d.mean())
    values, counts = np.unique(d, return_counts=True)
    means = np.empty(n_resamples)
    if len(values) * 16 <= n:  # a resample: how often each distinct difference is drawn (faster below n/13)
        step = max(1, chunk_elements // len(values))
        for start in range(0, n_resamples, step):
            k = min(step, n_resamples - start)
            means[start : start + k] = rng.multinomial(n, counts / n, size=k) @ values / n
    else:  # nearly all distinct: draw the events
        step = max(1, chunk_elements // n)
        for start in range(0, n_resamples, step):
            k = min(step, n_resamples - start)
            means[start : start + k] = d[rng.integers(0, n, size=(k, n), dtype=np.int32)].mean(axis=1)
    # as extreme as observed, rounding aside (sums in another order differ in the last bits)
    extreme = np.abs(means - observed) >= abs(observed) * (1 - 1e-9) - 1e-12
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return PairedTest(observed, float(low), float(high), float((1 + extreme.sum()) / (n_resamples + 1)), n)


def holm(p) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and is not counted as a test)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = len(tested)
    if m == 0:
        return out
    order = tested[np.argsort(p[tested], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


def event_scores(ranks: pd.DataFrame, cutoff: int) -> pd.DataFrame:
    """Per test event (index: SessionId, Position), 'hit' and 'rr' at `cutoff`, each the mean over
    the seeds in `ranks` (a ranks.parquet table)."""
    rank = ranks["Rank"].to_numpy(dtype=np.float64)
    hit = rank <= cutoff
    scores = pd.DataFrame(
        {
            **{k: ranks[k].to_numpy() for k in KEYS},
            "hit": hit.astype(np.float64),
            "rr": np.where(hit, 1.0 / np.where(hit, rank, 1.0), 0.0),
        }
    )
    return scores.groupby(KEYS, sort=True)[["hit", "rr"]].mean()


def read_ranks(path) -> pd.DataFrame | None:
    """A final run's ranks.parquet (the columns the tests need), or None where there is none."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return pd.read_parquet(path, columns=[*KEYS, "Rank"])
    except Exception as e:  # a truncated file, another table: one line naming the file
        raise DataError(f"{path}: not a ranks file of a final run ({first_line(e)})") from None


def paired(a: pd.DataFrame, b: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """The two models' `column` on the events both predicted, aligned."""
    both = a[[column]].rename(columns={column: "a"}).join(b[[column]].rename(columns={column: "b"}), how="inner")
    return both["a"].to_numpy(), both["b"].to_numpy()
