"""Static safety scan of whatever a loader could unpickle from a weights file.

Nothing is ever unpickled. Each pickle is decoded opcode by opcode, as leniently as CPython's
unpickler reads arguments (so the scan never stops before the real loader would) and never
materialising a long argument, while a small model of the unpickler's stack and memo tracks
which strings reach ``STACK_GLOBAL``. Every ``module.name`` a pickle can import is recorded;
any outside :data:`SAFE_GLOBALS` (or one that cannot be resolved statically) makes the file
unsafe. Where the scan stops matters: if the real loader would stop there too (end of data,
unknown opcode, stack underflow, a persistent id without ``persistent_load``), the globals
seen so far are exactly what it would have imported; otherwise the failure is an error.

:func:`scan_weights_file` applies this to every place ``pickle.load``,
``numpy.load(allow_pickle=True)`` and ``torch.load(weights_only=False)`` read pickles from:
offset 0 of any file, torch's legacy sequence of pickles, zip members, object arrays in
``.npy``, and the legacy torch tar.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import io
import os
import pickle
import pickletools
import struct
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from . import MAX_DECOMPRESSION_RATIO
from .npy import NPY_MAGIC, ObjectDtypeError, parse_npy_header

__all__ = [
    "SAFE_GLOBALS",
    "PickleScan",
    "is_legacy_torch_tar",
    "looks_like_pickle",
    "scan_pickle_file",
    "scan_weights_file",
]

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
        # protocol-5 ndarray reconstruction (numpy >= 1.16 pickles out-of-band buffers)
        "numpy._core.numeric._frombuffer",
        "numpy.core.numeric._frombuffer",
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
UNRESOLVED_GLOBAL = "<undecodable GLOBAL>"
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PICKLES = 5  # magic, protocol, sys_info, object, storage keys; then raw data
_TORCH_LEGACY_DATA_PICKLE = 3
_CHUNK = 64 * 1024  # read size; no argument is ever materialised beyond _MAX_KEPT_STRING
_MAX_KEPT_STRING = 256  # longer strings are not kept as STACK_GLOBAL candidates
_MAX_MEMO_KEYS = 1_000_000
_MAX_STACK = 1_000_000
_SNIFF = 4096
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
    #: Where torch's zip reader and :mod:`zipfile` could read the file differently.
    ambiguities: tuple[str, ...] = ()
    #: A structure whose pickles cannot all be reached statically (the legacy torch tar).
    unscannable: tuple[str, ...] = ()

    @property
    def safe(self) -> bool:
        return not (self.unsafe or self.errors or self.ambiguities or self.unscannable)

    @property
    def pickled(self) -> bool:
        """Whether a loader would unpickle anything from the file."""
        return bool(self.members or self.globals or self.unsafe or self.unscannable)


@dataclass
class _Accumulator:
    globals: set[str] = field(default_factory=set)
    unsafe: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    ambiguities: list[str] = field(default_factory=list)
    unscannable: list[str] = field(default_factory=list)

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
            ambiguities=tuple(self.ambiguities),
            unscannable=tuple(self.unscannable),
        )


class _LoaderStops(Exception):
    """The real unpickler would raise here too (end of data, unknown opcode, stack underflow,
    missing MARK or memo key): nothing after this point runs."""


class _ScanError(Exception):
    """The scanner cannot follow the stream (a resource cap): what follows is unknown."""


class _Reader:
    """A byte-limited, forward-only stream with its own buffer. Long arguments are skipped,
    never materialised: only a short prefix of any argument is kept."""

    def __init__(self, stream: IO[bytes], limit: int, start: int = 0) -> None:
        self.stream = stream
        self.pos = start  # offset of the next unconsumed byte
        self.end = start + limit
        self.buffer = b""
        self.op_start = -1
        self.op_byte = b""
        self.ops = 0  # opcodes decoded so far
        # Only real files are skipped by seeking (their size bounds `end`); other streams
        # (zip members, tar members) are read through, which also verifies the bytes exist.
        self.seekable = isinstance(stream, io.BufferedReader)

    @property
    def remaining(self) -> int:
        return max(self.end - self.pos, 0)

    def _fill(self) -> bool:
        want = min(_CHUNK, self.remaining - len(self.buffer))
        if want <= 0:
            return False
        chunk = self.stream.read(want)
        if not chunk:
            self.end = self.pos + len(self.buffer)  # the stream is shorter than declared
            return False
        self.buffer += chunk
        return True

    def read(self, size: int) -> bytes:
        """Exactly ``size`` bytes (``size`` is small), else :class:`_LoaderStops`."""
        while len(self.buffer) < size:
            if not self._fill():
                raise _LoaderStops(f"needs {size} bytes but {len(self.buffer)} remain")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        self.pos += size
        return data

    def take(self, size: int) -> bytes | None:
        """Consume ``size`` bytes; return them if short enough to keep, else ``None``."""
        if size > self.remaining:
            raise _LoaderStops(f"declares {size} bytes but {self.remaining} remain")
        if size <= _MAX_KEPT_STRING:
            return self.read(size)
        skip = size - len(self.buffer)
        self.buffer = b"" if skip >= 0 else self.buffer[size:]
        if skip > 0 and self.seekable:
            # `remaining` is bounded by the real size for files, so the bytes exist.
            self.stream.seek(skip, os.SEEK_CUR)
            skip = 0
        while skip > 0:
            chunk = self.stream.read(min(skip, _CHUNK))
            if not chunk:
                raise _LoaderStops(f"declares {size} bytes but the data ended")
            skip -= len(chunk)
        self.pos += size
        return None

    def line(self) -> bytes | None:
        """Consume through the next newline; return the line (without it) if short enough to
        keep, else ``None``. Lines are followed to their end however long they are: the real
        unpickler reads unbounded lines, so giving up early would let a payload hide behind one."""
        kept = b""
        total = 0
        while True:
            newline = self.buffer.find(b"\n")
            part = self.buffer if newline < 0 else self.buffer[:newline]
            if total <= _MAX_KEPT_STRING:
                kept += part[: _MAX_KEPT_STRING + 1 - total]
            if newline >= 0:
                total += newline
                self.buffer = self.buffer[newline + 1 :]
                self.pos += newline + 1
                return kept if total <= _MAX_KEPT_STRING else None
            total += len(part)
            self.pos += len(self.buffer)
            self.buffer = b""
            if not self._fill():
                raise _LoaderStops("no newline before the end of the data")


class _Mark:
    def __repr__(self) -> str:
        return "MARK"


_MARK = _Mark()
_UNKNOWN = object()
_LENGTH_FORMATS = {-2: "<B", -3: "<i", -4: "<I", -5: "<Q"}
_FIXED_FORMATS = {"uint1": "<B", "uint2": "<H", "int4": "<i", "uint4": "<I", "uint8": "<Q"}


def _text(raw: bytes | None, codec: str) -> object:
    if raw is None:
        return _UNKNOWN
    try:
        return raw.decode(codec)
    except UnicodeDecodeError:
        return _UNKNOWN


def _quoted(raw: bytes | None) -> object:
    """A protocol-0 STRING argument as CPython's unpickler reads it (quotes stripped, escapes
    decoded, then decoded as ASCII, the default ``encoding``)."""
    if raw is None:
        return _UNKNOWN
    raw = raw.rstrip(b"\x00\t\n\v\f\r ")
    if len(raw) < 2 or raw[0] != raw[-1] or raw[:1] not in (b"'", b'"'):
        raise _LoaderStops("the STRING opcode argument must be quoted")
    try:
        return codecs.escape_decode(raw[1:-1])[0].decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return _UNKNOWN


def _decimal(raw: bytes | None, what: str) -> int:
    try:
        return int(raw or b"")
    except ValueError:
        raise _LoaderStops(f"{what} argument is not a decimal integer") from None


def _ops(reader: _Reader) -> Iterator[tuple[pickletools.OpcodeInfo, object]]:
    """Decode opcodes like CPython's unpickler, one at a time, up to and including STOP.

    Arguments are read leniently (the C unpickler accepts e.g. ``I0x10`` that
    :func:`pickletools.genops` refuses), so the scan never stops before the real loader would.
    Yields ``(opcode, argument)``; strings come back as ``str`` when short, otherwise
    ``_UNKNOWN``."""
    while True:
        reader.op_start = reader.pos
        reader.op_byte = b""
        code = reader.read(1) if reader.remaining else b""
        reader.op_byte = code
        if not code:
            raise _LoaderStops("pickle exhausted before seeing STOP")
        opcode = _CODE2OP.get(code)
        if opcode is None:
            raise _LoaderStops("unknown opcode")
        reader.ops += 1
        name = opcode.name
        arg: object = None
        described = opcode.arg
        if described is None:
            pass
        elif described.n == pickletools.UP_TO_NEWLINE:
            if name in ("GLOBAL", "INST"):
                module, qualname = reader.line(), reader.line()
                arg = (_text(module, "utf-8"), _text(qualname, "utf-8"))
            elif name == "STRING":
                arg = _quoted(reader.line())
            elif name == "UNICODE":
                arg = _text(reader.line(), "raw_unicode_escape")
            elif name in ("GET", "PUT"):
                arg = _decimal(reader.line(), name)
            else:  # INT, LONG, FLOAT, PERSID: values that never name a global
                line = reader.line()
                arg = line.decode("latin-1") if line is not None else _UNKNOWN
        elif described.n in _LENGTH_FORMATS:
            fmt = _LENGTH_FORMATS[described.n]
            (length,) = struct.unpack(fmt, reader.read(struct.calcsize(fmt)))
            if length < 0:
                raise _LoaderStops(f"negative byte count {length}")
            raw = reader.take(length)
            if name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"):
                arg = _text(raw, "utf-8")
            elif name in ("SHORT_BINSTRING", "BINSTRING"):
                # torch.load decodes Python 2 strings as UTF-8 (pickle.load: ASCII, a subset)
                arg = _text(raw, "utf-8")
            elif name in ("LONG1", "LONG4") and raw is not None:
                arg = int.from_bytes(raw, "little", signed=True)
            else:
                arg = _UNKNOWN
        elif described.name in _FIXED_FORMATS:
            fmt = _FIXED_FORMATS[described.name]
            (arg,) = struct.unpack(fmt, reader.read(struct.calcsize(fmt)))
        else:  # float8
            reader.read(described.n)
        yield opcode, arg
        if name == "STOP":
            return


def _scan_one(reader: _Reader, acc: _Accumulator, *, persistent: bool = True) -> bool:
    """Scan one pickle up to STOP. Returns True if it pushed the torch legacy magic number.

    ``persistent``: whether the loader reading this pickle has a ``persistent_load`` (torch's
    data pickles do; ``pickle.load`` and ``numpy.load`` do not and stop at PERSID).

    Raises :class:`_LoaderStops` where the real unpickler would fail (the globals recorded
    so far are what it would have imported), :class:`_ScanError` where the scan gives up."""
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
            raise _LoaderStops(f"pops {count} items from a stack holding {len(stack) - floor}")
        items = stack[len(stack) - count :]
        del stack[len(stack) - count :]
        return items

    def store(key: int) -> None:
        if not stack or stack[-1] is _MARK:
            raise _LoaderStops("memo store with no object on the stack")
        if key not in memo_keys:
            if len(memo_keys) >= _MAX_MEMO_KEYS:
                raise _ScanError(f"memo grew beyond {_MAX_MEMO_KEYS} entries")
            memo_keys.add(key)
        value = stack[-1]
        if isinstance(value, str):
            memo[key] = value
        else:
            memo.pop(key, None)

    for opcode, arg in _ops(reader):
        name = opcode.name
        if name in _STRING_OPS:
            stack.append(arg)
        elif name == "STACK_GLOBAL":
            module, qualname = pop(2)
            if isinstance(module, str) and isinstance(qualname, str):
                acc.add_global(resolve(module, qualname))
            else:
                acc.unsafe.add(UNRESOLVED_STACK_GLOBAL)
            stack.append(_UNKNOWN)
        elif name in _PUT_OPS:
            store(int(arg or 0))  # type: ignore[call-overload]
        elif name == "MEMOIZE":
            store(len(memo_keys))
        elif name in _GET_OPS:
            key = int(arg or 0)  # type: ignore[call-overload]
            if key not in memo_keys:
                raise _LoaderStops(f"memo key {key} was never stored")
            stack.append(memo.get(key, _UNKNOWN))
        else:
            if name in ("GLOBAL", "INST"):
                module, qualname = arg  # type: ignore[misc]
                if isinstance(module, str) and isinstance(qualname, str):
                    acc.add_global(resolve(module, qualname))
                else:
                    acc.unsafe.add(UNRESOLVED_GLOBAL)
            elif name in _EXT_OPS:
                acc.unsafe.add(f"<extension code {arg}>")
            elif name == "PROTO":
                protocol = int(arg or 0)  # type: ignore[call-overload]
                if protocol > pickle.HIGHEST_PROTOCOL:
                    raise _LoaderStops(f"unsupported pickle protocol {protocol}")
            elif name == "LONG1" and arg == _TORCH_LEGACY_MAGIC:
                legacy_magic = True
            elif name in ("PERSID", "BINPERSID") and not persistent:
                raise _LoaderStops("persistent id, but this loader has no persistent_load")
            before, after = opcode.stack_before, opcode.stack_after
            count = len(before)
            if pickletools.markobject in before or (name == "POP" and stack and stack[-1] is _MARK):
                if not marks:
                    raise _LoaderStops("no MARK on the stack")
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
    return legacy_magic


def _describe_failure(reader: _Reader, error: BaseException) -> str:
    position = reader.op_start
    if not reader.op_byte:
        return f"end of data at byte {position}: pickle exhausted before seeing STOP"
    opcode = _CODE2OP.get(reader.op_byte)
    label = opcode.name if opcode else f"0x{reader.op_byte[0]:02x}"
    detail = "unknown opcode" if opcode is None else str(error) or type(error).__name__
    return f"opcode {label} at byte {position}: {detail}"


def _scan_stream(
    reader: _Reader,
    acc: _Accumulator,
    prefix: str,
    *,
    probe: bool = False,
    persistent: bool = False,
) -> int:
    """Scan consecutive pickles as the loaders read them; return how many completed.

    A failure inside the first pickle is an error, unless ``probe`` (the stream is any file's
    first bytes, which need not be a pickle at all): then only the globals imported before
    the failure count, since the loader would have imported them before failing. After the
    first pickle, the torch legacy format's next pickles must parse; other trailing bytes are
    scanned for globals too (a custom loader could read on) but never read by the loaders,
    so their parse failures are not errors."""
    count = 0
    legacy = False
    if reader.remaining == 0:
        if not probe:
            acc.errors.append(f"{prefix}no pickle found: the data is empty")
        return 0
    while reader.remaining > 0:
        if legacy and count == _TORCH_LEGACY_PICKLES:
            return count  # the rest is raw storage bytes
        # Of torch's legacy sequence only the fourth pickle (the object) gets a persistent_load.
        allowed = persistent or (legacy and count == _TORCH_LEGACY_DATA_PICKLE)
        try:
            magic = _scan_one(reader, acc, persistent=allowed)
        except _ScanError as error:
            acc.errors.append(f"{prefix}{_describe_failure(reader, error)}")
            return count
        except _LoaderStops as error:
            if (count == 0 and not probe) or (legacy and count < _TORCH_LEGACY_PICKLES):
                acc.errors.append(f"{prefix}{_describe_failure(reader, error)}")
            return count
        except Exception as error:  # untrusted input: any other failure is a scan error
            acc.errors.append(f"{prefix}{_describe_failure(reader, error)}")
            return count
        if count == 0 and magic:
            legacy = True
        count += 1
    if legacy and count < _TORCH_LEGACY_PICKLES:
        acc.errors.append(
            f"{prefix}torch legacy format: {count} of its {_TORCH_LEGACY_PICKLES} pickles present"
        )
    return count


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
    name = name.lower()  # torch finds records case-insensitively
    if name.endswith(".pkl"):
        return False  # every .pkl member is scanned, wherever it sits
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
            info.filename.lower()[: -len("/data.pkl")]
            for info in infos
            if info.filename.lower().endswith("/data.pkl")
        }
        if any(info.filename.lower() == "data.pkl" for info in infos):
            torch_prefixes.add("")
        for info in infos:
            name = info.filename
            prefix = f"member {name}: "
            if name.endswith("/") or _is_torch_storage(name, torch_prefixes):
                continue
            if info.flag_bits & 0x1:
                acc.errors.append(f"{prefix}encrypted member cannot be scanned")
                continue
            if info.file_size > MAX_DECOMPRESSION_RATIO * max(info.compress_size, 1):
                acc.errors.append(
                    f"{prefix}compression ratio over {MAX_DECOMPRESSION_RATIO} (zip bomb?)"
                )
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
        _scan_stream(_Reader(member, info.file_size), acc, prefix, persistent=True)


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


def is_legacy_torch_tar(path: Path) -> bool:
    """torch.load tries ``tarfile.open(mode="r:")`` on every non-zip file first, and reads a
    tar that holds a ``storages`` member as a pre-0.4 checkpoint."""
    try:
        with tarfile.open(path, mode="r:") as archive:
            return "storages" in archive.getnames()
    except Exception:  # not a tar: torch falls through to the pickle reader
        return False


def _scan_legacy_tar(path: Path, acc: _Accumulator) -> None:
    acc.unscannable.append(
        "legacy PyTorch tar checkpoint: torch itself refuses to load this format with "
        "weights_only=True, so loading it always unpickles its `storages`, `tensors` and "
        "`pickle` members without an allow-list"
    )
    try:
        with tarfile.open(path, mode="r:") as archive:
            for info in archive.getmembers():
                stream = archive.extractfile(info) if info.isfile() else None
                if stream is None:
                    continue
                acc.members.append(info.name)
                with stream:
                    # Only the leading pickle of `storages`/`tensors` is reachable statically.
                    _scan_stream(_Reader(stream, info.size), acc, f"member {info.name}: ")
    except Exception as error:
        acc.errors.append(f"legacy tar checkpoint cannot be read: {error}")


def _has_zip_directory(path: Path) -> bool:
    """:func:`zipfile.is_zipfile`, which raises BadZipFile (not only returns False) for an end
    record that declares several disks: such a file is no zip any loader opens."""
    try:
        return zipfile.is_zipfile(path)
    except zipfile.BadZipFile:
        return False


def scan_weights_file(path: Path, *, claims_pickle: bool = False) -> PickleScan:
    """Everything ``pickle.load``, ``numpy.load(allow_pickle=True)`` or
    ``torch.load(weights_only=False)`` could unpickle from ``path``, whatever its format.

    * the stream at offset 0, for every file: any first opcode, protocols 0-5, and the
      consecutive pickles of torch's legacy format. Globals imported before the stream stops
      parsing count (the unpickler imports as it goes); a parse failure is an error only if
      ``claims_pickle`` (the file's name or manifest says it is a pickle), since most files
      simply are not pickles;
    * a zip: what torch and :mod:`zipfile` could read differently (``ambiguities``), then
      every ``.pkl`` member (any case), every member holding an ``.npy`` and every member
      whose bytes start a pickle;
    * an ``.npy``: the payload of an object array (a pickle);
    * a tar holding ``storages``: torch's legacy tar format (``unscannable``).
    """
    from .torch_archive import ambiguities

    acc = _Accumulator()
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(8)
    except OSError as error:
        acc.errors.append(f"cannot read the file: {error.strerror or error}")
        return acc.result()
    is_zip = head.startswith((b"PK\x03\x04", b"PK\x05\x06")) or _has_zip_directory(path)
    is_tar = not is_zip and is_legacy_torch_tar(path)
    # A container's own loader takes it (torch: zip by its first 4 bytes, then tar); its
    # offset-0 stream is still probed, for pickle.load and numpy.load.
    strict = claims_pickle and not (is_zip or is_tar or head.startswith(NPY_MAGIC))
    try:
        with open(path, "rb") as handle:
            before = len(acc.globals) + len(acc.unsafe)
            found = _scan_stream(_Reader(handle, size), acc, "", probe=not strict)
            if found or strict or len(acc.globals) + len(acc.unsafe) > before:
                acc.members.append(path.name)
            if head.startswith(NPY_MAGIC):
                handle.seek(0)
                _scan_npy(handle, size, acc, "", path.name)
    except OSError as error:
        acc.errors.append(f"cannot read the file: {error.strerror or error}")
        return acc.result()
    if is_zip:
        acc.ambiguities.extend(ambiguities(path))
        _scan_zip(path, acc)
    elif is_tar:
        _scan_legacy_tar(path, acc)
    return acc.result()


def looks_like_pickle(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file, e.g. 4 KiB) starts a pickle a loader would
    accept, whatever its first opcode (FRAME, SHORT_BINBYTES, NEWTRUE, MARK, PROTO 0-5 ...).

    True if the first pickle parses to STOP within ``head``, or (for a window of at least
    4 KiB) runs cleanly through at least 8 opcodes to the end of the window. Catches protocol
    0/1 pickles that carry no ``\\x80`` magic (CVE-2025-10155)."""
    if not head:
        return False
    reader = _Reader(io.BytesIO(head), len(head))
    try:
        _scan_one(reader, _Accumulator())
    except _LoaderStops:
        return reader.remaining == 0 and len(head) >= _SNIFF and reader.ops > 8
    except Exception:  # any other failure: not (the start of) a pickle
        return False
    return True
