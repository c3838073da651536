"""NumPy arrays inside pickles (scikit-learn models, joblib files), found without unpickling.

A pickled ``ndarray`` is rebuilt from a dtype and a raw byte payload, and the payload is one
byte-string opcode of the stream, so its place in the file is known:

* ``numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')`` then ``BUILD`` with the state
  ``(version, shape, dtype, is_fortran, data)`` — ``pickle`` protocols 3 and 4 (``data`` is a
  ``BINBYTES`` payload; protocol 2 encodes it as latin-1 *text*, readable but not in place);
* ``numpy.core.numeric._frombuffer(buffer, dtype, shape, order)`` — protocol 5 in-band
  (``BYTEARRAY8`` payload);
* joblib's ``NumpyArrayWrapper`` (``joblib.dump`` without compression): the wrapper's state
  names ``shape``/``order``/``dtype``, and the array's bytes follow its ``BUILD`` opcode in the
  file, after a one-byte padding length and that many padding bytes when
  ``numpy_array_alignment_bytes`` is set (joblib/numpy_pickle.py ``NumpyArrayWrapper.read_array``);
  an object-dtype array is a nested pickle there instead.

The dtype itself is pickled as ``numpy.dtype(descr, False, True)`` with the byte order in its
``BUILD`` state; only plain numeric dtypes are turned into a :class:`numpy.dtype`.

joblib's compressed files (zlib, gzip, bz2, xz, lzma) wrap the same stream in one compressor;
:func:`compression_of` recognises them by the magic bytes joblib itself checks
(joblib/compressor.py).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from . import FormatError
from .pickle_values import (
    Call,
    Global,
    OpcodeBudget,
    Payload,
    UnsupportedFeature,
    evaluate_pickle,
    new_budget,
    walk_named,
)

__all__ = ["PickledArray", "compression_of", "read_pickled_arrays"]

_SIMPLE_DESCR = re.compile(r"[<>|=]?[fiubc]\d{1,2}")
_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_FROMBUFFER_MODULES = ("numpy.core.numeric", "numpy._core.numeric")
_JOBLIB_WRAPPER = Global("joblib.numpy_pickle", "NumpyArrayWrapper")
_MAX_PICKLES = 64  # consecutive pickles in one file (joblib writes one)

#: joblib's compressor magic bytes -> name (joblib/compressor.py)
_COMPRESSIONS = (
    (b"\x78", "zlib"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ", "xz"),
    (b"\x5d\x00\x00", "lzma"),
)


@dataclass(frozen=True)
class PickledArray:
    """One array: its bytes are ``payload`` (None when text-encoded, protocol 2)."""

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    fortran: bool
    payload: Payload | None

    @property
    def nbytes(self) -> int:
        size = 1
        for d in self.shape:
            size *= d
        return size * self.dtype.itemsize


def compression_of(head: bytes) -> str | None:
    """The joblib compressor whose magic ``head`` starts with, or None."""
    for magic, name in _COMPRESSIONS:
        if head.startswith(magic):
            return name
    return None


def _dtype_of(value: Any) -> np.dtype[Any] | None:
    """np.dtype for ``numpy.dtype('f4', False, True)`` + BUILD (3, '<', …); None otherwise."""
    if not (
        isinstance(value, Call)
        and isinstance(value.func, Global)
        and value.func.name == "dtype"
        and value.func.module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray")
        and value.args
        and isinstance(value.args[0], str)
    ):
        return None
    descr = value.args[0]
    order = "|"
    if isinstance(value.state, tuple) and len(value.state) > 1 and isinstance(value.state[1], str):
        order = value.state[1]
    if not _SIMPLE_DESCR.fullmatch(descr) or order not in ("<", ">", "|", "="):
        return None
    dtype = np.dtype(descr)
    if dtype.itemsize > 1 and order == ">":
        dtype = dtype.newbyteorder(">")
    elif dtype.itemsize > 1 and order == "<":
        dtype = dtype.newbyteorder("<")
    return dtype


def _shape(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, tuple | list) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        return tuple(value)
    return None


def _array_of(name: str, call: Call) -> PickledArray | None:
    func = call.func
    if not isinstance(func, Global):
        return None
    if func.module in _NUMPY_MODULES and func.name == "_reconstruct":
        state = call.state
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            return None
        shape, dtype_call, fortran, data = state[-4:]
        dtype, dims = _dtype_of(dtype_call), _shape(shape)
        if dtype is None or dims is None:
            return None
        payload = data if isinstance(data, Payload) else None
        return PickledArray(name, dtype, dims, bool(fortran), payload)
    if func.module in _FROMBUFFER_MODULES and func.name == "_frombuffer":
        if len(call.args) != 4 or not isinstance(call.args[0], Payload):
            return None
        dtype, dims = _dtype_of(call.args[1]), _shape(call.args[2])
        if dtype is None or dims is None:
            return None
        return PickledArray(name, dtype, dims, call.args[3] == "F", call.args[0])
    if func == _JOBLIB_WRAPPER and isinstance(call.state, dict) and call.payload is not None:
        dtype, dims = _dtype_of(call.state.get("dtype")), _shape(call.state.get("shape"))
        if dtype is None or dims is None:
            return None
        return PickledArray(name, dtype, dims, call.state.get("order") == "F", call.payload)
    return None


def _joblib_hook(call: Call, handle: IO[bytes], budget: OpcodeBudget | None = None) -> None:
    """Consume the array bytes joblib writes after a NumpyArrayWrapper's BUILD."""
    if call.func != _JOBLIB_WRAPPER or not isinstance(call.state, dict):
        return
    dtype_call = call.state.get("dtype")
    dims = _shape(call.state.get("shape"))
    if (
        isinstance(dtype_call, Call)
        and dtype_call.args
        and isinstance(dtype_call.args[0], str)
        and dtype_call.args[0].startswith("O")
    ):  # object array: a nested pickle follows
        evaluate_pickle(handle, os.fstat(handle.fileno()).st_size, budget=budget)
        return
    dtype = _dtype_of(dtype_call)
    if dtype is None or dims is None:
        raise UnsupportedFeature("joblib array wrapper with an unsupported dtype or shape.")
    if call.state.get("numpy_array_alignment_bytes") is not None:
        pad = handle.read(1)
        if len(pad) != 1:
            raise FormatError("joblib array padding truncated.")
        handle.seek(pad[0], os.SEEK_CUR)
    size = 1
    for d in dims:
        size *= d
    start = handle.tell()
    nbytes = size * dtype.itemsize
    end = os.fstat(handle.fileno()).st_size
    if start + nbytes > end:
        raise FormatError(f"joblib array at byte {start} runs past the end of the file.")
    handle.seek(start + nbytes)
    call.payload = Payload(start, nbytes)


def read_pickled_arrays(path: Path) -> list[PickledArray]:
    """Every numeric array in the (uncompressed) pickle or joblib file at ``path``.

    Raises :class:`FormatError` if the stream is not a well-formed pickle.
    """
    arrays: list[PickledArray] = []
    budget = new_budget()  # set for decompressed streams (pickle_values.opcode_limit)
    hook = functools.partial(_joblib_hook, budget=budget)
    with open(path, "rb") as handle:
        end = os.fstat(handle.fileno()).st_size
        for index in range(_MAX_PICKLES):
            tree = evaluate_pickle(handle, end, after_build=hook, budget=budget)
            prefix = f"{index}." if index else ""
            for name, value in walk_named(tree):
                if isinstance(value, Call):
                    array = _array_of(prefix + name if name else prefix.rstrip("."), value)
                    if array is not None:
                        arrays.append(array)
            if handle.tell() >= end:
                break
        else:
            raise FormatError(f"more than {_MAX_PICKLES} consecutive pickles.")
    for array in arrays:
        if array.payload is not None and array.payload.length != array.nbytes:
            raise FormatError(
                f"array {array.name!r}: {array.payload.length} bytes for "
                f"{array.dtype.str}{list(array.shape)} ({array.nbytes} bytes)."
            )
    return arrays
