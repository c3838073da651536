"""GGUF header validator on files crafted with struct (no gguf package)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pytest_corrsource.formats import FormatError
from pytest_corrsource.formats.gguf import GGML_TYPES, read_gguf_header

U8, U32, I32, F32, BOOL, STRING, ARRAY, U64 = 0, 4, 5, 6, 7, 8, 9, 10
T_F32, T_F16, T_Q4_0, T_Q4_K = 0, 1, 2, 12


def gstr(text: str | bytes) -> bytes:
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv_str(key: str | bytes, value: str) -> bytes:
    return gstr(key) + struct.pack("<I", STRING) + gstr(value)


def kv_u32(key: str, value: int) -> bytes:
    return gstr(key) + struct.pack("<II", U32, value)


def kv_raw(key: str, value_type: int, payload: bytes) -> bytes:
    return gstr(key) + struct.pack("<I", value_type) + payload


def array(item_type: int, count: int, items: bytes) -> bytes:
    return struct.pack("<IQ", item_type, count) + items


def tinfo(name: str | bytes, dims: list[int], type_id: int, offset: int) -> bytes:
    return (
        gstr(name)
        + struct.pack("<I", len(dims))
        + b"".join(struct.pack("<Q", dim) for dim in dims)
        + struct.pack("<IQ", type_id, offset)
    )


def gguf(
    kvs: list[bytes],
    infos: list[bytes],
    data: bytes = b"",
    *,
    version: int = 3,
    alignment: int = 32,
    n_tensors: int | None = None,
    n_kv: int | None = None,
    magic: bytes = b"GGUF",
) -> bytes:
    head = magic + struct.pack(
        "<IQQ",
        version,
        len(infos) if n_tensors is None else n_tensors,
        len(kvs) if n_kv is None else n_kv,
    )
    head += b"".join(kvs) + b"".join(infos)
    if data:
        head += b"\x00" * (-len(head) % alignment)
    return head + data


ARCH = kv_str("general.architecture", "llama")
# F32 [4, 2] = 32 bytes at 0; Q4_0 [64] = 2 blocks * 18 = 36 bytes at 32.
VALID_INFOS = [tinfo("tok.weight", [4, 2], T_F32, 0), tinfo("q.weight", [64], T_Q4_0, 32)]
VALID_DATA = bytes(32 + 36)


def write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    return path


def test_valid_file(tmp_path: Path) -> None:
    tokens = array(STRING, 3, gstr("a") + gstr("b") + gstr("<s>"))
    nested = array(ARRAY, 2, array(U8, 2, b"\x01\x02") + array(U8, 1, b"\x03"))
    kvs = [
        ARCH,
        kv_str("general.name", "tiny"),
        kv_u32("general.quantization_version", 2),
        kv_raw("tokenizer.ggml.tokens", ARRAY, tokens),
        kv_raw("x.nested", ARRAY, nested),
        kv_raw("x.flag", BOOL, b"\x01"),
        kv_raw("x.scale", F32, struct.pack("<f", 0.5)),
        kv_raw("x.count", U64, struct.pack("<Q", 7)),
    ]
    header = read_gguf_header(write(tmp_path, gguf(kvs, VALID_INFOS, VALID_DATA)))
    assert header.format == "gguf"
    assert header.metadata == {"general.architecture": "llama", "general.name": "tiny"}
    assert [(t.name, t.dtype, t.shape, t.nbytes) for t in header.tensors] == [
        ("tok.weight", "F32", (4, 2), 32),
        ("q.weight", "Q4_0", (64,), 36),
    ]


def test_version_2_and_custom_alignment(tmp_path: Path) -> None:
    infos = [tinfo("a", [8], T_F32, 0), tinfo("b", [256], T_Q4_K, 64)]
    content = gguf(
        [ARCH, kv_u32("general.alignment", 64)], infos, bytes(64 + 144), version=2, alignment=64
    )
    header = read_gguf_header(write(tmp_path, content))
    assert [t.nbytes for t in header.tensors] == [32, 144]


def test_no_tensors(tmp_path: Path) -> None:
    header = read_gguf_header(write(tmp_path, gguf([ARCH], [])))
    assert header.tensors == ()


def test_type_table() -> None:
    names = {name for name, _, _ in GGML_TYPES.values()}
    for expected in (
        "F32",
        "F16",
        "BF16",
        "Q4_0",
        "Q8_0",
        "Q2_K",
        "Q6_K",
        "IQ2_XXS",
        "IQ4_XS",
        "I8",
        "I64",
        "F64",
    ):
        assert expected in names
    assert GGML_TYPES[12] == ("Q4_K", 256, 144)
    assert GGML_TYPES[30] == ("BF16", 1, 2)


CASES = [
    ("bad-magic", gguf([ARCH], [], magic=b"GGML"), "bad magic b'GGML': not a GGUF file."),
    (
        "big-endian",
        b"GGUF" + struct.pack(">IQQ", 3, 0, 0),
        "the file is big-endian GGUF (version 3)",
    ),
    ("version-1", gguf([ARCH], [], version=1), "GGUF version 1 is not supported (only 2 and 3)."),
    ("version-99", gguf([ARCH], [], version=99), "GGUF version 99 is not supported"),
    ("too-small", b"GGUF\x03\x00", "too few for a GGUF header"),
    ("kv-count-huge", gguf([ARCH], [], n_kv=2**40), "metadata kv count 1099511627776 cannot fit"),
    ("tensor-count-huge", gguf([ARCH], [], n_tensors=2**60), "tensor count 1152921504606846976"),
    (
        "key-too-long",
        gguf([struct.pack("<Q", 70000) + b"k" * 20], []),
        "metadata key at byte 24 is 70000 bytes, over the 65535-byte limit.",
    ),
    (
        "value-string-huge",
        gguf([gstr("k") + struct.pack("<IQ", STRING, 2**62)], []),
        "key `k` value at byte 37 is 4611686018427387904 bytes long but only 0 bytes remain.",
    ),
    (
        "truncated-kv",
        gguf([ARCH], [])[:-3],
        "key `general.architecture` value at byte 56 is 5 bytes long but only 2 bytes remain.",
    ),
    (
        "unknown-value-type",
        gguf([kv_raw("k", 13, b"")], []),
        "key `k` at byte 24 has unknown value type 13.",
    ),
    (
        "array-count-huge",
        gguf([kv_raw("k", ARRAY, struct.pack("<IQ", U32, 2**61))], []),
        "claims 2305843009213693952 items",
    ),
    (
        "array-strings-huge",
        gguf([kv_raw("k", ARRAY, array(STRING, 1, struct.pack("<Q", 2**40)))], []),
        "needs 1099511627776 bytes",
    ),
    (
        "array-unknown-type",
        gguf([kv_raw("k", ARRAY, array(42, 0, b""))], []),
        "unknown item type 42",
    ),
    (
        "array-too-deep",
        gguf([kv_raw("k", ARRAY, struct.pack("<IQ", ARRAY, 1) * 9 + array(U8, 0, b""))], []),
        "nested deeper than 8 levels",
    ),
    ("duplicate-key", gguf([ARCH, ARCH], []), "duplicate metadata key `general.architecture`"),
    (
        "key-not-utf8",
        gguf([kv_str(b"\xff\xfe", "x")], []),
        "metadata key at byte 24 is not valid UTF-8.",
    ),
    (
        "value-not-utf8",
        gguf([gstr("k") + struct.pack("<I", STRING) + gstr(b"\xff")], []),
        "key `k`: string value at byte 37 is not valid UTF-8.",
    ),
    (
        "alignment-not-power",
        gguf([kv_u32("general.alignment", 48)], []),
        "general.alignment 48 is not a power of two.",
    ),
    ("alignment-zero", gguf([kv_u32("general.alignment", 0)], []), "general.alignment 0 is not"),
    (
        "alignment-wrong-type",
        gguf([kv_raw("general.alignment", U64, struct.pack("<Q", 32))], []),
        "general.alignment has type u64, not u32.",
    ),
    ("alignment-string", gguf([kv_str("general.alignment", "32")], []), "has type string"),
    (
        "duplicate-tensor",
        gguf([ARCH], [tinfo("a", [8], T_F32, 0), tinfo("a", [8], T_F32, 32)], bytes(64)),
        "duplicate tensor name `a`",
    ),
    (
        "too-many-dims",
        gguf([ARCH], [tinfo("a", [1] * 9, T_F32, 0)], bytes(32)),
        "tensor `a`: 9 dimensions (at most 4).",
    ),
    (
        "five-dims",  # llama.cpp's GGML_MAX_DIMS is 4
        gguf([ARCH], [tinfo("a", [1] * 5, T_F32, 0)], bytes(32)),
        "tensor `a`: 5 dimensions (at most 4).",
    ),
    (
        "name-of-64-bytes",  # GGML_MAX_NAME is 64 including the NUL
        gguf([ARCH], [tinfo("n" * 64, [8], T_F32, 0)], bytes(32)),
        "is 64 bytes; ggml requires fewer than 64.",
    ),
    (
        "out-of-order",
        gguf([ARCH], [tinfo("a", [8], T_F32, 32), tinfo("b", [8], T_F32, 0)], bytes(64)),
        "tensor `a`: data offset 32, expected 0 (tensors must be contiguous, in file order",
    ),
    (
        "gap",
        gguf([ARCH], [tinfo("a", [8], T_F32, 0), tinfo("b", [8], T_F32, 64)], bytes(96)),
        "tensor `b`: data offset 64, expected 32",
    ),
    (
        "dim-over-int64",
        gguf([ARCH], [tinfo("a", [2**63], T_F32, 0)], bytes(32)),
        "does not fit in int64",
    ),
    (
        "elements-overflow",
        gguf([ARCH], [tinfo("a", [2**62, 4], T_F32, 0)], bytes(32)),
        "element count overflows int64",
    ),
    (
        "unknown-ggml-type",
        gguf([ARCH], [tinfo("a", [8], 4, 0)], bytes(32)),
        "tensor `a`: unknown ggml type 4.",
    ),
    (
        "block-mismatch",
        gguf([ARCH], [tinfo("a", [33], T_Q4_0, 0)], bytes(64)),
        "first dimension 33 is not a multiple of the Q4_0 block size 32",
    ),
    (
        "misaligned-offset",
        gguf([ARCH], [tinfo("a", [8], T_F32, 8)], bytes(64)),
        "tensor `a`: offset 8 is not a multiple of the alignment 32.",
    ),
    (
        "data-past-end",
        gguf([ARCH], [tinfo("a", [16], T_F32, 0)], bytes(32)),
        "tensor `a`: data ends at byte",
    ),
    (
        "overlap",
        gguf([ARCH], [tinfo("a", [16], T_F32, 0), tinfo("b", [8], T_F32, 32)], bytes(96)),
        "tensor `b`: data offset 32, expected 64 (tensors must be contiguous, in file order, "
        "each padded to 32 bytes).",
    ),
    (
        "tensor-name-not-utf8",
        gguf([ARCH], [tinfo(b"\xc3", [8], T_F32, 0)], bytes(32)),
        "tensor name at byte",
    ),
    (
        "truncated-tensor-info",
        gguf([ARCH], [tinfo("a", [8], T_F32, 0)])[:-4],
        "tensor `a` offset at byte",
    ),
]


@pytest.mark.parametrize(("content", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid(tmp_path: Path, content: bytes, message: str) -> None:
    with pytest.raises(FormatError) as info:
        read_gguf_header(write(tmp_path, content))
    assert message in str(info.value)
    assert str(info.value).endswith(".")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="cannot read the file"):
        read_gguf_header(tmp_path / "nope.gguf")


def test_many_strings_are_fast(tmp_path: Path) -> None:
    count = 50_000
    tokens = array(STRING, count, gstr("tok") * count)
    content = gguf([ARCH, kv_raw("tokenizer.ggml.tokens", ARRAY, tokens)], VALID_INFOS, VALID_DATA)
    assert len(read_gguf_header(write(tmp_path, content)).tensors) == 2


@pytest.mark.parametrize(
    ("type_id", "name", "block", "size"), [(40, "NVFP4", 64, 36), (41, "Q1_0", 128, 18)]
)
def test_types_known_to_current_gguf_are_accepted(
    tmp_path: Path, type_id: int, name: str, block: int, size: int
) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf([ARCH], [tinfo("a", [block * 2], type_id, 0)], bytes(2 * size)))
    (tensor,) = read_gguf_header(path).tensors
    assert (tensor.dtype, tensor.shape, tensor.nbytes) == (name, (block * 2,), 2 * size)
