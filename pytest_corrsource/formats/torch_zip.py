"""PyTorch zip checkpoints (``torch.save`` since 1.6), read without unpickling.

Layout (torch/csrc/jit/serialization, ``PyTorchStreamWriter``): a zip whose members all sit
under one folder ``<prefix>/``: ``data.pkl`` (the object, pickle protocol 2), ``byteorder``,
``version`` … and one *stored* (uncompressed) member ``<prefix>/data/<key>`` per storage, its
data 64-byte aligned through padding in the local header's extra field. Each member has
general-purpose flag bit 3 set: the CRC-32 and sizes follow the data in a data descriptor (the
local header's CRC field is 0) and are repeated in the central directory.

The pickle refers to storages only through persistent ids,
``('storage', <torch.XStorage | torch.storage.UntypedStorage>, key, location, numel)``, and
builds tensors with ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)``
(``_rebuild_tensor_v3`` adds the dtype, for storages pickled as untyped bytes, e.g. float8).
:func:`read_torch_zip` evaluates ``data.pkl`` symbolically (:mod:`.pickle_values`), so every
tensor's name, dtype, shape and stride — and where each storage's bytes lie in the file — is
known without running a byte of the checkpoint.
"""

from __future__ import annotations

import io
import os
import struct
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from . import FormatError, TensorInfo
from .pickle_values import (
    MAX_PICKLE_DEPTH,
    Call,
    Global,
    PersId,
    UnsupportedFeature,
    evaluate_pickle,
    walk_named,
)

__all__ = [
    "STORAGE_DTYPES",
    "TORCH_DTYPES",
    "TorchStorage",
    "TorchTensor",
    "TorchZip",
    "central_directory_records",
    "is_torch_legacy",
    "read_torch_checkpoint",
    "read_torch_legacy",
    "read_torch_tar",
    "read_torch_zip",
    "torch_pickle_format",
]

_MAX_PICKLE = 256 << 20  # data.pkl holds structure only; tensors are separate members
# Evaluating a pickle costs a few microseconds per opcode: a 4 KiB deflated data.pkl of 4 MiB
# of two-byte opcodes took 14 s per read. A compressed data.pkl (torch.save never writes one)
# may inflate past 1 MiB only at a ratio real pickles have (their repeated key strings).
_PICKLE_FREE_BYTES = 1 << 20
_MAX_PICKLE_RATIO = 16

#: torch storage class -> (dtype in safetensors' spelling, bytes per element)
STORAGE_DTYPES: dict[str, tuple[str, int]] = {
    "DoubleStorage": ("F64", 8), "FloatStorage": ("F32", 4), "HalfStorage": ("F16", 2),
    "BFloat16Storage": ("BF16", 2), "LongStorage": ("I64", 8), "IntStorage": ("I32", 4),
    "ShortStorage": ("I16", 2), "CharStorage": ("I8", 1), "ByteStorage": ("U8", 1),
    "BoolStorage": ("BOOL", 1), "ComplexDoubleStorage": ("C128", 16),
    "ComplexFloatStorage": ("C64", 8), "QInt8Storage": ("QINT8", 1),
    "QUInt8Storage": ("QUINT8", 1), "QInt32Storage": ("QINT32", 4),
    "QUInt4x2Storage": ("QUINT4X2", 1), "QUInt2x4Storage": ("QUINT2X4", 1),
}  # fmt: skip
#: torch dtype name (``_rebuild_tensor_v3``'s last argument) -> (safetensors name, size)
TORCH_DTYPES: dict[str, tuple[str, int]] = {
    "float64": ("F64", 8), "float32": ("F32", 4), "float16": ("F16", 2),
    "bfloat16": ("BF16", 2), "int64": ("I64", 8), "int32": ("I32", 4), "int16": ("I16", 2),
    "int8": ("I8", 1), "uint8": ("U8", 1), "uint16": ("U16", 2), "uint32": ("U32", 4),
    "uint64": ("U64", 8), "bool": ("BOOL", 1), "complex128": ("C128", 16),
    "complex64": ("C64", 8), "float8_e4m3fn": ("F8_E4M3", 1), "float8_e5m2": ("F8_E5M2", 1),
    "float8_e4m3fnuz": ("F8_E4M3FNUZ", 1), "float8_e5m2fnuz": ("F8_E5M2FNUZ", 1),
    "float8_e8m0fnu": ("F8_E8M0", 1),
}  # fmt: skip
_REBUILD = {"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3"}


@dataclass
class TorchStorage:
    """One ``<prefix>/data/<key>`` member. ``dtype`` is the element type tensors read it as
    (``"U8"`` for an untyped storage that no tensor gives a type). ``data_offset`` is where
    its bytes start in the file."""

    key: str
    member: str
    dtype: str
    nbytes: int
    data_offset: int
    crc: int
    header_offset: int
    descriptor: bool  # flag bit 3: the CRC also follows the data
    tensors: list[str]


@dataclass(frozen=True)
class TorchTensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int  # in elements, into the storage
    storage: str


@dataclass(frozen=True)
class TorchZip:
    prefix: str
    byteorder: str  # "little" or "big"
    tensors: tuple[TorchTensor, ...]
    storages: dict[str, TorchStorage]
    central_dir: int  # offset of the central directory

    def tensor_infos(self) -> tuple[TensorInfo, ...]:
        out = []
        for t in self.tensors:
            size = 1
            for d in t.shape:
                size *= d
            out.append(TensorInfo(t.name, t.dtype, t.shape, size * _itemsize(t.dtype)))
        return tuple(out)


def _itemsize(dtype: str) -> int:
    for name, size in (*STORAGE_DTYPES.values(), *TORCH_DTYPES.values()):
        if name == dtype:
            return size
    return 1


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if isinstance(value, Call) and isinstance(value.func, Global) and value.args:
        value = value.args[0]  # torch.Size((…)) in some writers
    if not isinstance(value, tuple | list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise FormatError(f"{what} is not a tuple of non-negative integers: {value!r:.80}.")
    return tuple(value)


def _storage_ref(value: Any) -> tuple[str, str | None, int]:
    """(key, dtype or None for untyped, numel) from a persistent id."""
    if not isinstance(value, PersId):
        raise FormatError("a tensor's storage is not a persistent id.")
    pid = value.value
    if (
        not isinstance(pid, tuple)
        or len(pid) not in (5, 6)  # 6: legacy format's view metadata
        or pid[0] != "storage"
        or not isinstance(pid[1], Global)
        or not isinstance(pid[2], str)
        or not isinstance(pid[4], int)
    ):
        raise UnsupportedFeature(f"unexpected persistent id {pid!r:.120}.")
    cls = pid[1]
    if cls.dotted == "torch.storage.UntypedStorage":
        return pid[2], None, pid[4]
    if cls.module not in ("torch", "torch.cuda") or cls.name not in STORAGE_DTYPES:
        raise UnsupportedFeature(f"unknown storage class {cls.dotted}.")
    return pid[2], STORAGE_DTYPES[cls.name][0], pid[4]


def _tensor_of(name: str, call: Call) -> TorchTensor | None:
    func = call.func
    if not isinstance(func, Global) or func.module != "torch._utils":
        return None
    if func.name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
        inner = call.args[0] if call.args else None
        return _tensor_of(name, inner) if isinstance(inner, Call) else None
    if func.name not in _REBUILD:
        return None
    if len(call.args) < 4:
        raise FormatError(f"tensor {name!r}: {func.name} with {len(call.args)} arguments.")
    key, dtype, _numel = _storage_ref(call.args[0])
    if func.name == "_rebuild_tensor_v3":
        given = call.args[-1]
        if not isinstance(given, Global) or given.name not in TORCH_DTYPES:
            raise UnsupportedFeature(f"tensor {name!r}: unknown dtype {given!r:.60}.")
        dtype = TORCH_DTYPES[given.name][0]
    if dtype is None:
        raise UnsupportedFeature(f"tensor {name!r}: untyped storage without a dtype.")
    offset = call.args[1]
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise FormatError(f"tensor {name!r}: invalid storage offset {offset!r:.40}.")
    shape = _ints(call.args[2], f"tensor {name!r}'s shape")
    stride = _ints(call.args[3], f"tensor {name!r}'s stride")
    if len(stride) != len(shape):
        raise FormatError(f"tensor {name!r}: shape and stride differ in length.")
    return TorchTensor(name, dtype, shape, stride, offset, key)


def _tensors_and_storages(
    tree: object,
) -> tuple[list[TorchTensor], dict[str, tuple[str | None, int]]]:
    """The tensors a checkpoint's object tree rebuilds, and every storage it references
    (key -> dtype, element count), for the zip and the legacy layouts alike."""
    tensors: list[TorchTensor] = []
    for name, value in walk_named(tree):
        if isinstance(value, Call):
            tensor = _tensor_of(name, value)
            if tensor is not None:
                tensors.append(tensor)
    referenced: dict[str, tuple[str | None, int]] = {}
    for pid in _all_pers_ids(tree):
        key, dtype, numel = _storage_ref(pid)
        referenced[key] = (dtype, numel)
    return tensors, referenced


def _all_pers_ids(value: Any) -> Any:
    """Every persistent id anywhere in the tree (storages may be referenced outside tensors);
    each container is looked into once, however many times it is referenced."""
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_PICKLE_DEPTH:
            raise FormatError(f"pickle nests deeper than {MAX_PICKLE_DEPTH} levels.")
        if isinstance(node, PersId):
            yield node
            continue
        if not isinstance(node, dict | list | tuple | set | frozenset | Call) or id(node) in seen:
            continue
        seen.add(id(node))
        children: Any
        if isinstance(node, dict):
            children = [*node.keys(), *node.values()]
        elif isinstance(node, Call):
            children = [node.func, *node.args, node.state, *node.items.values(), *node.appends]
        else:
            children = node
        stack.extend((child, depth + 1) for child in children)


def _central_directory(handle: io.BufferedReader, start: int) -> dict[str, int]:
    """member name -> offset of its central-directory record (whose CRC we may patch)."""
    handle.seek(start)
    out: dict[str, int] = {}
    while True:
        pos = handle.tell()
        fixed = handle.read(46)
        if len(fixed) < 46 or fixed[:4] != b"PK\x01\x02":
            return out
        n, m, k = struct.unpack("<HHH", fixed[28:34])
        name = handle.read(n).decode("utf-8", "replace")
        out[name] = pos
        handle.seek(m + k, io.SEEK_CUR)


def central_directory_records(path: Path, start: int) -> dict[str, int]:
    with open(path, "rb") as handle:
        return _central_directory(handle, start)


def read_torch_zip(path: Path) -> TorchZip:
    """Every tensor and storage of a torch zip checkpoint, from its pickle and zip directory.

    Raises :class:`FormatError` if the archive is not a well-formed torch checkpoint: a
    storage the pickle names that is missing, compressed, or of the wrong size; a tensor that
    reaches past its storage; or a pickle this reader does not understand.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise FormatError(f"not a readable zip archive: {exc}.") from None
    with archive:
        infos = {info.filename: info for info in archive.infolist()}
        pickles = [n for n in infos if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise FormatError(f"expected one data.pkl member, found {len(pickles)}.")
        prefix = pickles[0][: -len("data.pkl")]
        info = infos[pickles[0]]
        if info.file_size > _MAX_PICKLE:
            raise FormatError(f"data.pkl is {info.file_size} bytes (limit {_MAX_PICKLE}).")
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > max(
            _PICKLE_FREE_BYTES, info.compress_size * _MAX_PICKLE_RATIO
        ):
            raise UnsupportedFeature(
                f"data.pkl is compressed {info.compress_size} -> {info.file_size} bytes (over "
                f"{_MAX_PICKLE_RATIO}x); torch.save stores it uncompressed, and only such a "
                "pickle, or a compressed one of a usual ratio, is read here."
            )
        order_info = infos.get(prefix + "byteorder")
        if order_info is not None and order_info.file_size > 16:
            raise FormatError(f"byteorder is {order_info.file_size} bytes, not `little` or `big`.")
        try:
            raw = archive.read(info)
            order = archive.read(prefix + "byteorder") if prefix + "byteorder" in infos else b""
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise FormatError(f"cannot read data.pkl: {exc}.") from None
        central_dir: int = archive.start_dir
    byteorder = order.decode("ascii", "replace").strip() or "little"
    if byteorder not in ("little", "big"):
        raise FormatError(f"unknown byteorder {byteorder!r}.")
    tree = evaluate_pickle(io.BytesIO(raw), len(raw))
    tensors, referenced = _tensors_and_storages(tree)
    storages: dict[str, TorchStorage] = {}
    with open(path, "rb") as handle:
        for key, (dtype, numel) in sorted(referenced.items()):
            member = f"{prefix}data/{key}"
            if member not in infos:
                raise FormatError(f"storage {key!r} has no member {member}.")
            info = infos[member]
            typed = [t.dtype for t in tensors if t.storage == key]
            if dtype is None:  # untyped (byte-counted) storage: its tensors say how to read it
                kinds = set(typed)
                dtype = kinds.pop() if len(kinds) == 1 else "U8"
                nbytes = numel
            else:
                nbytes = numel * _itemsize(dtype)
            if info.compress_type != zipfile.ZIP_STORED and info.file_size == nbytes:
                raise UnsupportedFeature(
                    f"storage {key!r} ({member}) is compressed; torch.save stores storages "
                    "uncompressed and only those are read here."
                )
            if info.file_size != nbytes:
                raise FormatError(
                    f"storage {key!r} ({member}) is {info.file_size} bytes "
                    f"({'stored' if info.compress_type == 0 else 'compressed'}), "
                    f"the pickle needs {nbytes} stored."
                )
            handle.seek(info.header_offset)
            local = handle.read(30)
            if len(local) < 30 or local[:4] != b"PK\x03\x04":
                raise FormatError(f"member {member}: bad local header.")
            n, m = struct.unpack("<HH", local[26:30])
            data_offset = info.header_offset + 30 + n + m
            if data_offset + nbytes > central_dir:  # the directory's sizes are only claims
                raise FormatError(
                    f"storage {key!r} ({member}) needs {nbytes} bytes at byte {data_offset}, "
                    f"past the zip's central directory at byte {central_dir}."
                )
            storages[key] = TorchStorage(
                key=key,
                member=member,
                dtype=dtype,
                nbytes=nbytes,
                data_offset=data_offset,
                crc=info.CRC,
                header_offset=info.header_offset,
                descriptor=bool(info.flag_bits & 0x8),
                tensors=[t.name for t in tensors if t.storage == key],
            )
    for t in tensors:
        _check_extent(t, storages[t.storage])
    return TorchZip(prefix.rstrip("/"), byteorder, tuple(tensors), storages, central_dir)


# --------------------------------------------------------------------------- legacy (< 1.6)

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_LEGACY_HEAD = b"\x80\x02\x8a\x0a" + _LEGACY_MAGIC.to_bytes(10, "little")


def is_torch_legacy(path: Path) -> bool:
    """``torch.save(..., _use_new_zipfile_serialization=False)``: its first pickle is the magic
    number."""
    with open(path, "rb") as handle:
        return handle.read(len(_LEGACY_HEAD)) == _LEGACY_HEAD


def read_torch_legacy(path: Path) -> TorchZip:
    """The pre-1.6 format (torch/serialization.py ``_legacy_save``): five pickles — magic
    number, protocol version (1001), sys_info, the object, the sorted storage keys — then each
    storage in key order as an 8-byte element count followed by its raw bytes. The old *tar*
    format (torch < 0.4) is not read.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        end = os.fstat(handle.fileno()).st_size
        magic = evaluate_pickle(handle, end)
        protocol = evaluate_pickle(handle, end)
        sys_info = evaluate_pickle(handle, end)
        if magic != _LEGACY_MAGIC or protocol != _LEGACY_PROTOCOL or not isinstance(sys_info, dict):
            raise FormatError("not a legacy torch checkpoint (magic, protocol or sys_info).")
        little = sys_info.get("little_endian", True)
        tree = evaluate_pickle(handle, end)
        keys = evaluate_pickle(handle, end)
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise FormatError("the storage key list is not a list of strings.")
        tensors, referenced = _tensors_and_storages(tree)
        if set(keys) != set(referenced):
            raise FormatError("the storage key list does not match the storages the object uses.")
        storages: dict[str, TorchStorage] = {}
        for key in keys:
            dtype, numel = referenced[key]
            if dtype is None:
                raise UnsupportedFeature(f"storage {key!r} is untyped in a legacy checkpoint.")
            storage = _raw_storage(handle, key, dtype, end, "the file", little=little)
            if storage.nbytes != numel * _itemsize(dtype):
                raise FormatError(
                    f"storage {key!r}: stored size differs from the pickle's {numel}."
                )
            storage.tensors = [t.name for t in tensors if t.storage == key]
            storages[key] = storage
    for t in tensors:
        _check_extent(t, storages[t.storage])
    return TorchZip("", "little" if little else "big", tuple(tensors), storages, -1)


# --------------------------------------------------------------------------- tar (< 0.4)

_MAX_DIMS = 64  # more dimensions than any tensor has: a corrupt header, not a tensor


def _read_exact(handle: IO[bytes], count: int, end: int, what: str) -> bytes:
    if handle.tell() + count > end:
        raise FormatError(f"{what} runs past the end of its member.")
    data = handle.read(count)
    if len(data) != count:
        raise FormatError(f"{what}: the file ends early.")
    return data


def _count(value: Any, what: str, limit: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise FormatError(f"{what} is not a count (got {value!r:.40}).")
    return value


def _tar_key(value: Any, what: str) -> int:
    """A storage or tensor key as torch's loader uses it (``int(saved_id)``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.lstrip("-").isdigit():
        return int(value)
    raise FormatError(f"{what} {value!r:.40} is not an integer key.")


def read_torch_tar(path: Path) -> TorchZip:
    """torch < 0.4's tar checkpoint, as torch/serialization.py ``legacy_load`` reads it, without
    unpickling. The uncompressed tar holds three members (the last of each name counts, as with
    :meth:`tarfile.TarFile.getmember`):

    * ``storages``: a pickled count, then per storage a pickled ``(key, location,
      torch.XStorage)``, its element count as 8 little-endian bytes and its raw bytes; then a
      pickled list of views ``(view key, root key, offset, numel)`` into those storages;
    * ``tensors``: a pickled count, then per tensor a pickled ``(key, storage key, type)`` and
      its int32 ndim, 4 unused bytes, ndim int64 sizes, ndim int64 strides and an int64 offset;
    * ``pickle``: the object, whose persistent ids are tensor keys (``('module', …)`` tuples
      name module classes).

    Storage bytes are located in the tar file itself (``data_offset``), so a modified copy can
    rewrite them in place: tar checksums cover headers only.
    """
    path = Path(path)
    try:
        with tarfile.open(path, mode="r:") as archive:
            members = {m.name: m for m in archive.getmembers()}
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise FormatError(f"not a readable tar archive: {exc}.") from None
    size = path.stat().st_size
    for name in ("storages", "tensors", "pickle"):
        member = members.get(name)
        if member is None or not member.isfile() or member.issparse():
            raise FormatError(f"the tar has no regular `{name}` member.")
        if member.offset_data + member.size > size:
            raise FormatError(f"member `{name}` runs past the end of the file.")
    with open(path, "rb") as handle:
        storages, views = _tar_storages(handle, members["storages"])
        by_key = _tar_tensors(handle, members["tensors"], storages, views)
        member = members["pickle"]
        handle.seek(member.offset_data)
        tree = evaluate_pickle(handle, member.offset_data + member.size)
    tensors: list[TorchTensor] = []
    for name, value in walk_named(tree):
        if isinstance(value, PersId) and not isinstance(value.value, tuple):
            key = _tar_key(value.value, "a persistent id")
            if key in by_key:
                tensors.append(replace(by_key[key], name=name))
            elif key not in storages and key not in views:
                raise FormatError(f"the object refers to key {key}, which no member defines.")
    for tensor in tensors:
        storages[int(tensor.storage)].tensors.append(tensor.name)
        _check_extent(tensor, storages[int(tensor.storage)])
    return TorchZip(
        "", "little", tuple(tensors), {str(k): s for k, s in storages.items()}, central_dir=-1
    )


def _raw_storage(
    handle: IO[bytes], key: str, dtype: str, end: int, within: str, *, little: bool = True
) -> TorchStorage:
    """One storage as torch's ``UntypedStorage._new_with_file`` reads it (the legacy and the tar
    formats): its element count in 8 bytes, then its raw bytes, which are skipped here and
    located by ``data_offset``. ``within`` names what the storage must not run past."""
    count = _read_exact(handle, 8, end, f"storage {key}'s size")
    nbytes = int.from_bytes(count, "little" if little else "big") * _itemsize(dtype)
    start = handle.tell()
    if start + nbytes > end:
        raise FormatError(f"storage {key} runs past the end of {within}.")
    handle.seek(start + nbytes)
    return TorchStorage(
        key=key,
        member="",
        dtype=dtype,
        nbytes=nbytes,
        data_offset=start,
        crc=0,
        header_offset=-1,
        descriptor=False,
        tensors=[],
    )


def _records(
    handle: IO[bytes], member: tarfile.TarInfo, what: str
) -> Iterator[tuple[int, Any, Any]]:
    """The records of a ``storages`` or ``tensors`` member: a pickled count, then per record a
    pickled 3-tuple whose first item is its key, each followed by data the caller reads before
    asking for the next record."""
    end = member.offset_data + member.size
    handle.seek(member.offset_data)
    count = _count(evaluate_pickle(handle, end), f"the {what} count", member.size)
    for _ in range(count):
        record = evaluate_pickle(handle, end)
        if not (isinstance(record, tuple) and len(record) == 3):
            raise FormatError(f"a {what} header is not a 3-tuple: {record!r:.80}.")
        yield _tar_key(record[0], f"{what} key"), record[1], record[2]


def _tar_storages(
    handle: IO[bytes], member: tarfile.TarInfo
) -> tuple[dict[int, TorchStorage], dict[int, tuple[int, int]]]:
    """The ``storages`` member: key -> storage, and view key -> (root key, element offset)."""
    end = member.offset_data + member.size
    storages: dict[int, TorchStorage] = {}
    for key, _location, cls in _records(handle, member, "storage"):
        if not isinstance(cls, Global):
            raise FormatError(f"storage {key}'s type is not a class: {cls!r:.60}.")
        if cls.module not in ("torch", "torch.cuda") or cls.name not in STORAGE_DTYPES:
            raise UnsupportedFeature(f"unknown storage class {cls.dotted}.")
        if key in storages:
            raise FormatError(f"storage key {key} appears twice.")
        dtype = STORAGE_DTYPES[cls.name][0]
        storages[key] = _raw_storage(handle, str(key), dtype, end, "the `storages` member")
    views: dict[int, tuple[int, int]] = {}
    listed = evaluate_pickle(handle, end)
    if not isinstance(listed, list):
        raise FormatError("the storage views are not a list.")
    for view in listed:
        if not (isinstance(view, tuple) and len(view) == 4):
            raise FormatError(f"a storage view is not (key, root, offset, numel): {view!r:.80}.")
        target, root = _tar_key(view[0], "view key"), _tar_key(view[1], "view root")
        offset = _count(view[2], "a view offset", 2**62)
        numel = _count(view[3], "a view size", 2**62)
        if root not in storages:
            raise FormatError(f"view {target} is of storage {root}, which is not stored.")
        if (offset + numel) * _itemsize(storages[root].dtype) > storages[root].nbytes:
            raise FormatError(f"view {target} reaches past the end of storage {root}.")
        views[target] = (root, offset)
    return storages, views


def _tar_tensors(
    handle: IO[bytes],
    member: tarfile.TarInfo,
    storages: dict[int, TorchStorage],
    views: dict[int, tuple[int, int]],
) -> dict[int, TorchTensor]:
    """The ``tensors`` member: tensor key -> tensor (named by its key until the object names
    it), on its root storage."""
    end = member.offset_data + member.size
    tensors: dict[int, TorchTensor] = {}
    for key, storage_id, _type in _records(handle, member, "tensor"):
        storage = _tar_key(storage_id, "tensor storage")
        ndim = struct.unpack("<i", _read_exact(handle, 4, end, f"tensor {key}'s ndim"))[0]
        if not 0 <= ndim <= _MAX_DIMS:
            raise FormatError(f"tensor {key} has {ndim} dimensions.")
        _read_exact(handle, 4, end, f"tensor {key}'s padding")
        fields = _read_exact(handle, 16 * ndim + 8, end, f"tensor {key}'s sizes")
        numbers = struct.unpack(f"<{2 * ndim + 1}q", fields)
        if any(n < 0 for n in numbers):
            raise FormatError(f"tensor {key} has a negative size, stride or offset.")
        offset = numbers[-1]
        if storage in views:
            storage, view_offset = views[storage]
            offset += view_offset
        if storage not in storages:
            raise FormatError(f"tensor {key} is on storage {storage}, which is not stored.")
        tensors[key] = TorchTensor(
            name=str(key),
            dtype=storages[storage].dtype,
            shape=tuple(numbers[:ndim]),
            stride=tuple(numbers[ndim : 2 * ndim]),
            offset=offset,
            storage=str(storage),
        )
    return tensors


def _check_extent(t: TorchTensor, storage: TorchStorage) -> None:
    """A tensor must lie inside its storage (a 0-d tensor holds one element)."""
    if all(t.shape):
        last = t.offset + sum((d - 1) * s for d, s in zip(t.shape, t.stride, strict=True))
        if (last + 1) * _itemsize(t.dtype) > storage.nbytes:
            raise FormatError(f"tensor {t.name!r} reaches past the end of storage {t.storage!r}.")


def torch_pickle_format(path: Path) -> str | None:
    """For a file :func:`.detect.detect_format` calls ``pickle``: ``torch-legacy`` (the pickle
    sequence of torch 0.4-1.5), ``torch-tar`` (torch < 0.4), or None for another pickle."""
    from .pickle_scan import is_legacy_torch_tar

    if is_torch_legacy(path):
        return "torch-legacy"
    if is_legacy_torch_tar(path):
        return "torch-tar"
    return None


def read_torch_checkpoint(path: Path, fmt: str) -> TorchZip:
    """The tensors and storages of a torch checkpoint of format ``torch-zip``, ``torch-legacy``
    or ``torch-tar``."""
    readers = {
        "torch-zip": read_torch_zip,
        "torch-legacy": read_torch_legacy,
        "torch-tar": read_torch_tar,
    }
    return readers[fmt](path)
