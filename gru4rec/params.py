"""GRU4Rec's training parameters: their specification, validation and the reference file formats.

`-ps` strings use the reference syntax (`layers=200/200,loss=bpr-max,constrained_embedding=True`);
`-pf` files are the reference's Python parameter files (an OrderedDict named `gru4rec_params`),
read as data with `ast` and never executed, or YAML / JSON mappings.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ParameterError, first_line

# The names the parameters choose from. They live here, beside the parameters and without torch,
# so that the workflow can check a config against them when it parses its DAG.
TIE_MODES = ("standard", "conservative", "median", "tiebreaking")  # how evaluation ranks tied scores
EMBEDDING_MODES = ("none", "separate", "shared")  # the input modes of gru4rec.model
RANKING_LOSSES = ("bpr-max", "top1-max", "top1", "bpr")
LOSSES = ("cross-entropy", "xe_logit") + RANKING_LOSSES
_FLOAT = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RANKING_ACT = re.compile(rf"^(linear|relu|tanh|leaky-{_FLOAT}|elu-{_FLOAT}|selu-{_FLOAT}-{_FLOAT})$")
RANKING_ACTIVATIONS = "linear, relu, tanh, leaky-X, elu-X, selu-X-Y"


def valid_final_acts(loss: str) -> str:
    return {"cross-entropy": "softmax", "xe_logit": "softmax_logit"}.get(loss, RANKING_ACTIVATIONS)


def check_pairing(loss: str, final_act: str) -> None:
    """Raise ParameterError when `final_act` cannot be used with `loss`."""
    if loss not in LOSSES:
        raise ParameterError(f"loss='{loss}' is not valid; expected one of: {', '.join(LOSSES)}")
    ok = (
        (final_act == "softmax")
        if loss == "cross-entropy"
        else (final_act == "softmax_logit")
        if loss == "xe_logit"
        else bool(_RANKING_ACT.match(final_act))
    )
    if not ok:
        raise ParameterError(
            f"final_act='{final_act}' cannot be used with loss='{loss}'; "
            f"valid final_act for {loss}: {valid_final_acts(loss)}"
        )


@dataclass(frozen=True)
class Spec:
    type: str  # int, float, bool, str, layers, embedding
    default: Any
    description: str
    low: float | None = None  # bounds checked after coercion
    high: float | None = None
    low_open: bool = False  # True: the bound itself is not allowed
    high_open: bool = False

    def interval(self) -> str:
        lo = "(" if self.low_open else "["
        hi = ")" if self.high_open or self.high is None else "]"
        return f"{lo}{self.low:g}, {'inf' if self.high is None else format(self.high, 'g')}{hi}"

    def in_bounds(self, v) -> bool:
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            return False
        return self.high is None or not (v > self.high or (self.high_open and v == self.high))


PARAMETERS: dict[str, Spec] = {
    "layers": Spec("layers", [100], "GRU layer sizes, e.g. [100] or [200, 200] (200/200 in -ps strings)"),
    "loss": Spec("str", "cross-entropy", "cross-entropy | bpr-max (recommended); xe_logit | top1-max | top1 | bpr"),
    "final_act": Spec(
        "str",
        None,
        "final activation; default from the loss: softmax (cross-entropy), softmax_logit "
        "(xe_logit), elu-1 (ranking losses: linear, relu, tanh, leaky-X, elu-X, selu-X-Y)",
    ),
    "elu_param": Spec("float", None, "reference shorthand for final_act=elu-X (X <= 0 means linear); ranking losses"),
    "batch_size": Spec("int", 64, "session-parallel mini-batch size", low=1),
    "dropout_p_embed": Spec("float", 0.0, "dropout on the input embedding", low=0, high=1, high_open=True),
    "dropout_p_hidden": Spec("float", 0.0, "dropout on every GRU layer's output", low=0, high=1, high_open=True),
    "learning_rate": Spec("float", 0.05, "Adagrad learning rate", low=0, low_open=True),
    "momentum": Spec("float", 0.0, "momentum of the Adagrad update", low=0, high=1, high_open=True),
    "sample_alpha": Spec("float", 0.5, "negative samples are drawn by support^sample_alpha", low=0),
    "n_sample": Spec("int", 2048, "extra negative samples per mini-batch", low=0),
    "embedding": Spec("embedding", 0, "input embedding size for the separate mode: 0, K or 'layersize'", low=0),
    "constrained_embedding": Spec("bool", True, "shared input/output embedding"),
    "n_epochs": Spec("int", 10, "number of epochs", low=1),
    "bpreg": Spec("float", 1.0, "score regularisation of the BPR-max loss", low=0),
    "logq": Spec("float", 0.0, "log-Q correction strength, any loss (usually 1.0 with cross-entropy, else 0)", low=0),
    "sample_store_size": Spec("int", 10_000_000, "negative samples drawn at once on the device", low=0),
    "time_sort": Spec("bool", True, "process training sessions in order of their first event"),
    "train_random_order": Spec("bool", False, "shuffle the training sessions every epoch instead"),
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
    # bools are ints in Python; 'n_epochs=True' is a mistake, not 1
    if isinstance(v, bool):
        raise _bad(name, v, "an integer")
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str):
        try:
            f = float(v)  # accepts '1e3' as the reference's float-typed parsing did
        except ValueError:
            raise _bad(name, v, "an integer") from None
        if f.is_integer():
            return int(v) if v.strip().lstrip("+-").isdigit() else int(f)
    raise _bad(name, v, "an integer")


def _to_float(name, v):
    if isinstance(v, bool):
        raise _bad(name, v, "a number")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise _bad(name, v, "a number") from None
    if not math.isfinite(f):  # NaN would slip through every range check below
        raise _bad(name, v, "a finite number")
    return f


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


def _to_str(name, v):
    if not isinstance(v, str):
        raise _bad(name, v, "a string")
    return v.strip()


def _to_embedding(name, v):
    if isinstance(v, str) and v.strip().lower() == "layersize":
        return "layersize"
    try:
        return _to_int(name, v)
    except ParameterError:
        raise _bad(name, v, "a non-negative integer or 'layersize'") from None


_COERCE = {
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "layers": _to_layers,
    "str": _to_str,
    "embedding": _to_embedding,
}


def _coerce(name: str, value):
    spec = PARAMETERS[name]
    if value is None and spec.default is None:
        return None
    value = _COERCE[spec.type](name, value)
    if spec.type in ("int", "float", "embedding") and value != "layersize" and not spec.in_bounds(value):
        raise _bad(name, value, f"a value in {spec.interval()}")
    return value


def _same_activation(a: str, b: str) -> bool:
    """'elu-0.50' and 'elu-0.5' are the same activation."""
    (na, _, xa), (nb, _, xb) = a.partition("-"), b.partition("-")
    if na != nb:
        return False
    try:
        return [float(x) for x in xa.split("-") if x] == [float(x) for x in xb.split("-") if x]
    except ValueError:
        return a == b


def _fold_elu_param(out: dict) -> None:
    """Turn the reference's elu_param into final_act (the PyTorch port's only final-activation knob).

    elu_param <= 0 means "no activation": linear for the ranking losses, and a no-op for the
    cross-entropy losses (the reference's cross-entropy parameter files carry elu_param=0).
    """
    elu = out.pop("elu_param")
    if elu is None:
        return
    ranking = out["loss"] in RANKING_LOSSES
    if not ranking:
        if elu > 0:
            raise ParameterError(
                f"elu_param={elu:g} applies an ELU before the ranking losses only; it cannot be used "
                f"with loss='{out['loss']}' (drop it, or set elu_param=0)"
            )
        return
    from_elu = f"elu-{elu:g}" if elu > 0 else "linear"
    if out["final_act"] is not None and not _same_activation(out["final_act"], from_elu):
        raise ParameterError(
            f"elu_param={elu:g} (final_act='{from_elu}') conflicts with final_act="
            f"'{out['final_act']}'; give only one of them"
        )
    out["final_act"] = from_elu


def validate_params(params: dict | None) -> dict:
    """Return a new, complete parameter dict: defaults filled, values coerced and checked.

    'layersize' is resolved, elu_param is folded into final_act, and final_act is derived from
    the loss when not given. Raises ParameterError (one line) for unknown names or bad values.
    """
    params = dict(params or {})
    for name in params:
        if name not in PARAMETERS:
            raise _unknown(str(name))
    out = {name: spec.default for name, spec in PARAMETERS.items()}
    out["layers"] = list(out["layers"])
    for name, value in params.items():
        out[name] = _coerce(name, value)
    if out["loss"] not in LOSSES:
        raise _bad("loss", out["loss"], f"one of {', '.join(LOSSES)}")
    if out["embedding"] == "layersize":
        out["embedding"] = out["layers"][0]
    _fold_elu_param(out)
    if out["final_act"] is None:
        out["final_act"] = {"cross-entropy": "softmax", "xe_logit": "softmax_logit"}.get(out["loss"], "elu-1")
    check_pairing(out["loss"], out["final_act"])
    return out


def parse_param_string(s: str) -> dict:
    """Parse the reference's `-ps` syntax: 'name=value,name=value' (lists with '/'); values stay strings."""
    out = {}
    for item in (s or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ParameterError(
                f"malformed parameter '{item}' in the parameter string: expected name=value "
                f"(lists with '/', e.g. layers=200/200)"
            )
        if name not in PARAMETERS:
            raise _unknown(name)
        if name in out:
            raise ParameterError(
                f"parameter {name} is given twice in the parameter string ('{name}={out[name]}' and '{item}')"
            )
        out[name] = value
    return out


def format_param_string(params: dict) -> str:
    """The inverse of parse_param_string (for logs and MLflow); None values are left out."""

    def fmt(v):
        if isinstance(v, (list, tuple)):
            return "/".join(str(x) for x in v)
        return str(v)

    return ",".join(f"{k}={fmt(v)}" for k, v in params.items() if v is not None)


def load_param_file(path) -> dict:
    """Parameters from a reference .py parameter file (read as data, not executed), YAML or JSON.

    Returns the file's mapping as written (validate_params completes it); a name or value that
    validate_params would refuse is a ParameterError naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise ParameterError(f"{path}: parameter file not found")
    if path.is_dir():
        raise ParameterError(f"{path}: is a directory, expected a parameter file (.py, .yaml, .yml or .json)")
    suffix = path.suffix.lower()
    if suffix not in (".py", ".yaml", ".yml", ".json"):
        raise ParameterError(f"{path}: unsupported parameter file type '{suffix}' (expected .py, .yaml, .yml or .json)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ParameterError(f"{path}: cannot read the parameter file ({first_line(e)})") from None
    if suffix == ".py":
        params = _read_python_params(path, text)
    else:
        try:
            if suffix == ".json":
                params = json.loads(text)
            else:
                import yaml

                params = yaml.safe_load(text)
        except Exception as e:  # the parsers' own messages are multi-line; keep the first line
            raise ParameterError(f"{path}: cannot parse {suffix[1:].upper()}: {first_line(e)}") from None
        if isinstance(params, dict) and isinstance(params.get("gru4rec_params"), dict):
            params = params["gru4rec_params"]
    if not isinstance(params, dict):
        raise ParameterError(f"{path}: expected a mapping of parameter names to values, got {type(params).__name__}")
    params = _drop_inert(path, dict(params))
    for name in params:
        if name not in PARAMETERS:
            raise ParameterError(f"{path}: {_unknown(str(name))}") from None
    try:  # a bad value is reported with the file it came from
        validate_params(params)
    except ParameterError as e:
        raise ParameterError(f"{path}: {e}") from None
    return params


# Keys of the Theano original's parameter files that select what this implementation always does
# (tanh hidden activation, Adagrad): the value it does is accepted with a warning, others are errors.
INERT_KEYS = {"hidden_act": "tanh", "adapt": "adagrad"}


def _drop_inert(path: Path, params: dict) -> dict:
    for key, ours in INERT_KEYS.items():
        if key not in params:
            continue
        value = params.pop(key)
        if not isinstance(value, str) or value.strip().lower() != ours:
            raise ParameterError(
                f"{path}: {key}={value!r} is not supported: this implementation always uses "
                f"{key}='{ours}' (remove the key or set it to '{ours}')"
            )
        warnings.warn(
            f"{path}: parameter {key}={value!r} has no effect (this implementation always uses '{ours}'); ignored",
            UserWarning,
            stacklevel=3,
        )
    return params


def _read_python_params(path: Path, text: str) -> dict:
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as e:
        raise ParameterError(f"{path}: line {e.lineno}: invalid Python syntax ({e.msg})") from None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "gru4rec_params" for t in node.targets
        ):
            return _literal_mapping(path, node.value)
    raise ParameterError(f"{path}: no 'gru4rec_params = OrderedDict([...])' assignment found")


_LITERAL_NODES = (ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.UnaryOp)


def _literal(path: Path, node):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        # name the first expression that is not a literal: that is what the user has to change
        bad = next((n for n in ast.walk(node) if isinstance(n, ast.expr) and not isinstance(n, _LITERAL_NODES)), node)
        raise ParameterError(
            f"{path}: line {getattr(bad, 'lineno', '?')}: gru4rec_params may hold only literal "
            f"values, found: {ast.unparse(bad)} (the file is read as data and never executed)"
        ) from None


def _literal_mapping(path: Path, node) -> dict:
    """gru4rec_params = OrderedDict([(k, v), ...]) or dict(...) or {...}, literals only."""
    if isinstance(node, ast.Dict):
        return _literal(path, node)
    if isinstance(node, ast.Call) and len(node.args) <= 1:
        func = (
            node.func.id
            if isinstance(node.func, ast.Name)
            else node.func.attr
            if isinstance(node.func, ast.Attribute)
            else None
        )
        if func in ("OrderedDict", "dict"):
            pairs = _literal(path, node.args[0]) if node.args else {}
            try:
                out = dict(pairs)
            except (TypeError, ValueError):
                raise ParameterError(
                    f"{path}: line {node.lineno}: {func}(...) needs a list of (name, value) pairs"
                ) from None
            for kw in node.keywords:
                if kw.arg is None:
                    raise ParameterError(f"{path}: line {node.lineno}: '**' is not allowed in gru4rec_params")
                out[kw.arg] = _literal(path, kw.value)
            return out
    raise ParameterError(
        f"{path}: line {node.lineno}: gru4rec_params must be an OrderedDict([...]), dict(...) or "
        f"{{...}} of literal values (the file is read as data and never executed)"
    )
