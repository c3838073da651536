"""Content-based format detection and header dispatch."""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from pytest_corrsource.formats import FormatError
from pytest_corrsource.formats.detect import detect_format, read_weights_header


def gguf_minimal() -> bytes:
    key = b"general.architecture"
    value = b"llama"
    return (
        b"GGUF"
        + struct.pack("<IQQ", 3, 0, 1)
        + struct.pack("<Q", len(key))
        + key
        + struct.pack("<I", 8)
        + struct.pack("<Q", len(value))
        + value
    )


def test_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"  # extension deliberately misleading
    save_file({"w": np.zeros(3, np.float32)}, str(path))
    assert detect_format(path) == "safetensors"
    header = read_weights_header(path, tmp_path)
    assert header.format == "safetensors"
    assert header.tensors[0].name == "w"


def test_pickle_renamed_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    assert detect_format(path) == "pickle"
    header = read_weights_header(path, tmp_path)
    assert header.format == "pickle"
    assert header.warnings == (
        "pickle-based format: structure not validated here; see the safety scan",
    )


@pytest.mark.parametrize("protocol", [0, 1])
def test_protocol_0_1_pickle_without_magic(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(pickle.dumps({"a": [1, 2]}, protocol=protocol))
    assert detect_format(path) == "pickle"


def test_cve_2025_10155_payload(tmp_path: Path) -> None:
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(b"cos\nsystem\n(S'echo hi'\ntR.")
    assert detect_format(path) == "pickle"


def test_torch_legacy_magic(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + b"\xff" * 10)
    assert detect_format(path) == "pickle"


def test_gguf(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    path.write_bytes(gguf_minimal())
    assert detect_format(path) == "gguf"
    assert read_weights_header(path, tmp_path).metadata == {"general.architecture": "llama"}


def test_npy_and_npz(tmp_path: Path) -> None:
    npy = tmp_path / "w.npy"
    np.save(npy, np.zeros((2, 2)))
    assert detect_format(npy) == "npy"
    assert read_weights_header(npy, tmp_path).tensors[0].shape == (2, 2)
    npz = tmp_path / "w.npz"
    np.savez_compressed(npz, a=np.zeros(2))
    assert detect_format(npz) == "npz"
    assert read_weights_header(npz, tmp_path).tensors[0].name == "a"


def test_torch_zip_and_other_zip(tmp_path: Path) -> None:
    torch_path = tmp_path / "model.bin"
    with zipfile.ZipFile(torch_path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))
        archive.writestr("archive/version", "3\n")
    assert detect_format(torch_path) == "torch-zip"
    assert read_weights_header(torch_path, tmp_path).format == "torch-zip"
    other = tmp_path / "bundle.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("readme.txt", "hi")
    assert detect_format(other) == "opaque"


def test_corrupt_zip_is_opaque(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    path.write_bytes(b"PK\x03\x04garbage")
    assert detect_format(path) == "opaque"


def test_index(tmp_path: Path) -> None:
    save_file({"w": np.zeros(2, np.float32)}, str(tmp_path / "model-00001-of-00001.safetensors"))
    path = tmp_path / "model.safetensors.index.json"
    path.write_text(
        json.dumps(
            {"metadata": {"total_size": 8}, "weight_map": {"w": "model-00001-of-00001.safetensors"}}
        )
    )
    assert detect_format(path) == "safetensors-index"
    header = read_weights_header(path, tmp_path)
    assert header.format == "safetensors-index"
    assert [t.name for t in header.tensors] == ["w"]
    renamed = tmp_path / "weights.json"
    renamed.write_text(path.read_text())
    assert detect_format(renamed) == "safetensors-index"


def test_index_by_name_only(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors.index.json"
    path.write_text('{"metadata": {}}')
    assert detect_format(path) == "safetensors-index"
    with pytest.raises(FormatError, match="index has no `weight_map`"):
        read_weights_header(path, tmp_path)


def test_opaque(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.model"
    path.write_bytes(b"\x0a\x0b sentencepiece-ish bytes")
    assert detect_format(path) == "opaque"
    header = read_weights_header(path, tmp_path)
    assert header.format == "opaque"
    assert header.warnings == (
        "unknown format: the file is present and hashed but its structure is unverified",
    )
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert detect_format(empty) == "opaque"


def test_corrupt_safetensors_raises_through_dispatch(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(path))
    path.write_bytes(path.read_bytes() + b"\x00\x00")
    with pytest.raises(FormatError, match="file not fully covered"):
        read_weights_header(path, tmp_path)


def test_unreadable(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="cannot read the file"):
        detect_format(tmp_path / "absent")
    with pytest.raises(FormatError, match="cannot read the file"):
        read_weights_header(tmp_path, tmp_path)  # a directory


def test_truncated_inside_the_header_is_safetensors_and_invalid(tmp_path: Path) -> None:
    from pytest_corrsource.formats import FormatError
    from pytest_corrsource.formats.detect import detect_format, read_weights_header

    header = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    path = tmp_path / "cut.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header[:20])
    assert detect_format(path) == "safetensors"
    with pytest.raises(FormatError, match="header length"):
        read_weights_header(path, tmp_path)


def test_legacy_torch_tar_is_pickle_based(tmp_path: Path) -> None:
    import io
    import pickle
    import tarfile

    path = tmp_path / "old.pt"
    with tarfile.open(path, mode="w:") as archive:
        for name in ("storages", "tensors", "pickle"):
            data = pickle.dumps(0, protocol=2)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    assert detect_format(path) == "pickle"
    other = tmp_path / "other.tar"
    with tarfile.open(other, mode="w:") as archive:
        info = tarfile.TarInfo("readme")
        archive.addfile(info, io.BytesIO(b""))
    assert detect_format(other) == "opaque"
