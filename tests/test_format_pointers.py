"""Git LFS, git-annex and DVC pointer detection."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from pytest_corrsource.formats.pointers import Pointer, detect_pointer

OID = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393"
LFS = f"version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\nsize 12345\n"
ANNEX_KEY = "SHA256E-s1048576--" + "ab" * 32 + ".safetensors"


def test_lfs_pointer(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    path = tmp_path / "weights" / "model.safetensors"
    path.write_text(LFS, encoding="utf-8")
    assert detect_pointer(path, tmp_path) == Pointer(
        kind="git-lfs",
        oid=f"sha256:{OID}",
        size=12345,
        fetch_hint="git lfs pull --include weights/model.safetensors",
    )


def test_lfs_pointer_with_extension_lines(tmp_path: Path) -> None:
    path = tmp_path / "m.bin"
    path.write_text(
        "version https://git-lfs.github.com/spec/v1\next-0-foo sha256:"
        + "0" * 64
        + f"\noid sha256:{OID}\nsize 7\n",
        encoding="utf-8",
    )
    pointer = detect_pointer(path, tmp_path)
    assert pointer is not None
    assert (pointer.oid, pointer.size) == (f"sha256:{OID}", 7)


def test_malformed_lfs_pointer_still_a_pointer(tmp_path: Path) -> None:
    path = tmp_path / "m.bin"
    path.write_text("version https://git-lfs.github.com/spec/v1\noid md5:abc\n", encoding="utf-8")
    pointer = detect_pointer(path, tmp_path)
    assert pointer is not None
    assert (pointer.kind, pointer.oid, pointer.size) == ("git-lfs", None, None)


def test_large_file_with_lfs_prefix_is_not_a_pointer(tmp_path: Path) -> None:
    path = tmp_path / "m.bin"
    path.write_bytes(LFS.encode() + bytes(2000))
    assert detect_pointer(path, tmp_path) is None


def test_real_file_is_not_a_pointer(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"w": np.zeros(4, np.float32)}, str(path))
    assert detect_pointer(path, tmp_path) is None


def test_missing_file_without_dvc_is_none(tmp_path: Path) -> None:
    assert detect_pointer(tmp_path / "absent.bin", tmp_path) is None


def test_dangling_annex_symlink(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    target = f"../.git/annex/objects/Xk/9m/{ANNEX_KEY}/{ANNEX_KEY}"
    os.symlink(target, path)
    assert not path.exists()
    assert detect_pointer(path, tmp_path) == Pointer(
        kind="git-annex",
        oid="sha256:" + "ab" * 32,
        size=1048576,
        fetch_hint="git annex get model.safetensors",
    )


def test_unlocked_annex_pointer_file(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_text(f"/annex/objects/{ANNEX_KEY}\n", encoding="utf-8")
    pointer = detect_pointer(path, tmp_path)
    assert pointer is not None
    assert pointer.kind == "git-annex"
    assert pointer.size == 1048576
    assert pointer.fetch_hint == "git annex get model.bin"


def test_annex_wormkey_has_no_oid(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    os.symlink(
        ".git/annex/objects/aa/bb/WORM-s10-m1700000000--model.bin/WORM-s10-m1700000000--model.bin",
        path,
    )
    pointer = detect_pointer(path, tmp_path)
    assert pointer is not None
    assert (pointer.kind, pointer.oid, pointer.size) == ("git-annex", None, 10)


def test_ordinary_symlink_is_not_a_pointer(tmp_path: Path) -> None:
    real = tmp_path / "real.bin"
    real.write_bytes(b"x" * 10)
    os.symlink("real.bin", tmp_path / "link.bin")
    assert detect_pointer(tmp_path / "link.bin", tmp_path) is None


DVC = (
    "outs:\n"
    "- md5: 0123456789abcdef0123456789ABCDEF\n"
    "  size: 2048\n"
    "  hash: md5\n"
    "  path: model.safetensors\n"
)


def test_dvc_missing_output(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors.dvc").write_text(DVC, encoding="utf-8")
    assert detect_pointer(tmp_path / "model.safetensors", tmp_path) == Pointer(
        kind="dvc",
        oid="md5:0123456789abcdef0123456789abcdef",
        size=2048,
        fetch_hint="dvc pull model.safetensors",
        source="model.safetensors.dvc",
    )


def test_dvc_output_present_with_right_size(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors.dvc").write_text(DVC, encoding="utf-8")
    (tmp_path / "model.safetensors").write_bytes(bytes(2048))
    assert detect_pointer(tmp_path / "model.safetensors", tmp_path) is None


def test_dvc_output_present_with_other_content_is_real_content(tmp_path: Path) -> None:
    # DVC leaves no placeholder: a present file is real content, and whether it is the content
    # DVC recorded is CS104's question (tests/test_dvc_digests.py), not a pointer.
    (tmp_path / "model.safetensors.dvc").write_text(DVC, encoding="utf-8")
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert detect_pointer(tmp_path / "model.safetensors", tmp_path) is None


def test_dvc_file_itself(tmp_path: Path) -> None:
    path = tmp_path / "data" / "weights.dvc"
    path.parent.mkdir()
    path.write_text(DVC.replace("size: 2048\n", ""), encoding="utf-8")
    assert detect_pointer(path, tmp_path) == Pointer(
        kind="dvc",
        oid="md5:0123456789abcdef0123456789abcdef",
        size=None,
        fetch_hint="dvc pull data/weights.dvc",
    )


@pytest.mark.parametrize("content", ["hello: world\n", "outs:\n- foo: bar\n"])
def test_non_dvc_yaml(tmp_path: Path, content: str) -> None:
    path = tmp_path / "x.dvc"
    path.write_text(content, encoding="utf-8")
    assert detect_pointer(path, tmp_path) is None
