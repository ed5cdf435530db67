"""The model file: safetensors (tensors only) with a JSON header; loading it cannot execute code.

The item map is stored as tensors, not in the JSON header, so that millions of ids do not bloat
it: integer ids as one int64 tensor, string ids as their UTF-8 bytes plus offsets.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from .errors import DataError

FORMAT = "gru4rec-safetensors"
FORMAT_VERSION = 1
_HEADER_KEY = "gru4rec"
_ITEM_INT = "__item_ids_int64"
_ITEM_BYTES = "__item_ids_utf8"
_ITEM_OFFSETS = "__item_ids_offsets"


def _encode_items(item_ids) -> dict[str, torch.Tensor]:
    ids = np.asarray(item_ids)
    if ids.dtype.kind in "iu":
        return {_ITEM_INT: torch.from_numpy(ids.astype(np.int64))}
    encoded = [str(x).encode("utf-8") for x in ids]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in encoded])
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy() if offsets[-1] else np.zeros(0, dtype=np.uint8)
    return {_ITEM_BYTES: torch.from_numpy(blob), _ITEM_OFFSETS: torch.from_numpy(offsets)}


def _decode_items(tensors) -> np.ndarray:
    if _ITEM_INT in tensors:
        return tensors.pop(_ITEM_INT).numpy()
    blob = tensors.pop(_ITEM_BYTES).numpy().tobytes()
    offsets = tensors.pop(_ITEM_OFFSETS).numpy()
    return np.array([blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(len(offsets) - 1)], dtype=object)


def save_model_file(path, header: dict, tensors: dict[str, torch.Tensor], item_ids) -> None:
    """Write atomically: a temporary file in the same directory, renamed into place."""
    from safetensors.torch import save_file
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a model file path")
    if not path.parent.exists():
        raise DataError(f"{path.parent}: directory does not exist")
    meta = dict(header, format=FORMAT, format_version=FORMAT_VERSION)
    data = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    data.update(_encode_items(item_ids))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(data, tmp, metadata={_HEADER_KEY: json.dumps(meta)})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_model_file(path, device="cpu"):
    """Returns (header, tensors on `device`, item ids)."""
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
    except Exception as e:
        raise DataError(f"{path}: not a GRU4Rec model file (cannot read it as safetensors: "
                        f"{str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    try:
        header = json.loads(meta[_HEADER_KEY])
    except (KeyError, ValueError):
        raise DataError(f"{path}: not a GRU4Rec model file (no GRU4Rec header)") from None
    if header.get("format") != FORMAT:
        raise DataError(f"{path}: not a GRU4Rec model file (format {header.get('format')!r})")
    if header.get("format_version", 0) > FORMAT_VERSION:
        raise DataError(f"{path}: model file format version {header['format_version']} is newer than this "
                        f"library supports ({FORMAT_VERSION}); upgrade gru4rec")
    try:
        item_ids = _decode_items(tensors)
    except KeyError:
        raise DataError(f"{path}: model file has no item map") from None
    dev = torch.device(device)
    return header, {k: v.to(dev) for k, v in tensors.items()}, item_ids
