"""Static safety scan of pickle-based weights (raw pickles, legacy and zip torch checkpoints).

Nothing is ever unpickled. Each pickle is disassembled with :func:`pickletools.genops` while
a small model of the unpickler's stack and memo tracks which strings reach ``STACK_GLOBAL``.
Every ``module.name`` a pickle can import is recorded; any outside :data:`SAFE_GLOBALS`
(or one that cannot be resolved statically) makes the file unsafe, and so does any parse
error: a file that cannot be fully understood is not called clean.
"""

from __future__ import annotations

import _compat_pickle
import io
import os
import pickletools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .npy import NPY_MAGIC, ObjectDtypeError, parse_npy_header

__all__ = ["SAFE_GLOBALS", "PickleScan", "looks_like_pickle", "scan_pickle_file"]

# Modelled on torch's weights-only unpickler allow-list
# (torch/_weights_only_unpickler.py `_get_allowed_globals()` and `_tensor_rebuild_functions()`),
# plus the numpy reconstruction entry points that picklescan lists as safe.
_TORCH_DTYPES = [
    "float64",
    "float32",
    "float16",
    "bfloat16",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "complex128",
    "complex64",
    "complex32",
    "qint8",
    "quint8",
    "qint32",
    "quint4x2",
    "quint2x4",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
]
_TORCH_STORAGE_KINDS = [
    "Double",
    "Float",
    "Half",
    "BFloat16",
    "Long",
    "Int",
    "Short",
    "Char",
    "Byte",
    "Bool",
    "ComplexDouble",
    "ComplexFloat",
    "QUInt8",
    "QInt8",
    "QInt32",
    "QUInt4x2",
    "QUInt2x4",
]
# The typed tensor classes (torch.FloatTensor …) are the first ten storage kinds.
_TORCH_TENSOR_KINDS = _TORCH_STORAGE_KINDS[:10]
_TORCH_REBUILDERS = [
    "_rebuild_tensor",
    "_rebuild_tensor_v2",
    "_rebuild_tensor_v3",
    "_rebuild_parameter",
    "_rebuild_parameter_with_state",
    "_rebuild_qtensor",
    "_rebuild_sparse_tensor",
    "_rebuild_meta_tensor_no_storage",
    "_rebuild_nested_tensor",
    "_rebuild_wrapper_subclass",
    "_rebuild_device_tensor_from_cpu_tensor",
    "_rebuild_device_tensor_from_numpy",
]
_TORCH_QSCHEMES = [
    "per_tensor_affine",
    "per_channel_affine",
    "per_tensor_symmetric",
    "per_channel_symmetric",
    "per_channel_affine_float_qparams",
]

#: Every global a weights-only pickle may reference.
SAFE_GLOBALS: frozenset[str] = frozenset(
    [
        "collections.OrderedDict",
        "collections.Counter",
        "torch.nn.parameter.Parameter",
        "torch.serialization._get_layout",
        "torch.Size",
        "torch.Tensor",
        "torch.device",
        "torch._tensor._rebuild_from_type_v2",
        "torch.storage.UntypedStorage",
        "torch.storage.TypedStorage",
        "_codecs.encode",
        "builtins.bytearray",
        "builtins.set",
        "builtins.complex",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy.ndarray",
        "numpy.dtype",
    ]
    + [f"torch.{name}" for name in _TORCH_DTYPES + _TORCH_QSCHEMES]
    + [f"torch.{kind}Storage" for kind in _TORCH_STORAGE_KINDS]
    + [f"torch.cuda.{kind}Storage" for kind in _TORCH_STORAGE_KINDS[:10]]
    + [f"torch.{kind}Tensor" for kind in _TORCH_TENSOR_KINDS]
    + [f"torch.cuda.{kind}Tensor" for kind in _TORCH_TENSOR_KINDS]
    + [f"torch._utils.{name}" for name in _TORCH_REBUILDERS]
)

UNRESOLVED_STACK_GLOBAL = "<unresolved STACK_GLOBAL>"
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PICKLES = 5  # magic, protocol, sys_info, object, storage keys; then raw data
_MAX_READ = 512 * 1024 * 1024  # largest single opcode argument materialised
_MAX_LINE = 1024 * 1024  # longest text-opcode line
_MAX_KEPT_STRING = 256  # longer strings are not kept as STACK_GLOBAL candidates
_MAX_MEMO_KEYS = 1_000_000
_MAX_STACK = 1_000_000
_MAX_RATIO = 1000
_SNIFF = 4096
_PROTO01_FIRST = frozenset(b"(c]})IJKMLFGSTUVXNP")
_STRING_OPS = frozenset(
    {
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "UNICODE",
        "BINUNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE8",
    }
)
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_EXT_OPS = frozenset({"EXT1", "EXT2", "EXT4"})
_CODE2OP = {op.code.encode("latin-1"): op for op in pickletools.opcodes}


@dataclass(frozen=True)
class PickleScan:
    """Result of a static pickle scan.

    ``globals``: every ``module.name`` referenced (sorted, unique). ``unsafe``: those outside
    :data:`SAFE_GLOBALS` plus markers such as ``<unresolved STACK_GLOBAL>``. ``errors``: parse
    failures (``"member archive/data.pkl: opcode X at byte N: ..."``). ``members``: what was
    scanned (the file name for a raw pickle, member names for a zip).
    """

    globals: tuple[str, ...] = ()
    unsafe: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    members: tuple[str, ...] = ()

    @property
    def safe(self) -> bool:
        return not self.unsafe and not self.errors


@dataclass
class _Accumulator:
    globals: set[str] = field(default_factory=set)
    unsafe: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)

    def add_global(self, dotted: str) -> None:
        self.globals.add(dotted)
        if dotted not in SAFE_GLOBALS:
            self.unsafe.add(dotted)

    def result(self) -> PickleScan:
        return PickleScan(
            globals=tuple(sorted(self.globals)),
            unsafe=tuple(sorted(self.unsafe)),
            errors=tuple(self.errors),
            members=tuple(self.members),
        )


class _Reader:
    """A byte-limited stream for genops: reads never exceed the declared size or a cap."""

    def __init__(self, stream: IO[bytes], limit: int, start: int = 0) -> None:
        self.stream = stream
        self.pos = start
        self.end = start + limit
        self.short = False
        self.op_start = -1
        self.op_byte = b""

    @property
    def remaining(self) -> int:
        return max(self.end - self.pos, 0)

    def tell(self) -> int:
        return self.pos

    def read(self, size: int | None = -1) -> bytes:
        wanted = self.remaining if size is None or size < 0 else size
        data = self.stream.read(min(wanted, self.remaining, _MAX_READ))
        if self.pos == self.op_start:
            self.op_byte = data[:1]
        self.pos += len(data)
        if len(data) < wanted:
            self.short = True
        return data

    def readline(self, size: int | None = -1) -> bytes:
        data = self.stream.readline(min(self.remaining, _MAX_LINE))
        self.pos += len(data)
        if not data.endswith(b"\n") and self.remaining == 0:
            self.short = True
        return data


class _ScanError(Exception):
    pass


class _Mark:
    def __repr__(self) -> str:
        return "MARK"


_MARK = _Mark()
_UNKNOWN = object()


def _scan_one(reader: _Reader, acc: _Accumulator) -> bool:
    """Scan one pickle up to STOP. Returns True if it pushed the torch legacy magic number."""
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, str] = {}
    memo_keys: set[int] = set()
    legacy_magic = False
    protocol = 0

    def resolve(module: str, qualname: str) -> str:
        # What the unpickler would import: protocols < 3 get Python 2 names fixed up
        # (as both pickle.Unpickler and torch's weights-only unpickler do).
        if protocol < 3:
            if (module, qualname) in _compat_pickle.NAME_MAPPING:
                module, qualname = _compat_pickle.NAME_MAPPING[(module, qualname)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        return f"{module}.{qualname}"

    def pop(count: int) -> list[Any]:
        floor = marks[-1] + 1 if marks else 0
        if len(stack) - count < floor:
            raise _ScanError(f"pops {count} items from a stack holding {len(stack) - floor}")
        items = stack[len(stack) - count :]
        del stack[len(stack) - count :]
        return items

    def store(key: int) -> None:
        if not stack or stack[-1] is _MARK:
            raise _ScanError("memo store with no object on the stack")
        if key not in memo_keys:
            if len(memo_keys) >= _MAX_MEMO_KEYS:
                raise _ScanError(f"memo grew beyond {_MAX_MEMO_KEYS} entries")
            memo_keys.add(key)
        value = stack[-1]
        if isinstance(value, str):
            memo[key] = value
        else:
            memo.pop(key, None)

    reader.op_start = reader.pos
    for opcode, arg, _pos in pickletools.genops(reader):  # type: ignore[arg-type]
        name = opcode.name
        if name in _STRING_OPS:
            keep = isinstance(arg, str) and len(arg) <= _MAX_KEPT_STRING
            stack.append(arg if keep else _UNKNOWN)
        elif name == "STACK_GLOBAL":
            module, qualname = pop(2)
            if isinstance(module, str) and isinstance(qualname, str):
                acc.add_global(resolve(module, qualname))
            else:
                acc.unsafe.add(UNRESOLVED_STACK_GLOBAL)
            stack.append(_UNKNOWN)
        elif name in _PUT_OPS:
            store(int(arg or 0))
        elif name == "MEMOIZE":
            store(len(memo_keys))
        elif name in _GET_OPS:
            key = int(arg or 0)
            if key not in memo_keys:
                raise _ScanError(f"memo key {key} was never stored")
            stack.append(memo.get(key, _UNKNOWN))
        else:
            if name in ("GLOBAL", "INST"):
                module, _, qualname = str(arg).partition(" ")
                acc.add_global(resolve(module, qualname))
            elif name in _EXT_OPS:
                acc.unsafe.add(f"<extension code {arg}>")
            elif name == "PROTO":
                protocol = int(arg or 0)
            elif name == "LONG1" and arg == _TORCH_LEGACY_MAGIC:
                legacy_magic = True
            before, after = opcode.stack_before, opcode.stack_after
            count = len(before)
            if pickletools.markobject in before or (name == "POP" and stack and stack[-1] is _MARK):
                if not marks:
                    raise _ScanError("no MARK on the stack")
                del stack[marks.pop() :]
                count = (
                    before.index(pickletools.markobject) if pickletools.markobject in before else 0
                )
            if count:
                pop(count)
            if pickletools.markobject in after:
                marks.append(len(stack))
                stack.append(_MARK)
            else:
                stack.extend(_UNKNOWN for _ in after)
            if len(stack) > _MAX_STACK:
                raise _ScanError(f"stack grew beyond {_MAX_STACK} items")
        reader.op_start = reader.pos
    return legacy_magic


def _describe_failure(reader: _Reader, error: BaseException) -> str:
    position = reader.op_start
    if not reader.op_byte:
        return f"end of data at byte {position}: pickle exhausted before seeing STOP"
    opcode = _CODE2OP.get(reader.op_byte)
    label = opcode.name if opcode else f"0x{reader.op_byte[0]:02x}"
    detail = "unknown opcode" if opcode is None else str(error) or type(error).__name__
    return f"opcode {label} at byte {position}: {detail}"


def _scan_stream(reader: _Reader, acc: _Accumulator, prefix: str) -> None:
    """Scan consecutive pickles until the data ends (or the torch legacy data section)."""
    count = 0
    legacy = False
    if reader.remaining == 0:
        acc.errors.append(f"{prefix}no pickle found: the data is empty")
        return
    while reader.remaining > 0:
        if legacy and count == _TORCH_LEGACY_PICKLES:
            return  # the rest is raw storage bytes
        reader.op_byte = b""
        try:
            magic = _scan_one(reader, acc)
        except _ScanError as error:
            acc.errors.append(f"{prefix}{_describe_failure(reader, error)}")
            return
        except Exception as error:  # untrusted input: any parse failure is a scan error
            acc.errors.append(f"{prefix}{_describe_failure(reader, error)}")
            return
        if count == 0 and magic:
            legacy = True
        count += 1


def _scan_npy(stream: IO[bytes], size: int, acc: _Accumulator, prefix: str, label: str) -> None:
    """Scan the payload of an ``.npy`` stream if (and only if) its dtype holds objects."""
    try:
        parse_npy_header(stream)
    except ObjectDtypeError as error:
        consumed = error.header_len  # parse_npy_header consumed exactly the header
    except Exception as error:  # a broken header is reported, not raised
        acc.errors.append(f"{prefix}invalid .npy header: {error}")
        return
    else:
        return  # plain numeric data: nothing to unpickle
    acc.members.append(label)
    _scan_stream(_Reader(stream, size - consumed, consumed), acc, prefix)


def _is_torch_storage(name: str, torch_prefixes: set[str]) -> bool:
    """Raw storage members (``<archive>/data/<key>``) of a torch zip: torch never unpickles
    them, and their bytes may start like a pickle by chance."""
    if "" in torch_prefixes and name.startswith("data/"):
        return True
    head, sep, _ = name.rpartition("/data/")
    return bool(sep) and head in torch_prefixes


def _scan_zip(path: Path, acc: _Accumulator) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except Exception as error:
        acc.errors.append(f"not a readable zip archive: {error}")
        return
    with archive:
        infos = archive.infolist()
        torch_prefixes = {
            info.filename[: -len("/data.pkl")]
            for info in infos
            if info.filename.endswith("/data.pkl")
        }
        if any(info.filename == "data.pkl" for info in infos):
            torch_prefixes.add("")
        for info in infos:
            name = info.filename
            prefix = f"member {name}: "
            if name.endswith("/") or _is_torch_storage(name, torch_prefixes):
                continue
            if info.flag_bits & 0x1:
                acc.errors.append(f"{prefix}encrypted member cannot be scanned")
                continue
            if info.file_size > _MAX_RATIO * max(info.compress_size, 1):
                acc.errors.append(f"{prefix}compression ratio over {_MAX_RATIO} (zip bomb?)")
                continue
            try:
                _scan_member(archive, info, acc, prefix)
            except Exception as error:
                acc.errors.append(f"{prefix}cannot be read: {error}")


def _scan_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, acc: _Accumulator, prefix: str
) -> None:
    name = info.filename
    lowered = name.lower()
    with archive.open(info) as member:
        head = member.read(_SNIFF)
    if head.startswith(NPY_MAGIC) or lowered.endswith(".npy"):
        with archive.open(info) as member:
            _scan_npy(member, info.file_size, acc, prefix, name)
        return
    by_name = lowered.endswith((".pkl", ".pickle"))
    by_magic = len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5
    if not (by_name or by_magic or looks_like_pickle(head)):
        return
    acc.members.append(name)
    with archive.open(info) as member:
        _scan_stream(_Reader(member, info.file_size), acc, prefix)


def scan_pickle_file(path: Path) -> PickleScan:
    """Statically scan a pickle, a torch checkpoint (legacy or zip) or an ``.npy``/zip file.

    Never raises for bad content: unreadable files and parse failures land in ``errors``.
    """
    acc = _Accumulator()
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(8)
            handle.seek(0)
            if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
                pass  # handled below, outside this handle
            elif head.startswith(NPY_MAGIC):
                _scan_npy(handle, size, acc, "", path.name)
                return acc.result()
            else:
                acc.members.append(path.name)
                _scan_stream(_Reader(handle, size), acc, "")
                return acc.result()
    except OSError as error:
        acc.errors.append(f"cannot read the file: {error.strerror or error}")
        return acc.result()
    _scan_zip(path, acc)
    return acc.result()


def looks_like_pickle(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file, e.g. 4 KiB) is plausibly a pickle.

    Catches protocol 0/1 pickles that carry no ``\\x80`` magic (CVE-2025-10155): the first
    opcode must be one a pickle can start with, and genops must parse the first pickle to
    STOP, or (for a window of at least 4 KiB) run cleanly to the end of the window.
    """
    if not head:
        return False
    if head[0] == 0x80:
        if len(head) < 2 or head[1] > 5:
            return False
    elif head[0] not in _PROTO01_FIRST:
        return False
    reader = _Reader(io.BytesIO(head), len(head))
    count = 0
    try:
        for _ in pickletools.genops(reader):  # type: ignore[arg-type]
            count += 1
    except Exception:  # any parse failure: not (the start of) a pickle
        return reader.short and len(head) >= _SNIFF and count >= 8
    return True
