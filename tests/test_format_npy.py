"""``.npy`` / ``.npz`` header readers against files written by numpy and crafted ones."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pytest_corrsource.formats import FormatError
from pytest_corrsource.formats.npy import read_npy_header, read_npz_header


def npy_bytes(header: str, data: bytes = b"", *, version: tuple[int, int] = (1, 0)) -> bytes:
    raw = header.encode("latin-1")
    fmt = "<H" if version == (1, 0) else "<I"
    return b"\x93NUMPY" + bytes(version) + struct.pack(fmt, len(raw)) + raw + data


def header(descr: str, shape: str, fortran: str = "False") -> str:
    return f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}\n"


@pytest.mark.parametrize(
    ("array", "descr"),
    [
        (np.zeros((3, 4), dtype=np.float32), "<f4"),
        (np.arange(5, dtype=np.int64), "<i8"),
        (np.array([True, False]), "|b1"),
        (np.zeros((2, 0, 3), dtype=np.float16), "<f2"),
        (np.array(1.5), "<f8"),
        (np.zeros(3, dtype=">u2"), ">u2"),
        (np.zeros(2, dtype=np.complex64), "<c8"),
        (np.array(["ab", "c"]), "<U2"),
        (np.array([b"xyz"]), "|S3"),
        (np.zeros(2, dtype="datetime64[ns]"), "<M8[ns]"),
        (np.asfortranarray(np.zeros((2, 3), dtype=np.float32)), "<f4"),
    ],
)
def test_real_npy(tmp_path: Path, array: np.ndarray, descr: str) -> None:
    path = tmp_path / "weights.npy"
    np.save(path, array)
    result = read_npy_header(path)
    assert result.format == "npy"
    (tensor,) = result.tensors
    assert tensor.name == "weights"
    assert tensor.dtype == descr
    assert tensor.shape == array.shape
    assert tensor.nbytes == array.nbytes


def test_object_npy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(FormatError) as info:
        read_npy_header(path)
    assert str(info.value) == "object dtype: the array is a pickle."


def test_structured_with_object_field_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.npy"
    path.write_bytes(npy_bytes(header("[('a', '<f4'), ('b', '|O')]", "(1,)"), bytes(12)))
    with pytest.raises(FormatError, match=r"^object dtype: the array is a pickle\.$"):
        read_npy_header(path)


def test_structured_plain_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "s.npy"
    np.save(path, np.zeros(2, dtype=[("a", "<f4"), ("b", "<i2")]))
    with pytest.raises(FormatError, match="structured dtype is not supported"):
        read_npy_header(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x93NUMP", "missing the .npy magic"),
        (b"\x93NUMPY\x04\x00\x00\x00", ".npy version 4.0 is not supported"),
        (b"\x93NUMPY\x01\x00\x10", "header truncated inside the header length field."),
        (b"\x93NUMPY\x02\x00" + struct.pack("<I", 10001), "header length 10001 exceeds numpy's"),
        (npy_bytes(header("'<f4'", "(2,)"))[:-5], "header truncated: expected"),
        (npy_bytes("__import__('os')\n"), "header is not a Python literal."),
        (npy_bytes("[1, 2]\n"), "header is not a dict literal."),
        (npy_bytes("{'descr': '<f4', 'shape': (1,)}\n"), "header keys are {'descr', 'shape'}"),
        (npy_bytes(header("'<f4'", "(1,)", "1"), bytes(4)), "'fortran_order' is not a bool."),
        (npy_bytes(header("'<f4'", "(-1,)")), "'shape' is not a tuple of non-negative integers."),
        (npy_bytes(header("'<f4'", "[1]"), bytes(4)), "'shape' is not a tuple"),
        (npy_bytes(header("'<f4'", "(True,)"), bytes(4)), "'shape' is not a tuple"),
        (npy_bytes(header("'|O'", "(1,)"), bytes(8)), "object dtype: the array is a pickle."),
        (npy_bytes(header("'O8'", "(1,)"), bytes(8)), "object dtype"),
        (npy_bytes(header("'float32'", "(1,)"), bytes(4)), "'float32' is not a simple numpy"),
        (npy_bytes(header("'<f3'", "(1,)"), bytes(3)), "impossible item size"),
        (
            npy_bytes(header("'<f4'", "(2, 3)"), bytes(20)),
            "array data is 20 bytes but shape (2, 3) of <f4 needs 24 bytes.",
        ),
        (npy_bytes(header("'<f4'", "(2,)"), bytes(12)), "array data is 12 bytes"),
        (npy_bytes("(" * 5000 + ")" * 5000), "header is not a Python literal."),
        (npy_bytes(header("'<f4'", "(" + "9" * 5000 + ",)")), "header is not a Python literal."),
        (
            npy_bytes(header("'<f4'", "(1,)") + "\xff\n", bytes(4), version=(3, 0)),
            "version 3.0 header is not valid UTF-8",
        ),
    ],
)
def test_bad_npy(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.npy"
    path.write_bytes(content)
    with pytest.raises(FormatError) as info:
        read_npy_header(path)
    assert message in str(info.value)


def test_versions_2_and_3(tmp_path: Path) -> None:
    for version in ((2, 0), (3, 0)):
        path = tmp_path / "v.npy"
        path.write_bytes(npy_bytes(header("'<i4'", "(3,)"), bytes(12), version=version))
        assert read_npy_header(path).tensors[0].nbytes == 12


@pytest.mark.parametrize("compressed", [False, True])
def test_real_npz(tmp_path: Path, compressed: bool) -> None:
    path = tmp_path / "weights.npz"
    save = np.savez_compressed if compressed else np.savez
    save(path, w=np.zeros((4, 4), np.float32), b=np.ones(4, np.int8))
    result = read_npz_header(path)
    assert result.format == "npz"
    assert {(t.name, t.dtype, t.shape, t.nbytes) for t in result.tensors} == {
        ("w", "<f4", (4, 4), 64),
        ("b", "|i1", (4,), 4),
    }


def test_npz_positional_names(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    np.savez(path, np.zeros(2), np.zeros(3))
    assert [t.name for t in read_npz_header(path).tensors] == ["arr_0", "arr_1"]


def test_npz_object_member(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    np.savez(path, ok=np.zeros(2), bad=np.array([None], dtype=object))
    with pytest.raises(FormatError) as info:
        read_npz_header(path)
    assert str(info.value) == "member `bad.npy`: object dtype: the array is a pickle."


def make_zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_npz_member_not_npy(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    make_zip(path, {"a.npy": npy_bytes(header("'<f4'", "(1,)"), bytes(4)), "evil.pkl": b"x"})
    with pytest.raises(FormatError, match=r"^member `evil.pkl` is not a .npy array\.$"):
        read_npz_header(path)


def test_npz_size_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    make_zip(path, {"a.npy": npy_bytes(header("'<f4'", "(2,)"), bytes(4))})
    with pytest.raises(FormatError) as info:
        read_npz_header(path)
    assert str(info.value) == (
        "member `a.npy`: array data is 4 bytes but shape (2,) of <f4 needs 8 bytes."
    )


def test_npz_zip_bomb_guard(tmp_path: Path) -> None:
    path = tmp_path / "bomb.npz"
    data = npy_bytes(header("'|u1'", "(10000000,)"), bytes(10_000_000))
    make_zip(path, {"a.npy": data}, zipfile.ZIP_DEFLATED)
    with pytest.raises(FormatError, match=r"ratio over 1000: zip bomb\?"):
        read_npz_header(path)


def test_npz_bad_compression_method(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    make_zip(path, {"a.npy": npy_bytes(header("'<f4'", "(1,)"), bytes(4))}, zipfile.ZIP_BZIP2)
    with pytest.raises(FormatError, match="compression method 12"):
        read_npz_header(path)


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    path.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(FormatError, match="not a readable zip archive"):
        read_npz_header(path)


def test_truncated_zip(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    np.savez(path, a=np.zeros(100))
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(FormatError):
        read_npz_header(path)


def test_npz_member_with_empty_name(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo(""), b"x")
    with pytest.raises(FormatError, match=r"^member `` is not a .npy array\.$"):
        read_npz_header(path)
