"""safetensors header validator: real files, a crafted corrupt corpus, and agreement with
the reference reader (``safetensors.safe_open``) on every corpus file."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from pytest_corrsource.formats import FormatError
from pytest_corrsource.formats.safetensors import (
    SAFETENSORS_DTYPE_BITS,
    read_safetensors_header,
    read_safetensors_layout,
)


def st_bytes(header: object, data: bytes = b"", *, length: int | None = None) -> bytes:
    """A safetensors file: 8-byte LE length, the header (dict → JSON, str, or raw bytes), data."""
    if isinstance(header, bytes):
        raw = header
    elif isinstance(header, str):
        raw = header.encode("utf-8")
    else:
        raw = json.dumps(header).encode("utf-8")
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def t(dtype: object, shape: object, begin: object, end: object) -> dict[str, object]:
    """One header entry; any JSON value in any field (the hostile cases put wrong types)."""
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


TWO = {"a": t("F32", [2], 0, 8), "b": t("I64", [1], 8, 16)}
BASE_INFO = '"dtype":"U8","shape":[1],"data_offsets":[0,1]'


@dataclass(frozen=True)
class Case:
    id: str
    content: bytes
    message: str | None  # None: valid; else a substring of our FormatError message
    # The reference reader's verdict differs on purpose (we are stricter).
    stricter: bool = False


CORPUS = [
    # --- valid -------------------------------------------------------------------------------
    Case("two-tensors", st_bytes(TWO, bytes(16)), None),
    Case("empty-header", st_bytes({}), None),
    Case(
        "leading-whitespace",
        st_bytes('   {"a":' + json.dumps(t("U8", [1], 0, 1)) + "}", b"x"),
        None,
    ),
    Case("trailing-space-padding", st_bytes("{}      "), None),
    Case("length-not-multiple-of-8", st_bytes('{"a":{' + BASE_INFO + "}}", b"x"), None),
    Case(
        "extra-info-fields",
        st_bytes({"a": {**t("U8", [1], 0, 1), "extra": [1, {"x": None}]}}, b"x"),
        None,
    ),
    Case("rank-0", st_bytes({"a": t("F32", [], 0, 4)}, bytes(4)), None),
    Case("zero-dim", st_bytes({"a": t("F32", [0, 3], 0, 0)}), None),
    Case(
        "zero-size-in-middle",
        st_bytes(
            {"a": t("U8", [1], 0, 1), "e": t("F32", [0], 1, 1), "b": t("U8", [1], 1, 2)}, b"xy"
        ),
        None,
    ),
    Case("metadata", st_bytes({"__metadata__": {"format": "pt"}, **TWO}, bytes(16)), None),
    Case("metadata-null", st_bytes({"__metadata__": None}), None),
    Case("empty-name", st_bytes({"": t("U8", [1], 0, 1)}, b"x"), None),
    Case("f4-even", st_bytes({"a": t("F4", [4], 0, 2)}, bytes(2)), None),
    Case("f6-four", st_bytes({"a": t("F6_E2M3", [4], 0, 3)}, bytes(3)), None),
    Case(
        "nesting-127",
        st_bytes('{"a":{' + BASE_INFO + ',"x":' + "[" * 125 + "]" * 125 + "}}", b"x"),
        None,
    ),
    # --- size / framing ------------------------------------------------------------------------
    Case("empty-file", b"", "header too small"),
    Case("four-bytes", b"\x00" * 4, "header too small"),
    Case("length-2**63", struct.pack("<Q", 2**63) + b"{}", "exceeds the limit of 100000000 bytes"),
    Case("length-100000001", struct.pack("<Q", 100_000_001) + b"{}", "exceeds the limit"),
    Case("length-past-file", st_bytes("{}", length=10000), "header length 10000 exceeds the file"),
    Case("truncated-data", st_bytes(TWO, bytes(11)), "file truncated"),
    Case("trailing-bytes", st_bytes(TWO, bytes(24)), "file not fully covered"),
    # --- JSON / encoding ---------------------------------------------------------------------
    Case("not-json", st_bytes("{nope}"), "header is not valid JSON"),
    Case("json-list", st_bytes([1, 2, 3]), "header is a list, not a JSON object"),
    Case("not-utf8", st_bytes(b'{"\xff":1}'), "not valid UTF-8"),
    Case("nul-padding", st_bytes(b"{}\x00\x00\x00"), "header is not valid JSON"),
    Case(
        "nan-token",
        st_bytes('{"a":{"dtype":"U8","shape":[NaN],"data_offsets":[0,1]}}', b"x"),
        "not a JSON number",
    ),
    Case("bom", st_bytes(b"\xef\xbb\xbf{}"), "header is not valid JSON"),
    Case(
        "nesting-128",
        st_bytes('{"a":{' + BASE_INFO + ',"x":' + "[" * 126 + "]" * 126 + "}}", b"x"),
        "nesting reaches 128 levels",
    ),
    Case(
        "float-out-of-range", st_bytes('{"a":{' + BASE_INFO + ',"x":1e400}}', b"x"), "out of range"
    ),
    Case(
        "lone-surrogate-name",
        st_bytes('{"\\ud800":{' + BASE_INFO + "}}", b"x"),
        "unpaired surrogate",
    ),
    Case("lone-surrogate-meta", st_bytes('{"__metadata__":{"k":"\\udc00"}}'), "unpaired surrogate"),
    # The reference's JSON parser refuses a lone surrogate even in a field it then ignores.
    Case(
        "lone-surrogate-unknown-field",
        st_bytes('{"a":{' + BASE_INFO + ',"x":"\\ud800"}}', b"x"),
        "tensor `a`: field 'x' contains an unpaired surrogate escape",
    ),
    Case(
        "lone-surrogate-unknown-key",
        st_bytes('{"a":{' + BASE_INFO + ',"\\udfff":[{"y":1}]}}', b"x"),
        "unpaired surrogate escape",
    ),
    Case(
        "lone-surrogate-nested",
        st_bytes('{"a":{' + BASE_INFO + ',"x":[{"y":"\\ud800z"}]}}', b"x"),
        "unpaired surrogate escape",
    ),
    Case(
        "surrogate-pair-in-unknown-field",
        st_bytes('{"a":{' + BASE_INFO + ',"x":"\\ud83d\\ude00"}}', b"x"),
        None,
    ),
    # --- tensor info types -------------------------------------------------------------------
    Case(
        "unknown-dtype",
        st_bytes({"a": t("F128", [1], 0, 16)}, bytes(16)),
        "tensor `a`: unknown dtype `F128`",
    ),
    Case("lowercase-dtype", st_bytes({"a": t("f32", [1], 0, 4)}, bytes(4)), "unknown dtype `f32`"),
    Case("dtype-not-string", st_bytes({"a": t(7, [1], 0, 1)}, b"x"), "dtype is an integer"),
    Case("negative-shape", st_bytes({"a": t("U8", [-1], 0, 0)}), "shape entry -1"),
    Case(
        "minus-zero-shape",
        st_bytes('{"a":{"dtype":"U8","shape":[-0],"data_offsets":[0,0]}}'),
        "shape entry -0.0",
    ),
    Case("float-shape", st_bytes({"a": t("U8", [1.0], 0, 1)}, b"x"), "shape entry 1.0"),
    Case("bool-shape", st_bytes({"a": t("U8", [True], 0, 1)}, b"x"), "shape entry True"),
    Case("shape-2**64", st_bytes({"a": t("U8", [2**64], 0, 1)}, b"x"), "shape entry"),
    Case("shape-not-list", st_bytes({"a": t("U8", 1, 0, 1)}, b"x"), "shape is an integer"),
    Case(
        "missing-dtype",
        st_bytes({"a": {"shape": [1], "data_offsets": [0, 1]}}, b"x"),
        "tensor `a`: missing field `dtype`",
    ),
    Case(
        "missing-offsets",
        st_bytes({"a": {"dtype": "U8", "shape": [1]}}, b"x"),
        "missing field `data_offsets`",
    ),
    Case(
        "offsets-three",
        st_bytes({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1, 2]}}, b"x"),
        "data_offsets must be a list of two",
    ),
    Case("offsets-negative", st_bytes({"a": t("U8", [1], -1, 0)}), "data_offsets must be"),
    Case("offsets-float", st_bytes({"a": t("U8", [1], 0, 1.0)}, b"x"), "data_offsets must be"),
    Case("info-not-object", st_bytes({"a": "F32"}), "entry is a string, not an object"),
    Case(
        "duplicate-field",
        st_bytes('{"a":{' + BASE_INFO + ',"dtype":"U8"}}', b"x"),
        "duplicate field `dtype`",
    ),
    Case("metadata-int", st_bytes({"__metadata__": {"k": 1}}), "value for `k` is an integer"),
    Case("metadata-list", st_bytes({"__metadata__": ["k"]}), "is a list, not an object"),
    Case(
        "metadata-duplicate-key",
        st_bytes('{"__metadata__":{},"__metadata__":{}}'),
        "duplicate key `__metadata__`",
    ),
    # --- offsets and sizes -------------------------------------------------------------------
    Case(
        "overlap",
        st_bytes({"a": t("F32", [4], 0, 16), "b": t("F32", [2], 8, 16)}, bytes(16)),
        "overlap the previous tensor ending at",
    ),
    Case(
        "identical-offsets",
        st_bytes({"a": t("F32", [2], 0, 8), "b": t("F32", [2], 0, 8)}, bytes(8)),
        "overlap the previous tensor ending at 8",
    ),
    Case(
        "gap",
        st_bytes({"a": t("F32", [2], 0, 8), "b": t("F32", [2], 16, 24)}, bytes(24)),
        "tensor `b`: data_offsets [16, 24] leave a gap of 8 bytes",
    ),
    Case(
        "first-not-zero",
        st_bytes({"a": t("F32", [2], 8, 16)}, bytes(16)),
        "after the start of the data section",
    ),
    Case(
        "end-before-begin", st_bytes({"a": t("U8", [0], 8, 0)}, bytes(8)), "end before they begin"
    ),
    Case(
        "size-mismatch",
        st_bytes({"a": t("F32", [2, 3], 0, 16)}, bytes(16)),
        "span 16 bytes but shape [2, 3] of F32 needs 24",
    ),
    Case("f4-odd", st_bytes({"a": t("F4", [3], 0, 2)}, bytes(2)), "12 bits, not a whole number"),
    Case("overflow", st_bytes({"a": t("F32", [2, 2**63 - 1], 0, 8)}, bytes(8)), "overflows 64-bit"),
    Case("overflow-before-zero", st_bytes({"a": t("U8", [2**63, 2, 0], 0, 0)}), "overflows 64-bit"),
    # --- deliberately stricter than the reference ------------------------------------------
    Case(
        "duplicate-identical",
        st_bytes('{"a":{' + BASE_INFO + '},"a":{' + BASE_INFO + "}}", b"x"),
        "duplicate tensor name `a`",
        stricter=True,
    ),
    Case(
        "duplicate-different",
        st_bytes(
            '{"a":{' + BASE_INFO + '},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', b"xy"
        ),
        "duplicate tensor name",
    ),
    Case(
        "nul-in-name",
        st_bytes({"a\u0000hidden": t("U8", [1], 0, 1)}, b"x"),
        "control character U+0000",
        stricter=True,
    ),
    Case(
        "newline-in-name",
        st_bytes({"a\nb": t("U8", [1], 0, 1)}, b"x"),
        "control character U+000A",
        stricter=True,
    ),
    Case(
        "del-in-name",
        st_bytes({"a\x7f": t("U8", [1], 0, 1)}, b"x"),
        "control character U+007F",
        stricter=True,
    ),
]


def reference_accepts(path: Path) -> bool:
    try:
        with safe_open(str(path), framework="numpy") as handle:
            handle.keys()
    except Exception:
        return False
    return True


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_corpus_verdict_and_message(case: Case, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(case.content)
    if case.message is None:
        read_safetensors_header(path)
    else:
        with pytest.raises(FormatError) as info:
            read_safetensors_header(path)
        assert case.message in str(info.value)
        assert str(info.value).endswith(".")
        assert "model.safetensors" not in str(info.value)


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_corpus_agrees_with_reference_reader(case: Case, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(case.content)
    ours = case.message is None
    reference = reference_accepts(path)
    if case.stricter:
        # documented, deliberate difference: the reference accepts, we reject
        assert reference
        assert not ours
    else:
        assert ours == reference


def test_corpus_is_broad() -> None:
    assert sum(case.message is None for case in CORPUS) >= 10
    assert sum(case.message is not None for case in CORPUS) >= 40


def test_real_file_written_by_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    tensors: dict[str, npt.NDArray[Any]] = {
        "w": np.zeros((3, 4), dtype=np.float32),
        "b": np.ones(4, dtype=np.float16),
        "i": np.arange(5, dtype=np.int64),
        "flag": np.array(True),
        "empty": np.zeros((0, 7), dtype=np.uint8),
    }
    save_file(tensors, str(path), metadata={"format": "pt", "note": "x"})
    header = read_safetensors_header(path)
    assert header.format == "safetensors"
    assert header.metadata == {"format": "pt", "note": "x"}
    assert [tensor.name for tensor in header.tensors] == sorted(tensors)
    by_name = {tensor.name: tensor for tensor in header.tensors}
    assert by_name["w"].dtype == "F32"
    assert by_name["w"].shape == (3, 4)
    assert by_name["w"].nbytes == 48
    assert by_name["b"].dtype == "F16"
    assert by_name["i"].nbytes == 40
    assert by_name["flag"].shape == ()
    assert by_name["flag"].dtype == "BOOL"
    assert by_name["empty"].nbytes == 0
    assert header.warnings == ()


def test_real_file_then_corrupted(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"w": np.zeros(8, dtype=np.float32)}, str(path))
    content = path.read_bytes()
    path.write_bytes(content + b"\x00" * 8)
    with pytest.raises(FormatError, match=r"file not fully covered: .* \(8 trailing bytes\)\."):
        read_safetensors_header(path)
    path.write_bytes(content[:-5])
    with pytest.raises(FormatError, match=r"file truncated: .* \(5 bytes missing\)\."):
        read_safetensors_header(path)


def test_exact_messages(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    path.write_bytes(st_bytes("{}", length=10000))
    size = path.stat().st_size
    with pytest.raises(FormatError) as info:
        read_safetensors_header(path)
    assert str(info.value) == f"header length 10000 exceeds the file ({size} bytes)."

    path.write_bytes(st_bytes({"a": t("F32", [6], 0, 24), "b": t("F32", [2], 8, 16)}, bytes(24)))
    with pytest.raises(FormatError) as info:
        read_safetensors_header(path)
    assert str(info.value) == (
        "tensor `b`: data_offsets [8, 16] overlap the previous tensor ending at 24."
    )

    content = st_bytes({"a": t("U8", [8], 0, 8)}, bytes(16))
    path.write_bytes(content)
    header_end = len(content) - 16
    with pytest.raises(FormatError) as info:
        read_safetensors_header(path)
    assert str(info.value) == (
        f"file not fully covered: tensors end at byte {header_end + 8} but the file has "
        f"{header_end + 16} bytes (8 trailing bytes)."
    )

    path.write_bytes(st_bytes('{"x":{' + BASE_INFO + '},"x":{' + BASE_INFO + "}}", b"x"))
    with pytest.raises(FormatError) as info:
        read_safetensors_header(path)
    assert str(info.value) == "duplicate tensor name `x`."


def test_header_cap_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    header = {"a": t("U8", [1], 0, 1)}
    path.write_bytes(st_bytes(header, b"x"))
    size = len(json.dumps(header))
    read_safetensors_header(path, max_header_bytes=size)
    with pytest.raises(FormatError, match=f"header length {size} exceeds the limit of {size - 1}"):
        read_safetensors_header(path, max_header_bytes=size - 1)
    # the reference cap still applies above 100 MB
    path.write_bytes(struct.pack("<Q", 100_000_001))
    with pytest.raises(FormatError, match="limit of 100000000 bytes"):
        read_safetensors_header(path, max_header_bytes=10**12)


def test_missing_file_is_format_error(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="cannot read the file"):
        read_safetensors_header(tmp_path / "absent.safetensors")


def test_large_sparse_file_reads_only_header(tmp_path: Path) -> None:
    path = tmp_path / "big.safetensors"
    nbytes = 2**31
    prefix = st_bytes({"w": t("U8", [nbytes], 0, nbytes)})
    with open(path, "wb") as handle:
        handle.write(prefix)
        handle.truncate(len(prefix) + nbytes)
    header = read_safetensors_header(path)
    assert header.tensors[0].nbytes == nbytes


def test_dtype_table() -> None:
    assert SAFETENSORS_DTYPE_BITS["F4"] == 4
    assert SAFETENSORS_DTYPE_BITS["F6_E3M2"] == 6
    assert SAFETENSORS_DTYPE_BITS["F8_E8M0"] == 8
    assert SAFETENSORS_DTYPE_BITS["BF16"] == 16
    assert SAFETENSORS_DTYPE_BITS["C64"] == 64
    assert len(SAFETENSORS_DTYPE_BITS) == 22


def test_layout_locates_every_tensor_like_the_reference_reader(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    arrays: dict[str, np.ndarray] = {
        "b.bias": np.arange(3, dtype=np.float16),
        "a.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
        "ids": np.arange(5, dtype=np.int64),
        "empty": np.zeros((0, 2), dtype=np.float32),
    }
    save_file(arrays, str(path), metadata={"format": "np"})
    header, data_start, offsets = read_safetensors_layout(path)
    assert header == read_safetensors_header(path)
    assert set(offsets) == set(arrays)
    data = path.read_bytes()
    with safe_open(str(path), framework="np") as reference:
        for info in header.tensors:
            at = data_start + offsets[info.name]
            assert data[at : at + info.nbytes] == reference.get_tensor(info.name).tobytes()
    ends = sorted(offsets[t.name] + t.nbytes for t in header.tensors)
    assert data_start + ends[-1] == len(data)  # the tensors tile the data section
