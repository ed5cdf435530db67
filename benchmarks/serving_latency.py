"""Latency of streaming recommendations (SessionRecommender) on the CPU.

A model with --items items and --units GRU units (default: 100,000 and 100, shared embedding)
has random weights (the latency depends on the sizes, not on what was learnt; --train trains it
for one epoch on random sessions instead, which takes minutes on 2 cores). Then it measures, with --live sessions
already in the state store:
  - one event of one session: SessionRecommender.update (one GRU step, all items scored, top-k);
  - batches of --batch events of distinct sessions: SessionRecommender.update_many;
  - the part of an event no streaming can avoid: scoring all items and taking the top-k (one
    pass over the output embeddings, --items x --units floats: memory bound);
  - for comparison, recommend() replaying a whole session of --replay-length events per call.
It prints p50/p99 in milliseconds, the machine's load and the thread count (the figures move
with other processes on a shared machine).

    python benchmarks/serving_latency.py
    python benchmarks/serving_latency.py --items 20000 --events 500 --threads 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gru4rec import GRU4Rec, recommend  # noqa: E402
from gru4rec.model import GRU4RecNetwork  # noqa: E402
from gru4rec.streaming import SessionRecommender  # noqa: E402
from gru4rec.topk import top_k  # noqa: E402


def random_sessions(n_items, rng, mean_length=5):
    """Sessions of 2 to 2*mean_length-2 random items in which every item occurs at least once."""
    items = np.concatenate([rng.permutation(n_items), rng.integers(0, n_items, n_items)])
    lengths = rng.integers(2, 2 * mean_length - 1, size=len(items) // 2)
    lengths = lengths[np.cumsum(lengths) <= len(items)]
    items = items[: lengths.sum()]
    sessions = np.repeat(np.arange(len(lengths)), lengths)
    return pd.DataFrame({"SessionId": sessions, "ItemId": items, "Time": np.arange(len(items))})


def build_model(n_items, units, train, seed):
    """A GRU4Rec of the given size: trained for one epoch on random sessions (slow on a small
    machine), or with the network's initial random weights and integer item ids."""
    model = GRU4Rec(
        layers=[units],
        n_epochs=1,
        batch_size=64,
        n_sample=2048,
        loss="cross-entropy",
        constrained_embedding=True,
        device="cpu",
        seed=seed,
    )
    t0 = time.perf_counter()
    if train:
        data = random_sessions(n_items, np.random.default_rng(seed))
        model.fit(data, verbose=False)
        return model, f"trained 1 epoch on {len(data)} random events ({time.perf_counter() - t0:.1f} s)"
    g = torch.Generator().manual_seed(seed)
    model.net = GRU4RecNetwork(n_items, [units], 0, True, torch.device("cpu"), g)
    model.item_ids, model.trained = np.arange(n_items), True
    return model, "random weights, NOT trained (latency depends on the sizes only)"


def percentiles(seconds) -> str:
    ms = np.asarray(seconds) * 1e3
    return f"p50 {np.percentile(ms, 50):7.3f} ms   p99 {np.percentile(ms, 99):7.3f} ms   (n={len(ms)})"


def timed(fn, n, warmup):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--units", type=int, default=100)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--live", type=int, default=10_000, help="sessions in the state store while measuring")
    ap.add_argument("--events", type=int, default=2000, help="single events measured")
    ap.add_argument("--batch", type=int, default=1000, help="sessions per batch")
    ap.add_argument("--batches", type=int, default=50, help="batches measured")
    ap.add_argument("--replay-length", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", action="store_true", help="train the model (one epoch) instead of random weights")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    load_before = os.getloadavg()
    model, how = build_model(args.items, args.units, args.train, args.seed)
    print(
        f"model: {model.n_items} items, {args.units} units, {how}; k={args.k}; "
        f"torch threads: {torch.get_num_threads()}, CPUs: {os.cpu_count()}",
        flush=True,
    )

    rec = SessionRecommender(model, k=args.k, max_sessions=max(args.live, args.batch) * 2)
    ids = model.item_ids
    rec.feed(np.arange(args.live), ids[rng.integers(0, len(ids), args.live)])  # live sessions with one event each
    sid = iter(rng.integers(0, args.live, args.events * 2).tolist())
    item = iter(ids[rng.integers(0, len(ids), args.events * 2)].tolist())
    one = timed(lambda: rec.update(next(sid), next(item)), args.events, warmup=min(100, args.events))
    print(f"one event, one session:        {percentiles(one)}", flush=True)

    def batch():
        s = rng.choice(args.live, args.batch, replace=False)
        return rec.update_many(s, ids[rng.integers(0, len(ids), args.batch)])

    many = timed(batch, args.batches, warmup=2)
    per_event = np.median(many) / args.batch * 1e6
    print(
        f"batch of {args.batch} sessions:      {percentiles(many)}   ({per_event:.0f} us per event at p50)", flush=True
    )

    h = torch.randn(1, args.units)
    floor = timed(lambda: top_k(model.net.score_all(h), args.k), args.events, warmup=min(100, args.events))
    print(f"of which scoring + top-k:      {percentiles(floor)}", flush=True)

    session = ids[rng.integers(0, len(ids), args.replay_length)].tolist()
    replay = timed(lambda: recommend(model, [session], k=args.k), max(args.events // 10, 20), warmup=5)
    print(f"recommend() replaying {args.replay_length} events: {percentiles(replay)}", flush=True)
    load_after = os.getloadavg()
    print(
        f"summary: one event p99 {np.percentile(one, 99) * 1e3:.2f} ms (target < 5 ms: "
        f"{'met' if np.percentile(one, 99) < 0.005 else 'NOT met'}), batch of {args.batch} p99 "
        f"{np.percentile(many, 99) * 1e3:.1f} ms; 1-min load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after, on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
