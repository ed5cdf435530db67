"""The model file: safetensors (tensors only) with a JSON header; loading it cannot execute code.

The item map is stored as tensors, not in the JSON header, so that millions of ids do not bloat
it: integer ids as one int64 tensor, string ids as their UTF-8 bytes plus offsets.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .errors import DataError, GRU4RecError, first_line
from .fileio import atomic_output

FORMAT = "gru4rec-safetensors"
FORMAT_VERSION = 1
_HEADER_KEY = "gru4rec"
_RESERVED = "__item_ids"
_ITEM_INT = "__item_ids_int64"
_ITEM_BYTES = "__item_ids_utf8"
_ITEM_OFFSETS = "__item_ids_offsets"


def _encode_items(item_ids) -> dict[str, torch.Tensor]:
    ids = np.asarray(item_ids)
    if ids.ndim != 1:
        raise DataError(f"item_ids must be one-dimensional, got shape {ids.shape}")
    if ids.dtype.kind in "iu":
        if ids.dtype.kind == "u" and len(ids) and ids.max() > np.iinfo(np.int64).max:
            raise DataError("unsigned item ids above 2**63-1 cannot be stored in a model file (int64)")
        return {_ITEM_INT: torch.from_numpy(ids.astype(np.int64))}
    encoded = [str(x).encode("utf-8") for x in ids]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
    return {_ITEM_BYTES: torch.from_numpy(blob), _ITEM_OFFSETS: torch.from_numpy(offsets)}


def _decode_items(tensors) -> np.ndarray:
    if _ITEM_INT in tensors:
        return tensors.pop(_ITEM_INT).numpy()
    blob = tensors.pop(_ITEM_BYTES).numpy().tobytes()
    offsets = tensors.pop(_ITEM_OFFSETS).numpy()
    if len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(blob) or np.any(np.diff(offsets) < 0):
        raise ValueError("item id offsets do not match the id bytes")
    return np.array([blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])], dtype=object)


def _cpu_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, and no two entries sharing memory (safetensors refuses shared storage)."""
    out, seen = {}, set()
    for name, t in tensors.items():
        if name.startswith(_RESERVED):
            raise ValueError(f"tensor name '{name}' is reserved for the item map")
        t = t.detach().to("cpu").contiguous()
        key = t.untyped_storage().data_ptr() if t.numel() else None
        if key in seen:
            t = t.clone()
        elif key is not None:
            seen.add(key)
        out[name] = t
    return out


def save_model_file(path, header: dict, tensors: dict[str, torch.Tensor], item_ids) -> None:
    """Write atomically (a temporary file in the same directory, renamed into place)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a model file path")
    if not path.parent.exists():
        raise DataError(f"{path}: directory {path.parent} does not exist")
    meta = dict(header, format=FORMAT, format_version=FORMAT_VERSION)
    data = _cpu_tensors(tensors)
    data.update(_encode_items(item_ids))
    try:
        with atomic_output(path) as tmp:
            save_file(data, tmp, metadata={_HEADER_KEY: json.dumps(meta)})
    except OSError as e:
        raise DataError(f"{path}: cannot write the model file ({e.strerror or e})") from None


def _check_header(path, header: dict, n_items: int) -> None:
    """The header's fields that loading relies on: a one-line DataError naming the field."""
    from .params import validate_params

    params = header.get("params")
    if not isinstance(params, dict):
        found = "no 'params'" if params is None else f"'params' of type {type(params).__name__}"
        raise DataError(f"{path}: model file header has {found}, expected a mapping of the training parameters")
    try:
        validate_params(params)
    except GRU4RecError as e:
        raise DataError(f"{path}: model file header has invalid parameters ({e})") from None
    stored = header.get("n_items", n_items)
    if isinstance(stored, bool) or stored != n_items:
        raise DataError(f"{path}: model file header says n_items={stored!r}, but its item map holds {n_items} items")
    seed = header.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DataError(f"{path}: model file header has seed={seed!r}, expected a non-negative integer")
    if not isinstance(header.get("history", []), list):
        raise DataError(f"{path}: model file header has a 'history' that is not a list")


def load_model_file(path, device="cpu"):
    """Returns (header, tensors on `device`, item ids as an int64 or object (str) array)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: model file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a model file")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for truncated or foreign files
        raise DataError(
            f"{path} is not a GRU4Rec model file (cannot read it as safetensors: {first_line(e)})"
        ) from None
    try:
        header = json.loads(meta[_HEADER_KEY])
    except (KeyError, ValueError):
        raise DataError(f"{path} is not a GRU4Rec model file (a safetensors file without a GRU4Rec header)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise DataError(f"{path} is not a GRU4Rec model file (format {found!r}, expected {FORMAT!r})")
    version = header.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise DataError(f"{path}: model file has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise DataError(
            f"{path}: model file format version {version} is newer than this library reads "
            f"({FORMAT_VERSION}); upgrade gru4rec"
        )
    try:
        item_ids = _decode_items(tensors)
    except (KeyError, ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: model file has no valid item map ({e})") from None
    _check_header(path, header, len(item_ids))
    dev = torch.device(device)
    return header, {k: v.to(dev) for k, v in tensors.items()}, item_ids
