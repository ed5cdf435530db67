"""Fixtures shared by the whole suite."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"  # real samples, with their source in tests/data/README.md


def markov_sessions(n_sessions=3000, n_items=200, seed=0, p_follow=0.85, min_len=2, max_len=10, t0=1_600_000_000):
    """Sessions with real sequential structure: each item has two likely successors.

    A model that learns the transitions reaches a Recall@20 near p_follow; ranking by
    popularity cannot, because the popularity of the successors is spread over all items.
    """
    rng = np.random.default_rng(seed)
    successors = rng.integers(0, n_items, size=(n_items, 2))
    lengths = rng.integers(min_len, max_len + 1, size=n_sessions)
    sessions, items, times = [], [], []
    for s, length in enumerate(lengths):
        item = int(rng.integers(0, n_items))
        for k in range(length):
            sessions.append(s)
            items.append(item)
            times.append(t0 + 600 * s + 10 * k)
            item = (
                int(successors[item, rng.integers(0, 2)]) if rng.random() < p_follow else int(rng.integers(0, n_items))
            )
    return pd.DataFrame({"SessionId": sessions, "ItemId": items, "Time": times})


@pytest.fixture(scope="session")
def markov_data():
    df = markov_sessions()
    cut = df.SessionId.max() * 0.85
    return df[df.SessionId <= cut].reset_index(drop=True), df[df.SessionId > cut].reset_index(drop=True)


@pytest.fixture(scope="session")
def data_dir():
    """tests/data: a missing sample is an error of the checkout, never a reason to skip."""
    if not DATA.is_dir():
        raise FileNotFoundError(f"{DATA}: the tests' data folder is missing (see tests/data/README.md)")
    return DATA
