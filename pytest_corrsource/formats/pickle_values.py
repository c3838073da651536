"""Evaluate a pickle *symbolically*: the value tree it describes, with nothing imported or called.

The tensor readers (torch checkpoints, pickled numpy arrays) need more than the safety scan's
list of globals: which dict key holds which ``_rebuild_tensor_v2(...)`` call, with which storage
and shape, and where in the file each array's raw bytes lie. This module walks the opcodes with
:func:`pickletools.genops` and builds plain Python data (dicts, lists, tuples, str, bytes, int,
float) plus three inert records: :class:`Global` (a name the pickle would import),
:class:`Call` (a function applied to arguments, with any ``BUILD`` state) and :class:`PersId`
(a persistent id). Nothing is ever imported, constructed or called, so evaluating a hostile
pickle is as safe as reading its bytes; every container and the memo are bounded.

Byte payloads (``BINBYTES``/``SHORT_BINBYTES``/``BINBYTES8``/``BYTEARRAY8``) become
:class:`Payload` records (absolute file offset and length; the bytes only when short), which is
what in-place modification needs and keeps a multi-GiB array out of memory. A caller may
also hook the ``BUILD`` of a given global (joblib writes array bytes *between* opcodes) through
``after_build``.
"""

from __future__ import annotations

import contextlib
import contextvars
import pickletools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from . import FormatError

__all__ = [
    "KEEP_BYTES",
    "MAX_PICKLE_DEPTH",
    "Call",
    "Global",
    "OpcodeBudget",
    "Payload",
    "PersId",
    "UnsupportedFeature",
    "evaluate_pickle",
    "new_budget",
    "opcode_limit",
    "walk_named",
]

#: Byte strings up to this length are kept as ``bytes`` (as well as located by a
#: :class:`Payload`'s ``data``); longer ones are only located.
KEEP_BYTES = 64
_MAX_ITEMS = 5_000_000  # values created while evaluating one pickle
_MAX_STRING = 1 << 20  # longest str kept (tensor names, keys); longer ones are an error
MAX_PICKLE_DEPTH = 200  # nesting of Calls/containers walked by the tensor finders


class UnsupportedFeature(FormatError):
    """The file may be valid, but uses something this reader does not handle (a limit of the
    plugin, not a fault of the file)."""


@dataclass(frozen=True)
class Global:
    module: str
    name: str

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(eq=False)
class Call:
    """``func(*args)`` as the pickle describes it; ``state`` is what ``BUILD`` would set and
    ``items``/``appends`` what ``SETITEMS``/``APPENDS`` add to the object afterwards."""

    func: Any
    args: tuple[Any, ...]
    state: Any = None
    items: dict[Any, Any] = field(default_factory=dict)
    appends: list[Any] = field(default_factory=list)
    #: bytes a writer put right after this object's BUILD (joblib's array data), if any
    payload: Payload | None = None


@dataclass(frozen=True)
class PersId:
    value: Any


@dataclass(frozen=True)
class Payload:
    """A byte string of the pickle: ``length`` bytes at absolute ``offset`` of the file, and
    the bytes themselves (``data``) when at most :data:`KEEP_BYTES` long."""

    offset: int
    length: int
    data: bytes | None = None


class _Mark:
    pass


_MARK = _Mark()


class _Stream:
    """Limits genops' reads and skips big byte strings without materialising them."""

    def __init__(self, handle: IO[bytes], end: int) -> None:
        self.handle = handle
        self.end = end

    def tell(self) -> int:
        return self.handle.tell()

    def read(self, size: int = -1) -> bytes:
        remaining = self.end - self.handle.tell()
        if size < 0 or size > remaining:
            size = max(remaining, 0)
        return self.handle.read(size)

    def readline(self) -> bytes:
        return self.handle.readline(min(max(self.end - self.handle.tell(), 0), _MAX_STRING))


_BYTES_LEN = {"SHORT_BINBYTES": ("<B", 1), "BINBYTES": ("<I", 4), "BINBYTES8": ("<Q", 8)}
_BYTES_LEN["BYTEARRAY8"] = ("<Q", 8)
_LITERALS = frozenset(
    {
        *("NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2", "LONG"),
        *("LONG1", "LONG4", "FLOAT", "BINFLOAT", "STRING", "BINSTRING", "SHORT_BINSTRING"),
        *("UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", *_BYTES_LEN),
    }
)


class OpcodeBudget:
    """How many more opcodes the evaluations sharing this budget may take.

    Evaluating costs microseconds per opcode. A file pays for its opcodes with its own bytes,
    except a compressed one: 716 bytes of xz inflate to a pickle that took 95 s. The joblib
    readers therefore evaluate a decompressed stream under :func:`opcode_limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def spend(self, pos: int) -> None:
        self.left -= 1
        if self.left < 0:
            raise FormatError(
                f"the pickle has more than {self.limit} opcodes (at byte {pos}), more than its "
                "compressed size can hold in any real model (an opcode bomb?)."
            )


_OPCODE_LIMIT: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "corrsource_pickle_opcode_limit", default=None
)


@contextlib.contextmanager
def opcode_limit(limit: int) -> Iterator[None]:
    """Within this block, each reading of a file's pickles (each :func:`new_budget`) may take
    at most ``limit`` opcodes, all its consecutive and nested pickles together."""
    token = _OPCODE_LIMIT.set(limit)
    try:
        yield
    finally:
        _OPCODE_LIMIT.reset(token)


def new_budget() -> OpcodeBudget | None:
    """A budget for one reading of a file, when :func:`opcode_limit` set one; else None."""
    limit = _OPCODE_LIMIT.get()
    return None if limit is None else OpcodeBudget(limit)


def _opcodes(stream: _Stream) -> Any:
    """genops, except that long byte strings are skipped and yielded as :class:`Payload`.

    genops reads the whole argument; a multi-GiB tensor must not be, so the length prefix of
    byte opcodes is peeked first.
    """
    import struct

    codes = {op.code.encode("latin-1"): op for op in pickletools.opcodes}
    handle = stream.handle
    while True:
        pos = handle.tell()
        code = stream.read(1)
        if not code:
            raise FormatError(f"pickle ends at byte {pos} before its STOP opcode.")
        op = codes.get(code)
        if op is None:
            raise FormatError(f"unknown pickle opcode 0x{code[0]:02x} at byte {pos}.")
        if op.name in _BYTES_LEN:
            fmt, size = _BYTES_LEN[op.name]
            raw = stream.read(size)
            if len(raw) < size:
                raise FormatError(f"pickle truncated inside {op.name} at byte {pos}.")
            (length,) = struct.unpack(fmt, raw)
            start = handle.tell()
            if start + length > stream.end:
                raise FormatError(f"{op.name} at byte {pos} runs past the end of the data.")
            if length <= KEEP_BYTES:
                yield op, Payload(start, length, handle.read(length)), pos
            else:
                handle.seek(start + length)
                yield op, Payload(start, length), pos
            continue
        handle.seek(pos)
        # one opcode at a time through genops' own argument decoding
        gen = pickletools.genops(stream)  # type: ignore[arg-type]
        try:
            opcode, arg, _ = next(gen)
        except StopIteration:  # pragma: no cover - genops always yields or raises
            raise FormatError(f"pickle ends at byte {pos}.") from None
        except Exception as exc:  # untrusted input: any decoding failure is a format error
            raise FormatError(f"bad pickle opcode {op.name} at byte {pos}: {exc}") from None
        if isinstance(arg, str) and len(arg) > _MAX_STRING:
            raise FormatError(f"string of {len(arg)} characters at byte {pos}.")
        yield opcode, arg, pos


def evaluate_pickle(
    handle: IO[bytes],
    end: int,
    *,
    after_build: Callable[[Call, IO[bytes]], None] | None = None,
    budget: OpcodeBudget | None = None,
) -> Any:
    """Evaluate the pickle starting at ``handle``'s position (ending by ``end``); return its
    value. Leaves ``handle`` just after the STOP opcode. Raises :class:`FormatError` for
    anything that is not a well-formed pickle.

    ``after_build(call, handle)`` runs after each ``BUILD`` and may consume bytes from
    ``handle`` (joblib writes array data right after its wrapper object). ``budget`` bounds
    the opcodes taken (shared by the evaluations of one file).
    """
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}
    created = 0

    def pop_mark() -> list[Any]:
        if not marks:
            raise FormatError("pickle pops a MARK that was never pushed.")
        start = marks.pop()
        items = stack[start + 1 :]
        del stack[start:]
        return items

    def pop() -> Any:
        floor = marks[-1] + 1 if marks else 0
        if len(stack) <= floor:
            raise FormatError("pickle pops from an empty stack.")
        return stack.pop()

    def top() -> Any:
        floor = marks[-1] + 1 if marks else 0
        if len(stack) <= floor:
            raise FormatError("pickle uses an empty stack.")
        return stack[-1]

    def push(value: Any) -> None:
        nonlocal created
        created += 1
        if created > _MAX_ITEMS:
            raise FormatError(f"pickle creates more than {_MAX_ITEMS} values.")
        stack.append(value)

    def set_items(target: Any, pairs: list[Any]) -> None:
        if len(pairs) % 2:
            raise FormatError("SETITEMS with an odd number of items.")
        bucket = target.items if isinstance(target, Call) else target
        if not isinstance(bucket, dict):
            raise FormatError("SETITEM(S) on something that is not a dict.")
        for key, value in zip(pairs[::2], pairs[1::2], strict=True):
            try:
                bucket[key] = value
            except TypeError:
                raise FormatError("dict key is not hashable.") from None

    def extend(target: Any, values: list[Any]) -> None:
        if isinstance(target, Call):
            target.appends.extend(values)
        elif isinstance(target, list):
            target.extend(values)
        else:
            raise FormatError("APPEND(S) on something that is not a list.")

    def hashable(values: list[Any]) -> frozenset[Any]:
        try:
            return frozenset(values)
        except TypeError:
            raise FormatError("set item is not hashable.") from None

    for op, arg, pos in _opcodes(_Stream(handle, end)):
        if budget is not None:
            budget.spend(pos)
        name = op.name
        if name in ("PROTO", "FRAME"):
            continue
        if name == "STOP":
            value = pop()
            return value
        if name == "MARK":
            marks.append(len(stack))
            stack.append(_MARK)
        elif name in _LITERALS:
            value = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}.get(name, arg)
            if name == "INT" and isinstance(arg, bool):
                value = arg
            push(value)
        elif name == "EMPTY_DICT":
            push({})
        elif name == "EMPTY_LIST":
            push([])
        elif name == "EMPTY_TUPLE":
            push(())
        elif name == "EMPTY_SET":
            push(set())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = [pop() for _ in range(n)][::-1]
            push(tuple(items))
        elif name == "TUPLE":
            push(tuple(pop_mark()))
        elif name == "LIST":
            push(pop_mark())
        elif name == "DICT":
            d: dict[Any, Any] = {}
            set_items(d, pop_mark())
            push(d)
        elif name == "FROZENSET":
            push(hashable(pop_mark()))
        elif name == "ADDITEMS":
            values = pop_mark()
            target = top()
            if not isinstance(target, set):
                raise FormatError("ADDITEMS on something that is not a set.")
            target.update(hashable(values))
        elif name == "APPEND":
            value = pop()
            extend(top(), [value])
        elif name == "APPENDS":
            values = pop_mark()
            extend(top(), values)
        elif name == "SETITEM":
            value = pop()
            key = pop()
            set_items(top(), [key, value])
        elif name == "SETITEMS":
            pairs = pop_mark()
            set_items(top(), pairs)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = top()
        elif name == "MEMOIZE":
            memo[len(memo)] = top()
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if int(arg) not in memo:
                raise FormatError(f"memo key {arg} read at byte {pos} was never stored.")
            push(memo[int(arg)])
        elif name in ("GLOBAL", "INST"):
            module, _, qualname = str(arg).partition(" ")
            if name == "GLOBAL":
                push(Global(module, qualname))
            else:
                push(Call(Global(module, qualname), tuple(pop_mark())))
        elif name == "STACK_GLOBAL":
            qualname, module = pop(), pop()
            if not (isinstance(module, str) and isinstance(qualname, str)):
                raise FormatError(f"STACK_GLOBAL at byte {pos} is not given two strings.")
            push(Global(module, qualname))
        elif name == "REDUCE":
            args = pop()
            func = pop()
            if not isinstance(args, tuple):
                raise FormatError(f"REDUCE at byte {pos} is not given an argument tuple.")
            push(Call(func, args))
        elif name == "NEWOBJ":
            args = pop()
            cls = pop()
            push(Call(cls, args if isinstance(args, tuple) else (args,)))
        elif name == "NEWOBJ_EX":
            kwargs = pop()
            args = pop()
            cls = pop()
            push(Call(cls, args if isinstance(args, tuple) else (args,), state=kwargs))
        elif name == "OBJ":
            items = pop_mark()
            if not items:
                raise FormatError(f"OBJ at byte {pos} without a class.")
            push(Call(items[0], tuple(items[1:])))
        elif name == "BUILD":
            state = pop()
            target = top()
            if not isinstance(target, Call):
                raise FormatError(f"BUILD at byte {pos} on a {type(target).__name__}.")
            target.state = state
            if after_build is not None:
                after_build(target, handle)
        elif name in ("PERSID", "BINPERSID"):
            push(PersId(arg if name == "PERSID" else pop()))
        elif name == "POP":
            pop()
        elif name == "POP_MARK":
            pop_mark()
        elif name == "DUP":
            push(top())
        else:  # EXT*, NEXT_BUFFER, READONLY_BUFFER: not something a weights file needs
            raise UnsupportedFeature(f"pickle opcode {name} at byte {pos} is not supported here.")
    raise FormatError("pickle ends before its STOP opcode.")  # pragma: no cover


#: Values a walk may visit: shared references (one list memoised and referenced twice at
#: every level) would otherwise make a small pickle take exponential time to walk.
MAX_VISITS = 2_000_000


def walk_named(value: Any, prefix: str = "") -> Any:
    """Yield ``(dotted name, value)`` for every leaf under dicts, lists and tuples (and the
    ``items``/``state`` of dict-like Calls such as ``OrderedDict``); Calls themselves are
    yielded too, so a caller can recognise tensors and arrays and stop there. A value reached
    by two paths (tied weights) is yielded under both names."""
    stack: list[tuple[str, Any, int]] = [(prefix, value, 0)]
    visits = 0
    while stack:
        name, node, depth = stack.pop()
        visits += 1
        if visits > MAX_VISITS:
            raise FormatError(f"pickle has more than {MAX_VISITS} values to walk.")
        if depth > MAX_PICKLE_DEPTH:
            raise FormatError(f"pickle nests deeper than {MAX_PICKLE_DEPTH} levels.")
        yield name, node
        children: list[tuple[str, Any]] = []
        if isinstance(node, dict):
            children = [(_key(k), v) for k, v in node.items()]
        elif isinstance(node, list | tuple):
            children = [(str(i), v) for i, v in enumerate(node)]
        elif isinstance(node, Call):
            children = [(_key(k), v) for k, v in node.items.items()]
            children += [(str(i), v) for i, v in enumerate(node.appends)]
            if isinstance(node.state, dict):
                children += [(_key(k), v) for k, v in node.state.items()]
        for key, child in reversed(children):
            stack.append((f"{name}.{key}" if name else key, child, depth + 1))


def _key(key: Any) -> str:
    """A dict key as a name part; keys that are not plain values (a hostile pickle may use a
    deeply nested object) are not rendered."""
    if isinstance(key, str | int | float | bool) or key is None:
        return str(key)
    return f"<{type(key).__name__}>"
