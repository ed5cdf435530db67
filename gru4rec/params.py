"""GRU4Rec's training parameters: their specification, validation and the reference file formats.

`-ps` strings use the reference syntax (`layers=200/200,loss=bpr-max,constrained_embedding=True`);
`-pf` files are the reference's Python parameter files (an OrderedDict named `gru4rec_params`),
read as data with `ast` and never executed, or YAML / JSON mappings.
"""
from __future__ import annotations

import ast
import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ParameterError
from .losses import LOSSES, check_pairing


@dataclass(frozen=True)
class Spec:
    kind: str          # int, float, bool, str, layers, embedding
    default: Any
    help: str


PARAMETERS: dict[str, Spec] = {
    "layers": Spec("layers", [100], "GRU layer sizes, e.g. [100] or [200, 200] (200/200 in -ps strings)"),
    "loss": Spec("str", "cross-entropy", "cross-entropy | bpr-max (recommended); xe_logit | top1-max | top1 | bpr"),
    "final_act": Spec("str", None, "final activation; default from the loss: softmax (cross-entropy), softmax_logit "
                                   "(xe_logit), elu-1 (ranking losses: linear, relu, tanh, leaky-X, elu-X, selu-X-Y)"),
    "elu_param": Spec("float", None, "reference shorthand for final_act=elu-X (0 means linear); ranking losses only"),
    "batch_size": Spec("int", 64, "session-parallel mini-batch size (>= 1)"),
    "dropout_p_embed": Spec("float", 0.0, "dropout on the input embedding, in [0, 1)"),
    "dropout_p_hidden": Spec("float", 0.0, "dropout on every GRU layer's output, in [0, 1)"),
    "learning_rate": Spec("float", 0.05, "Adagrad learning rate (> 0)"),
    "momentum": Spec("float", 0.0, "momentum of the Adagrad update, in [0, 1)"),
    "sample_alpha": Spec("float", 0.5, "negative samples are drawn by support^sample_alpha (>= 0)"),
    "n_sample": Spec("int", 2048, "extra negative samples per mini-batch (>= 0)"),
    "embedding": Spec("embedding", 0, "input embedding size for the separate mode: 0, K or 'layersize'"),
    "constrained_embedding": Spec("bool", True, "shared input/output embedding"),
    "n_epochs": Spec("int", 10, "number of epochs (>= 1)"),
    "bpreg": Spec("float", 1.0, "score regularisation of the BPR-max loss (>= 0)"),
    "logq": Spec("float", 0.0, "log-Q correction strength for cross-entropy (>= 0; 1.0 is usual)"),
    "sample_store_size": Spec("int", 10_000_000, "negative samples drawn at once on the device (>= 0)"),
    "time_sort": Spec("bool", True, "process training sessions in order of their first event"),
    "train_random_order": Spec("bool", False, "shuffle the training sessions every epoch instead"),
}

_RANGES = {  # name: (low, high, low inclusive, high inclusive)
    "batch_size": (1, None, True, True), "n_epochs": (1, None, True, True), "n_sample": (0, None, True, True),
    "sample_store_size": (0, None, True, True), "dropout_p_embed": (0, 1, True, False),
    "dropout_p_hidden": (0, 1, True, False), "learning_rate": (0, None, False, True), "momentum": (0, 1, True, False),
    "sample_alpha": (0, None, True, True), "bpreg": (0, None, True, True), "logq": (0, None, True, True),
}


def _unknown(name: str) -> ParameterError:
    close = difflib.get_close_matches(name, PARAMETERS, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ParameterError(f"unknown parameter '{name}'{hint}; valid parameters: {', '.join(PARAMETERS)}")


def _bad(name, value, expected) -> ParameterError:
    return ParameterError(f"parameter {name}={value!r} is not valid: expected {expected}")


def _to_bool(name, v):
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("true", "1", "false", "0"):
        return v.strip().lower() in ("true", "1")
    raise _bad(name, v, "True or False")


def _to_int(name, v):
    if isinstance(v, bool):
        raise _bad(name, v, "an integer")
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            raise _bad(name, v, "an integer") from None
        if f.is_integer():
            return int(f)
    raise _bad(name, v, "an integer")


def _to_float(name, v):
    if isinstance(v, bool):
        raise _bad(name, v, "a number")
    try:
        return float(v)
    except (TypeError, ValueError):
        raise _bad(name, v, "a number") from None


def _to_layers(name, v):
    if isinstance(v, str):
        parts = [p for p in v.replace(",", "/").split("/") if p.strip()]
    elif isinstance(v, (list, tuple)):
        parts = list(v)
    else:
        parts = [v]
    try:
        layers = [_to_int(name, p) for p in parts]
    except ParameterError:
        raise _bad(name, v, "a list of positive integers, e.g. [100] or 200/200") from None
    if not layers or min(layers) < 1:
        raise _bad(name, v, "a list of positive integers, e.g. [100] or 200/200")
    return layers


def _coerce(name: str, value):
    kind = PARAMETERS[name].kind
    if value is None and PARAMETERS[name].default is None:
        return None
    if kind == "int":
        return _to_int(name, value)
    if kind == "float":
        return _to_float(name, value)
    if kind == "bool":
        return _to_bool(name, value)
    if kind == "layers":
        return _to_layers(name, value)
    if kind == "embedding":
        if isinstance(value, str) and value.strip().lower() == "layersize":
            return "layersize"
        try:
            return _to_int(name, value)
        except ParameterError:
            raise _bad(name, value, "a non-negative integer or 'layersize'") from None
    if not isinstance(value, str):
        raise _bad(name, value, "a string")
    return value.strip()


def validate_params(params: dict | None) -> dict:
    """Return a new, complete parameter dict: defaults filled, values coerced and checked.

    'layersize' is resolved, elu_param is folded into final_act, and final_act is derived from
    the loss when not given. Raises ParameterError (one line) for unknown names or bad values.
    """
    params = dict(params or {})
    for name in params:
        if name not in PARAMETERS:
            raise _unknown(name)
    out = {name: spec.default for name, spec in PARAMETERS.items()}
    out["layers"] = list(out["layers"])
    for name, value in params.items():
        out[name] = _coerce(name, value)
    for name, (lo, hi, lo_inc, hi_inc) in _RANGES.items():
        v = out[name]
        if (lo is not None and (v < lo or (v == lo and not lo_inc))) or \
                (hi is not None and (v > hi or (v == hi and not hi_inc))):
            interval = f"{'[' if lo_inc else '('}{lo}, {hi if hi is not None else 'inf'}{']' if hi_inc and hi is not None else ')'}"
            raise _bad(name, v, f"a value in {interval}")
    if out["loss"] not in LOSSES:
        raise _bad("loss", out["loss"], f"one of {', '.join(LOSSES)}")
    if out["embedding"] == "layersize":
        out["embedding"] = out["layers"][0]
    if out["embedding"] < 0:
        raise _bad("embedding", out["embedding"], "a non-negative integer or 'layersize'")
    elu = out.pop("elu_param")
    ranking = out["loss"] not in ("cross-entropy", "xe_logit")
    if elu is not None:
        if not ranking:
            raise ParameterError(f"elu_param is the final activation of the ranking losses; it cannot be used with "
                                 f"loss='{out['loss']}' (drop it, or use final_act)")
        from_elu = f"elu-{elu:g}" if elu > 0 else "linear"
        if out["final_act"] is not None and out["final_act"] != from_elu:
            raise ParameterError(f"elu_param={elu:g} conflicts with final_act='{out['final_act']}'; give only one of them")
        out["final_act"] = from_elu
    if out["final_act"] is None:
        out["final_act"] = {"cross-entropy": "softmax", "xe_logit": "softmax_logit"}.get(out["loss"], "elu-1")
    check_pairing(out["loss"], out["final_act"])
    return out


def parse_param_string(s: str) -> dict:
    """Parse the reference's `-ps` syntax: 'name=value,name=value' (lists with '/')."""
    out = {}
    for item in (s or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ParameterError(f"malformed parameter '{item}' in the parameter string: expected name=value")
        name = name.strip()
        if name not in PARAMETERS:
            raise _unknown(name)
        out[name] = value.strip()
    return out


def format_param_string(params: dict) -> str:
    """The inverse of parse_param_string (for logs and MLflow)."""
    def fmt(v):
        if isinstance(v, (list, tuple)):
            return "/".join(str(x) for x in v)
        return str(v)
    return ",".join(f"{k}={fmt(v)}" for k, v in params.items() if v is not None)


def load_param_file(path) -> dict:
    """Parameters from a reference .py parameter file (read as data, not executed), YAML or JSON."""
    path = Path(path)
    if not path.exists():
        raise ParameterError(f"{path}: parameter file not found")
    if path.is_dir():
        raise ParameterError(f"{path}: is a directory, expected a parameter file (.py, .yaml, .json)")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".py":
        params = _read_python_params(path, text)
    elif suffix in (".yaml", ".yml", ".json"):
        try:
            if suffix == ".json":
                params = json.loads(text)
            else:
                import yaml
                params = yaml.safe_load(text)
        except Exception as e:  # the parsers' own messages are multi-line; keep the first line
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ParameterError(f"{path}: cannot parse {suffix[1:].upper()}: {first}") from None
        if isinstance(params, dict) and isinstance(params.get("gru4rec_params"), dict):
            params = params["gru4rec_params"]
    else:
        raise ParameterError(f"{path}: unsupported parameter file type '{suffix}' (expected .py, .yaml, .yml or .json)")
    if not isinstance(params, dict):
        raise ParameterError(f"{path}: expected a mapping of parameter names to values")
    for name in params:
        if name not in PARAMETERS:
            e = _unknown(str(name))
            raise ParameterError(f"{path}: {e}") from None
    return dict(params)


def _read_python_params(path: Path, text: str) -> dict:
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as e:
        raise ParameterError(f"{path}: line {e.lineno}: invalid Python syntax") from None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "gru4rec_params" for t in node.targets):
            return _literal_mapping(path, node.value)
    raise ParameterError(f"{path}: no 'gru4rec_params = OrderedDict([...])' assignment found")


def _literal_mapping(path: Path, node) -> dict:
    """gru4rec_params = OrderedDict([(k, v), ...]) or dict(...) or {...}, literals only."""
    try:
        if isinstance(node, ast.Dict):
            return ast.literal_eval(node)
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
            fname = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            if fname in ("OrderedDict", "dict") and len(node.args) <= 1:
                out = dict(ast.literal_eval(node.args[0])) if node.args else {}
                for kw in node.keywords:
                    out[kw.arg] = ast.literal_eval(kw.value)
                return out
    except (ValueError, TypeError, SyntaxError):
        pass
    raise ParameterError(f"{path}: line {node.lineno}: gru4rec_params must be an OrderedDict/dict of literal values "
                         f"(the file is read as data and never executed)")
