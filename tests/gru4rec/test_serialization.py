"""The model file: exact round trips of tensors, header and item ids; foreign or broken files are refused."""

import json
import os
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from gru4rec.errors import DataError
from gru4rec.serialization import FORMAT, FORMAT_VERSION, load_model_file, save_model_file

HEADER = {
    "params": {"layers": [8], "loss": "bpr-max", "final_act": "elu-0.5"},
    "library_version": "0.1.0",
    "history": [{"epoch": 1, "loss": 0.5}],
}


def tensors():
    g = torch.Generator().manual_seed(0)
    return {"Wx0": torch.randn(5, 24, generator=g), "By": torch.randn(5, generator=g)}


def safetensors_header(path) -> dict:
    """The raw JSON header of a safetensors file (8-byte little-endian length, then JSON)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


@pytest.mark.parametrize(
    "item_ids",
    [
        np.array([10, -3, 2**40, 0], dtype=np.int64),
        np.array([1, 2, 3], dtype=np.uint32),
        np.array(["a", "", "Árvíztűrő tükörfúrógép", "ids\twith\ttabs", "日本"], dtype=object),
        np.array(["x1", "007"]),  # numpy unicode array
    ],
)
def test_round_trip_is_exact(tmp_path, item_ids):
    path = tmp_path / "m.safetensors"
    ts = tensors()
    save_model_file(path, HEADER, ts, item_ids)
    header, loaded, ids = load_model_file(path)
    assert header == dict(HEADER, format=FORMAT, format_version=FORMAT_VERSION)
    assert set(loaded) == set(ts) and all(torch.equal(loaded[k], ts[k]) for k in ts)
    assert ids.dtype.kind == ("i" if item_ids.dtype.kind in "iu" else "O")
    assert ids.tolist() == item_ids.tolist()
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary file left behind


def test_item_ids_are_tensors_not_header_text(tmp_path):
    n = 50_000
    save_model_file(tmp_path / "i.safetensors", HEADER, tensors(), np.arange(n) * 7)
    save_model_file(
        tmp_path / "s.safetensors", HEADER, tensors(), np.array([f"item-{i}" for i in range(n)], dtype=object)
    )
    for name in ("i.safetensors", "s.safetensors"):
        raw = safetensors_header(tmp_path / name)
        assert len(json.dumps(raw)) < 2000  # the JSON header does not grow with the number of items
    assert load_model_file(tmp_path / "s.safetensors")[2][-1] == f"item-{n - 1}"


def test_views_shared_and_non_contiguous_tensors(tmp_path):
    # what a model hands over: slices of one matrix (Wy and By of WyBy), a transposed view, and
    # the same tensor under two names (shared embedding)
    wyby = torch.randn(6, 5)
    shared = torch.randn(3, 3)
    ts = {"Wy": wyby[:, :-1], "By": wyby[:, -1], "T": shared.t(), "E": shared, "E2": shared}
    save_model_file(tmp_path / "m.safetensors", HEADER, ts, np.arange(6))
    _, loaded, _ = load_model_file(tmp_path / "m.safetensors")
    assert all(torch.equal(loaded[k], ts[k]) for k in ts)


def test_load_maps_to_the_requested_device(tmp_path):
    save_model_file(tmp_path / "m.safetensors", HEADER, tensors(), np.arange(5))
    _, loaded, _ = load_model_file(tmp_path / "m.safetensors", device="cpu")
    assert all(t.device.type == "cpu" for t in loaded.values())
    if torch.cuda.is_available():  # a model saved from the GPU loads on the CPU
        gpu = {k: v.cuda() for k, v in tensors().items()}
        save_model_file(tmp_path / "g.safetensors", HEADER, gpu, np.arange(5))
        _, loaded, _ = load_model_file(tmp_path / "g.safetensors", device="cpu")
        assert all(t.device.type == "cpu" and torch.equal(t, tensors()[k]) for k, t in loaded.items())
        _, loaded, _ = load_model_file(tmp_path / "m.safetensors", device="cuda:0")
        assert all(t.device.type == "cuda" for t in loaded.values())


def test_a_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save_model_file(path, HEADER, tensors(), np.arange(5))
    before = path.read_bytes()

    def broken(*args, **kwargs):
        with open(args[1], "wb") as f:
            f.write(b"half a model")
        raise RuntimeError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        save_model_file(path, {"other": 1}, tensors(), np.arange(5))
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_saved_file_has_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        save_model_file(tmp_path / "m.safetensors", HEADER, tensors(), np.arange(5))
    finally:
        os.umask(umask)
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == 0o644


def test_bad_save_targets(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        save_model_file(tmp_path, HEADER, tensors(), np.arange(5))
    with pytest.raises(DataError, match="directory .*nodir does not exist"):
        save_model_file(tmp_path / "nodir" / "m.safetensors", HEADER, tensors(), np.arange(5))
    with pytest.raises(DataError, match="above 2\\*\\*63-1"):
        save_model_file(tmp_path / "m.safetensors", HEADER, tensors(), np.array([2**64 - 1], dtype=np.uint64))


def _expect(path, match):
    with pytest.raises(DataError, match=match) as e:
        load_model_file(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_missing_directory_truncated_and_foreign_files(tmp_path):
    _expect(tmp_path / "none.safetensors", "model file not found")
    _expect(tmp_path, "is a directory")
    good = tmp_path / "m.safetensors"
    save_model_file(good, HEADER, tensors(), np.arange(5))
    data = good.read_bytes()
    for name, content in [
        ("truncated", data[: len(data) // 2]),
        ("tiny", data[:5]),
        ("empty", b""),
        ("pickle", b"\x80\x04\x95\x00\x00"),
        ("text", b"SessionId\tItemId\tTime\n1\t2\t3\n"),
    ]:
        (tmp_path / name).write_bytes(content)
        _expect(tmp_path / name, "is not a GRU4Rec model file")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    _expect(tmp_path / "plain.safetensors", "is not a GRU4Rec model file .*without a GRU4Rec header")
    save_file(
        {"w": torch.zeros(2)},
        str(tmp_path / "other.safetensors"),
        metadata={"gru4rec": json.dumps({"format": "something-else"})},
    )
    _expect(tmp_path / "other.safetensors", "is not a GRU4Rec model file \\(format 'something-else'")


def test_newer_format_version_and_missing_item_map(tmp_path):
    meta = {"gru4rec": json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION + 1})}
    save_file(
        {"w": torch.zeros(2), "__item_ids_int64": torch.arange(2)}, str(tmp_path / "new.safetensors"), metadata=meta
    )
    _expect(tmp_path / "new.safetensors", "format version 2 is newer .*upgrade")
    meta = {"gru4rec": json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION})}
    save_file({"w": torch.zeros(2)}, str(tmp_path / "noitems.safetensors"), metadata=meta)
    _expect(tmp_path / "noitems.safetensors", "no valid item map")
