"""Fit time and scoring speed of every baseline on a generated event log (default: about 1M events).

The log comes from preprocessing.synthetic (sequential structure, Zipf popularity); the sessions
that start on the last day are the test set, of which the first `--test-events` events (whole
sessions) are scored. Scoring drives each baseline's session scorer exactly as the evaluator does
(session-parallel slots, keep -> reset -> step, full-catalogue ranking of the next item, conservative
ties) and prints Recall@20 / MRR@20 next to the speed, so that a fast but wrong baseline shows.

    python benchmarks/baselines_speed.py                          # ~1M events, 20,000 items
    python benchmarks/baselines_speed.py --sessions 20000 --only itemknn vsknn
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gru4rec.baselines import BASELINES, make_baseline  # noqa: E402
from gru4rec.batching import build_schedule  # noqa: E402
from gru4rec.evaluation import ranks_of_targets  # noqa: E402
from preprocessing.synthetic import generate_events  # noqa: E402


def split(df, test_events):
    """Train: sessions starting before the last day; test: the first whole sessions of the last day, up
    to test_events events."""
    start = df.groupby("SessionId").Time.transform("min")
    boundary = df.Time.max() - 86400
    train, test = df[start < boundary], df[start >= boundary]
    lengths = test.groupby("SessionId", sort=True).size()
    keep = lengths.index[np.cumsum(lengths.to_numpy()) <= test_events]
    return train, test[test.SessionId.isin(keep)]


def score(model, test, width, cutoff=20):
    """(seconds, predictions, recall, mrr): the evaluator's session-parallel loop over the test events."""
    cols = model.item_index(test.ItemId.to_numpy())
    test = test.assign(ItemId=cols)[cols >= 0].sort_values(["SessionId", "Time"], kind="stable")
    s = test.SessionId.to_numpy()
    offsets = np.concatenate([[0], np.flatnonzero(s[1:] != s[:-1]) + 1, [len(s)]])
    items = torch.from_numpy(test.ItemId.to_numpy().copy())
    sched = build_schedule(offsets, np.arange(len(offsets) - 1), width)
    t0 = time.perf_counter()
    scorer = model.session_scorer(width, "cpu")
    hits = rr = n = 0.0
    for t in range(sched.n_steps):
        w = int(sched.width[t])
        if t in sched.shrink:
            scorer.keep(torch.from_numpy(sched.shrink[t]))
        scorer.reset(torch.from_numpy(sched.starts[t, :w]))
        ev = torch.from_numpy(sched.inputs[t, :w])
        ranks = ranks_of_targets(scorer.step(items[ev]), items[ev + 1], "conservative")
        inside = ranks <= cutoff
        hits += float(inside.sum())
        rr += float((inside / ranks).sum())
        n += w
    return time.perf_counter() - t0, int(n), hits / n, rr / n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=200_000, help="generated sessions (default 200,000: ~1M events)")
    ap.add_argument("--items", type=int, default=20_000, help="catalogue size (default 20,000)")
    ap.add_argument("--test-events", type=int, default=10_000, help="test events scored (default 10,000)")
    ap.add_argument("--width", type=int, default=512, help="session-parallel slots, as the evaluator's batch (512)")
    ap.add_argument("--only", nargs="+", default=list(BASELINES), choices=list(BASELINES), metavar="NAME")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    df = generate_events(n_sessions=args.sessions, n_items=args.items, days=30, seed=args.seed)
    train, test = split(df, args.test_events)
    print(
        f"Generated {len(df)} events in {time.perf_counter() - t0:.1f}s: train {len(train)} events, "
        f"{train.SessionId.nunique()} sessions, {train.ItemId.nunique()} items; test {len(test)} events, "
        f"{test.SessionId.nunique()} sessions"
    )
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s) visible, "
        f"torch threads {torch.get_num_threads()}, width {args.width}"
    )
    print(f"{'baseline':<10} {'fit s':>8} {'score s':>8} {'pred/s':>8} {'Recall@20':>10} {'MRR@20':>8}")
    seconds = {}
    for name in args.only:
        model = make_baseline(name, seed=args.seed)
        t = time.perf_counter()
        model.fit(train, verbose=False)
        fit_s = time.perf_counter() - t
        secs, n, recall, mrr = score(model, test, args.width)
        seconds[name] = (fit_s, secs)
        print(f"{model.NAME:<10} {fit_s:>8.2f} {secs:>8.2f} {n / secs:>8.0f} {recall:>10.4f} {mrr:>8.4f}", flush=True)
    print(f"Scoring: {len(test)} test events, {n} predictions (ranked among {model.n_items} items, conservative ties)")
    if "itemknn" in seconds:
        print(f"Item-KNN fit: {seconds['itemknn'][0]:.1f}s = {seconds['itemknn'][0] / 60:.2f} of the 60 s target")
    if "vsknn" in seconds:
        print(
            f"V-SkNN scoring of {len(test)} test events: {seconds['vsknn'][1]:.1f}s = "
            f"{seconds['vsknn'][1] / 60:.2f} of the 60 s target"
        )
    print(f"Done in {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
