"""Where a GRU4Rec training step's time goes, piece by piece, against this machine's limits.

Trains one epoch with a preset's parameters and times each piece of every step (exclusive time:
a piece's own time without the pieces it calls), by wrapping the library's functions from the
outside, so the library itself carries no timers. For each piece it also counts the arithmetic
(floating-point operations of its matrix products) and the least memory traffic it must make
(bytes it has to read and write at least once), and sets them against two limits measured in the
same run with the same threads:
  - arithmetic: the GFLOPS of a large (1024 x 1024) matrix product;
  - memory: the copy bandwidth (GB/s, read + write) of a buffer as large as the piece's data,
    so that data that fits in the caches is held to cache speed, not to main memory's.
A piece's limit is the larger of flops / peak and bytes / bandwidth: no code on this machine can
do the piece faster. "x limit" says how far the measured time is from it. Last, the speed of
torch's element-wise kernels (ns per element) on a matrix of the score matrix's shape: the floor
of an eager loss, which is a handful of such passes.

    python benchmarks/step_profile.py --preset rsc15 --threads 1
    python benchmarks/step_profile.py --preset retailrocket --events 2000000 --items 40000 --steps 3000
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import gru4rec.core as core  # noqa: E402
import gru4rec.model as model_module  # noqa: E402
from benchmarks.train_speed import PRESETS, first_steps, synthetic  # noqa: E402
from gru4rec import GRU4Rec  # noqa: E402
from gru4rec.compiled import NativeKernels  # noqa: E402
from gru4rec.compiled import native as native_kernels  # noqa: E402
from gru4rec.losses import Loss  # noqa: E402
from gru4rec.model import EMBEDDING_MODES, GRU4RecNetwork  # noqa: E402
from gru4rec.optim import AdagradM  # noqa: E402
from gru4rec.sampling import SampleStore  # noqa: E402

F32 = 4  # bytes


class PieceTimer:
    """Exclusive wall time, floating-point operations and least bytes moved, per piece."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.flops = defaultdict(float)
        self.bytes = defaultdict(float)
        self.working_set = defaultdict(float)  # largest bytes of one call (sets the bandwidth limit)
        self.calls = defaultdict(int)
        self._stack = []  # [name, start, time spent in nested pieces]
        self._undo = []  # (owner, attr, own original or None if inherited), for restore()

    def patch(self, owner, attr, replacement):
        self._undo.append((owner, attr, vars(owner).get(attr)))
        setattr(owner, attr, replacement)

    def restore(self):
        """Put back every function that was wrapped or patched (latest first); an attribute that
        the owner inherited is deleted again, so that the owner inherits it as before."""
        while self._undo:
            owner, attr, original = self._undo.pop()
            if original is None:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)

    def wrap(self, owner, attr, name, cost=None):
        """Replace owner.attr by a timed version; cost(result, *args) -> (flops, bytes) of one call."""
        fn = getattr(owner, attr)

        @functools.wraps(fn)
        def timed(*args, **kw):
            self._stack.append([name, time.perf_counter(), 0.0])
            ok = False
            try:
                result = fn(*args, **kw)
                ok = True
                return result
            finally:
                end = time.perf_counter()
                piece, start, nested = self._stack.pop()
                self.seconds[piece] += end - start - nested
                self.calls[piece] += 1
                if cost is not None and ok:
                    f, b = cost(result, *args, **kw)
                    self.flops[piece] += f
                    self.bytes[piece] += b
                    self.working_set[piece] = max(self.working_set[piece], b)
                if self._stack:  # the caller's own time excludes this piece and its bookkeeping
                    self._stack[-1][2] += time.perf_counter() - start

        self.patch(owner, attr, timed)


def _mm(m, k, n):
    return 2.0 * m * k * n


def install(timer: PieceTimer, uniques: list):
    """Time every piece of a training step. Costs come from the shapes each call sees; `uniques`
    receives the number of unique gathered WyBy rows of every step."""
    net_cls = GRU4RecNetwork

    def gather_cost(touched, net, name, ids):
        return 0.0, 2.0 * touched.rows.numel() * F32  # read the rows, write the copy

    def gru_cost(_, net, i, a, h, *rest):
        b, n = h.shape
        return _mm(b, n, 2 * n) + _mm(b, n, n), F32 * (a.numel() + 3 * h.numel() + 3 * n * n)

    def pre_cost(_, net, i, x):
        if i == 0 and net.mode == "none":
            return 0.0, 2.0 * x.numel() * F32
        n_in, n3 = net.params[f"Wx{i}"].shape
        return _mm(x.shape[0], n_in, n3), F32 * (x.numel() + n_in * n3 + x.shape[0] * n3)

    def loss_cost(_, loss, O, offset=None, scale=1.0):
        return 0.0, 2.0 * O.numel() * F32  # read O, write dO: the least any loss must do

    def gru_backward_cost(_, net, i, lc, d_out, dense):
        b, n = lc.h.shape
        flops = _mm(b, n, n) + _mm(n, b, n) + _mm(n, b, 2 * n)  # d(r h), dWh, dWrz
        return flops, F32 * (7 * b * n + 3 * n * n)

    def forward_cost(result, net, X, Y, H, *rest):
        O_u, cache = result
        b, u, d1 = O_u.shape[0], len(cache.out.ids), cache.h_aug.shape[1]
        uniques.append(u)
        # O_u = h_aug W_u^T
        return _mm(b, d1, u), F32 * (u * d1 + b * d1 + b * u)

    def spread_cost(O, net, O_u, cache):
        return 0.0, F32 * (O_u.numel() + O.numel())

    def gather_columns_cost(dO_u, net, dO, cache):
        return 0.0, F32 * (dO.numel() + dO_u.numel())

    def backward_cost(_, net, cache, dO_u):
        b, u, d1 = dO_u.shape[0], len(cache.out.ids), cache.h_aug.shape[1]
        # g_out = dO_u^T h_aug, d_x = dO_u Wy_u
        flops, nbytes = _mm(u, b, d1) + _mm(b, u, d1 - 1), F32 * (b * u + 2 * u * d1 + b * d1)
        for i in range(1, len(net.layers)):  # dWx and dx of the upper layers, done in backward() itself
            n_in, n3 = net.params[f"Wx{i}"].shape
            flops += 2 * _mm(b, n_in, n3)
            nbytes += F32 * (2 * n_in * n3 + 2 * b * n3 + 2 * b * n_in)
        return flops, nbytes

    def input_backward_cost(_, adapter, net, cache, d_a, dense, sparse, g_out):
        if adapter.mode == "none":  # the gradient of the used Wx0 rows is d_a itself, summed per item
            return 0.0, 2.0 * F32 * d_a.numel()
        n_in, n3 = net.params["Wx0"].shape
        b = d_a.shape[0]
        return 2 * _mm(b, n_in, n3), F32 * (2 * n_in * n3 + 2 * b * n3 + 3 * b * n_in)  # dWx0, dx

    def dense_cost(_, opt, grads):
        n = sum(g.numel() for g in grads.values())
        state = 2 if opt.momentum > 0 else 1
        return 0.0, F32 * n * (3 + 2 * state)  # read g, read+write the parameter and each state

    def sparse_cost(_, opt, table, touched, g):
        rows = touched.rows.numel()
        return 0.0, F32 * (2 * rows + g.numel() + rows)  # update in place, then write back to the table

    def compiled_loss_cost(result, kernels, spec, O_u, scored, b, off_t, off_u, scale):
        return 0.0, 2.0 * F32 * O_u.numel()  # read O_u, write dO_u

    def compiled_sparse_cost(_, opt, table, touched, g):
        state = 2 if opt.momentum > 0 else 1
        return 0.0, F32 * g.numel() * (1 + 2 * (1 + state))  # read g, read + write the row and its state

    timer.wrap(core._TrainingStep, "__call__", "other (schedule, log-Q offsets, glue)")
    timer.wrap(SampleStore, "next", "negative samples (drawn in bulk)")
    timer.wrap(net_cls, "gather_rows", "unique ids + row gather", gather_cost)
    timer.wrap(net_cls, "_preactivation", "GRU forward", pre_cost)
    timer.wrap(net_cls, "_gru_train", "GRU forward", gru_cost)
    for adapter in {type(a) for a in EMBEDDING_MODES.adapters.values()}:
        timer.wrap(adapter, "gather", "input rows + embedding dropout multiply")
        timer.wrap(adapter, "backward", "input backward", input_backward_cost)
    timer.wrap(model_module, "_dropout_mask", "dropout masks (random numbers)")
    timer.wrap(net_cls, "forward_train", "score product", forward_cost)
    timer.wrap(net_cls, "spread", "score columns spread + summed back", spread_cost)
    timer.wrap(net_cls, "gather_columns", "score columns spread + summed back", gather_columns_cost)
    timer.wrap(Loss, "__call__", "loss (activation, value, gradient)", loss_cost)
    timer.wrap(NativeKernels, "loss", "loss (activation, value, gradient)", compiled_loss_cost)
    timer.wrap(net_cls, "backward", "output backward products", backward_cost)
    timer.wrap(net_cls, "_gru_backward", "GRU backward", gru_backward_cost)
    timer.wrap(AdagradM, "_dense_step", "Adagrad, dense parameters", dense_cost)
    timer.wrap(AdagradM, "_compiled_dense_step", "Adagrad, dense parameters", dense_cost)
    timer.wrap(AdagradM, "_sparse_step", "Adagrad, touched rows", sparse_cost)
    timer.wrap(AdagradM, "_compiled_sparse_step", "Adagrad, touched rows", compiled_sparse_cost)


def best_seconds(fn, reps: int, rounds: int = 5) -> float:
    """Seconds per call of fn: the best of `rounds` rounds of `reps` calls (warm it up first)."""
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t) / reps)
    return best


def peak_gflops() -> float:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    out = torch.empty(1024, 1024)
    torch.mm(a, b, out=out)
    return _mm(1024, 1024, 1024) / best_seconds(lambda: torch.mm(a, b, out=out), reps=1) / 1e9


def copy_bandwidth(n_bytes: float, budget_s=0.02) -> float:
    """GB/s of reading and writing (counted once each) a buffer of n_bytes: the best of 5 rounds of
    as many copies as fit in budget_s (at least 3)."""
    n = max(1024, int(n_bytes // (2 * F32)))
    src, dst = torch.randn(n), torch.empty(n)
    t = time.perf_counter()
    dst.copy_(src)
    reps = max(3, int(budget_s / max(1e-6, time.perf_counter() - t)))
    return 2 * n * F32 / best_seconds(lambda: dst.copy_(src), reps) / 1e9


def profile_epoch(p: dict, df, steps: int = 0, compile=False):
    """Train one epoch (its first `steps` steps if given) with the pieces timed, after an untimed
    warm-up epoch, eagerly or with the compiled step (`compile`, fit's option). Returns (timer,
    n_steps, epoch seconds, mean unique scored items, n_items); the library is restored afterwards."""
    p = dict(p, n_epochs=1)
    timer, uniques = PieceTimer(), []
    with first_steps(steps):
        # the warm-up epoch, so that the timed one sees warm caches and a warm allocator
        GRU4Rec(p, device="cpu", seed=42).fit(df, verbose=False, compile=compile)
        try:
            install(timer, uniques)
            model = GRU4Rec(p, device="cpu", seed=42)
            hist = model.fit(df, verbose=False, compile=compile)
        finally:
            timer.restore()
    total = hist[0]["seconds"]  # the epoch: every step and the runner around them
    n_steps = hist[0]["n_steps"]
    timer.seconds["runner (keep/reset, loop) + timer overhead"] = total - sum(timer.seconds.values())
    mean_u = sum(uniques) / max(1, len(uniques))
    return timer, n_steps, total, mean_u, model.n_items


def kernel_times(shape) -> dict[str, float]:
    """ns per element of torch's own element-wise kernels on a matrix of the score matrix's shape:
    the floor of an eager loss, which needs several of them (a loss pass cannot be faster than
    the kernel it calls)."""
    A, B, C = torch.randn(shape), torch.randn(shape), torch.empty(shape)
    kernels = {
        "mul": lambda: torch.mul(A, B, out=C),
        "exp": lambda: torch.exp(A, out=C),
        "sigmoid": lambda: torch.sigmoid(A, out=C),
        "softmax (row)": lambda: torch.softmax(A, 1),
        "elu": lambda: torch.nn.functional.elu(A, 0.5),
        "row dot (vecdot)": lambda: torch.linalg.vecdot(A, B),
    }
    out = {}
    for name, fn in kernels.items():
        fn()
        out[name] = best_seconds(fn, reps=50) / A.numel() * 1e9
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="rsc15")
    ap.add_argument("--events", type=int, default=70000)
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--steps", type=int, default=0, help="stop the epoch after this many steps (default: whole)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--compile", choices=["on", "off"], default="on", help="the compiled step (on) or eager (off)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    df = synthetic(a.events, a.items, seed=1)
    p = PRESETS[a.preset]

    timer, n_steps, total, mean_u, n_items = profile_epoch(p, df, a.steps, compile=a.compile == "on")
    gflops = peak_gflops()
    print(
        f"{a.preset}: {n_steps} steps, {n_items} items, batch {p['batch_size']}, layers {p['layers']}, "
        f"{p['batch_size'] + p['n_sample']} scored columns; {mean_u:.0f} unique rows of WyBy gathered per step; "
        f"torch threads {torch.get_num_threads()}; "
        f"{'compiled' if a.compile == 'on' and native_kernels() is not None else 'eager'} step; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"machine: {gflops:.0f} GFLOPS (1024^3 product); {total / n_steps * 1e6:.0f} us per step (with timers)")
    print()
    print("| piece | us/step | share | MFLOP/step | MB/step | GB/s at its size | limit us/step | x limit |")
    print("|---|---|---|---|---|---|---|---|")
    step_s = sum(timer.seconds.values())
    lim_total = 0.0
    for piece, sec in sorted(timer.seconds.items(), key=lambda kv: -kv[1]):
        us = sec / n_steps * 1e6
        flops, nbytes = timer.flops[piece] / n_steps, timer.bytes[piece] / n_steps
        bw = copy_bandwidth(timer.working_set[piece] or nbytes) if nbytes else float("nan")
        limit = max(flops / (gflops * 1e9), nbytes / (bw * 1e9) if nbytes else 0.0) * 1e6
        lim_total += limit
        far = f"{us / limit:.1f}" if limit > 0 else "-"
        print(
            f"| {piece} | {us:.0f} | {sec / step_s:.0%} | {flops / 1e6:.1f} | {nbytes / 1e6:.2f} | "
            f"{bw:.0f} | {limit:.0f} | {far} |"
        )
    print(
        f"| **step** | {step_s / n_steps * 1e6:.0f} | 100% | {sum(timer.flops.values()) / n_steps / 1e6:.1f} | "
        f"{sum(timer.bytes.values()) / n_steps / 1e6:.2f} | | {lim_total:.0f} | "
        f"{step_s / n_steps * 1e6 / lim_total:.1f} |"
    )
    shape = (p["batch_size"], p["batch_size"] + p["n_sample"])
    kernels = kernel_times(shape)
    print(
        f"element-wise kernels on a {shape[0]} x {shape[1]} matrix, ns per element: "
        + ", ".join(f"{k} {v:.2f}" for k, v in kernels.items())
    )
    print(
        f"summary: {step_s / n_steps * 1e6:.0f} us per step, {lim_total:.0f} us at this machine's limits "
        f"({step_s / n_steps * 1e6 / lim_total:.1f}x); {n_steps / total:.0f} mb/s with the timers on"
    )


if __name__ == "__main__":
    main()
