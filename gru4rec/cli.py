"""The `gru4rec` command: train, evaluate and recommend (also `python -m gru4rec`)."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from .errors import GRU4RecError, ParameterError, TrainingDivergedError

EPILOG = """examples:
  gru4rec train train.tsv -ps layers=100,loss=cross-entropy,logq=1.0,n_epochs=10 -t test.tsv -m 1 5 10 20 -s model.safetensors
  gru4rec train train.parquet -pf retailrocket_bprmax_shared_best.py -s model.safetensors
  gru4rec evaluate model.safetensors -t test.tsv -m 5 20 -e conservative
  gru4rec recommend model.safetensors --items 214536502 214536500 -k 10
  gru4rec recommend model.safetensors --sessions test.tsv -o recs.tsv
"""


def _common_eval(p):
    p.add_argument("-t", "--test", nargs="+", default=[], metavar="TEST", help="test file(s) to evaluate on")
    p.add_argument("-m", "--measure", nargs="+", type=int, default=[20], metavar="N",
                   help="cut-offs for Recall@N and MRR@N (default: 20)")
    p.add_argument("-e", "--eval-type", default="standard",
                   choices=["standard", "conservative", "median", "tiebreaking"],
                   help="how to rank items with the same score as the target (default: standard)")
    p.add_argument("--targets", choices=["all", "last"], default="all",
                   help="score every next event (all, default) or only each session's last event (last)")
    p.add_argument("--eval-batch-size", type=int, default=512, help="sessions evaluated in parallel (default: 512)")


def _common_io(p):
    p.add_argument("-d", "--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N (default: auto)")
    p.add_argument("-sk", "--session-key", default="SessionId", help="session id column (default: SessionId)")
    p.add_argument("-ik", "--item-key", default="ItemId", help="item id column (default: ItemId)")
    p.add_argument("-tk", "--time-key", default="Time", help="time column (default: Time)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="gru4rec", description="GRU4Rec: session-based recommendation with RNNs.",
                                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="{train,evaluate,recommend}")

    tr = sub.add_parser("train", help="train a model (and optionally evaluate and save it)",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog="parameters (name: default): " + _param_summary())
    tr.add_argument("train", metavar="TRAIN", help="training events (.tsv/.txt, .csv or .parquet)")
    g = tr.add_mutually_exclusive_group()
    g.add_argument("-ps", "--parameter-string", metavar="PARAMS",
                   help="parameters as name=value,name=value (lists with /, e.g. layers=200/200)")
    g.add_argument("-pf", "--parameter-file", metavar="FILE",
                   help="parameter file: the reference's .py files (read as data), .yaml or .json")
    tr.add_argument("-s", "--save-model", metavar="MODEL", help="save the trained model here (.safetensors)")
    tr.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    tr.add_argument("-q", "--quiet", action="store_true", help="no per-epoch output")
    _common_eval(tr)
    _common_io(tr)

    ev = sub.add_parser("evaluate", help="evaluate a saved model")
    ev.add_argument("model", metavar="MODEL", help="a model saved with -s")
    _common_eval(ev)
    _common_io(ev)

    rc = sub.add_parser("recommend", help="top-k recommendations after sessions, as TSV")
    rc.add_argument("model", metavar="MODEL", help="a model saved with -s")
    src = rc.add_mutually_exclusive_group(required=True)
    src.add_argument("--items", nargs="+", metavar="ITEM", help="one session: its item ids in order")
    src.add_argument("--sessions", metavar="FILE", help="events file: one recommendation list per session")
    rc.add_argument("-k", type=int, default=20, help="number of recommendations (default: 20)")
    rc.add_argument("-o", "--output", metavar="FILE", help="write the TSV here instead of standard output")
    _common_io(rc)
    return ap


def _param_summary() -> str:
    from .params import PARAMETERS
    return ", ".join(f"{n}: {s.default}" for n, s in PARAMETERS.items())


def _log(msg):
    print(msg, flush=True)


def _evaluate_files(model, args):
    from .data import read_events
    from .evaluation import evaluate
    for path in args.test:
        test = read_events(path, args.session_key, args.item_key, args.time_key)
        _log(f"Evaluating on {path} (cut-off={args.measure}, {args.eval_type} mode for ties)")
        res = evaluate(model, test, cutoffs=args.measure, mode=args.eval_type, batch_size=args.eval_batch_size,
                       session_key=args.session_key, item_key=args.item_key, time_key=args.time_key,
                       targets=args.targets)
        if res.n_dropped:
            _log(f"Dropped {res.n_dropped} test event(s) whose item is unknown to the model")
        _log(f"Evaluation took {res.seconds:.2f}s ({res.n_predictions} predictions, {res.n_sessions} sessions)")
        for line in res.format_lines():
            _log(line)


def cmd_train(args):
    from .core import GRU4Rec
    from .data import read_events
    from .params import load_param_file, parse_param_string
    if args.parameter_file:
        params = load_param_file(args.parameter_file)
    else:
        params = parse_param_string(args.parameter_string or "")
    model = GRU4Rec(params, device=args.device, seed=args.seed)
    if args.save_model:
        _check_writable(args.save_model)
    for path in args.test:  # fail on a bad test file before spending the training time
        read_events(path, args.session_key, args.item_key, args.time_key)
    _log(f"Loading training data from {args.train}")
    train = read_events(args.train, args.session_key, args.item_key, args.time_key)
    model.fit(train, args.session_key, args.item_key, args.time_key, verbose=not args.quiet)
    if args.save_model:
        model.save(args.save_model)
        _log(f"Saved the model to {args.save_model}")
    _evaluate_files(model, args)


def cmd_evaluate(args):
    from .core import GRU4Rec
    if not args.test:
        raise ParameterError("evaluate needs at least one test file (-t TEST)")
    model = GRU4Rec.load(args.model, device=args.device)
    _log(f"Loaded {args.model} ({model.n_items} items) on {model.device}")
    _evaluate_files(model, args)


def cmd_recommend(args):
    from .core import GRU4Rec
    from .data import read_events
    from .recommend import recommend
    model = GRU4Rec.load(args.model, device=args.device)
    if args.items:
        ids = _typed_ids(model, args.items)
        names, sessions = ["1"], [ids]
    else:
        df = read_events(args.sessions, args.session_key, args.item_key, args.time_key)
        df = df.sort_values([args.session_key, args.time_key], kind="stable")
        groups = df.groupby(args.session_key, sort=False)[args.item_key]
        names = [str(k) for k in groups.groups.keys()]
        sessions = [list(v) for _, v in groups]
    recs, n_unknown = recommend(model, sessions, k=args.k)
    if n_unknown:
        print(f"gru4rec: note: skipped {n_unknown} input item(s) unknown to the model", file=sys.stderr)
    empty = sum(1 for r in recs if not r)
    if empty:
        print(f"gru4rec: note: {empty} session(s) had no known item and got no recommendations", file=sys.stderr)
    lines = ["SessionId\tRank\tItemId\tScore"]
    for name, rec in zip(names, recs):
        lines += [f"{name}\t{rank}\t{item}\t{score:.6g}" for rank, (item, score) in enumerate(rec, 1)]
    text = "\n".join(lines) + "\n"
    if args.output:
        _write_atomic(args.output, text)
    else:
        sys.stdout.write(text)


def _typed_ids(model, items):
    """Command-line ids are strings; match the model's id type (integer ids stay integers)."""
    if model.item_ids is not None and model.item_ids.dtype.kind in "iu":
        out = []
        for x in items:
            try:
                out.append(int(x))
            except ValueError:
                out.append(x)  # cannot be a known integer id; counted as unknown
        return out
    return list(items)


def _check_writable(path):
    p = Path(path)
    if p.is_dir():
        raise ParameterError(f"{p}: is a directory, expected a file path for the model (-s)")
    if not p.parent.exists():
        raise ParameterError(f"{p.parent}: directory does not exist (for -s {p})")


def _write_atomic(path, text):
    p = Path(path)
    _check_writable(p)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    try:
        {"train": cmd_train, "evaluate": cmd_evaluate, "recommend": cmd_recommend}[args.command](args)
    except TrainingDivergedError as e:
        print(f"gru4rec: error: {e}", file=sys.stderr)
        return 1
    except GRU4RecError as e:
        print(f"gru4rec: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gru4rec: interrupted", file=sys.stderr)
        return 130
    if args.command != "recommend":
        _log(f"Done in {time.perf_counter() - t0:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
