"""Training and evaluation speed of GRU4Rec on one dataset with one parameter set.

Prints mini-batches/s and events/s per epoch, the median over epochs, and the evaluation time.
With --reference-repo pointing at a checkout of hidasib/GRU4Rec_PyTorch_Official, the official
PyTorch port is trained on the same data with the same parameters in the same run, and the
ratio of the two speeds is printed (compare ratios, not absolute figures: machines are noisy).

    python benchmarks/train_speed.py --preset rsc15 --preset retailrocket   # any of config/published.yaml
    python benchmarks/train_speed.py --data train.tsv --test test.tsv -ps layers=100,batch_size=32,...
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import gru4rec.batching as batching  # noqa: E402
from benchmarks.port import import_port  # noqa: E402
from gru4rec import GRU4Rec, evaluate  # noqa: E402
from gru4rec.params import parse_param_string  # noqa: E402

# the published best parameters of the seed README (shared embedding), as the workflow reads them;
# --epochs replaces their n_epochs
PRESETS = yaml.safe_load((REPO / "config" / "published.yaml").read_text())["params"]
DEFAULT_PRESETS = ["retailrocket", "rsc15"]


def synthetic(n_events, n_items, seed):
    from preprocessing.synthetic import generate_events

    return generate_events(n_sessions=max(10, n_events // 5), n_items=n_items, days=30, seed=seed)


@contextlib.contextmanager
def first_steps(n_steps: int):
    """Within the block, every epoch stops after its first n_steps steps (0: whole epochs)."""
    full_init = batching.SessionRunner.__init__

    def cut_init(self, *args, **kw):
        full_init(self, *args, **kw)
        if n_steps:
            self.n_steps = min(self.n_steps, n_steps)

    batching.SessionRunner.__init__ = cut_init
    try:
        yield
    finally:
        batching.SessionRunner.__init__ = full_init


def load(path):
    from gru4rec import read_events

    return read_events(path)


def split_last_sessions(df, frac=0.1):
    sessions = df.groupby("SessionId")["Time"].min().sort_values()
    cut = sessions.index[int(len(sessions) * (1 - frac)) :]
    test = df[df.SessionId.isin(cut)]
    return df[~df.SessionId.isin(cut)], test


def run_ours(train, test, params, epochs, device, compile="auto"):
    model = GRU4Rec(params, device=device, seed=42, n_epochs=epochs)
    hist = model.fit(train, verbose=False, compile=compile)
    res = evaluate(model, test, cutoffs=(1, 5, 10, 20))
    return hist, res


def run_reference(repo, train, test, params, epochs, device):
    ref, ref_eval = import_port(repo)
    p = dict(params)
    p["n_epochs"] = epochs
    elu = p.pop("final_act", "elu-1")
    if p["loss"] == "bpr-max":
        p["elu_param"] = float(elu.split("-")[1]) if elu.startswith("elu-") else 0.0
    keep = {
        "layers",
        "loss",
        "batch_size",
        "dropout_p_embed",
        "dropout_p_hidden",
        "learning_rate",
        "momentum",
        "sample_alpha",
        "n_sample",
        "embedding",
        "constrained_embedding",
        "n_epochs",
        "bpreg",
        "elu_param",
        "logq",
    }
    model = ref.GRU4Rec(device=torch.device(device), **{k: v for k, v in p.items() if k in keep})
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        model.fit(train.copy(), compatibility_mode=False)  # its numpy init fails with numpy 2; speed is the same
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("Epoch")]
    eps = [float(ln.split("|")[1].split("e/s")[0]) for ln in lines]
    mbs = [float(ln.split("[")[1].split("mb/s")[0]) for ln in lines]
    t0 = time.perf_counter()
    recall, mrr = ref_eval.batch_eval(model, test.copy(), cutoff=[20], mode="standard")
    return mbs, eps, time.perf_counter() - t0, recall[20], mrr[20]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="training events file (default: synthetic data)")
    ap.add_argument("--test", help="test events file (default: the last 10%% of sessions of --data)")
    ap.add_argument("--events", type=int, default=70000, help="size of the synthetic dataset (default 70000)")
    ap.add_argument("--items", type=int, default=5000, help="items of the synthetic dataset (default 5000)")
    ap.add_argument(
        "--preset",
        action="append",
        choices=sorted(PRESETS),
        help=f"parameter preset(s) (default: {' and '.join(DEFAULT_PRESETS)})",
    )
    ap.add_argument("-ps", "--params", help="parameter string instead of a preset")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2, help="repetitions, ours and the official port interleaved")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument(
        "--compile", choices=["auto", "on", "off"], default="auto", help="fit's compile option (default auto)"
    )
    ap.add_argument("--reference-repo", type=Path, help="checkout of hidasib/GRU4Rec_PyTorch_Official to compare with")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    df = load(a.data) if a.data else synthetic(a.events, a.items, seed=1)
    train, test = (df, load(a.test)) if a.test else split_last_sessions(df)
    print(
        f"data: {len(train)} training events, {train.SessionId.nunique()} sessions, {train.ItemId.nunique()} items;"
        f" {len(test)} test events; device {a.device}, torch threads {torch.get_num_threads()};"
        f" load average {os.getloadavg()[0]:.1f}"
    )
    if a.params:
        runs = [("custom", parse_param_string(a.params))]
    else:
        runs = [(p, dict(PRESETS[p])) for p in (a.preset or DEFAULT_PRESETS)]
    for name, params in runs:
        ours, ref = [], []  # per-epoch mini-batches/s, repetitions interleaved so that both see the same noise
        for rep in range(a.repeats):
            compile = {"on": True, "off": False}.get(a.compile, "auto")
            hist, res = run_ours(train, test, params, a.epochs, a.device, compile)
            ours += [h["mb_per_s"] for h in hist]
            ev_per_mb = hist[0]["n_events"] / hist[0]["n_steps"]
            print(
                f"[{name}] ours, repetition {rep + 1}: "
                + " ".join(f"{x:.1f}" for x in ours[-a.epochs :])
                + f" mb/s; evaluation {res.seconds:.2f}s; Recall@20 {res.recall[20]:.4f} MRR@20 {res.mrr[20]:.4f}",
                flush=True,
            )
            if a.reference_repo:
                from gru4rec.params import validate_params

                rmbs, _, rsec, rrec, rmrr = run_reference(
                    a.reference_repo, train, test, validate_params(params), a.epochs, a.device
                )
                ref += rmbs
                print(
                    f"[{name}] official port, repetition {rep + 1}: "
                    + " ".join(f"{x:.1f}" for x in rmbs)
                    + f" mb/s; evaluation {rsec:.2f}s; Recall@20 {float(rrec):.4f} MRR@20 {float(rmrr):.4f}",
                    flush=True,
                )
        mb_med, mb_best = statistics.median(ours), max(ours)
        print(
            f"[{name}] ours: {mb_med:.1f} mb/s median, {mb_best:.1f} best of {len(ours)} epochs; "
            f"{mb_med * ev_per_mb:.0f} events/s median; load average {os.getloadavg()[0]:.1f}"
        )
        if ref:
            # the port counts batch_size events per mini-batch; mini-batch rates are like for like
            r_med, r_best = statistics.median(ref), max(ref)
            print(
                f"[{name}] official port: {r_med:.1f} mb/s median, {r_best:.1f} best; "
                f"ratio ours/official: {mb_med / r_med:.2f}x (medians), {mb_best / r_best:.2f}x (best epochs)"
            )


if __name__ == "__main__":
    main()
