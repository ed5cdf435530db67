"""What Optuna pruning (tuning.pruner) saves on the demo data, and how far it moves the best score.

Runs one study of the demo (config/config.yaml: its synthetic dataset, search space, overrides and
trial budget) once per pruner, with the same sampler seed, and prints per pruner: wall time, epochs
trained (machine-independent), trials pruned and the best validation MRR@20.

    python benchmarks/pruning.py --loss cross-entropy --embedding shared
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from experiments import tuning  # noqa: E402


class CountingScore(tuning.ValidationScore):
    """ValidationScore that also counts the epochs it trains (into a file: workers are processes)."""

    def __call__(self, params, epoch_callback=None, **kw):
        def count(info):
            with open(Path(self.train_path).parent / "epochs.log", "a") as f:
                f.write("1\n")
            if epoch_callback is not None:
                epoch_callback(info)

        return super().__call__(params, epoch_callback=count, **kw)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loss", default="cross-entropy")
    ap.add_argument("--embedding", default="shared")
    ap.add_argument("--trials", type=int, help="trial budget (default: the demo's)")
    ap.add_argument("--pruners", default="none,median,hyperband")
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args(argv)
    import preprocessing

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    tun, (name, ds) = config["tuning"], next(iter(config["datasets"].items()))
    n_trials = a.trials or tun["n_trials"]
    with tempfile.TemporaryDirectory() as tmp:
        preprocessing.preprocess(ds["source"], None, tmp, ds.get("options", {}))
        fixed = tuning.fixed_params(a.loss, a.embedding, tun.get("overrides"))
        space = tun["space"][a.loss]
        study = f"{name}/{a.loss}-{a.embedding}"
        print(f"demo study {study}: {n_trials} trials of {fixed['n_epochs']} epochs, seed {a.seed}")
        for pruner in a.pruners.split(","):
            log = Path(tmp) / "epochs.log"
            log.unlink(missing_ok=True)
            score = CountingScore(f"{tmp}/train_tr.parquet", f"{tmp}/train_valid.parquet", device="cpu")
            t0 = time.perf_counter()
            s = tuning.run_study(
                f"{pruner}", f"{tmp}/{pruner}.journal", score, space, fixed, n_trials, seed=a.seed, pruner=pruner
            )
            seconds = time.perf_counter() - t0
            epochs = len(log.read_text().split())
            print(
                f"pruner {pruner}: {seconds:.0f}s, {epochs} epochs trained of {n_trials * fixed['n_epochs']}, "
                f"{s['n_pruned']} trials pruned, best MRR@20 {s['value']:.4f} (trial {s['trial']})",
                flush=True,
            )


if __name__ == "__main__":
    main()
