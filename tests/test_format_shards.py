"""Sharded safetensors checkpoints: a real 3-shard checkpoint and every failure kind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from pytest_corrsource.formats import FormatError
from pytest_corrsource.formats.shards import (
    ShardedIndex,
    read_safetensors_index,
    shard_paths,
    verify_sharded_checkpoint,
)

SHARDS: dict[str, dict[str, tuple[int, ...]]] = {
    "model-00001-of-00003.safetensors": {"embed": (4, 8), "layer.0.w": (8, 8)},
    "model-00002-of-00003.safetensors": {"layer.1.w": (8, 8), "layer.1.b": (8,)},
    "model-00003-of-00003.safetensors": {"head": (8, 2)},
}


def make_checkpoint(root: Path, *, total_size: int | str | None = "auto") -> Path:
    weight_map: dict[str, str] = {}
    total = 0
    for shard, tensors in SHARDS.items():
        arrays = {name: np.zeros(shape, dtype=np.float32) for name, shape in tensors.items()}
        save_file(arrays, str(root / shard))
        for name, array in arrays.items():
            weight_map[name] = shard
            total += array.nbytes
    metadata: dict[str, object] = {"total_parameters": total // 4}
    if total_size == "auto":
        metadata["total_size"] = total
    elif total_size is not None:
        metadata["total_size"] = total_size
    index = root / "model.safetensors.index.json"
    write_index(index, {"metadata": metadata, "weight_map": weight_map})
    return index


def write_index(path: Path, content: object) -> None:
    path.write_text(json.dumps(content, indent=2, sort_keys=True), encoding="utf-8")


def load(path: Path) -> dict[str, object]:
    result: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return result


def test_real_checkpoint_verifies(tmp_path: Path) -> None:
    index_path = make_checkpoint(tmp_path)
    index = read_safetensors_index(index_path, tmp_path)
    assert isinstance(index, ShardedIndex)
    assert index.shards == tuple(sorted(SHARDS))
    assert index.total_size == (32 + 64 + 64 + 8 + 16) * 4
    assert shard_paths(index) == tuple(tmp_path / name for name in sorted(SHARDS))
    header = verify_sharded_checkpoint(index)
    assert header.format == "safetensors-index"
    names = [tensor.name for tensor in header.tensors]
    assert names == sorted(names)
    assert set(names) == {name for tensors in SHARDS.values() for name in tensors}
    assert header.warnings == ()
    assert header.metadata["total_size"] == str(index.total_size)


def test_checkpoint_in_subfolder(tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    index_path = make_checkpoint(folder)
    index = read_safetensors_index(index_path, tmp_path)
    assert verify_sharded_checkpoint(index).format == "safetensors-index"


def test_missing_total_size_is_a_warning(tmp_path: Path) -> None:
    index = read_safetensors_index(make_checkpoint(tmp_path, total_size=None), tmp_path)
    header = verify_sharded_checkpoint(index)
    assert header.warnings == (
        "index has no metadata.total_size; the tensor byte total is unchecked",
    )


def test_total_size_mismatch(tmp_path: Path) -> None:
    index = read_safetensors_index(make_checkpoint(tmp_path, total_size=12345), tmp_path)
    with pytest.raises(FormatError) as info:
        verify_sharded_checkpoint(index)
    assert str(info.value) == (
        "sharded checkpoint is inconsistent: metadata.total_size is 12345 but the shards' "
        "tensors hold 736 bytes."
    )


def test_missing_shard(tmp_path: Path) -> None:
    index_path = make_checkpoint(tmp_path)
    (tmp_path / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(FormatError) as info:
        verify_sharded_checkpoint(read_safetensors_index(index_path, tmp_path))
    assert "missing shards: `model-00002-of-00003.safetensors`" in str(info.value)


def test_invalid_shard(tmp_path: Path) -> None:
    index_path = make_checkpoint(tmp_path)
    shard = tmp_path / "model-00003-of-00003.safetensors"
    shard.write_bytes(shard.read_bytes() + b"junk")
    with pytest.raises(FormatError) as info:
        verify_sharded_checkpoint(read_safetensors_index(index_path, tmp_path))
    message = str(info.value)
    assert "shard `model-00003-of-00003.safetensors` is invalid: file not fully covered" in message
    assert "(4 trailing bytes)" in message


def test_tensor_absent_from_map(tmp_path: Path) -> None:
    index_path = make_checkpoint(tmp_path)
    content = load(index_path)
    weight_map = content["weight_map"]
    assert isinstance(weight_map, dict)
    del weight_map["layer.0.w"]
    write_index(index_path, content)
    with pytest.raises(FormatError) as info:
        verify_sharded_checkpoint(read_safetensors_index(index_path, tmp_path))
    assert str(info.value) == (
        "sharded checkpoint is inconsistent: shard `model-00001-of-00003.safetensors` holds "
        "tensors absent from weight_map: `layer.0.w`."
    )


def test_unreferenced_numbered_shard_is_still_read(tmp_path: Path) -> None:
    index_path = make_checkpoint(tmp_path)
    content = load(index_path)
    weight_map = content["weight_map"]
    assert isinstance(weight_map, dict)
    del weight_map["head"]  # now nothing references shard 3, but the file is there
    write_index(index_path, content)
    with pytest.raises(FormatError) as info:
        verify_sharded_checkpoint(read_safetensors_index(index_path, tmp_path))
    assert (
        "shard `model-00003-of-00003.safetensors` holds tensors absent from weight_map: `head`"
        in str(info.value)
    )


def test_numbering_gap(tmp_path: Path) -> None:
    index_path = make_checkpoint(tmp_path)
    (tmp_path / "model-00003-of-00003.safetensors").unlink()
    content = load(index_path)
    weight_map = content["weight_map"]
    assert isinstance(weight_map, dict)
    del weight_map["head"]
    metadata = content["metadata"]
    assert isinstance(metadata, dict)
    metadata["total_size"] -= 64
    write_index(index_path, content)
    with pytest.raises(FormatError) as info:
        verify_sharded_checkpoint(read_safetensors_index(index_path, tmp_path))
    assert str(info.value) == (
        "sharded checkpoint is inconsistent: shard numbering is incomplete: "
        "`model-00003-of-00003.safetensors` neither referenced nor present."
    )


def test_map_tensor_missing_from_shard(tmp_path: Path) -> None:
    index_path = make_checkpoint(tmp_path)
    content = load(index_path)
    weight_map = content["weight_map"]
    assert isinstance(weight_map, dict)
    weight_map["ghost"] = "model-00001-of-00003.safetensors"
    write_index(index_path, content)
    with pytest.raises(FormatError) as info:
        verify_sharded_checkpoint(read_safetensors_index(index_path, tmp_path))
    assert "weight_map tensors missing from `model-00001-of-00003.safetensors`: `ghost`" in str(
        info.value
    )


def test_tensor_in_other_shard_than_mapped(tmp_path: Path) -> None:
    index_path = make_checkpoint(tmp_path)
    content = load(index_path)
    weight_map = content["weight_map"]
    assert isinstance(weight_map, dict)
    weight_map["head"] = "model-00001-of-00003.safetensors"
    write_index(index_path, content)
    with pytest.raises(FormatError) as info:
        verify_sharded_checkpoint(read_safetensors_index(index_path, tmp_path))
    assert str(info.value) == (
        "sharded checkpoint is inconsistent: tensors in a shard other than the one weight_map "
        "names: `head` (in `model-00003-of-00003.safetensors`, the map says "
        "`model-00001-of-00003.safetensors`)."
    )


def test_tensor_in_two_shards(tmp_path: Path) -> None:
    index_path = make_checkpoint(tmp_path)
    save_file(
        {
            "head": np.zeros((8, 2), dtype=np.float32),
            "layer.1.w": np.zeros((8, 8), np.float32),
            "layer.1.b": np.zeros(8, np.float32),
        },
        str(tmp_path / "model-00002-of-00003.safetensors"),
    )
    with pytest.raises(FormatError) as info:
        verify_sharded_checkpoint(read_safetensors_index(index_path, tmp_path))
    assert (
        "tensors present in two shards: `head` (in `model-00002-of-00003.safetensors` and "
        "`model-00003-of-00003.safetensors`)" in str(info.value)
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "index is not a JSON object."),
        ("{nope", "index is not valid JSON"),
        ('{"metadata": {}}', "index has no `weight_map`."),
        ('{"weight_map": []}', "index `weight_map` is not an object."),
        ('{"weight_map": {"a": 1}}', "weight_map value for tensor `a` is not a string."),
        ('{"weight_map": {"a": "../x.safetensors"}}', "is not a plain relative path"),
        ('{"weight_map": {"a": "/etc/x.safetensors"}}', "is not a plain relative path"),
        ('{"weight_map": {"a": "C:\\\\x.safetensors"}}', "is not a plain relative path"),
        ('{"weight_map": {"a": "sub\\\\..\\\\..\\\\x.safetensors"}}', "is not a plain relative"),
        ('{"weight_map": {"a": "pytorch_model.bin"}}', "does not end in `.safetensors`"),
        ('{"weight_map": {"a": ""}}', "empty shard file name"),
        ('{"weight_map": {"a": "x.safetensors"}, "weight_map": {}}', "duplicate JSON key"),
        (
            '{"weight_map": {"a": "x.safetensors"}, "metadata": {"total_size": "1"}}',
            "total_size` is not a non-negative integer",
        ),
        ('{"weight_map": {}, "metadata": []}', "index `metadata` is not an object."),
    ],
)
def test_bad_index(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "model.safetensors.index.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(FormatError) as info:
        read_safetensors_index(path, tmp_path)
    assert message in str(info.value)


def test_index_too_large(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors.index.json"
    path.write_text('{"weight_map": {}}' + " " * 100, encoding="utf-8")
    with pytest.raises(FormatError, match=r"index is 118 bytes, over the 64-byte limit\."):
        read_safetensors_index(path, tmp_path, max_index_bytes=64)


def test_shard_symlink_escaping_repo(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    outside = tmp_path / "outside.safetensors"
    save_file({"a": np.zeros(1, np.float32)}, str(outside))
    os.symlink(outside, repo / "model-00001-of-00001.safetensors")
    path = repo / "model.safetensors.index.json"
    write_index(path, {"weight_map": {"a": "model-00001-of-00001.safetensors"}})
    with pytest.raises(FormatError, match="resolves outside the repository"):
        read_safetensors_index(path, repo)


def test_float_total_size_accepted(tmp_path: Path) -> None:
    index_path = make_checkpoint(tmp_path)
    content = load(index_path)
    metadata = content["metadata"]
    assert isinstance(metadata, dict)
    metadata["total_size"] = float(metadata["total_size"])
    write_index(index_path, content)
    index = read_safetensors_index(index_path, tmp_path)
    assert index.total_size == 736
    verify_sharded_checkpoint(index)
