"""Header-only validator for ``.safetensors`` files (stdlib only).

Implements every rule of the reference reader (huggingface/safetensors ``read_metadata`` and
``Metadata::validate``) and is stricter in three places: duplicate JSON keys, control
characters (including NUL) in tensor names and unpaired surrogate escapes are rejected.
Tensor data is never read; at most the 8-byte prefix and the declared header are.
"""

from __future__ import annotations

import gc
import json
import os
import re
import struct
from pathlib import Path
from typing import Any

from . import FormatError, TensorInfo, WeightsHeader

__all__ = [
    "SAFETENSORS_DTYPE_BITS",
    "SAFETENSORS_MAX_HEADER",
    "read_safetensors_header",
    "read_safetensors_layout",
]

#: Bit size of every dtype the reference reader knows (case-sensitive names).
SAFETENSORS_DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}

#: The header cap: the reference reader's ``MAX_HEADER_SIZE`` (the one place it is defined).
SAFETENSORS_MAX_HEADER = 100_000_000
_U64_MAX = 2**64 - 1
_METADATA_KEY = "__metadata__"
_MAX_DEPTH = 128  # serde_json fails on entering the 128th nested container


class _Object(dict[str, Any]):
    """A JSON object that remembers which keys occurred more than once."""

    duplicates: tuple[str, ...] = ()


def _object_hook(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    dups: list[str] = []
    for key, value in pairs:
        if key in obj and key not in dups:
            dups.append(key)
        obj[key] = value
    if dups:
        obj.duplicates = tuple(dups)
    return obj


def _reject_constant(token: str) -> Any:
    raise FormatError(f"header is not valid JSON: `{token}` is not a JSON number.")


def _parse_int(token: str) -> int | float:
    # serde reads `-0` as the float -0.0 (so it is no valid shape or offset); mirror that.
    return -0.0 if token == "-0" else int(token)


def _parse_float(token: str) -> float:
    value = float(token)
    if value in (float("inf"), float("-inf")):
        raise FormatError(f"header is not valid JSON: number `{token[:40]}` is out of range.")
    return value


def _too_deep(value: object, depth: int = 1) -> bool:
    """Whether containers nest ``_MAX_DEPTH`` deep (serde_json's recursion limit), counting
    ``value`` at ``depth``."""
    pending: list[tuple[object, int]] = [(value, depth)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= _MAX_DEPTH:
            return True
        # Only containers can nest: scalars (most of a header) are never queued.
        pending.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _is_uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _U64_MAX


_BAD_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _check_text(what: str, text: str) -> None:
    """Reject control characters and unpaired surrogates in a name or metadata string."""
    found = _BAD_TEXT.search(text)  # one C-speed scan; names are checked 10,000s at a time
    if found is None:
        return
    index, code = found.start(), ord(found.group())
    if 0xD800 <= code <= 0xDFFF:
        raise FormatError(f"{what} contains an unpaired surrogate escape at index {index}.")
    raise FormatError(f"{what} contains control character U+{code:04X} at index {index}.")


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(dim) for dim in shape) + "]"


_KNOWN_FIELDS = frozenset({"dtype", "shape", "data_offsets"})


def _parse_tensor(name: str, info: object) -> tuple[TensorInfo, int, int]:
    if not isinstance(info, dict):
        raise FormatError(f"tensor `{name}`: entry is {_type_name(info)}, not an object.")
    if isinstance(info, _Object) and info.duplicates:
        raise FormatError(f"tensor `{name}`: duplicate field `{info.duplicates[0]}`.")
    for field_name in ("dtype", "shape", "data_offsets"):
        if field_name not in info:
            raise FormatError(f"tensor `{name}`: missing field `{field_name}`.")
    if len(info) > 3:
        # Unknown fields are ignored by the reference reader, but its JSON parser still refuses
        # deep nesting and unpaired surrogate escapes there. Known fields are validated flat
        # below, so only these can nest.
        for key, value in info.items():
            if key in _KNOWN_FIELDS:
                continue
            if _too_deep(value, 3):
                raise FormatError(f"header is not valid JSON: nesting reaches {_MAX_DEPTH} levels.")
            if _any_surrogate(key) or _any_surrogate(value):
                raise FormatError(
                    f"tensor `{name}`: field {key!r} contains an unpaired surrogate escape."
                )
    dtype = info["dtype"]
    if not isinstance(dtype, str):
        raise FormatError(f"tensor `{name}`: dtype is {_type_name(dtype)}, not a string.")
    if dtype not in SAFETENSORS_DTYPE_BITS:
        shown = dtype if len(dtype) <= 40 else dtype[:40] + "…"
        raise FormatError(
            f"tensor `{name}`: unknown dtype `{shown}` (dtype names are case-sensitive)."
        )
    raw_shape = info["shape"]
    if not isinstance(raw_shape, list):
        raise FormatError(f"tensor `{name}`: shape is {_type_name(raw_shape)}, not a list.")
    for dim in raw_shape:
        if not _is_uint(dim):
            shown = repr(dim) if isinstance(dim, (int, float)) else _type_name(dim)
            raise FormatError(
                f"tensor `{name}`: shape entry {shown} is not a non-negative 64-bit integer."
            )
    shape = tuple(int(dim) for dim in raw_shape)
    offsets = info["data_offsets"]
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_uint, offsets))):
        raise FormatError(
            f"tensor `{name}`: data_offsets must be a list of two non-negative integers."
        )
    begin, end = int(offsets[0]), int(offsets[1])
    # Size arithmetic as the reference does it: checked u64 products, left to right.
    bits = SAFETENSORS_DTYPE_BITS[dtype]
    nelements = 1
    for dim in shape:
        nelements *= dim
        if nelements > _U64_MAX:
            raise FormatError(
                f"tensor `{name}`: shape {_shape_text(shape)} overflows 64-bit size arithmetic."
            )
    nbits = nelements * bits
    if nbits > _U64_MAX:
        raise FormatError(
            f"tensor `{name}`: shape {_shape_text(shape)} of {dtype} overflows 64-bit size "
            "arithmetic."
        )
    if nbits % 8:
        raise FormatError(
            f"tensor `{name}`: shape {_shape_text(shape)} of {dtype} is {nbits} bits, "
            "not a whole number of bytes."
        )
    return TensorInfo(name=name, dtype=dtype, shape=shape, nbytes=nbits // 8), begin, end


def _parse_metadata(value: object) -> dict[str, str]:
    if value is None:  # serde reads `null` as an absent Option
        return {}
    if not isinstance(value, dict):
        raise FormatError(f"`{_METADATA_KEY}` is {_type_name(value)}, not an object.")
    if isinstance(value, _Object) and value.duplicates:
        raise FormatError(f"`{_METADATA_KEY}`: duplicate key `{value.duplicates[0]}`.")
    metadata: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(item, str):
            raise FormatError(
                f"`{_METADATA_KEY}` value for `{key}` is {_type_name(item)}, not a string."
            )
        if _has_surrogate(key) or _has_surrogate(item):
            raise FormatError(f"`{_METADATA_KEY}` entry {key!r} contains an unpaired surrogate.")
        metadata[key] = item
    return metadata


def _any_surrogate(value: object) -> bool:
    """Whether any string (key or value) inside ``value`` holds an unpaired surrogate."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _has_surrogate(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def read_safetensors_header(
    path: Path, *, max_header_bytes: int = SAFETENSORS_MAX_HEADER
) -> WeightsHeader:
    """Validate ``path`` as a safetensors file and return its header.

    Reads only the 8-byte length prefix and the JSON header (at most
    ``min(SAFETENSORS_MAX_HEADER, max_header_bytes)`` bytes, and never past the end of the file).
    Tensors are returned sorted by name. Raises :class:`FormatError` on any violation.
    """
    return read_safetensors_layout(path, max_header_bytes=max_header_bytes)[0]


def read_safetensors_layout(
    path: Path, *, max_header_bytes: int = SAFETENSORS_MAX_HEADER
) -> tuple[WeightsHeader, int, dict[str, int]]:
    """:func:`read_safetensors_header` plus where the bytes are: ``(header, data_start,
    offsets)``, each tensor's bytes lying at ``data_start + offsets[name]`` for
    ``TensorInfo.nbytes`` bytes (the same shape as :func:`.gguf.read_gguf_layout`). The
    validation guarantees the tensors tile the data section exactly: no gap, no overlap, no
    trailing byte."""
    try:
        with open(path, "rb") as handle:
            file_size = os.fstat(handle.fileno()).st_size
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise FormatError(
                    f"header too small: the file has {len(prefix)} bytes, fewer than the "
                    "8-byte header length prefix."
                )
            (header_len,) = struct.unpack("<Q", prefix)
            cap = min(SAFETENSORS_MAX_HEADER, max_header_bytes)
            if header_len > cap:
                raise FormatError(f"header length {header_len} exceeds the limit of {cap} bytes.")
            if 8 + header_len > file_size:
                raise FormatError(
                    f"header length {header_len} exceeds the file ({file_size} bytes)."
                )
            raw = handle.read(header_len)
    except OSError as error:
        raise FormatError(f"cannot read the file: {error.strerror or error}.") from None
    if len(raw) != header_len:
        raise FormatError(
            f"header truncated: expected {header_len} bytes but only {len(raw)} could be read."
        )
    # A 10,000-tensor header allocates ~100,000 small objects and no reference cycles: the
    # cyclic garbage collector would only re-scan them (about a fifth of the time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        header, offsets = _validate(raw, header_len, file_size)
    finally:
        if collecting:
            gc.enable()
    return header, 8 + header_len, offsets


def _validate(raw: bytes, header_len: int, file_size: int) -> tuple[WeightsHeader, dict[str, int]]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FormatError(
            f"header is not valid UTF-8 (invalid byte at header offset {error.start})."
        ) from None
    try:
        parsed = json.loads(
            text,
            object_pairs_hook=_object_hook,
            parse_constant=_reject_constant,
            # The `-0` hook costs a Python call per integer (30,000 in a 10,000-tensor header):
            # use it only when the text can contain a `-0` at all.
            parse_int=_parse_int if "-0" in text else None,
            parse_float=_parse_float,
        )
    except json.JSONDecodeError as error:
        raise FormatError(
            f"header is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}."
        ) from None
    except RecursionError:
        raise FormatError("header is not valid JSON: nesting is too deep.") from None
    except ValueError as error:  # e.g. an integer literal with too many digits
        raise FormatError(f"header is not valid JSON: {error}.") from None
    if not isinstance(parsed, dict):
        raise FormatError(f"header is {_type_name(parsed)}, not a JSON object.")
    if isinstance(parsed, _Object) and parsed.duplicates:
        key = parsed.duplicates[0]
        if key == _METADATA_KEY:
            raise FormatError(f"duplicate key `{_METADATA_KEY}`.")
        raise FormatError(f"duplicate tensor name `{key}`.")

    metadata: dict[str, str] = {}
    entries: list[tuple[TensorInfo, int, int]] = []
    for name, info in parsed.items():
        if name == _METADATA_KEY:
            metadata = _parse_metadata(info)
            continue
        _check_text(f"tensor name {name!r}", name)
        entries.append(_parse_tensor(name, info))

    # Contiguity: sorted by offsets, every tensor starts where the previous one ended.
    entries.sort(key=lambda entry: (entry[1], entry[2], entry[0].name))
    position = 0
    for tensor, begin, end in entries:
        where = f"tensor `{tensor.name}`: data_offsets [{begin}, {end}]"
        if end < begin:
            raise FormatError(f"{where} end before they begin.")
        if begin < position:
            raise FormatError(f"{where} overlap the previous tensor ending at {position}.")
        if begin > position:
            previous = (
                "the start of the data section"
                if position == 0
                else (f"the previous tensor ending at {position}")
            )
            raise FormatError(f"{where} leave a gap of {begin - position} bytes after {previous}.")
        if end - begin != tensor.nbytes:
            raise FormatError(
                f"{where} span {end - begin} bytes but shape {_shape_text(tensor.shape)} of "
                f"{tensor.dtype} needs {tensor.nbytes}."
            )
        position = end
    data_end = 8 + header_len + position
    if data_end < file_size:
        raise FormatError(
            f"file not fully covered: tensors end at byte {data_end} but the file has "
            f"{file_size} bytes ({file_size - data_end} trailing bytes)."
        )
    if data_end > file_size:
        raise FormatError(
            f"file truncated: tensors end at byte {data_end} but the file has only "
            f"{file_size} bytes ({data_end - file_size} bytes missing)."
        )
    tensors = tuple(sorted((entry[0] for entry in entries), key=lambda t: t.name))
    offsets = {tensor.name: begin for tensor, begin, _end in entries}
    return WeightsHeader(format="safetensors", tensors=tensors, metadata=metadata), offsets
