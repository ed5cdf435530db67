"""The `gru4rec` command: train, evaluate and recommend (also `python -m gru4rec`).

User mistakes (bad parameters, unreadable or malformed data, a foreign model file) end with one
line `gru4rec: error: ...` on stderr and exit code 2; a diverged training exits with 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

from .errors import GRU4RecError, ParameterError, TrainingDivergedError, first_line
from .evaluation import TIE_MODES
from .fileio import write_text_atomic

EPILOG = """examples:
  gru4rec train train.tsv -ps layers=100,loss=cross-entropy,logq=1.0,n_epochs=10 \\
      -t test.tsv -m 1 5 10 20 -s model.safetensors
  gru4rec train train.parquet -pf retailrocket_bprmax_shared_best.py -s model.safetensors
  gru4rec evaluate model.safetensors -t test.tsv -m 5 20 -e conservative
  gru4rec recommend model.safetensors --items 214536502 214536500 -k 10
  gru4rec recommend model.safetensors --sessions test.tsv -o recs.tsv
  gru4rec baseline vsknn train.tsv -t test.tsv -m 1 5 10 20 -ps k=100,sample_size=1000 -e conservative
"""


class _Parser(argparse.ArgumentParser):
    """Usage mistakes get the same one-line error as every other mistake (argparse prints the usage too)."""

    def error(self, message):
        self.exit(2, f"gru4rec: error: {message} (see '{self.prog} -h')\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


SEED_MAX = 2**32 - 1  # every random generator the seed reaches (torch, NumPy) takes it


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, {SEED_MAX}], got '{text}'") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, {SEED_MAX}], got '{text}'")
    return value


def _add_eval_options(p, test_required=False):
    p.add_argument(
        "-t",
        "--test",
        nargs="+",
        default=[],
        required=test_required,
        metavar="TEST",
        help="test file(s) to evaluate on (same formats as the training data)",
    )
    p.add_argument(
        "-m",
        "--measure",
        nargs="+",
        type=_positive_int,
        default=[20],
        metavar="N",
        help="cut-offs for Recall@N and MRR@N, e.g. -m 1 5 10 20 (default: 20)",
    )
    p.add_argument(
        "-e",
        "--eval-type",
        default="standard",
        choices=TIE_MODES,
        metavar="MODE",
        help="how to rank the target among items with the same score: standard (items scored strictly "
        "higher count), conservative (ties count against it), median (half of the ties count), "
        "tiebreaking (random tiny noise) (default: standard)",
    )
    p.add_argument(
        "--targets",
        choices=["all", "last"],
        default="all",
        help="score every next event (all: the session-based protocol, default) or only each "
        "session's last event (last)",
    )
    p.add_argument(
        "--eval-batch-size",
        type=_positive_int,
        default=512,
        metavar="B",
        help="test sessions evaluated in parallel (default: 512)",
    )


def _add_io_options(p):
    p.add_argument(
        "-d",
        "--device",
        default="auto",
        help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N (default: auto)",
    )
    p.add_argument(
        "-sk", "--session-key", default="SessionId", metavar="NAME", help="session id column (default: SessionId)"
    )
    p.add_argument("-ik", "--item-key", default="ItemId", metavar="NAME", help="item id column (default: ItemId)")
    p.add_argument("-tk", "--time-key", default="Time", metavar="NAME", help="time column (default: Time)")


def _param_help() -> str:
    from .params import PARAMETERS

    rows = [
        f"  {name:<22} {str(spec.default):<14} {spec.description}"
        + (f"; in {spec.interval()}" if spec.low is not None else "")
        for name, spec in PARAMETERS.items()
    ]
    return "training parameters (-ps / -pf):\n  " + f"{'name':<22} {'default':<14} meaning\n" + "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(
        prog="gru4rec",
        description="GRU4Rec: session-based recommendation with RNNs "
        "(Hidasi et al., ICLR 2016, CIKM 2018). Data: TSV/TXT, CSV or Parquet events "
        "with session id, item id and time columns.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="{train,evaluate,recommend,baseline}")

    tr = sub.add_parser(
        "train",
        help="train a model (and optionally save and evaluate it)",
        description="Train GRU4Rec on an events file; optionally save the model and evaluate it on test files.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_param_help(),
    )
    tr.add_argument("train", metavar="TRAIN", help="training events (.tsv/.txt, .csv or .parquet)")
    g = tr.add_mutually_exclusive_group()
    g.add_argument(
        "-ps",
        "--parameter-string",
        metavar="PARAMS",
        help="parameters in the reference syntax: name=value,name=value (lists with /, e.g. "
        "layers=200/200; booleans True/False)",
    )
    g.add_argument(
        "-pf",
        "--parameter-file",
        metavar="FILE",
        help="parameter file: the reference's .py files (an OrderedDict named gru4rec_params, read as "
        "data and never executed), or a .yaml/.json mapping",
    )
    tr.add_argument("-s", "--save-model", metavar="MODEL", help="save the trained model here (.safetensors)")
    tr.add_argument(
        "--seed", type=_seed, default=42, help="random seed of initialisation and sampling, 0 to 2**32-1 (default: 42)"
    )
    tr.add_argument("-q", "--quiet", action="store_true", help="no per-epoch output")
    _add_eval_options(tr)
    _add_io_options(tr)

    ev = sub.add_parser(
        "evaluate",
        help="evaluate a saved model on test files",
        description="Recall@N and MRR@N of a saved model, ranking the next item of every test event "
        "against all items of the training set.",
    )
    ev.add_argument("model", metavar="MODEL", help="a model saved with train -s")
    _add_eval_options(ev, test_required=True)
    _add_io_options(ev)

    rc = sub.add_parser(
        "recommend",
        help="top-k recommendations after sessions, as TSV",
        description="Top-k items after each session, as TSV: SessionId, Rank, ItemId, Score. "
        "Input items unknown to the model are skipped (their number goes to stderr); a session with no "
        "known item gets no recommendations, and when no session has one it is an error. A k above the "
        "model's number of items gives every item (with a note on stderr).",
    )
    rc.add_argument("model", metavar="MODEL", help="a model saved with train -s")
    src = rc.add_mutually_exclusive_group(required=True)
    src.add_argument("--items", nargs="+", metavar="ITEM", help="one session: its item ids in order")
    src.add_argument(
        "--sessions", metavar="FILE", help="events file: one recommendation list per session, after its last event"
    )
    rc.add_argument(
        "-k",
        type=_positive_int,
        default=20,
        help="number of recommendations per session; at most the model's number of items (default: 20)",
    )
    rc.add_argument("-o", "--output", metavar="FILE", help="write the TSV here (atomically) instead of to stdout")
    _add_io_options(rc)
    _add_baseline_parser(sub)
    return ap


def _log(msg):
    print(msg, flush=True)


def _read(path, args):
    from .data import read_events

    return read_events(path, args.session_key, args.item_key, args.time_key)


def _evaluate(model, tests, args):
    """tests: (path, events) pairs; prints the reference's metric lines for each."""
    from .evaluation import evaluate

    n_items = getattr(model, "n_items", None)
    trivial = [n for n in args.measure if n_items and n >= n_items]
    if trivial:
        print(
            f"gru4rec: note: cut-off(s) {', '.join(map(str, trivial))} not below the model's {n_items} items: "
            "every known target is in the top N, so Recall@N is 1 there",
            file=sys.stderr,
            flush=True,
        )
    for path, test in tests:
        _log(
            f"Evaluating on {path}: {len(test)} events, {test[args.session_key].nunique()} sessions "
            f"(cut-offs {', '.join(map(str, args.measure))}; {args.eval_type} mode for ties)"
        )
        res = evaluate(
            model,
            test,
            cutoffs=args.measure,
            mode=args.eval_type,
            batch_size=args.eval_batch_size,
            session_key=args.session_key,
            item_key=args.item_key,
            time_key=args.time_key,
            targets=args.targets,
        )
        _log(f"Dropped {res.n_dropped} test event(s) whose item is unknown to the model")
        _log(f"Evaluation took {res.seconds:.2f}s ({res.n_predictions} predictions)")
        for line in res.format_lines():
            _log(line)


def cmd_train(args):
    from .core import GRU4Rec
    from .params import format_param_string, load_param_file, parse_param_string

    if args.parameter_file:
        params = load_param_file(args.parameter_file)
    else:
        params = parse_param_string(args.parameter_string or "")
    model = GRU4Rec(params, device=args.device, seed=args.seed)
    if args.save_model:
        _check_output_path(args.save_model, "-s")
    # read the test files first: a bad one should fail before the training time is spent
    tests = [(path, _read(path, args)) for path in args.test]
    _log(f"Parameters: {format_param_string(model.params)} (seed {args.seed}, device {model.device})")
    _log(f"Loading training data from {args.train}")
    train = _read(args.train, args)
    _check_model_fits(model.params, int(train[args.item_key].nunique()), model.device)
    try:
        model.fit(train, args.session_key, args.item_key, args.time_key, verbose=not args.quiet)
    except (MemoryError, RuntimeError) as e:
        if not _is_allocation_failure(e):
            raise
        raise ParameterError(
            f"not enough memory to train with layers={model.params['layers']}, embedding="
            f"{model.params['embedding']}, batch_size={model.params['batch_size']}, n_sample="
            f"{model.params['n_sample']} on {model.device} ({first_line(e)}); use smaller values"
        ) from None
    if args.save_model:
        model.save(args.save_model)
        _log(f"Saved the model to {args.save_model}")
    _evaluate(model, tests, args)


def _n_weights(params: dict, n_items: int) -> int:
    """The number of weights of a GRU4Rec network (as gru4rec.model builds it)."""
    from .model import embedding_mode

    layers, emb = params["layers"], params["embedding"]
    mode = embedding_mode(emb, params["constrained_embedding"])
    n_in = {"none": n_items, "separate": emb, "shared": layers[-1]}[mode]
    total = n_items * (layers[-1] + 1) + (n_items * emb if mode == "separate" else 0)
    for h in layers:
        total += 3 * n_in * h + 3 * h * h + 3 * h
        n_in = h
    return total


def _memory_of(device) -> int | None:
    """Bytes of memory of a device (None when unknown)."""
    try:
        if device.type == "cuda":
            import torch

            return int(torch.cuda.get_device_properties(device).total_memory)
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError, RuntimeError):
        return None


def _check_model_fits(params: dict, n_items: int, device) -> None:
    """Refuse sizes whose weights and Adagrad state alone exceed the device's memory (a typo such as
    layers=1000000 would otherwise end in a crash, or in the machine swapping)."""
    need = 2 * 4 * _n_weights(params, n_items)  # float32 weights + their Adagrad accumulators
    have = _memory_of(device)
    if have and need > have:
        raise ParameterError(
            f"layers={params['layers']}, embedding={params['embedding']} with {n_items} items need at least "
            f"{need / 2**30:.3g} GiB for the weights and their optimiser state, more than the "
            f"{have / 2**30:.3g} GiB of memory of {device}; use smaller layers"
        )


def _is_allocation_failure(e: BaseException) -> bool:
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError":  # torch's, a RuntimeError
        return True
    text = str(e).lower()
    return any(t in text for t in ("out of memory", "can't allocate memory", "overflowed", "not enough memory"))


def _load(args, stream=None):
    from .core import GRU4Rec

    model = GRU4Rec.load(args.model, device=args.device)
    print(f"Loaded {args.model} ({model.n_items} items) on {model.device}", file=stream or sys.stdout, flush=True)
    return model


def cmd_evaluate(args):
    model = _load(args)
    _evaluate(model, [(path, _read(path, args)) for path in args.test], args)


def _as_model_ids(model, values):
    """Item ids in the model's id type: (ids, usable). Text that cannot be one of a model's integer
    ids is marked unusable, to be counted with the unknown items (np.asarray of a mixed list would
    silently turn every id into text)."""
    import numpy as np

    values = np.asarray(values, dtype=object) if isinstance(values, list) else values
    if model.item_ids.dtype.kind not in "iu":
        return values.astype(str).astype(object), np.ones(len(values), dtype=bool)
    if values.dtype.kind in "iu":
        return values.astype(np.int64), np.ones(len(values), dtype=bool)
    ids, usable = np.full(len(values), -1, dtype=np.int64), np.zeros(len(values), dtype=bool)
    for i, x in enumerate(values):
        try:
            ids[i], usable[i] = int(x), True
        except (ValueError, OverflowError):
            pass
    return ids, usable


def _sessions_of(df, args, model):
    """(session names, item sequences, n unusable ids): sessions in order of first appearance,
    each one's events in time order."""
    import numpy as np

    codes, names = df[args.session_key].factorize()  # keeps the file's order of sessions
    order = np.lexsort((df[args.time_key].to_numpy(), codes))
    ids, usable = _as_model_ids(model, df[args.item_key].to_numpy()[order])
    codes, ids = codes[order][usable], ids[usable]
    bounds = np.searchsorted(codes, np.arange(1, len(names)))  # sessions left empty stay in the output
    return [str(n) for n in names], [list(chunk) for chunk in np.split(ids, bounds)], int((~usable).sum())


def cmd_recommend(args):
    from .recommend import recommend

    if args.output is not None:
        _check_output_path(args.output, "-o")
    if args.items is not None:
        blank = [i for i, x in enumerate(args.items, 1) if not x.strip()]
        if blank:
            raise ParameterError(f"--items: item {blank[0]} of {len(args.items)} is empty; expected item ids")
        events = None
    else:
        events = _read(args.sessions, args)  # a bad file fails before the model is loaded
    model = _load(args, stream=sys.stderr)  # stdout carries the TSV
    if events is None:
        ids, usable = _as_model_ids(model, list(args.items))
        names, sessions, n_unusable = ["1"], [list(ids[usable])], int((~usable).sum())
    else:
        names, sessions, n_unusable = _sessions_of(events, args, model)
    recs, n_unknown = recommend(model, sessions, k=args.k)
    n_unknown += n_unusable
    n_items = sum(len(s) for s in sessions) + n_unusable
    empty = sum(1 for r in recs if not r)
    if empty == len(recs):
        where = "given with --items" if events is None else f"in the {len(recs)} session(s) of {args.sessions}"
        raise ParameterError(
            f"none of the {n_items} item(s) {where} is known to the model ({model.n_items} items): "
            "nothing to recommend (are these the ids of the training data?)"
        )
    if n_unknown:
        print(f"gru4rec: note: skipped {n_unknown} of {n_items} input item(s): unknown to the model", file=sys.stderr)
    if args.k > model.n_items:
        print(
            f"gru4rec: note: -k {args.k} is more than the model's {model.n_items} items: each list has all of them",
            file=sys.stderr,
        )
    if empty:
        print(
            f"gru4rec: note: {empty} of {len(recs)} session(s) had no known item and got no recommendations",
            file=sys.stderr,
        )
    lines = ["SessionId\tRank\tItemId\tScore"]
    for name, rec in zip(names, recs):
        lines += [f"{name}\t{rank}\t{item}\t{score:.6g}" for rank, (item, score) in enumerate(rec, 1)]
    text = "\n".join(lines) + "\n"
    if args.output is not None:
        write_text_atomic(args.output, text)
        print(f"Wrote {len(lines) - 1} recommendations for {len(recs)} session(s) to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def _check_output_path(path, option):
    if not str(path).strip():
        raise ParameterError(f"{option}: the output path is empty; expected a file path")
    p = Path(path)
    if p.is_dir():
        raise ParameterError(f"{p}: is a directory, expected a file path for {option}")
    if not p.parent.exists():
        raise ParameterError(f"{p}: directory {p.parent} does not exist (for {option})")


# -- baselines ---------------------------------------------------------------------------------------
def _baseline_help() -> str:
    from .baselines import BASELINES

    lines = ["baselines and their parameters (-ps name=value,...; name: default):"]
    for key, cls in BASELINES.items():
        params = ", ".join(f"{n}: {spec.default}" for n, spec in cls.PARAMS.items()) or "no parameters"
        lines.append(f"  {key:<8} {cls.NAME:<9} {params}")
    return "\n".join(lines)


def _add_baseline_parser(sub):
    bl = sub.add_parser(
        "baseline",
        help="fit a baseline (POP, Item-KNN, V-SkNN, ...) and evaluate it",
        description="Fit a baseline on an events file and evaluate it on test files exactly as GRU4Rec is evaluated.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_baseline_help(),
    )
    bl.add_argument("name", metavar="NAME", help="random, pop, spop, itemknn, bprmf, sknn or vsknn")
    bl.add_argument("train", metavar="TRAIN", help="training events (.tsv/.txt, .csv or .parquet)")
    bl.add_argument("-ps", "--parameter-string", metavar="PARAMS", help="parameters: name=value,name=value")
    bl.add_argument("--seed", type=_seed, default=42, help="random seed (RANDOM, BPR-MF), 0 to 2**32-1 (default: 42)")
    _add_eval_options(bl, test_required=True)
    _add_io_options(bl)


def cmd_baseline(args):
    from .baselines import make_baseline, parse_baseline_params

    model = make_baseline(
        args.name, seed=args.seed, device=args.device, **parse_baseline_params(args.parameter_string or "")
    )
    tests = [(path, _read(path, args)) for path in args.test]  # a bad test file fails before fitting
    _log(f"Loading training data from {args.train}")
    model.fit(_read(args.train, args), args.session_key, args.item_key, args.time_key)
    _evaluate(model, tests, args)


def _check_args(args) -> None:
    """Mistakes argparse cannot see: the same column for two keys, a cut-off given twice."""
    keys = {"-sk": args.session_key, "-ik": args.item_key, "-tk": args.time_key}
    for opt, name in keys.items():
        if not str(name).strip():
            raise ParameterError(f"{opt}: the column name is empty")
    if len(set(keys.values())) < 3:
        raise ParameterError(
            "-sk, -ik and -tk must name three different columns, got "
            + ", ".join(f"{opt} {name}" for opt, name in keys.items())
        )
    measure = getattr(args, "measure", [])
    twice = sorted({n for n in measure if measure.count(n) > 1})
    if twice:
        raise ParameterError(f"-m: cut-off(s) {', '.join(map(str, twice))} given more than once, got {measure}")


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "recommend": cmd_recommend, "baseline": cmd_baseline}


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """A warning as one line on stderr (Python's default adds the file, line and source code)."""
    print(f"gru4rec: warning: {message}", file=file or sys.stderr, flush=True)


def main(argv=None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 diverged or I/O failure, 2 user error)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse exits on -h and on usage errors; callers of main() want a code
        return e.code if isinstance(e.code, int) else 2
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():  # restores the default printing when main() returns
            warnings.showwarning = _show_warning
            _check_args(args)
            COMMANDS[args.command](args)
    except TrainingDivergedError as e:
        print(f"gru4rec: error: {e}", file=sys.stderr)
        return 1
    except GRU4RecError as e:
        print(f"gru4rec: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, permission denied, ...: not worth a traceback either
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"gru4rec: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gru4rec: interrupted", file=sys.stderr)
        return 130
    if args.command != "recommend":
        _log(f"Done in {time.perf_counter() - t0:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
