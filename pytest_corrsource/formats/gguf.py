"""Header-only validator for GGUF (v2/v3, little-endian) files (stdlib only).

Layout (ggml ``docs/gguf.md``): magic ``GGUF``, u32 version, u64 tensor_count, u64 kv_count,
the key/value pairs, the tensor infos, padding to ``general.alignment``, then the data.
Every count and length is bounded by the bytes left in the file before anything loops or
allocates, so a hostile header cannot make this reader hang or allocate.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

from . import FormatError, TensorInfo, WeightsHeader

__all__ = ["GGML_TYPES", "read_gguf_header", "read_gguf_layout"]

#: ggml type id -> (name, block size in elements, bytes per block). From ggml's ``ggml_type``
#: enum and the gguf-py ``GGML_QUANT_SIZES`` table (Q8_1 uses ggml's 36-byte block).
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18),
}

# kv value types: id -> (name, fixed size in bytes or 0 for variable)
_STRING, _ARRAY = 8, 9
_SCALARS: dict[int, tuple[str, str]] = {
    0: ("u8", "<B"),
    1: ("i8", "<b"),
    2: ("u16", "<H"),
    3: ("i16", "<h"),
    4: ("u32", "<I"),
    5: ("i32", "<i"),
    6: ("f32", "<f"),
    7: ("bool", "<?"),
    10: ("u64", "<Q"),
    11: ("i64", "<q"),
    12: ("f64", "<d"),
}
_MAX_KEY_BYTES = 65535
_MAX_NAME_BYTES = 65535
_MAX_DIMS = 4  # ggml's GGML_MAX_DIMS
_MAX_TENSOR_NAME = 64  # ggml's GGML_MAX_NAME: a name must be shorter (it keeps a NUL)
_MAX_ARRAY_DEPTH = 8
_MAX_METADATA_VALUE = 4096
_MAX_METADATA_ENTRIES = 1024
_DEFAULT_ALIGNMENT = 32
_DIM_LIMIT = 2**63  # ggml stores dims as int64


class _Cursor:
    """Bounded sequential reads over an open file; every read is checked against its size."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle = handle
        self.size = size
        self.pos = 0

    @property
    def remaining(self) -> int:
        return self.size - self.pos

    def read(self, count: int, what: str) -> bytes:
        if count > self.remaining:
            raise FormatError(
                f"{what} at byte {self.pos} needs {count} bytes but only {self.remaining} remain."
            )
        data = self.handle.read(count)
        if len(data) != count:
            raise FormatError(f"{what} at byte {self.pos}: the file ended early.")
        self.pos += count
        return data

    def skip(self, count: int, what: str) -> None:
        if count > self.remaining:
            raise FormatError(
                f"{what} at byte {self.pos} needs {count} bytes but only {self.remaining} remain."
            )
        self.handle.seek(count, os.SEEK_CUR)
        self.pos += count

    def u32(self, what: str) -> int:
        value: int = struct.unpack("<I", self.read(4, what))[0]
        return value

    def u64(self, what: str) -> int:
        value: int = struct.unpack("<Q", self.read(8, what))[0]
        return value

    def string_bytes(self, what: str, limit: int | None = None) -> bytes:
        start = self.pos
        length = self.u64(f"{what} length")
        if limit is not None and length > limit:
            raise FormatError(
                f"{what} at byte {start} is {length} bytes, over the {limit}-byte limit."
            )
        if length > self.remaining:
            raise FormatError(
                f"{what} at byte {start} is {length} bytes long but only {self.remaining} "
                "bytes remain."
            )
        return self.read(length, what)

    def text(self, what: str, limit: int) -> str:
        start = self.pos
        raw = self.string_bytes(what, limit)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"{what} at byte {start} is not valid UTF-8.") from None


def _min_value_size(value_type: int) -> int:
    if value_type in _SCALARS:
        return struct.calcsize(_SCALARS[value_type][1])
    if value_type == _STRING:
        return 8
    if value_type == _ARRAY:
        return 12
    raise FormatError(f"unknown value type {value_type}.")


def _skip_array(cursor: _Cursor, key: str, depth: int) -> None:
    if depth > _MAX_ARRAY_DEPTH:
        raise FormatError(f"key `{key}`: arrays nested deeper than {_MAX_ARRAY_DEPTH} levels.")
    start = cursor.pos
    item_type = cursor.u32(f"key `{key}` array type")
    if item_type not in _SCALARS and item_type not in (_STRING, _ARRAY):
        raise FormatError(f"key `{key}`: array at byte {start} has unknown item type {item_type}.")
    count = cursor.u64(f"key `{key}` array length")
    item_size = _min_value_size(item_type)
    if count > cursor.remaining // item_size:
        raise FormatError(
            f"key `{key}`: array at byte {start} claims {count} items but only "
            f"{cursor.remaining} bytes remain."
        )
    if item_type in _SCALARS:
        cursor.skip(count * item_size, f"key `{key}` array data")
    elif item_type == _STRING:
        for _ in range(count):
            length = cursor.u64(f"key `{key}` array string length")
            cursor.skip(length, f"key `{key}` array string")
    else:
        for _ in range(count):
            _skip_array(cursor, key, depth + 1)


def _read_header(handle: BinaryIO, size: int) -> WeightsHeader:
    return _read_layout(handle, size)[0]


def _read_layout(handle: BinaryIO, size: int) -> tuple[WeightsHeader, int, dict[str, int]]:
    """The validated header, the data section's start and each tensor's offset into it."""
    cursor = _Cursor(handle, size)
    if size < 24:
        raise FormatError(f"file has {size} bytes, too few for a GGUF header (24 bytes).")
    magic = cursor.read(4, "magic")
    if magic != b"GGUF":
        raise FormatError(f"bad magic {magic!r}: not a GGUF file.")
    version = cursor.u32("version")
    if version and version & 0xFFFF == 0:
        swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
        raise FormatError(
            f"the file is big-endian GGUF (version {swapped}); only little-endian is supported."
        )
    if version not in (2, 3):
        raise FormatError(f"GGUF version {version} is not supported (only 2 and 3).")
    tensor_count = cursor.u64("tensor count")
    kv_count = cursor.u64("metadata kv count")
    # Smallest possible kv: key length (8) + type (4) + 1-byte value.
    if kv_count > cursor.remaining // 13:
        raise FormatError(
            f"metadata kv count {kv_count} cannot fit in the {cursor.remaining} remaining bytes."
        )
    metadata: dict[str, str] = {}
    seen_keys: set[str] = set()
    alignment = _DEFAULT_ALIGNMENT
    for _ in range(kv_count):
        key_at = cursor.pos
        key = cursor.text("metadata key", _MAX_KEY_BYTES)
        if key in seen_keys:
            raise FormatError(f"duplicate metadata key `{key}` at byte {key_at}.")
        seen_keys.add(key)
        value_type = cursor.u32(f"key `{key}` value type")
        if value_type in _SCALARS:
            fmt = _SCALARS[value_type][1]
            raw = cursor.read(struct.calcsize(fmt), f"key `{key}` value")
            if key == "general.alignment":
                if value_type != 4:
                    raise FormatError(
                        f"general.alignment has type {_SCALARS[value_type][0]}, not u32."
                    )
                alignment = struct.unpack(fmt, raw)[0]
                if alignment == 0 or alignment & (alignment - 1):
                    raise FormatError(f"general.alignment {alignment} is not a power of two.")
        elif value_type == _STRING:
            value_at = cursor.pos
            raw = cursor.string_bytes(f"key `{key}` value")
            try:
                value = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise FormatError(
                    f"key `{key}`: string value at byte {value_at} is not valid UTF-8."
                ) from None
            if len(value) <= _MAX_METADATA_VALUE and len(metadata) < _MAX_METADATA_ENTRIES:
                metadata[key] = value
            if key == "general.alignment":
                raise FormatError("general.alignment has type string, not u32.")
        elif value_type == _ARRAY:
            if key == "general.alignment":
                raise FormatError("general.alignment has type array, not u32.")
            _skip_array(cursor, key, 1)
        else:
            raise FormatError(f"key `{key}` at byte {key_at} has unknown value type {value_type}.")

    # Smallest tensor info: name length (8) + type (4) + n_dims (4) + offset (8).
    if tensor_count > cursor.remaining // 24:
        raise FormatError(
            f"tensor count {tensor_count} cannot fit in the {cursor.remaining} remaining bytes."
        )
    infos: list[tuple[TensorInfo, int]] = []
    seen_names: set[str] = set()
    for _ in range(tensor_count):
        name_at = cursor.pos
        name = cursor.text("tensor name", _MAX_NAME_BYTES)
        if len(name.encode("utf-8")) >= _MAX_TENSOR_NAME:
            raise FormatError(
                f"tensor name at byte {name_at} is {len(name.encode('utf-8'))} bytes; ggml "
                f"requires fewer than {_MAX_TENSOR_NAME}."
            )
        if name in seen_names:
            raise FormatError(f"duplicate tensor name `{name}` at byte {name_at}.")
        seen_names.add(name)
        n_dims = cursor.u32(f"tensor `{name}` n_dims")
        if n_dims > _MAX_DIMS:
            raise FormatError(f"tensor `{name}`: {n_dims} dimensions (at most {_MAX_DIMS}).")
        dims = tuple(cursor.u64(f"tensor `{name}` dimension") for _ in range(n_dims))
        for dim in dims:
            if dim >= _DIM_LIMIT:
                raise FormatError(f"tensor `{name}`: dimension {dim} does not fit in int64.")
        type_id = cursor.u32(f"tensor `{name}` type")
        if type_id not in GGML_TYPES:
            raise FormatError(f"tensor `{name}`: unknown ggml type {type_id}.")
        type_name, block, type_size = GGML_TYPES[type_id]
        offset = cursor.u64(f"tensor `{name}` offset")
        nelements = 1
        for dim in dims:
            nelements *= dim
            if nelements >= _DIM_LIMIT:
                raise FormatError(f"tensor `{name}`: element count overflows int64.")
        if dims and dims[0] % block:
            raise FormatError(
                f"tensor `{name}`: first dimension {dims[0]} is not a multiple of the "
                f"{type_name} block size {block}."
            )
        if nelements % block:
            raise FormatError(
                f"tensor `{name}`: {nelements} elements is not a multiple of the "
                f"{type_name} block size {block}."
            )
        nbytes = nelements // block * type_size
        if offset % alignment:
            raise FormatError(
                f"tensor `{name}`: offset {offset} is not a multiple of the alignment {alignment}."
            )
        infos.append((TensorInfo(name=name, dtype=type_name, shape=dims, nbytes=nbytes), offset))

    data_start = -(-cursor.pos // alignment) * alignment
    # ggml (gguf.cpp, gguf_init_from_file_impl) requires the tensors to lie in file order,
    # contiguous, each padded to the alignment: offset i == sum of padded sizes before it.
    # That one rule excludes gaps, overlap, aliasing and misalignment.
    expected = 0
    for tensor, offset in infos:
        if offset != expected:
            raise FormatError(
                f"tensor `{tensor.name}`: data offset {offset}, expected {expected} (tensors "
                f"must be contiguous, in file order, each padded to {alignment} bytes)."
            )
        end = data_start + offset + tensor.nbytes
        if end > size:
            raise FormatError(
                f"tensor `{tensor.name}`: data ends at byte {end} but the file has only "
                f"{size} bytes."
            )
        expected += -(-tensor.nbytes // alignment) * alignment
    header = WeightsHeader(
        format="gguf",
        tensors=tuple(tensor for tensor, _ in infos),
        metadata=metadata,
    )
    return header, data_start, {tensor.name: offset for tensor, offset in infos}


def read_gguf_layout(path: Path) -> tuple[WeightsHeader, int, dict[str, int]]:
    """:func:`read_gguf_header`, plus the data section's start and each tensor's offset in it
    (for readers and writers of the tensor data)."""
    try:
        with open(path, "rb") as handle:
            return _read_layout(handle, os.fstat(handle.fileno()).st_size)
    except OSError as error:
        raise FormatError(f"cannot read the file: {error.strerror or error}.") from None


def read_gguf_header(path: Path) -> WeightsHeader:
    """Validate ``path`` as a GGUF file and return its tensors and string metadata.

    Tensors keep file order; ``metadata`` holds the string-valued keys (values up to 4096
    characters, at most 1024 entries).
    """
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            return _read_header(handle, size)
    except OSError as error:
        raise FormatError(f"cannot read the file: {error.strerror or error}.") from None
