"""The embedded demo dataset: seeded session data with real sequential structure.

Items have a Zipf popularity (the first item of a session and random jumps follow it). Each item
has `n_successors` likely next items, drawn with the popularity flattened by `successor_skew`
(0: uniform, 1: as popular as the items themselves), so a session mostly walks along
item-to-item transitions (probability `p_follow`) and sometimes jumps. A sequence model can learn
the transitions; ranking by popularity cannot (default size: GRU4Rec Recall@20 about 0.86 against
0.29 for most-popular on the test split, measured with 3 epochs), which makes the data a
meaningful check that the pipeline learns. Session lengths are 1 + geometric (mean
`mean_length`, capped at 60); sessions start uniformly over `days` days; events within a session
are 5 s to 5 min apart. Times are in seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def generate_events(
    n_sessions: int = 8000,
    n_items: int = 1000,
    days: int = 30,
    seed: int = 42,
    n_successors: int = 3,
    p_follow: float = 0.8,
    zipf: float = 1.1,
    mean_length: float = 5.0,
    successor_skew: float = 0.5,
    t0: int = 1_600_000_000,
) -> pd.DataFrame:
    """Events (SessionId, ItemId, Time in seconds), sorted by session and time."""
    if not (
        n_sessions >= 1
        and n_items >= 2
        and days >= 1
        and 1 <= n_successors <= n_items
        and 0 <= p_follow <= 1
        and mean_length > 1
        and zipf >= 0
        and successor_skew >= 0
    ):
        raise ValueError(
            "expected n_sessions >= 1, n_items >= 2, days >= 1, 1 <= n_successors <= n_items, "
            "0 <= p_follow <= 1, mean_length > 1, zipf >= 0, successor_skew >= 0"
        )
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** zipf
    popularity /= popularity.sum()
    succ_pop = popularity**successor_skew
    successors = rng.choice(n_items, size=(n_items, n_successors), p=succ_pop / succ_pop.sum())
    succ_p = rng.dirichlet(np.ones(n_successors), size=n_items).cumsum(axis=1)
    lengths = np.minimum(1 + rng.geometric(1.0 / (mean_length - 1), size=n_sessions), 60)
    total = int(lengths.sum())
    session = np.repeat(np.arange(1, n_sessions + 1), lengths)
    # walk all sessions in parallel, one position at a time
    items = np.empty(total, dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    current = rng.choice(n_items, size=n_sessions, p=popularity)
    items[starts] = current
    for k in range(1, int(lengths.max())):
        alive = np.flatnonzero(lengths > k)
        cur = current[alive]
        follow = rng.random(len(alive)) < p_follow
        which = (rng.random(len(alive))[:, None] > succ_p[cur]).sum(axis=1)
        nxt = np.where(
            follow,
            successors[cur, np.minimum(which, n_successors - 1)],
            rng.choice(n_items, size=len(alive), p=popularity),
        )
        current[alive] = nxt
        items[starts[alive] + k] = nxt
    start_time = t0 + np.sort(rng.integers(0, days * 86400, size=n_sessions))
    gaps = rng.integers(5, 300, size=total)
    gaps[starts] = 0
    offset = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[starts], lengths)
    times = np.repeat(start_time, lengths) + offset
    return pd.DataFrame({"SessionId": session, "ItemId": items + 1, "Time": times.astype(np.int64)})
