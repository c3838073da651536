"""torch < 0.4's tar checkpoints: read without unpickling, modified in place.

No torch release writes this format any more, so the files are built by hand, byte for byte as
torch/serialization.py ``legacy_load`` reads them; where torch is installed (the ``real``
extra) ``torch.load`` is the oracle, for the hand-built file and for its modified copy.
"""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pytest_corrsource.formats import FormatError
from pytest_corrsource.formats.detect import detect_format
from pytest_corrsource.formats.pickle_values import UnsupportedFeature
from pytest_corrsource.formats.tensors import open_tensors, read_schema
from pytest_corrsource.formats.torch_zip import read_torch_tar
from pytest_corrsource.perturb import PerturbUnsupported, perturb_weights


def global_op(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def header_pickle(key: int, middle: bytes, cls: tuple[str, str]) -> bytes:
    """``(key, middle, module.name)`` pickled with protocol 2, the class as a GLOBAL."""
    return (
        b"\x80\x02J" + struct.pack("<i", key) + middle + global_op(*cls) + b"\x87."  # TUPLE3, STOP
    )


def text(value: str) -> bytes:
    raw = value.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


@dataclass
class Storage:
    key: int
    cls: str  # "FloatStorage" …
    data: np.ndarray


@dataclass
class Tensor:
    key: int
    storage: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int = 0


class Ref:
    def __init__(self, key: int | str) -> None:
        self.key = key


class _RefPickler(pickle.Pickler):
    def persistent_id(self, obj: object) -> object:
        return str(obj.key) if isinstance(obj, Ref) else None


def torch_tar(
    storages: list[Storage],
    tensors: list[Tensor],
    obj: object,
    views: list[tuple[int, int, int, int]] | None = None,
    *,
    storage_bytes: bytes | None = None,
) -> bytes:
    """A tar checkpoint as legacy_load reads it: ``storages``, ``tensors``, ``pickle``."""
    out = io.BytesIO()
    out.write(pickle.dumps(len(storages), protocol=2))
    for s in storages:
        out.write(header_pickle(s.key, text("cpu"), ("torch", s.cls)))
        out.write(struct.pack("<q", s.data.size))
        out.write(s.data.astype(s.data.dtype.newbyteorder("<")).tobytes())
    out.write(pickle.dumps(views or [], protocol=2))
    tensor_bytes = io.BytesIO()
    tensor_bytes.write(pickle.dumps(len(tensors), protocol=2))
    for t in tensors:
        tensor_bytes.write(
            header_pickle(t.key, b"J" + struct.pack("<i", t.storage), ("torch", "FloatTensor"))
        )
        tensor_bytes.write(struct.pack("<i", len(t.shape)) + b"\0" * 4)
        tensor_bytes.write(struct.pack(f"<{len(t.shape)}q", *t.shape))
        tensor_bytes.write(struct.pack(f"<{len(t.stride)}q", *t.stride))
        tensor_bytes.write(struct.pack("<q", t.offset))
    obj_bytes = io.BytesIO()
    _RefPickler(obj_bytes, protocol=2).dump(obj)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:", format=tarfile.PAX_FORMAT) as archive:
        members = [
            ("sys_info", pickle.dumps({"little_endian": True}, protocol=2)),
            ("storages", out.getvalue() if storage_bytes is None else storage_bytes),
            ("tensors", tensor_bytes.getvalue()),
            ("pickle", obj_bytes.getvalue()),
        ]
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


RNG = np.random.default_rng(7)
WEIGHT = RNG.standard_normal(12).astype(np.float32)
HALF = RNG.standard_normal(4).astype(np.float16)
STEPS = np.arange(5, dtype=np.int64)
STORAGES = [
    Storage(101, "FloatStorage", WEIGHT),
    Storage(102, "HalfStorage", HALF),
    Storage(103, "LongStorage", STEPS),
]
TENSORS = [
    Tensor(1, 101, (3, 4), (4, 1)),
    Tensor(2, 101, (4, 3), (1, 4)),  # the transposed view of the same storage
    Tensor(3, 102, (2,), (1,), offset=2),
    Tensor(4, 103, (5,), (1,)),
    Tensor(5, 104, (2,), (1,)),  # on a view: elements 6..9 of storage 101
]
VIEWS = [(104, 101, 6, 4)]
OBJ = {
    "model": {"fc.weight": Ref(1), "fc.weight_t": Ref(2), "norm": Ref(3), "view": Ref(5)},
    "steps": Ref(4),
    "epoch": 3,
}


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "old.pt"
    path.write_bytes(torch_tar(STORAGES, TENSORS, OBJ, VIEWS))
    return path


def test_schema_values_and_views(checkpoint: Path) -> None:
    assert detect_format(checkpoint) == "pickle"
    assert read_schema(checkpoint) == {
        "model.fc.weight": ("F32", (3, 4)),
        "model.fc.weight_t": ("F32", (4, 3)),
        "model.norm": ("F16", (2,)),
        "model.view": ("F32", (2,)),
        "steps": ("I64", (5,)),
    }
    tensors = open_tensors(checkpoint)
    assert tensors.format == "torch-tar"
    np.testing.assert_array_equal(tensors.values("model.fc.weight"), WEIGHT.reshape(3, 4))
    np.testing.assert_array_equal(tensors.values("model.fc.weight_t"), WEIGHT.reshape(3, 4).T)
    np.testing.assert_array_equal(tensors.values("model.norm"), HALF[2:4])
    np.testing.assert_array_equal(tensors.values("model.view"), WEIGHT[6:8])
    np.testing.assert_array_equal(tensors.values("steps"), STEPS)


def test_the_modified_copy_differs_only_in_float_storages(checkpoint: Path, tmp_path: Path) -> None:
    dst = tmp_path / "modified.pt"
    result = perturb_weights(checkpoint, dst)
    assert result.format == "torch-tar"
    assert result.changed == ("model.fc.weight", "model.fc.weight_t", "model.norm", "model.view")
    assert result.unchanged == ("steps",)
    assert result.values_total == 12 + 12 + 2 + 2 + 5
    assert read_schema(dst) == read_schema(checkpoint)
    archive = read_torch_tar(checkpoint)
    before, after = checkpoint.read_bytes(), dst.read_bytes()
    assert len(before) == len(after)
    changed = np.zeros(len(before), dtype=bool)
    for storage in archive.storages.values():
        if storage.dtype in ("F32", "F16"):
            changed[storage.data_offset : storage.data_offset + storage.nbytes] = True
    a, b = np.frombuffer(before, np.uint8), np.frombuffer(after, np.uint8)
    np.testing.assert_array_equal(a[~changed], b[~changed])  # headers, pickles, the ints
    old, new = open_tensors(checkpoint), open_tensors(dst)
    for name in result.changed:
        assert np.all(old.values(name) != new.values(name)), name
    with tarfile.open(dst) as modified:  # still a tar (its checksums cover headers only)
        assert modified.getnames() == ["sys_info", "storages", "tensors", "pickle"]


def corrupt(tmp_path: Path, **changes: object) -> Path:
    path = tmp_path / "bad.pt"
    storages = changes.get("storages", STORAGES)
    tensors = changes.get("tensors", TENSORS)
    obj = changes.get("obj", OBJ)
    raw = changes.get("storage_bytes")
    path.write_bytes(torch_tar(storages, tensors, obj, VIEWS, storage_bytes=raw))  # type: ignore[arg-type]
    return path


def test_a_storage_running_past_its_member_is_corrupt(tmp_path: Path) -> None:
    good = torch_tar(STORAGES, TENSORS, OBJ, VIEWS)
    with tarfile.open(fileobj=io.BytesIO(good)) as archive:
        member = archive.getmember("storages")
        raw = archive.extractfile(member).read()  # type: ignore[union-attr]
    count = raw.index(struct.pack("<q", 12))
    raw = raw[:count] + struct.pack("<q", 10**6) + raw[count + 8 :]
    path = corrupt(tmp_path, storage_bytes=raw)
    with pytest.raises(FormatError, match="storage 101 runs past the end of the `storages`"):
        read_torch_tar(path)
    with pytest.raises(PerturbUnsupported, match="runs past the end") as failure:
        perturb_weights(path, tmp_path / "out.pt")
    assert failure.value.format == "corrupt"
    assert not (tmp_path / "out.pt").exists()


def test_a_tensor_reaching_past_its_storage_is_corrupt(tmp_path: Path) -> None:
    path = corrupt(tmp_path, tensors=[Tensor(1, 101, (4, 4), (4, 1)), *TENSORS[1:]])
    with pytest.raises(FormatError, match="reaches past the end of storage '101'"):
        read_torch_tar(path)


def test_an_object_referring_to_an_unknown_key_is_corrupt(tmp_path: Path) -> None:
    path = corrupt(tmp_path, obj={"w": Ref(99)})
    with pytest.raises(FormatError, match="refers to key 99, which no member defines"):
        read_torch_tar(path)


def test_an_unknown_storage_class_is_a_plugin_limit(tmp_path: Path) -> None:
    path = corrupt(tmp_path, storages=[Storage(101, "FancyStorage", WEIGHT), *STORAGES[1:]])
    with pytest.raises(UnsupportedFeature, match=r"unknown storage class torch\.FancyStorage"):
        read_torch_tar(path)
    with pytest.raises(PerturbUnsupported, match="FancyStorage") as failure:
        perturb_weights(path, tmp_path / "out.pt")
    assert failure.value.format == "torch-tar"  # CS403 skips: the file is not blamed


def test_a_huge_dimension_count_is_refused_without_allocating(tmp_path: Path) -> None:
    good = torch_tar(STORAGES, TENSORS, OBJ, VIEWS)
    path = tmp_path / "bad.pt"
    with tarfile.open(fileobj=io.BytesIO(good)) as archive:
        start = archive.getmember("tensors").offset_data
    at = good.index(struct.pack("<i", 2) + b"\0" * 4 + struct.pack("<2q", 3, 4), start)
    path.write_bytes(good[:at] + struct.pack("<i", 2**30) + good[at + 4 :])
    with pytest.raises(FormatError, match="has 1073741824 dimensions"):
        read_torch_tar(path)


# ------------------------------------------------------------------------ torch as oracle


def test_torch_loads_the_hand_built_file_and_its_modified_copy(
    checkpoint: Path, tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    released = torch.load(checkpoint, weights_only=False)
    assert torch.equal(released["model"]["fc.weight"], torch.from_numpy(WEIGHT.reshape(3, 4)))
    assert released["model"]["fc.weight_t"].stride() == (1, 4)
    assert torch.equal(released["model"]["view"], torch.from_numpy(WEIGHT[6:8]))
    assert released["epoch"] == 3
    dst = tmp_path / "modified.pt"
    perturb_weights(checkpoint, dst)
    modified = torch.load(dst, weights_only=False)
    for key in ("fc.weight", "fc.weight_t", "norm", "view"):
        old, new = released["model"][key], modified["model"][key]
        assert (old.dtype, old.shape, old.stride()) == (new.dtype, new.shape, new.stride())
        assert torch.isfinite(new).all()
        assert (old != new).all(), key
    assert torch.equal(released["steps"], modified["steps"])
    # views still share their storage in the modified copy, as in the released one
    assert torch.equal(modified["model"]["fc.weight_t"], modified["model"]["fc.weight"].T)
