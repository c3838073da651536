"""Where torch's zip reader (miniz) and Python's zipfile could read an archive differently."""

from __future__ import annotations

import io
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_corrsource.formats.pickle_scan import scan_weights_file
from pytest_corrsource.formats.torch_archive import ambiguities, pickle_members

FIXTURES = Path(__file__).parent / "fixtures"
GOOD = b"\x80\x02}q\x00."


def build(members: list[tuple[str, bytes]], extra: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name)
            info.extra = extra
            archive.writestr(info, data)
    return buffer.getvalue()


def write(tmp_path: Path, data: bytes, name: str = "model.pt") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "fixture", ["torch_state_dict.pt", "scan_torch_checkpoint.pt"]
)  # real torch.save output
def test_real_torch_archives_are_unambiguous(fixture: str) -> None:
    assert ambiguities(FIXTURES / fixture) == []


def test_real_npz_files_are_unambiguous(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", x=np.arange(3))
    np.savez_compressed(tmp_path / "b.npz", x=np.arange(30), y=np.ones(2))
    assert ambiguities(tmp_path / "a.npz") == []
    assert ambiguities(tmp_path / "b.npz") == []


def test_names_equal_ignoring_case(tmp_path: Path) -> None:
    path = write(tmp_path, build([("archive/data.pkl", GOOD), ("archive/DATA.PKL", GOOD)]))
    (problem,) = ambiguities(path)
    assert "have the same name ignoring case" in problem
    assert "'archive/DATA.PKL' and 'archive/data.pkl'" in problem


def test_two_end_of_central_directory_records(tmp_path: Path) -> None:
    first = build([("archive/data.pkl", GOOD)])
    eocd = first[first.rindex(b"PK\x05\x06") :]
    # A second archive's EOCD hidden in the first archive's comment.
    data = first[: -len(eocd)] + eocd[:20] + struct.pack("<H", len(eocd)) + eocd
    (problem,) = ambiguities(write(tmp_path, data))
    assert "2 end-of-central-directory signatures" in problem


def test_truncated_extra_field(tmp_path: Path) -> None:
    path = write(tmp_path, build([("archive/data.pkl", GOOD)], extra=b"\x99\x99\x10\x00ab"))
    (problem,) = ambiguities(path)
    assert problem == (
        "member 'archive/data.pkl' (central directory): extra field record 0x9999 claims "
        "16 bytes, 2 remain"
    )


def test_stray_bytes_in_extra_field(tmp_path: Path) -> None:
    path = write(tmp_path, build([("archive/data.pkl", GOOD)], extra=b"\x01"))
    assert ambiguities(path) == [
        "member 'archive/data.pkl' (central directory): truncated extra field (1 stray bytes)"
    ]


def test_prepended_data(tmp_path: Path) -> None:
    data = b"cos\nsystem\n(S'x'\ntR." + build([("archive/data.pkl", GOOD)])
    (problem,) = ambiguities(write(tmp_path, data))
    assert "data was prepended or inserted" in problem


def test_local_header_name_differs(tmp_path: Path) -> None:
    data = bytearray(build([("archive/data.pkl", GOOD)]))
    data[30 : 30 + len("archive/data.pkl")] = b"archive/evil.pkl"  # the local header's name
    assert ambiguities(write(tmp_path, bytes(data))) == [
        "member 'archive/data.pkl': its local header names it 'archive/evil.pkl'"
    ]


def test_overlapping_members(tmp_path: Path) -> None:
    data = bytearray(build([("a/data.pkl", GOOD), ("a/x.pkl", GOOD)]))
    cd = data.rindex(b"PK\x01\x02")  # the second central entry: point it at the first member
    data[cd + 42 : cd + 46] = struct.pack("<I", 0)
    problems = ambiguities(write(tmp_path, bytes(data)))
    assert "member 'a/x.pkl': its local header names it 'a/data.pkl'" in problems
    assert "members 'a/data.pkl' and 'a/x.pkl' overlap" in problems


def test_unsupported_compression(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_BZIP2) as archive:
        archive.writestr("archive/data.pkl", GOOD)
    assert ambiguities(write(tmp_path, buffer.getvalue())) == [
        "member 'archive/data.pkl': compression method 12, which torch cannot read"
    ]


def test_no_end_record_and_unreadable(tmp_path: Path) -> None:
    assert ambiguities(write(tmp_path, b"PK\x03\x04" + bytes(40))) == [
        "no end-of-central-directory record"
    ]
    assert ambiguities(tmp_path / "missing.pt")[0].startswith("cannot read the file: ")


def test_pickle_members_any_case() -> None:
    names = ["a/data.pkl", "a/DATA.PKL", "a/data/0", "a/constants.Pkl", "a/version"]
    assert pickle_members(names) == ["a/data.pkl", "a/DATA.PKL", "a/constants.Pkl"]


REAL = (FIXTURES / "torch_state_dict.pt").read_bytes()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(REAL) - 1), st.integers(0, 255)), max_size=6))
def test_mutated_archives_never_crash_the_readers(edits: list[tuple[int, int]]) -> None:
    data = bytearray(REAL)
    for index, value in edits:
        data[index] = value
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.pt"
        path.write_bytes(bytes(data))
        problems = ambiguities(path)
        scan = scan_weights_file(path, claims_pickle=True)
    assert all(isinstance(problem, str) and problem for problem in problems)
    if not edits:
        assert problems == []
        assert scan.safe
