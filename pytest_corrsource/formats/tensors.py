"""Tensor names, dtypes, shapes and values of every weights format, without running any code.

One entry point per question: :func:`read_schema` (``{name: (dtype, shape)}``) and
:func:`open_tensors` (a :class:`TensorFile` whose :meth:`TensorFile.raw` and
:meth:`TensorFile.values` read one tensor at a time, so a comparison holds at most one tensor of
each file in memory). dtypes are spelled the safetensors way (``F32``, ``BF16``, ``I64``) for
every format whose dtypes have such a name, so a checkpoint written as safetensors and one
written by ``torch.save`` compare equal when they hold the same tensors; GGUF keeps ggml's names
(``Q4_0`` …).

A format whose tensors this module cannot read raises :class:`UnreadableTensors`, whose message
says it is a limit of this reader ("cannot read tensors of format X"), not a fault of the file.
"""

from __future__ import annotations

import itertools
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import MAX_DECOMPRESSION_RATIO, FormatError

__all__ = [
    "TensorEntry",
    "TensorFile",
    "UnreadableTensors",
    "canonical_dtype",
    "open_tensors",
    "read_schema",
]

Schema = dict[str, tuple[str, tuple[int, ...]]]

_NUMPY_NAMES = {
    ("f", 2): "F16", ("f", 4): "F32", ("f", 8): "F64", ("i", 1): "I8", ("i", 2): "I16",
    ("i", 4): "I32", ("i", 8): "I64", ("u", 1): "U8", ("u", 2): "U16", ("u", 4): "U32",
    ("u", 8): "U64", ("b", 1): "BOOL", ("c", 8): "C64", ("c", 16): "C128",
}  # fmt: skip
#: safetensors-style name -> little-endian numpy dtype the raw bytes are read as
_RAW_DTYPES = {name: f"<{kind}{size}" for (kind, size), name in _NUMPY_NAMES.items()}
_RAW_DTYPES["BOOL"] = "|b1"
_RAW_DTYPES["BF16"] = "<u2"
for _f8 in ("F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F8_E8M0"):
    _RAW_DTYPES[_f8] = "|u1"


class UnreadableTensors(FormatError):
    """This reader cannot read the tensors of a file (a limit of the plugin, not a fault)."""

    def __init__(self, fmt: str, why: str) -> None:
        super().__init__(f"cannot read tensors of format {fmt}: {why}")
        self.format = fmt


def canonical_dtype(descr: str) -> str:
    """``<f4`` -> ``F32`` (numpy descr to the safetensors spelling; others unchanged)."""
    try:
        dtype = np.dtype(descr)
    except TypeError:
        return descr
    return _NUMPY_NAMES.get((dtype.kind, dtype.itemsize), descr)


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor's bytes are. ``offset`` is absolute in ``file``; ``stride`` (in
    elements) is set for torch tensors, which may be views; ``member`` for zip members read
    through numpy (npz, skops); ``byteorder`` ``>`` for big-endian data."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    file: Path
    offset: int = 0
    stride: tuple[int, ...] | None = None
    fortran: bool = False
    member: str | None = None
    byteorder: str = "<"
    raw_dtype: str | None = None  # numpy descr of the stored bytes, when not derived from dtype
    #: GGUF: ``shape`` is ggml's (fastest dimension first); quantized types read as their
    #: ``nbytes`` raw bytes
    ggml_nbytes: int | None = None


@dataclass
class TensorFile:
    path: Path
    format: str
    entries: dict[str, TensorEntry]
    #: keeps a decompressed copy (compressed joblib files) alive until :meth:`close`
    keep: Any = None

    def close(self) -> None:
        if self.keep is not None:
            self.keep.cleanup()
            self.keep = None

    def __enter__(self) -> TensorFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def schema(self) -> Schema:
        return {name: (e.dtype, e.shape) for name, e in self.entries.items()}

    def raw(self, name: str) -> npt.NDArray[Any]:
        """The tensor's elements in C order, as stored (BF16 as uint16 bits, F8 as bytes).

        Every size is checked before numpy allocates it (``np.fromfile`` allocates ``count``
        elements before it reads one): the shape must be one numpy can hold, the bytes must be
        in the file now (it may have changed since it was described), and a strided view may
        not expand its bytes past :data:`MAX_DECOMPRESSION_RATIO` times."""
        entry = self.entries[name]
        if entry.member is not None:
            return _npz_member(entry)
        if entry.offset < 0:
            raise UnreadableTensors(
                self.format, f"{name!r} is pickled as text (protocol 2); its values are not read"
            )
        _check_holdable(self.format, entry)
        if entry.ggml_nbytes is not None:
            return _ggml_raw(entry)
        descr = entry.raw_dtype or _RAW_DTYPES.get(entry.dtype)
        if descr is None:
            raise UnreadableTensors(self.format, f"tensor {name!r} has dtype {entry.dtype}")
        dtype = np.dtype(descr)
        if entry.byteorder == ">" and dtype.itemsize > 1:
            dtype = dtype.newbyteorder(">")
        count = math.prod(entry.shape)
        if entry.stride is None:
            _check_in_file(entry, count * dtype.itemsize)
            data = np.fromfile(entry.file, dtype=dtype, count=count, offset=entry.offset)
            if data.size != count:
                raise FormatError(f"tensor {name!r} is truncated.")
            shaped: npt.NDArray[Any] = np.reshape(
                data, entry.shape, order="F" if entry.fortran else "C"
            )
            return np.ascontiguousarray(shaped)
        if count == 0:
            return np.empty(entry.shape, dtype=dtype)
        span = 1 + sum((d - 1) * s for d, s in zip(entry.shape, entry.stride, strict=True))
        _check_in_file(entry, span * dtype.itemsize)
        limit = max(span * dtype.itemsize, 1 << 20) * MAX_DECOMPRESSION_RATIO
        if count * dtype.itemsize > limit:  # e.g. stride 0: one stored element, 2**40 read
            raise UnreadableTensors(
                self.format,
                f"{name!r} is a view of {span * dtype.itemsize} stored bytes that reads as "
                f"{count * dtype.itemsize} bytes (over {MAX_DECOMPRESSION_RATIO}x); it is "
                "not expanded in memory",
            )
        data = np.fromfile(entry.file, dtype=dtype, count=span, offset=entry.offset)
        if data.size != span:
            raise FormatError(f"tensor {name!r} is truncated.")
        view = np.lib.stride_tricks.as_strided(
            data,
            shape=entry.shape,
            strides=tuple(s * dtype.itemsize for s in entry.stride),
            writeable=False,
        )
        return np.ascontiguousarray(view)

    def values(self, name: str) -> npt.NDArray[Any]:
        """The tensor as numbers (BF16 widened to float32); F8 and quantized types raise."""
        entry = self.entries[name]
        raw = self.raw(name)
        if entry.dtype == "BF16":
            wide: npt.NDArray[Any] = (raw.astype(np.uint32) << np.uint32(16)).view(np.float32)
            return wide
        if entry.dtype.startswith("F8_") or entry.dtype not in _RAW_DTYPES:
            raise UnreadableTensors(self.format, f"{name!r}: {entry.dtype} values are not decoded")
        return raw


#: numpy's NPY_MAXDIMS (numpy 2); numpy 1 allowed 32, which only lowers what numpy refuses
_NUMPY_MAX_DIMS = 64


def _check_holdable(fmt: str, entry: TensorEntry) -> None:
    """Refuse a shape no numpy array can have before numpy is asked to make one (it raises
    ValueError): more than 64 dimensions, or dimensions whose non-zero product overflows
    numpy's sizes even when another dimension is 0 (a valid safetensors or GGUF header may
    declare ``[0, 2**64 - 1]``)."""
    shape = entry.shape
    shown = repr(list(shape)) if len(shape) <= 8 else f"of {len(shape)} dimensions"
    if len(shape) > _NUMPY_MAX_DIMS:
        raise UnreadableTensors(
            fmt, f"{entry.name!r} has shape {shown}; numpy holds at most {_NUMPY_MAX_DIMS}"
        )
    extent = 1
    for dim in shape:
        extent *= max(dim, 1)
    if extent * 16 >= 2**63:  # 16: the widest element (C128); numpy's sizes are signed 64-bit
        raise UnreadableTensors(fmt, f"{entry.name!r} has shape {shown}, too large for numpy")


def _check_in_file(entry: TensorEntry, nbytes: int) -> None:
    """The ``nbytes`` a read of ``entry`` needs must be in its file now, checked before
    ``np.fromfile`` allocates them (the file may be shorter than a header, or a zip's
    central directory, claims, or have shrunk since it was described)."""
    size = entry.file.stat().st_size
    if entry.offset + nbytes > size:
        raise FormatError(
            f"tensor {entry.name!r} needs {nbytes} bytes at byte {entry.offset} but "
            f"{entry.file.name} has {size} bytes (truncated)."
        )


def _ggml_raw(entry: TensorEntry) -> npt.NDArray[Any]:
    """A GGUF tensor in numpy (C) order; quantized blocks as their bytes."""
    assert entry.ggml_nbytes is not None
    descr = _RAW_DTYPES.get(entry.dtype)
    _check_in_file(entry, entry.ggml_nbytes)
    if descr is None:  # quantized: the blocks' bytes, for exact comparison
        data = np.fromfile(entry.file, dtype=np.uint8, count=entry.ggml_nbytes, offset=entry.offset)
        if data.size != entry.ggml_nbytes:
            raise FormatError(f"tensor {entry.name!r} is truncated.")
        return data
    count = math.prod(entry.shape)
    data = np.fromfile(entry.file, dtype=np.dtype(descr), count=count, offset=entry.offset)
    if data.size != count:
        raise FormatError(f"tensor {entry.name!r} is truncated.")
    shaped: npt.NDArray[Any] = np.reshape(data, tuple(reversed(entry.shape)))
    return shaped


def _npz_member(entry: TensorEntry) -> npt.NDArray[Any]:
    import zipfile

    from .npy import check_npy_member

    assert entry.member is not None
    try:
        with zipfile.ZipFile(entry.file) as archive:
            info = archive.getinfo(entry.member)
            check_npy_member(archive, info)  # again: the file may have changed since it was read
            with archive.open(info) as handle:
                array = np.lib.format.read_array(handle, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, KeyError, EOFError, zlib.error) as exc:
        raise FormatError(f"member {entry.member}: {exc}") from None
    return np.ascontiguousarray(array)


def _safetensors(path: Path) -> dict[str, TensorEntry]:
    from .safetensors import read_safetensors_layout

    header, data_start, offsets = read_safetensors_layout(path)  # full validation
    return {
        t.name: TensorEntry(t.name, t.dtype, t.shape, path, data_start + offsets[t.name])
        for t in header.tensors
    }


def _safetensors_index(path: Path, root: Path) -> dict[str, TensorEntry]:
    from .shards import read_safetensors_index

    index = read_safetensors_index(path, root)
    entries: dict[str, TensorEntry] = {}
    by_shard: dict[str, list[str]] = {}
    for tensor, shard in index.weight_map.items():
        by_shard.setdefault(shard, []).append(tensor)
    for shard, names in sorted(by_shard.items()):
        shard_entries = _safetensors(path.parent / shard)
        for name in names:
            if name not in shard_entries:
                raise FormatError(f"the index maps {name!r} to {shard}, which lacks it.")
            entries[name] = shard_entries[name]
    return dict(sorted(entries.items()))


def _npy(path: Path) -> dict[str, TensorEntry]:
    from .npy import parse_npy_header, read_npy_header

    read_npy_header(path)
    with open(path, "rb") as handle:
        header = parse_npy_header(handle)
    dtype = np.dtype(header.descr)
    return {
        path.stem: TensorEntry(
            path.stem,
            canonical_dtype(header.descr),
            header.shape,
            path,
            header.header_len,
            fortran=header.fortran_order,
            byteorder=">" if dtype.byteorder == ">" else "<",
            raw_dtype=header.descr,
        )
    }


def _npz(path: Path) -> dict[str, TensorEntry]:
    from .npy import read_npz_header

    header = read_npz_header(path)
    return {
        t.name: TensorEntry(t.name, canonical_dtype(t.dtype), t.shape, path, member=t.name + ".npy")
        for t in header.tensors
    }


def _torch(path: Path, fmt: str) -> dict[str, TensorEntry]:
    from .torch_zip import read_torch_checkpoint

    archive = read_torch_checkpoint(path, fmt)
    order = ">" if archive.byteorder == "big" else "<"
    entries: dict[str, TensorEntry] = {}
    for t in archive.tensors:
        storage = archive.storages[t.storage]
        size = np.dtype(_RAW_DTYPES.get(t.dtype, "|u1")).itemsize
        entries[t.name] = TensorEntry(
            t.name,
            t.dtype,
            t.shape,
            path,
            storage.data_offset + t.offset * size,
            stride=t.stride,
            byteorder=order,
        )
    return entries


_RAW_NAMES = {"float32": "F32", "float16": "F16", "float64": "F64", "bfloat16": "BF16"}


RAW_ITEMSIZE = {"float32": 4, "float16": 2, "float64": 8, "bfloat16": 2}


def raw_ranges(path: Path, layout: Any) -> list[tuple[str, int, int, str]]:
    """(name, offset, length, dtype) of each declared range, checked against the file: inside
    it, a whole number of elements, no overlap. Names are ``range0``, ``range1`` …"""
    size = path.stat().st_size
    out: list[tuple[str, int, int, str]] = []
    for index, declared in enumerate(layout.ranges):
        length = size - declared.offset if declared.length is None else declared.length
        name = f"range{index}"
        if declared.offset > size or length < 0 or declared.offset + length > size:
            raise FormatError(
                f"layout: {name} (bytes {declared.offset}..{declared.offset + length}) lies "
                f"outside {path.name} ({size} bytes)",
            )
        if length % RAW_ITEMSIZE[declared.dtype]:
            raise FormatError(
                f"layout: {name} is {length} bytes, not a whole number of {declared.dtype}",
            )
        out.append((name, declared.offset, length, declared.dtype))
    for (a, a_off, a_len, _), (b, b_off, _, _) in itertools.pairwise(
        sorted(out, key=lambda r: r[1])
    ):
        if b_off < a_off + a_len:
            raise FormatError(f"layout: {a} and {b} overlap")
    return out


def _raw(path: Path, layout: Any) -> dict[str, TensorEntry]:
    ranges = raw_ranges(path, layout)
    entries = {}
    for name, offset, length, dtype in ranges:
        size = np.dtype(_RAW_DTYPES[_RAW_NAMES[dtype]]).itemsize
        entries[name] = TensorEntry(name, _RAW_NAMES[dtype], (length // size,), path, offset)
    return entries


def _gguf(path: Path) -> dict[str, TensorEntry]:
    from .gguf import read_gguf_layout

    header, data_start, offsets = read_gguf_layout(path)
    return {
        t.name: TensorEntry(
            t.name,
            t.dtype,
            t.shape,
            path,
            data_start + offsets[t.name],
            ggml_nbytes=t.nbytes,
        )
        for t in header.tensors
    }


def _pickled(path: Path, fmt: str) -> dict[str, TensorEntry]:
    from .pickled_arrays import read_pickled_arrays

    entries: dict[str, TensorEntry] = {}
    for array in read_pickled_arrays(path):
        entries[array.name] = TensorEntry(
            array.name,
            canonical_dtype(array.dtype.str),
            array.shape,
            path,
            # -1: pickled as latin-1 text (protocol 2); described, but its values are not read
            array.payload.offset if array.payload is not None else -1,
            fortran=array.fortran,
            byteorder=">" if array.dtype.byteorder == ">" else "<",
            raw_dtype=array.dtype.str,
        )
    return entries


#: Opcodes a decompressed joblib stream may have: per compressed byte (real models have
#: about 0.04: their bulk is array bytes, not opcodes), and at least 250,000 (about 1.5 s).
JOBLIB_OPCODES_PER_BYTE = 16
JOBLIB_MIN_OPCODES = 250_000


def joblib_opcode_limit(compressed: Path) -> int:
    """The opcode budget of the pickle inside the compressed joblib file ``compressed``."""
    return max(JOBLIB_MIN_OPCODES, JOBLIB_OPCODES_PER_BYTE * compressed.stat().st_size)


def decompress_joblib(path: Path, codec: str, out: Path, max_bytes: int | None = None) -> None:
    """Decompress a joblib-compressed file into ``out``, bounded against decompression bombs
    (at most :data:`MAX_DECOMPRESSION_RATIO` times the input, and ``max_bytes`` when given;
    never more than 1 MiB of output in memory)."""
    import bz2
    import lzma

    limit = max(path.stat().st_size, 1 << 20) * MAX_DECOMPRESSION_RATIO
    if max_bytes is not None:
        limit = min(limit, max_bytes)
    ratio = MAX_DECOMPRESSION_RATIO

    def blocks() -> Any:
        if codec in ("bz2", "xz", "lzma"):
            opener: Any = bz2.open if codec == "bz2" else lzma.open
            with opener(path, "rb") as stream:
                while block := stream.read(1 << 20):
                    yield block
            return
        # joblib's zlib files are one zlib stream, its gzip files one gzip member (wbits 31)
        inflate = zlib.decompressobj(31 if codec == "gzip" else 15)
        with open(path, "rb") as fin:
            while raw := fin.read(1 << 16):
                while raw:
                    yield inflate.decompress(raw, 1 << 20)
                    raw = inflate.unconsumed_tail
        yield inflate.flush()

    written = 0
    try:
        with open(out, "wb") as fout:
            for block in blocks():
                written += len(block)
                if written > limit:
                    raise FormatError(f"the {codec} stream expands over {ratio}x (a bomb?).")
                fout.write(block)
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
        raise FormatError(f"cannot decompress the {codec} stream: {exc}") from None


def open_tensors(
    path: Path, root: Path | None = None, fmt: str | None = None, layout: Any = None
) -> TensorFile:
    """Read where every tensor of ``path`` is. ``root`` bounds a shard index's shards;
    ``layout`` (a manifest ``RawLayout``) declares a raw file's float ranges.

    Raises :class:`FormatError` for an invalid file and :class:`UnreadableTensors` for a
    format (or a part of one) this reader does not support.
    """
    from .detect import detect_format

    path = Path(path)
    if layout is not None:
        return TensorFile(path, "raw", _raw(path, layout))
    fmt = fmt or detect_format(path)
    try:
        if fmt == "safetensors":
            entries = _safetensors(path)
        elif fmt == "safetensors-index":
            entries = _safetensors_index(path, root or path.parent)
        elif fmt == "npy":
            entries = _npy(path)
        elif fmt == "npz":
            entries = _npz(path)
        elif fmt == "torch-zip":
            entries = _torch(path, fmt)
        elif fmt == "pickle" and (torch_fmt := _torch_pickle_format(path)):
            fmt, entries = torch_fmt, _torch(path, torch_fmt)
        elif fmt == "pickle":
            entries = _pickled(path, fmt)
        elif fmt == "gguf":
            entries = _gguf(path)
        elif fmt in ("opaque", "skops") and _is_skops(path):
            fmt, entries = "skops", _skops(path)
        elif fmt == "opaque" and (codec := _joblib_codec(path)):
            return _compressed(path, codec)
        else:
            raise UnreadableTensors(fmt, "this format's tensors are not readable by the plugin")
    except OSError as exc:
        raise FormatError(f"cannot read the file: {exc.strerror or exc}.") from None
    return TensorFile(path, fmt, entries)


def _torch_pickle_format(path: Path) -> str | None:
    from .torch_zip import torch_pickle_format

    return torch_pickle_format(path)


def _is_skops(path: Path) -> bool:
    from .skops import is_skops

    return is_skops(path)


def _skops(path: Path) -> dict[str, TensorEntry]:
    import zipfile

    from .npy import check_npy_member
    from .skops import skops_arrays

    entries: dict[str, TensorEntry] = {}
    arrays = skops_arrays(path)
    try:
        with zipfile.ZipFile(path) as archive:
            for name, member in sorted(arrays.items()):
                header = check_npy_member(archive, archive.getinfo(member))
                entries[name] = TensorEntry(
                    name, canonical_dtype(header.descr), header.shape, path, member=member
                )
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError, zlib.error) as exc:
        raise FormatError(f"not a readable skops file: {exc}.") from None
    return entries


def _joblib_codec(path: Path) -> str | None:
    from .pickled_arrays import compression_of

    with open(path, "rb") as handle:
        return compression_of(handle.read(8))


def _compressed(path: Path, codec: str) -> TensorFile:
    import tempfile

    fmt = f"joblib-{codec}"
    keep = tempfile.TemporaryDirectory(prefix="corrsource-joblib-")
    plain = Path(keep.name) / path.name
    try:
        try:
            decompress_joblib(path, codec, plain)
        except FormatError as exc:  # the magic byte was a coincidence: not joblib after all
            raise UnreadableTensors("opaque", f"not a format the plugin reads ({exc})") from None
        from .detect import detect_format

        if detect_format(plain) != "pickle":
            raise UnreadableTensors(fmt, f"the {codec} stream does not hold a pickle")
        from .pickle_values import opcode_limit

        with opcode_limit(joblib_opcode_limit(path)):  # a few bytes can inflate to an opcode bomb
            entries = _pickled(plain, fmt)
    except BaseException:
        keep.cleanup()
        raise
    return TensorFile(path, fmt, entries, keep)


def read_schema(
    path: Path, fmt: str | None = None, root: Path | None = None, layout: Any = None
) -> Schema:
    """``{tensor name: (dtype, shape)}`` of the weights at ``path``."""
    with open_tensors(path, root, fmt, layout) as tensors:
        return tensors.schema()
