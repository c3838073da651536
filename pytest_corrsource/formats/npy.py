"""Header-only readers for NumPy ``.npy`` and ``.npz`` files (stdlib only, no numpy import).

An ``.npy`` file is ``\\x93NUMPY``, a version (1.0, 2.0 or 3.0), a header length (u16 for
1.0, u32 otherwise) and a Python dict literal ``{'descr', 'fortran_order', 'shape'}``,
parsed here with :func:`ast.literal_eval` under numpy's 10000-byte cap. Object dtypes are
refused: their payload is a pickle. An ``.npz`` file is a zip of ``.npy`` members; only each
member's header is decompressed.
"""

from __future__ import annotations

import ast
import os
import re
import struct
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any, Protocol

from . import MAX_DECOMPRESSION_RATIO, FormatError, TensorInfo, WeightsHeader

__all__ = [
    "NPY_MAGIC",
    "NpyHeader",
    "check_npy_member",
    "parse_npy_header",
    "read_npy_header",
    "read_npz_header",
]

NPY_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 10000  # numpy's _MAX_HEADER_SIZE
_DESCR_SIMPLE = re.compile(r"([<>|=]?)([biufcSUV])(\d+)")
_DESCR_TIME = re.compile(r"([<>|=]?)([mM])8(\[\d*[A-Za-z]+\])?")
_DESCR_OBJECT = re.compile(r"[<>|=]?O\d*")
_NUMERIC_SIZES = {
    "b": {1},
    "i": {1, 2, 4, 8},
    "u": {1, 2, 4, 8},
    "f": {2, 4, 8, 12, 16},
    "c": {8, 16, 24, 32},
}
_MAX_DESCR_DEPTH = 32


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class NpyHeader:
    """A parsed ``.npy`` header: ``header_len`` is the byte count up to the array data."""

    __slots__ = ("descr", "fortran_order", "header_len", "itemsize", "shape")

    def __init__(
        self,
        descr: str,
        fortran_order: bool,
        shape: tuple[int, ...],
        itemsize: int,
        header_len: int,
    ) -> None:
        self.descr = descr
        self.fortran_order = fortran_order
        self.shape = shape
        self.itemsize = itemsize
        self.header_len = header_len

    @property
    def nbytes(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count * self.itemsize


class ObjectDtypeError(FormatError):
    """The array has an object dtype, so its payload is a pickle.

    ``header_len`` is the byte count up to the payload when the header itself parsed.
    """

    header_len: int = 0


def _contains_object(descr: object, depth: int = 0) -> bool:
    if depth > _MAX_DESCR_DEPTH:
        return True  # absurd nesting: treat as hostile
    if isinstance(descr, str):
        return bool(_DESCR_OBJECT.fullmatch(descr)) or descr in ("object", "O")
    if isinstance(descr, list):
        for field_spec in descr:
            if isinstance(field_spec, tuple) and len(field_spec) >= 2:
                if _contains_object(field_spec[1], depth + 1):
                    return True
            elif _contains_object(field_spec, depth + 1):
                return True
        return False
    if isinstance(descr, tuple):
        return any(_contains_object(item, depth + 1) for item in descr)
    return False


def _itemsize(descr: object) -> int:
    if _contains_object(descr):
        raise ObjectDtypeError("object dtype: the array is a pickle.")
    if not isinstance(descr, str):
        raise FormatError("structured dtype is not supported: only simple dtypes are validated.")
    match = _DESCR_SIMPLE.fullmatch(descr)
    if match:
        kind, size = match.group(2), int(match.group(3))
        if kind in _NUMERIC_SIZES and size not in _NUMERIC_SIZES[kind]:
            raise FormatError(f"dtype descr {descr!r} has an impossible item size.")
        return size * 4 if kind == "U" else size
    if _DESCR_TIME.fullmatch(descr):
        return 8
    shown = descr if len(descr) <= 40 else descr[:40] + "…"
    raise FormatError(f"dtype descr {shown!r} is not a simple numpy dtype string.")


def parse_npy_header(stream: _Readable) -> NpyHeader:
    """Read and validate an ``.npy`` header from ``stream`` (reads at most 12 + 10000 bytes)."""
    start = stream.read(8)
    if len(start) < 8 or start[:6] != NPY_MAGIC:
        raise FormatError("missing the .npy magic `\\x93NUMPY`.")
    major, minor = start[6], start[7]
    if (major, minor) == (1, 0):
        raw_len = stream.read(2)
        prefix = 10
        fmt = "<H"
    elif (major, minor) in ((2, 0), (3, 0)):
        raw_len = stream.read(4)
        prefix = 12
        fmt = "<I"
    else:
        raise FormatError(f".npy version {major}.{minor} is not supported (1.0, 2.0, 3.0).")
    if len(raw_len) != struct.calcsize(fmt):
        raise FormatError("header truncated inside the header length field.")
    (length,) = struct.unpack(fmt, raw_len)
    if length > _MAX_HEADER:
        raise FormatError(f"header length {length} exceeds numpy's limit of {_MAX_HEADER} bytes.")
    raw = stream.read(length)
    if len(raw) != length:
        raise FormatError(f"header truncated: expected {length} bytes, found {len(raw)}.")
    try:
        text = raw.decode("utf-8" if major == 3 else "latin-1")
    except UnicodeDecodeError:
        raise FormatError("version 3.0 header is not valid UTF-8.") from None
    try:
        parsed: Any = ast.literal_eval(text)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        raise FormatError("header is not a Python literal.") from None
    if not isinstance(parsed, dict):
        raise FormatError("header is not a dict literal.")
    if set(parsed) != {"descr", "fortran_order", "shape"}:
        keys = ", ".join(sorted(repr(key) for key in parsed)[:6])
        raise FormatError(
            f"header keys are {{{keys}}}, not exactly 'descr', 'fortran_order', 'shape'."
        )
    fortran_order = parsed["fortran_order"]
    if not isinstance(fortran_order, bool):
        raise FormatError("header field 'fortran_order' is not a bool.")
    shape = parsed["shape"]
    if not isinstance(shape, tuple) or not all(
        isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in shape
    ):
        raise FormatError("header field 'shape' is not a tuple of non-negative integers.")
    try:
        itemsize = _itemsize(parsed["descr"])
    except ObjectDtypeError as error:
        error.header_len = prefix + length
        raise
    return NpyHeader(
        descr=parsed["descr"],
        fortran_order=fortran_order,
        shape=tuple(shape),
        itemsize=itemsize,
        header_len=prefix + length,
    )


def _describe(header: NpyHeader) -> str:
    return f"shape {header.shape} of {header.descr} needs {header.nbytes} bytes"


def read_npy_header(path: Path) -> WeightsHeader:
    """Validate an ``.npy`` file: the data after the header must be exactly the array's size."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            header = parse_npy_header(handle)
    except OSError as error:
        raise FormatError(f"cannot read the file: {error.strerror or error}.") from None
    data = size - header.header_len
    if data != header.nbytes:
        raise FormatError(f"array data is {data} bytes but {_describe(header)}.")
    tensor = TensorInfo(
        name=Path(path).stem, dtype=header.descr, shape=header.shape, nbytes=header.nbytes
    )
    return WeightsHeader(format="npy", tensors=(tensor,))


def check_npy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> NpyHeader:
    """Validate one ``.npy`` member of a zip (npz, skops) before anything reads its data: not
    encrypted, stored or deflated, no zip bomb, and exactly the data its header declares. Only
    then is ``numpy.lib.format.read_array`` safe on it: it allocates the declared shape up
    front, so a 1 MiB member declaring 256 GiB would otherwise be a MemoryError."""
    name = info.filename
    if info.flag_bits & 0x1:
        raise FormatError(f"member `{name}` is encrypted.")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise FormatError(
            f"member `{name}` uses compression method {info.compress_type} "
            "(only stored and deflate are allowed)."
        )
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise FormatError(
            f"member `{name}` is stored but its sizes differ "
            f"({info.compress_size} vs {info.file_size})."
        )
    if info.file_size > MAX_DECOMPRESSION_RATIO * max(info.compress_size, 1):
        raise FormatError(
            f"member `{name}` expands {info.compress_size} bytes to "
            f"{info.file_size} (ratio over {MAX_DECOMPRESSION_RATIO}: zip bomb?)."
        )
    member: IO[bytes]
    with archive.open(info) as member:
        try:
            header = parse_npy_header(member)
        except FormatError as error:
            raise type(error)(f"member `{name}`: {error}") from None
    data = info.file_size - header.header_len
    if data != header.nbytes:
        raise FormatError(f"member `{name}`: array data is {data} bytes but {_describe(header)}.")
    return header


def read_npz_header(path: Path) -> WeightsHeader:
    """Validate an ``.npz`` archive member by member (headers only, zip-bomb guarded)."""
    tensors: list[TensorInfo] = []
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            seen: set[str] = set()
            for info in infos:
                name = info.filename
                if name in seen:
                    raise FormatError(f"member `{name}` occurs twice in the archive.")
                seen.add(name)
                if name.endswith("/"):
                    raise FormatError(f"member `{name}` is a directory, not a .npy array.")
                if not name.endswith(".npy"):
                    raise FormatError(f"member `{name}` is not a .npy array.")
                header = check_npy_member(archive, info)
                tensors.append(
                    TensorInfo(
                        name=name[: -len(".npy")],
                        dtype=header.descr,
                        shape=header.shape,
                        nbytes=header.nbytes,
                    )
                )
    except FormatError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as error:
        raise FormatError(f"not a readable zip archive: {error}.") from None
    except (OSError, EOFError, zlib.error, NotImplementedError, RuntimeError, ValueError) as error:
        raise FormatError(f"cannot read the zip archive: {error}.") from None
    except struct.error as error:
        raise FormatError(f"corrupt zip structures: {error}.") from None
    return WeightsHeader(format="npz", tensors=tuple(tensors))
