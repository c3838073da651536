"""Hostile ``.npy`` members of npz and skops files: refused before their data is read.

``numpy.lib.format.read_array`` allocates the shape a header declares before reading a byte, so
a 1 MiB member that declares 256 GiB was a MemoryError (a crash) in the modified copy of CS403
and in the value comparisons of CS603; a highly compressed member inflated in memory. Every
member is now checked against its zip entry first (formats.npy.check_npy_member).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pytest_corrsource.formats import FormatError
from pytest_corrsource.formats.skops import skops_arrays
from pytest_corrsource.formats.tensors import open_tensors, read_schema
from pytest_corrsource.perturb import PerturbUnsupported, perturb_weights

FIXTURES = Path(__file__).parent / "fixtures"
SKOPS = FIXTURES / "sklearn_mlp.skops"
NPZ = FIXTURES / "arrays.npz"


def npy_bytes(shape: tuple[int, ...], data: bytes, descr: str = "<f4") -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return header.getvalue() + data


def with_member(src: Path, dst: Path, member: str, payload: bytes) -> Path:
    """A copy of the zip ``src`` whose ``member`` holds ``payload`` (deflated)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = payload if info.filename == member else zin.read(info)
            zout.writestr(info.filename, data, compress_type=zipfile.ZIP_DEFLATED)
    return dst


def target(kind: str) -> tuple[Path, str]:
    if kind == "npz":
        return NPZ, "w.npy"
    return SKOPS, skops_arrays(SKOPS)["coefs_.0"]


@pytest.mark.parametrize("kind", ["npz", "skops"])
def test_a_member_declaring_more_than_it_holds_is_refused_before_allocating(
    tmp_path: Path, kind: str
) -> None:
    src, member = target(kind)
    lying = npy_bytes((1 << 36,), bytes(1 << 20))  # 1 MiB of data, 256 GiB declared
    path = with_member(src, tmp_path / src.name, member, lying)
    needs = "needs 274877906944 bytes"
    with pytest.raises(PerturbUnsupported, match=needs) as refused:
        perturb_weights(path, tmp_path / "out" / src.name)
    assert refused.value.format == "corrupt"
    with pytest.raises(FormatError, match=needs):
        read_schema(path)


@pytest.mark.parametrize("kind", ["npz", "skops"])
def test_a_zip_bomb_member_is_refused_before_inflating(tmp_path: Path, kind: str) -> None:
    src, member = target(kind)
    count = 20 << 20  # 80 MiB of zeros deflate to about 80 KiB: over the 1000x ratio
    bomb = npy_bytes((count,), bytes(4 * count))
    path = with_member(src, tmp_path / src.name, member, bomb)
    with pytest.raises(PerturbUnsupported, match="zip bomb"):
        perturb_weights(path, tmp_path / "out" / src.name)
    with pytest.raises(FormatError, match="zip bomb"):
        read_schema(path)


def test_a_member_that_changes_after_it_was_read_is_checked_again(tmp_path: Path) -> None:
    """The values are read later than the schema (CS603): the member is checked again then."""
    src, member = target("skops")
    path = tmp_path / src.name
    path.write_bytes(src.read_bytes())
    tensors = open_tensors(path)
    with_member(src, tmp_path / "lying.skops", member, npy_bytes((1 << 36,), bytes(1 << 20)))
    (tmp_path / "lying.skops").replace(path)
    with pytest.raises(FormatError, match="needs 274877906944 bytes"):
        tensors.values("coefs_.0")


def test_an_object_array_member_is_still_a_pickle_it_will_not_load(tmp_path: Path) -> None:
    src, member = target("npz")
    objects = io.BytesIO()
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    path = with_member(src, tmp_path / src.name, member, objects.getvalue())
    with pytest.raises(PerturbUnsupported, match="untrusted code") as refused:
        perturb_weights(path, tmp_path / "out.npz")
    assert refused.value.format == "npz"


def test_honest_members_still_change(tmp_path: Path) -> None:
    for src in (NPZ, SKOPS):
        result = perturb_weights(src, tmp_path / src.name)
        assert result.changed


def test_a_deeply_nested_schema_is_an_unreadable_skops_file(tmp_path: Path) -> None:
    """json recurses on nesting: 100,000 `[` in schema.json were a RecursionError (a crash)."""
    path = tmp_path / "deep.skops"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", '{"content": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(FormatError, match="not a readable skops file"):
        read_schema(path)
    with pytest.raises(PerturbUnsupported, match="not a readable skops file"):
        perturb_weights(path, tmp_path / "out.skops")
