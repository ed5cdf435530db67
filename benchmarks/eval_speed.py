"""Full-catalogue evaluation speed: events/s, the time its score products alone need, peak memory.

A GRU4Rec model is trained briefly (speed does not depend on its quality) on a generated log in which
every item occurs, then evaluated on the log's last sessions (default: 200,000 test events, 37,000
items, 100 units, 2 threads). In the same run, and each in a fresh process so that each peak
memory figure is its own:
  - ours: gru4rec.evaluate at cut-offs 1, 5, 10, 20 (every metric), and at 20 alone;
  - products: the (w x d) @ (d x n_items) score products of the same schedule, nothing else;
  - with --alternate R: the products and our evaluations (cut-off 20 with gru4rec.topk and with
    torch.topk, cut-offs 1, 5, 10, 20) alternated R times in one process, medians: like for like
    on a machine whose speed drifts, where the one-process-each figures above are single runs;
  - limits: the time the products need at the GFLOPS of a large matrix product, and one read of
    the score matrices at the copy bandwidth, both measured in the same run;
  - top-k: the top-21 (the evaluator's, cut-off 20) of a matrix of random scores of a full step's
    shape, by gru4rec.topk and by torch.topk, alternated, medians;
  - port (with --reference-repo, a checkout of hidasib/GRU4Rec_PyTorch_Official): its batch_eval on
    a model of the same shape (layers, items, batch of 512) and the same test set; its GRU cell
    differs from ours, so its weights are its own initialisation (the work per event is the same).

    python benchmarks/eval_speed.py --reference-repo /work/port
    python benchmarks/eval_speed.py --layers 224 --alternate 3
    python benchmarks/eval_speed.py --layers 224 --test-events 40000 --threads 1 --profile
    python benchmarks/eval_speed.py --test-events 20000 --items 5000     # a quick look
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TRAIN_PARAMS = "loss=cross-entropy,n_sample=0,batch_size=128,n_epochs=1,constrained_embedding=True"


def make_data(n_test_events: int, n_items: int, n_train_events: int, seed: int = 1):
    """(train, test): generated sessions split by session; train also gets every item once in pairs
    of two, so that the model's catalogue is every item and no test event is dropped."""
    from preprocessing.synthetic import generate_events

    df = generate_events(n_sessions=(n_test_events + n_train_events) // 5 + 10, n_items=n_items, seed=seed)
    ends = df.groupby("SessionId", sort=True).size().cumsum()
    cut = ends.index[np.searchsorted(ends.to_numpy(), ends.iloc[-1] - n_test_events)]
    train, test = df[df.SessionId <= cut], df[df.SessionId > cut]
    items = np.arange(1, n_items + 1)
    pairs = pd.DataFrame(
        {"SessionId": -1 - np.arange(n_items) // 2, "ItemId": items, "Time": train.Time.min() + np.arange(n_items) % 2}
    )
    return pd.concat([pairs, train], ignore_index=True), test.reset_index(drop=True)


def rss_mb() -> float:
    """Resident memory now (MB), from /proc (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def child_ours(model_path, test_path, threads, cutoffs, batch_size):
    from gru4rec import GRU4Rec, evaluate

    torch.set_num_threads(threads)
    model, test = GRU4Rec.load(model_path, device="cpu"), pd.read_parquet(test_path)
    before = rss_mb()
    res = evaluate(model, test, cutoffs=cutoffs, batch_size=batch_size)
    return dict(seconds=res.seconds, n=res.n_predictions, metrics=res.as_dict(), before=before, peak=peak_mb())


def products_runner(model, test, batch_size):
    """(run, predictions): run() does the evaluator's score products alone, h (w x d) @ W^T (d x n)
    plus the bias, over the schedule of `test`."""
    from gru4rec.batching import build_schedule, session_data, sort_sessions

    idx = model.item_index(test.ItemId.to_numpy())
    df = sort_sessions(test.assign(ItemId=idx)[idx >= 0], "SessionId", "Time")
    sd = session_data(df, df.ItemId.to_numpy(), "SessionId", "Time")
    widths = build_schedule(sd.offsets, np.arange(sd.n_sessions), batch_size).width.tolist()
    W = model.net.params["WyBy"]
    Wt, b = W[:, :-1].t().contiguous(), W[:, -1].contiguous()
    h = torch.randn(max(widths), Wt.shape[0])
    out = torch.empty(max(widths), Wt.shape[1])

    def run():
        for w in widths:
            torch.addmm(b, h[:w], Wt, out=out[:w])

    return run, sum(widths)


def child_products(model_path, test_path, threads, batch_size):
    from gru4rec import GRU4Rec

    torch.set_num_threads(threads)
    model, test = GRU4Rec.load(model_path, device="cpu"), pd.read_parquet(test_path)
    run, n = products_runner(model, test, batch_size)
    before = rss_mb()
    t0 = time.perf_counter()
    run()
    return dict(seconds=time.perf_counter() - t0, n=n, before=before, peak=peak_mb())


def child_profile(model_path, test_path, threads, batch_size, rows=16):
    """torch.profiler's table (operators by own time) of one evaluation at cut-off 20."""
    from torch.profiler import ProfilerActivity, profile

    from gru4rec import GRU4Rec, evaluate

    torch.set_num_threads(threads)
    model, test = GRU4Rec.load(model_path, device="cpu"), pd.read_parquet(test_path)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        evaluate(model, test, cutoffs=(20,), batch_size=batch_size)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def child_alternate(model_path, test_path, threads, batch_size, repeats):
    """Median seconds of the products alone and of evaluations (cut-off 20 with gru4rec.topk and
    with torch.topk; cut-offs 1, 5, 10, 20), alternated `repeats` times in this one process. An
    evaluation is timed as the whole evaluate() call (its input checks too, a few ms), where the
    one-process rows report evaluate()'s own seconds."""
    from gru4rec import GRU4Rec, evaluate, metrics

    torch.set_num_threads(threads)
    model, test = GRU4Rec.load(model_path, device="cpu"), pd.read_parquet(test_path)
    products, _ = products_runner(model, test, batch_size)
    ours = metrics.top_k

    def evaluation(cutoffs, top_k):
        def run():
            metrics.top_k = top_k
            try:
                evaluate(model, test, cutoffs=cutoffs, batch_size=batch_size)
            finally:
                metrics.top_k = ours

        return run

    ways = {
        "products alone": products,
        "cut-off 20": evaluation((20,), ours),
        "cut-off 20, torch.topk": evaluation((20,), lambda s, k: torch.topk(s, k, dim=1)),
        "cut-offs 1,5,10,20": evaluation((1, 5, 10, 20), ours),
    }
    return alternate(ways, repeats)


def child_port(repo, train_path, test_path, threads, layers, batch_size):
    torch.set_num_threads(threads)
    from benchmarks.port import import_port

    ref, ref_eval = import_port(repo)
    train, test = pd.read_parquet(train_path), pd.read_parquet(test_path)
    cpu = torch.device("cpu")
    model = ref.GRU4Rec(layers=layers, batch_size=128, n_epochs=0, constrained_embedding=True, device=cpu)
    model.fit(train, compatibility_mode=False)  # no epoch: builds the item map and an initialised model
    before = rss_mb()
    t0 = time.perf_counter()
    recall, mrr = ref_eval.batch_eval(model, test, cutoff=[20], batch_size=batch_size, mode="standard")
    seconds = time.perf_counter() - t0
    n = int(len(test) - test.SessionId.nunique())
    return dict(seconds=seconds, n=n, recall=float(recall[20]), before=before, peak=peak_mb())


def limits(n_predictions, n_items, units, width):
    """Seconds that this machine's limits (measured now, with the threads set) allow the evaluation
    of n_predictions over n_items: the score products at the GFLOPS of a large matrix product, and
    one pass over the score matrices (what any top-k must read) at the copy bandwidth of a buffer of
    one full step's scores. Returns (products s, one read of the scores s, GFLOPS, GB/s)."""
    from benchmarks.step_profile import copy_bandwidth, peak_gflops

    gflops, gbs = peak_gflops(), copy_bandwidth(2 * width * n_items * 4)
    products = 2 * n_predictions * (units + 1) * n_items / (gflops * 1e9)
    scores_read = n_predictions * n_items * 4 / (gbs * 1e9)
    return products, scores_read, gflops, gbs


def compare_top_k(n_items, width, threads, k=21, repeats=30):
    """Median seconds of gru4rec.topk.top_k and of torch.topk on one (width x n_items) matrix of
    random scores (a step's shape, not a step's scores)."""
    from gru4rec.topk import top_k

    torch.set_num_threads(threads)
    scores = torch.randn(width, n_items, generator=torch.Generator().manual_seed(0))
    ways = {"gru4rec.topk": lambda: top_k(scores, k), "torch.topk": lambda: torch.topk(scores, k, dim=1)}
    return alternate(ways, repeats)


def alternate(ways, repeats):
    """name -> median seconds of each function in `ways`, called in turn `repeats` times, so that
    all see the same drift of the machine's speed."""
    times = {name: [] for name in ways}
    for _ in range(repeats):
        for name, run in ways.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t)) for name, t in times.items()}


def in_child(fn, *args):
    """fn(*args) in a fresh process (its own peak memory), returning its result."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def report(name, r, products_s=None):
    line = (
        f"{name}: {r['n'] / r['seconds']:,.0f} events/s ({r['seconds']:.2f}s for {r['n']:,} predictions); "
        f"peak RSS {r['peak']:.0f} MB ({r['peak'] - r['before']:+.0f} MB over the process before it)"
    )
    if products_s:
        line += f"; {r['seconds'] / products_s:.2f}x the products' time"
    print(line, flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--test-events", type=int, default=200_000)
    ap.add_argument("--items", type=int, default=37_000)
    ap.add_argument("--train-events", type=int, default=60_000, help="generated training events (plus the pairs)")
    ap.add_argument("--layers", type=int, default=100, help="GRU units")
    ap.add_argument("--batch-size", type=int, default=512, help="evaluation batch size (slots)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reference-repo", type=Path, help="checkout of hidasib/GRU4Rec_PyTorch_Official")
    ap.add_argument(
        "--alternate", type=int, default=0, metavar="R",
        help="also alternate the products and our evaluations R times in one process and print medians",
    )  # fmt: skip
    ap.add_argument("--profile", action="store_true", help="also print torch.profiler's table of one evaluation")
    a = ap.parse_args(argv)
    from gru4rec import GRU4Rec
    from gru4rec.params import parse_param_string

    torch.set_num_threads(a.threads)
    train, test = make_data(a.test_events, a.items, a.train_events)
    tmp = Path(tempfile.mkdtemp(prefix="eval_speed_"))
    train.to_parquet(tmp / "train.parquet")
    test.to_parquet(tmp / "test.parquet")
    params = parse_param_string(TRAIN_PARAMS + f",layers={a.layers}")
    model = GRU4Rec(params, device="cpu", seed=1)
    model.fit(train, verbose=False)
    model.save(tmp / "model.safetensors")
    print(
        f"data: {len(train):,} training events, {train.ItemId.nunique():,} items; {len(test):,} test events in "
        f"{test.SessionId.nunique():,} sessions; {a.layers} units, batch {a.batch_size}, {a.threads} threads",
        flush=True,
    )
    model_path, test_path = str(tmp / "model.safetensors"), str(tmp / "test.parquet")
    products = in_child(child_products, model_path, test_path, a.threads, a.batch_size)
    report("score products alone", products)
    lim_products, lim_read, gflops, gbs = limits(products["n"], a.items, a.layers, a.batch_size)
    print(
        f"this machine's limits ({gflops:.0f} GFLOPS, {gbs:.1f} GB/s copy bandwidth at a step's score matrix): "
        f"the products {lim_products:.2f}s (measured: {products['seconds'] / lim_products:.2f}x that), "
        f"one read of the scores {lim_read:.2f}s; the evaluation at the limits {lim_products + lim_read:.2f}s",
        flush=True,
    )
    tk = compare_top_k(a.items, a.batch_size, a.threads)
    print(
        f"top-21 of a {a.batch_size} x {a.items:,} score matrix: gru4rec.topk {tk['gru4rec.topk'] * 1e3:.1f} ms, "
        f"torch.topk {tk['torch.topk'] * 1e3:.1f} ms ({tk['torch.topk'] / tk['gru4rec.topk']:.2f}x)",
        flush=True,
    )
    for cutoffs in [(1, 5, 10, 20), (20,)]:
        ours = in_child(child_ours, model_path, test_path, a.threads, cutoffs, a.batch_size)
        report(f"ours, cut-offs {','.join(map(str, cutoffs))}", ours, products["seconds"])
    m = ours["metrics"]
    print(f"ours: Recall@20 {m['recall_at_20']:.4f} MRR@20 {m['mrr_at_20']:.4f} (trained for one epoch)")
    if a.reference_repo:
        port = in_child(child_port, str(a.reference_repo), str(tmp / "train.parquet"), test_path, a.threads,
                        [a.layers], a.batch_size)  # fmt: skip
        report("official port", port, products["seconds"])
        speedup = (ours["n"] / ours["seconds"]) / (port["n"] / port["seconds"])
        print(f"ratio ours/official port (events/s, cut-off 20): {speedup:.2f}x")
    if a.profile:
        print(in_child(child_profile, model_path, test_path, a.threads, a.batch_size))
    if a.alternate:
        med = in_child(child_alternate, model_path, test_path, a.threads, a.batch_size, a.alternate)
        base = med["products alone"]
        print(f"alternated {a.alternate} times in one process (medians): " + "; ".join(
            f"{name} {s:.2f}s ({s / base:.2f}x the products)" for name, s in med.items()))  # fmt: skip


if __name__ == "__main__":
    main()
