"""Write a *modified* copy of a model's weights.

GPL-style "installation information" / anti-tivoization checks need proof that a user can
run the model with weights they changed themselves.  :func:`perturb_weights` produces such
a copy: every floating-point value is changed (slightly, deterministically from ``seed``)
and stays finite, while everything else in the file — names, dtypes, shapes, offsets,
metadata, integer and boolean tensors — is kept exactly.

Supported formats (detected by magic bytes, never by file name alone):

* ``safetensors`` — the 8-byte little-endian header length followed by ``{``, validated and
  located by :func:`pytest_corrsource.formats.safetensors.read_safetensors_layout` (the one
  safetensors reader).  The header bytes and the tensors that are not floats are copied
  verbatim, the float tensors rewritten in place (see "How the bytes move").
* ``safetensors-index`` — a ``*.safetensors.index.json`` (JSON with a ``weight_map``, read by
  :func:`pytest_corrsource.formats.shards.read_safetensors_index`).  The index is copied
  unchanged and every shard it names is perturbed into the destination index's folder under
  the same relative name.
* ``npy`` (``\\x93NUMPY``) — header copied verbatim, data rewritten like safetensors.
* ``npz`` (a zip whose members are all ``.npy``) and ``skops`` (a zip of ``schema.json`` and
  ``.npy`` members) — each ``.npy`` member is loaded with ``allow_pickle=False`` (one member in
  memory at a time), perturbed and written back under the same name with the same
  compression; other members are copied.
* ``torch-zip`` (``torch.save``) — ``data.pkl`` is evaluated symbolically
  (:mod:`pytest_corrsource.formats.pickle_values`, nothing is unpickled) to learn each
  storage's dtype; the float storages are rewritten in place (same size) and their CRC-32s
  patched, so ``data.pkl``, member names, order, offsets and alignment are unchanged. All
  float storages change — parameters, buffers and optimizer state alike (a run that resumes
  must honour what it loads); integer, bool and quantized storages are copied.
  ``torch-legacy`` (pre-1.6 ``torch.save``): the same, on the raw storages after the pickles;
  ``torch-tar`` (torch < 0.4): the same, on the raw storages inside its ``storages`` member.
* ``pickle`` holding numpy arrays (scikit-learn, ``joblib.dump``) — each array's raw payload
  is a byte-string opcode (or, for joblib, bytes after its wrapper); float payloads are
  changed in place, every opcode stays. joblib's zlib/gzip/bz2/xz/lzma files are
  decompressed (bounded), changed and recompressed with the same codec.
* ``gguf`` — F32/F16/BF16/F64 tensors directly; quantized tensors (Q4_0 … Q8_0, the k-quants
  Q2_K–Q8_K, the i-quants IQ1_S … IQ4_XS, TQ1_0/TQ2_0, MXFP4, NVFP4) by changing each block's
  super-block scale (:data:`GGML_BLOCK_SCALES`); Q8_1 and Q1_0 are refused with the reason.
* ``raw`` — a manifest ``layout`` names the byte ranges that are floats (llama2.c).

How the bytes move (every format but npz/skops, whose members are zip-compressed): the copy
keeps every byte at its offset. The spans that do not change are copied inside the kernel
(``copy_file_range``); the changing regions are cut into 1 MiB chunks that one thread per
core reads, transforms in place and writes at their offsets (:func:`_rewrite`), so a
multi-GiB file needs one chunk of memory per thread.

Every copy is read back with :mod:`pytest_corrsource.formats.tensors`: a schema that differs
from the source's is reported as a bug, never run. Unknown formats, corrupt files and
formats this module cannot change (text-encoded protocol-2 arrays, GGUF Q8_1 …) raise
:class:`PerturbUnsupported` with the reason.

How values are changed:

* F16/F32/F64 (and the components of complex values): ``x * (1.01 + u)`` computed in
  float32 (float64 for 8-byte types), where ``u`` is seeded noise of 25-50 % (either
  sign); exact zeros move by that share of the chunk's median non-zero magnitude.  Any
  element that would round back to its old value or overflow gets its lowest mantissa bit flipped
  instead, which always changes the value and never changes the exponent, so finite
  values stay finite.  NaN and infinities are copied bit-for-bit.
* BF16: the 16-bit patterns are widened to float32 (``<< 16``), perturbed as above and
  rounded to nearest-even back to the top 16 bits (same fallback).
* 8-bit floats (F8_E4M3, F8_E5M2, the FNUZ variants, F8_E8M0): one byte per element, and
  numpy has no arithmetic for them, so the lowest bit of each byte is flipped (XOR 1).
  For the sign/exponent/mantissa formats that bit is the least significant mantissa bit:
  the value changes by one unit in the last place and the exponent — hence finiteness —
  is untouched.  Where the flip would land on the format's NaN encoding (E4M3's largest
  magnitude 0x7E/0xFE, FNUZ's 0x81 next to the 0x80 NaN, E8M0's 0xFE next to the 0xFF
  NaN) bit 1 is flipped instead.  F8_E8M0 has no mantissa: flipping its lowest exponent
  bit doubles or halves the scale.  Non-finite source bytes are kept.
* Sub-byte F4 (E2M1, two values per byte): XOR 0x11 flips the mantissa bit of both
  nibbles.  F6 (E2M3/E3M2, four values packed into three bytes, packing not standardised)
  gets XOR 1 on every byte: every byte changes, but not necessarily every element.  The
  FP4/FP6 formats have no NaN/Inf encodings, so any bit pattern is a finite value.
* Integer (I*/U*) and BOOL tensors are copied unchanged: position ids, masks and indices
  must stay valid.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import shutil
import struct
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from pytest_corrsource.crc import crc32, crc32_combine
from pytest_corrsource.errors import CorrsourceError
from pytest_corrsource.formats import FormatError
from pytest_corrsource.formats.detect import detect_format
from pytest_corrsource.formats.npy import ObjectDtypeError, check_npy_member
from pytest_corrsource.formats.safetensors import SAFETENSORS_DTYPE_BITS, read_safetensors_layout
from pytest_corrsource.formats.shards import read_safetensors_index
from pytest_corrsource.safe_io import open_regular

__all__ = [
    "PerturbResult",
    "PerturbUnsupported",
    "perturb_weights",
]

#: Bytes processed per step when streaming; a multiple of 24 so it divides every
#: element size (1, 2, 4, 8) and the 3-byte F6 packing group.
CHUNK_BYTES = (1 << 20) // 24 * 24
# Large on purpose: the change must reach a model's output (greedy decoding, argmax labels),
# or CS403 would wrongly conclude that the run ignores its weights. Values stay finite and of
# the same order of magnitude, so loading and running still work.
_RELATIVE_SCALE = 0.5

if TYPE_CHECKING:
    from pytest_corrsource.manifest import RawLayout

U8Array = npt.NDArray[np.uint8]


class PerturbUnsupported(CorrsourceError):
    """The source cannot be rewritten safely (pickle, unknown format, corrupt file)."""

    def __init__(self, message: str, *, format: str = "unknown") -> None:
        super().__init__(message)
        self.format = format


@dataclass(frozen=True)
class PerturbResult:
    """What :func:`perturb_weights` did.

    ``changed``: tensors whose values were modified (sorted).  ``unchanged``: tensors
    copied as they were — integer/bool/non-numeric ones, and empty float tensors (sorted).
    ``files``: files written (index first for sharded checkpoints).
    """

    format: str
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]
    files: tuple[Path, ...]
    #: elements of the changed tensors / of all tensors, as the plugin's reader counts them
    #: (0 when the format's tensors cannot be read back, e.g. a raw layout)
    values_changed: int = field(default=0, compare=False)
    values_total: int = field(default=0, compare=False)

    @property
    def share(self) -> float:
        """Share of all values that were changed (0.0 when unknown)."""
        return self.values_changed / self.values_total if self.values_total else 0.0


# --------------------------------------------------------------------------- transforms


@dataclass(frozen=True)
class _Kind:
    """How to transform the raw bytes of one tensor."""

    op: str  # "copy" | "float" | "bf16" | "f8" | "xor" | "blocks"
    dtype: np.dtype[Any] | None = None  # for "float": the element dtype (with byte order)
    f8: str = ""  # for "f8": safetensors dtype name
    mask: int = 0  # for "xor"
    block: int = 0  # for "blocks": bytes per quantization block
    #: for "blocks": (offset in the block, encoding) of each scale field, see GGML_BLOCK_SCALES
    fields: tuple[tuple[int, str], ...] = ()


_COPY = _Kind("copy")


#: Length of the seeded table of multipliers; a chunk (at most CHUNK_BYTES // 2 elements)
#: takes a window of it that starts where its (name, chunk) hash says.
_TABLE = CHUNK_BYTES // 2


@functools.lru_cache(maxsize=4)
def _factor_table(seed: int, dtype: str) -> npt.NDArray[Any]:
    """``1.01 + u`` for 2 * _TABLE seeded ``u`` of 25-50 % (either sign), computed once per
    seed: drawing fresh random numbers per element was half the cost of a modification."""
    rng = np.random.default_rng([seed & 0xFFFF_FFFF_FFFF_FFFF, 0x5EED])
    u = rng.random(2 * _TABLE, dtype=np.dtype(dtype).type)
    u *= 2
    u -= 1  # [-1, 1)
    u += np.copysign(u.dtype.type(1), u)  # ±1 in u's dtype: one temporary, not two
    u *= _RELATIVE_SCALE / 2  # |u| in [scale/2, scale)
    u += 1.01
    u.setflags(write=False)
    return u


@dataclass(frozen=True)
class _Noise:
    """Deterministic multipliers for one chunk of one tensor."""

    seed: int
    name: str
    chunk: int

    def factors(self, n: int, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
        table = _factor_table(self.seed, np.dtype(dtype).name)
        key = hashlib.sha256(f"{self.name}\0{self.chunk}".encode()).digest()[:8]
        start = int.from_bytes(key, "little") % _TABLE
        if n <= _TABLE:
            return table[start : start + n]
        return np.resize(table[start:], n)  # pragma: no cover - chunks are at most _TABLE


def _rng(seed: int, name: str, chunk: int) -> _Noise:
    return _Noise(seed, name, chunk)


def _perturbed(xc: npt.NDArray[Any], rng: _Noise) -> tuple[Any, Any]:
    """``x * (1.01 + u)`` in xc's (float32/float64) dtype; also returns isfinite(xc).

    ``u`` is seeded noise of 25-50 % of ``|x|`` (either sign); exact zeros get 25-50 % of the
    median non-zero magnitude of the chunk instead (robust to outliers such as the
    format's largest finite value), or of 1.0 if the chunk is all zeros.
    """
    finite = np.isfinite(xc)
    factors = rng.factors(xc.size, xc.dtype).reshape(xc.shape)
    y = xc * factors
    zeros = xc == 0
    if zeros.any():
        magnitudes = np.abs(xc[finite])
        nonzero = magnitudes[magnitudes > 0]
        typical = float(np.median(nonzero)) if nonzero.size else 1.0
        if not (typical > 0 and math.isfinite(typical)):
            typical = 1.0
        y[zeros] = (factors[zeros] - 1.01) * typical
    return y, finite


def _uint_like(dtype: np.dtype[Any]) -> np.dtype[Any]:
    order = dtype.byteorder if dtype.byteorder in "<>" else "="
    return np.dtype(f"{order}u{dtype.itemsize}")


def _scaled_in_place(x: npt.NDArray[Any], rng: _Noise) -> bool:
    """The common case of :func:`_float_values`, for native float32/float64 with neither zeros,
    subnormals, non-finite values nor values within a factor 2 of overflow: multiply in place
    and return True. Otherwise touch nothing and return False.

    Why the rule holds: every factor lies in [0.51, 0.76] or [1.26, 1.51), so for such an
    ``x`` the product is finite, normal and at least 24 % away from ``x`` — exactly what the
    general path would compute, with no element to fix up.

    The test reads ``x`` four times and writes nothing (``np.abs`` wrote a temporary the size
    of the chunk, a third of the transform's cost): the float minimum and maximum bound the
    largest magnitude (and are NaN if one is); the smallest magnitude comes from the bit
    patterns. Read as unsigned integers every positive value sorts below every negative one,
    read as signed integers every negative below every positive, and within one sign both
    orders are the order of magnitudes — so the unsigned minimum is the smallest positive
    magnitude and the signed minimum plus the sign bit the smallest negative one (and both
    are at least the sign bit when that sign does not occur, which passes the test as it
    should)."""
    info = np.finfo(x.dtype)
    half_max = info.max / 2
    lowest, highest = x.min(), x.max()  # NaN compares false: such a chunk takes the general path
    if not (-lowest <= half_max and highest <= half_max):
        return False
    size = x.dtype.itemsize
    sign = 1 << (8 * size - 1)
    smallest_normal_bits = 2 << info.nmant  # the bits of 2 * tiny: exponent field 2, mantissa 0
    if int(x.view(f"u{size}").min()) < smallest_normal_bits:
        return False
    if int(x.view(f"i{size}").min()) + sign < smallest_normal_bits:
        return False
    np.multiply(x, rng.factors(x.size, x.dtype), out=x)
    return True


def _float_values(
    raw: U8Array, dtype: np.dtype[Any], rng: _Noise, *, in_place: bool = False
) -> U8Array:
    """The perturbed bytes of ``raw`` read as ``dtype``; with ``in_place`` (a writable buffer
    the caller owns) the common float32/float64 case is written over ``raw`` itself."""
    x = raw.view(dtype)
    if in_place and dtype.isnative and dtype.itemsize >= 4 and x.size and _scaled_in_place(x, rng):
        return raw
    compute = np.float64 if dtype.itemsize == 8 else np.float32
    ubits = _uint_like(dtype)
    no_sign = ubits.type((1 << (8 * dtype.itemsize - 1)) - 1)
    with np.errstate(all="ignore"):
        # float32/float64 in native order are computed on as they are (no copy)
        xc = x if dtype.isnative and dtype.itemsize >= 4 else x.astype(compute)
        y, finite = _perturbed(xc, rng)
        out = y.astype(dtype, copy=False)
        out_bits = out.view(ubits)
        in_bits = x.view(ubits)
        # unchanged (same value) or zero: a non-zero input times a non-zero factor is zero
        # only by underflow, and a zero input became non-zero unless it stayed +0/-0
        if dtype.itemsize >= 4:
            bad = out == x
            bad |= out == 0
        else:  # float16 arithmetic comparisons are slow in numpy: compare bits
            bad = out_bits == in_bits
            bad |= (out_bits & no_sign) == 0
        bad |= ~np.isfinite(out)
        bad &= finite
    if bad.any():
        out_bits[bad] = in_bits[bad] ^ ubits.type(1)
    keep = ~finite
    if keep.any():
        out_bits[keep] = in_bits[keep]
    return np.asarray(out.view(np.uint8), dtype=np.uint8)


def _bf16_rounded(yb: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """float32 bit patterns rounded to nearest-even bfloat16 (the top 16 bits)."""
    rounded = (yb + np.uint32(0x7FFF) + ((yb >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    return np.asarray(rounded, dtype=np.uint32)


def _bf16_values(raw: U8Array, rng: _Noise) -> U8Array:
    bits = raw.view("<u2")
    wide = bits.astype(np.uint32) << np.uint32(16)
    xf = wide.view(np.float32)
    # The float32 common case also holds for bfloat16: a change of at least 24 % survives
    # rounding to its 8-bit mantissa, and |y| < 0.76 * max cannot round to infinity.
    if xf.size and _scaled_in_place(xf, rng):
        return np.asarray(_bf16_rounded(wide).astype("<u2").view(np.uint8), dtype=np.uint8)
    with np.errstate(all="ignore"):
        y, finite = _perturbed(xf, rng)
        rounded = _bf16_rounded(np.asarray(y, dtype=np.float32).view(np.uint32))
        out = rounded.astype("<u2")
        back = (out.astype(np.uint32) << np.uint32(16)).view(np.float32)
        bad = (back == xf) | ~np.isfinite(back)
        bad &= finite
    if bad.any():
        out[bad] = bits[bad] ^ np.uint16(1)
    keep = ~finite
    if keep.any():
        out[keep] = bits[keep]
    return np.asarray(out.view(np.uint8), dtype=np.uint8)


def _f8_nonfinite(name: str, b: U8Array) -> npt.NDArray[np.bool_]:
    if name == "F8_E4M3":
        mask = (b & 0x7F) == 0x7F
    elif name == "F8_E5M2":
        mask = (b & 0x7C) == 0x7C
    elif name in ("F8_E4M3FNUZ", "F8_E5M2FNUZ"):
        mask = b == 0x80
    elif name == "F8_E8M0":
        mask = b == 0xFF
    else:  # pragma: no cover
        raise AssertionError(name)
    return np.asarray(mask, dtype=np.bool_)


def _f8_values(raw: U8Array, name: str) -> U8Array:
    out = np.asarray(raw ^ np.uint8(1), dtype=np.uint8)
    src_bad = _f8_nonfinite(name, raw)
    landed = _f8_nonfinite(name, out) & ~src_bad
    if landed.any():
        out[landed] = raw[landed] ^ np.uint8(2)
    if src_bad.any():
        out[src_bad] = raw[src_bad]
    return out


def _transform(
    kind: _Kind, raw: U8Array, seed: int, name: str, chunk: int, *, in_place: bool = False
) -> U8Array:
    """The transformed bytes of one chunk; ``in_place`` lets a float transform reuse ``raw``."""
    if kind.op == "float":
        assert kind.dtype is not None
        return _float_values(raw, kind.dtype, _rng(seed, name, chunk), in_place=in_place)
    if kind.op == "bf16":
        return _bf16_values(raw, _rng(seed, name, chunk))
    if kind.op == "f8":
        return _f8_values(raw, kind.f8)
    if kind.op == "xor":
        return np.asarray(raw ^ np.uint8(kind.mask), dtype=np.uint8)
    if kind.op == "blocks":
        return _block_scales(raw, kind, _rng(seed, name, chunk))
    return raw


#: bytes of each scale-field encoding in a ggml block
_SCALE_WIDTH = {"f16": 2, "f32": 4, "e8m0": 1, "ue4m3x4": 4, "iq1m": 8}


def _block_scales(raw: U8Array, kind: _Kind, rng: _Noise) -> U8Array:
    """Change the scale field(s) of every quantization block; the quants stay. Every
    dequantised value of a block is ``scale * q (+ min)``, so each non-zero one changes."""
    blocks = np.array(raw, dtype=np.uint8).reshape(-1, kind.block)
    for offset, encoding in kind.fields:
        width = _SCALE_WIDTH[encoding]
        field_bytes = np.ascontiguousarray(blocks[:, offset : offset + width]).reshape(-1)
        if encoding == "f16":
            changed = _float_values(field_bytes, np.dtype("<f2"), rng)
        elif encoding == "f32":
            changed = _float_values(field_bytes, np.dtype("<f4"), rng)
        elif encoding == "e8m0":  # a power-of-two exponent: doubled or halved
            changed = _f8_values(field_bytes, "F8_E8M0")
        elif encoding == "ue4m3x4":  # unsigned E4M3 bytes: one mantissa step each
            changed = _f8_values(field_bytes, "F8_E4M3")
        else:
            changed = _iq1m_scales(field_bytes, rng)
        blocks[:, offset : offset + width] = changed.reshape(-1, width)
    return np.asarray(blocks.reshape(-1), dtype=np.uint8)


def _iq1m_scales(field_bytes: U8Array, rng: _Noise) -> U8Array:
    """IQ1_M keeps its fp16 block scale in the top 4 bits of its four little-endian uint16
    ``scales`` words (ggml-common.h ``iq1m_scale_t``: word k holds bits 4k..4k+3); the low
    12 bits of each word, the 3-bit sub-block scales, are kept."""
    words = field_bytes.view("<u2").reshape(-1, 4).copy()
    top = (words >> np.uint16(12)).astype(np.uint16)
    shifts = np.array([0, 4, 8, 12], dtype=np.uint16)
    scale = np.bitwise_or.reduce(top << shifts, axis=1).astype("<u2")
    changed = _float_values(scale.view(np.uint8), np.dtype("<f2"), rng).view("<u2")
    nibbles = (changed[:, None] >> shifts) & np.uint16(0xF)
    words = (words & np.uint16(0x0FFF)) | (nibbles << np.uint16(12)).astype(np.uint16)
    return np.asarray(words.astype("<u2").view(np.uint8).reshape(-1), dtype=np.uint8)


# --------------------------------------------------------------------------- streaming


#: Untouched spans at least this long are copied inside the kernel (copy_file_range).
_KERNEL_COPY_MIN = 1 << 16


@dataclass(frozen=True)
class _Region:
    """``length`` bytes at ``offset`` to transform as ``kind`` (seeded by ``name``)."""

    offset: int
    length: int
    kind: _Kind
    name: str


def _workers() -> int:
    """Threads transforming chunks: one per usable core (file reads and writes, numpy and the
    CRC release the GIL). At most four: the work is bound by memory bandwidth, which a few
    cores saturate (only 2 cores were measured)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        usable = os.cpu_count() or 1
    return max(1, min(4, usable))


def _pread_exact(fd: int, into: memoryview, offset: int, what: str) -> None:
    done = 0
    while done < len(into):
        got = os.preadv(fd, [into[done:]], offset + done)
        if got <= 0:  # the file ended (or shrank) under the layout its reader proved
            raise PerturbUnsupported(f"unexpected end of file {what}", format="corrupt")
        done += got


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


def _copy_span(
    src_fd: int, dst_fd: int, offset: int, length: int, buffer: bytearray, what: str
) -> None:
    """Copy ``length`` bytes at ``offset`` to the same offset of the destination; long spans
    in the kernel, without a pass through user space (a reflink or server-side copy where the
    file system has one), the rest — or all of it where the platform, the file system or the
    files refuse — through ``buffer``."""
    done = 0
    copy_file_range = getattr(os, "copy_file_range", None)
    if length >= _KERNEL_COPY_MIN and copy_file_range is not None:
        with contextlib.suppress(OSError):  # EXDEV, ENOSYS, EINVAL …: read and write instead
            while done < length:
                at = offset + done
                got: int = copy_file_range(src_fd, dst_fd, length - done, at, at)
                if got <= 0:  # the source ended early: the loop below reports it
                    break
                done += got
    while done < length:
        view = memoryview(buffer)[: min(len(buffer), length - done)]
        _pread_exact(src_fd, view, offset + done, what)
        _pwrite_all(dst_fd, view, offset + done)
        done += len(view)


#: one chunk of a region: (index of the region, index of the chunk in it, offset, length)
_Chunk = tuple[int, int, int, int]


def _step(kind: _Kind) -> int:
    """Bytes per chunk: whole quantization blocks for block kinds."""
    return CHUNK_BYTES if not kind.block else max(CHUNK_BYTES // kind.block, 1) * kind.block


def _chunks(regions: list[_Region], order: list[int]) -> Iterator[_Chunk]:
    for index in order:
        region = regions[index]
        step = _step(region.kind)
        for number, start in enumerate(range(0, region.length, step)):
            yield index, number, region.offset + start, min(step, region.length - start)


def _rewrite(
    fin: IO[bytes],
    fout: IO[bytes],
    regions: list[_Region],
    seed: int,
    *,
    where: str,
    crc: bool = False,
) -> list[int]:
    """Write a copy of ``fin`` (from its start) to ``fout`` with each region transformed in
    place: every byte keeps its offset. Returns the CRC-32 of each region as written when
    ``crc`` (zip members), else zeros; in the order of ``regions``. ``where`` names the
    source in errors (never the temporary output).

    The untouched spans are copied first, in the kernel. Then every thread — this one and
    :func:`_workers` - 1 helpers — takes the next chunk of the regions in offset order, reads
    it at its offset, transforms it in place and writes it at its offset; a chunk is seeded
    by its own number, so the bytes do not depend on which thread took it. Each chunk's CRC is
    taken by its thread and the regions' CRCs are combined at the end.

    Measured on 2 cores (benchmarks/bench_perturb.py): one thread reading, transforming and
    writing in turn ran at a third of the speed of copying the file; a reader and a writer
    thread around it, or a pool fed one chunk at a time by this thread, gained little, because
    handing a chunk from one thread to another (a wake-up on another core) cost about as much
    as transforming it. Threads that take their own chunks hand nothing over.
    """
    src_fd, dst_fd = fin.fileno(), fout.fileno()
    size = os.fstat(src_fd).st_size
    order = sorted(range(len(regions)), key=lambda i: regions[i].offset)
    buffer = bytearray(CHUNK_BYTES)
    copying = f"of {where} while copying"
    pos = 0
    for index in order:
        region = regions[index]
        if region.offset < pos or region.offset + region.length > size:
            raise PerturbUnsupported(
                f"{where}: region {region.name!r} overlaps another or the end of the file",
                format="corrupt",
            )
        _copy_span(src_fd, dst_fd, pos, region.offset - pos, buffer, copying)
        pos = region.offset + region.length
    _copy_span(src_fd, dst_fd, pos, size - pos, buffer, copying)

    counts = [-(-region.length // _step(region.kind)) for region in regions]
    workers = _workers() if sum(counts) > 1 else 1  # no thread to start for one chunk
    pending = _chunks(regions, order)
    lock = threading.Lock()  # a generator cannot be advanced by two threads at once
    #: each chunk's own CRC and length, by region and chunk number
    pieces: list[list[tuple[int, int]]] = [[(0, 0)] * count for count in counts] if crc else []
    failures: list[BaseException] = []

    def work() -> None:
        """Take the next chunk until none is left (or another thread failed): read it at its
        offset, transform it in place, write it at its offset, and take its CRC while its
        bytes are in this core's cache."""
        buffer = bytearray(CHUNK_BYTES)
        try:
            while not failures:
                with lock:
                    chunk = next(pending, None)
                if chunk is None:
                    return
                index, number, offset, length = chunk
                region = regions[index]
                into = memoryview(buffer)[:length]
                _pread_exact(src_fd, into, offset, f"of {where} in {region.name!r}")
                raw = np.frombuffer(buffer, dtype=np.uint8, count=length)
                out = _transform(region.kind, raw, seed, region.name, number, in_place=True)
                _pwrite_all(dst_fd, out.data, offset)
                if crc:
                    pieces[index][number] = (crc32(out.data), length)
        except BaseException as exc:  # re-raised by the calling thread, after every join
            failures.append(exc)

    helpers = [threading.Thread(target=work, name=f"perturb-{i}") for i in range(workers - 1)]
    for helper in helpers:
        helper.start()
    try:
        work()  # this thread is one of the workers; it returns once every chunk is taken
    finally:
        _join_all(helpers)
    if failures:
        raise failures[0]
    checksums = [0] * len(regions)
    for index, chunks in enumerate(pieces):
        for piece, length in chunks:
            checksums[index] = crc32_combine(checksums[index], piece, length)
    return checksums


def _join_all(threads: list[threading.Thread]) -> None:
    """Wait for every thread even if this one is interrupted meanwhile (Ctrl-C), then re-raise
    the interrupt: a helper still writing after the files were closed would write into
    whatever file reuses the descriptor. Each has at most the chunk it holds left to do."""
    interrupt: BaseException | None = None
    for thread in threads:
        while thread.is_alive():
            try:
                thread.join()
            except BaseException as exc:  # the wait itself was interrupted
                interrupt = interrupt or exc
    if interrupt is not None:
        raise interrupt


def _rewrite_regions(src: Path, dst: Path, regions: list[_Region], seed: int) -> None:
    """Copy ``src`` to ``dst`` transforming the (non-overlapping) regions in place."""
    with open_regular(src) as fin, _atomic_output(dst) as fout:
        _rewrite(fin, fout, regions, seed, where=src.name)


@contextlib.contextmanager
def _atomic_output(dst: Path) -> Iterator[IO[bytes]]:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as fh:
            yield fh
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _check_distinct(src: Path, dst: Path) -> None:
    if dst.exists() and os.path.samefile(src, dst):
        raise ValueError(f"destination {dst} is the source file; refusing to overwrite it")


def _format_error(fmt: str, src: Path, exc: Exception) -> PerturbUnsupported:
    """A reader's error: a limit of this plugin keeps ``fmt``, anything else is corruption."""
    from pytest_corrsource.formats.pickle_values import UnsupportedFeature

    limit = isinstance(exc, UnsupportedFeature)
    return PerturbUnsupported(
        f"{fmt}: cannot modify {src.name}: {exc}", format=fmt if limit else "corrupt"
    )


def _pickle_error(fmt: str) -> PerturbUnsupported:
    return PerturbUnsupported(
        f"{fmt}: cannot be modified without loading untrusted code (pickle)", format=fmt
    )


# --------------------------------------------------------------------------- safetensors


def _st_kind(dtype: str) -> _Kind:
    if dtype in ("F16", "F32", "F64"):
        return _Kind("float", np.dtype(f"<f{SAFETENSORS_DTYPE_BITS[dtype] // 8}"))
    if dtype == "C64":
        return _Kind("float", np.dtype("<f4"))
    if dtype == "BF16":
        return _Kind("bf16")
    if dtype.startswith("F8_"):
        return _Kind("f8", f8=dtype)
    if dtype == "F4":
        return _Kind("xor", mask=0x11)
    if dtype.startswith("F6_"):
        return _Kind("xor", mask=0x01)
    return _COPY


def _corrupt(path: Path, why: object) -> PerturbUnsupported:
    return PerturbUnsupported(f"safetensors: corrupt file {path.name}: {why}", format="corrupt")


def _perturb_safetensors(src: Path, dst: Path, seed: int) -> PerturbResult:
    """The header and the tensors that are not floats are copied verbatim, the float tensors
    transformed in place; the reader has proved that the tensors tile the data section (no
    gap, overlap or trailing byte)."""
    try:
        header, data_start, offsets = read_safetensors_layout(src)
    except FormatError as exc:
        raise _corrupt(src, exc) from None
    changed: list[str] = []
    unchanged: list[str] = []
    regions: list[_Region] = []
    for t in header.tensors:
        kind = _st_kind(t.dtype)
        if kind.op == "copy" or t.nbytes == 0:
            unchanged.append(t.name)
        else:
            changed.append(t.name)
            regions.append(_Region(data_start + offsets[t.name], t.nbytes, kind, t.name))
    _rewrite_regions(src, dst, regions, seed)
    return PerturbResult("safetensors", tuple(sorted(changed)), tuple(sorted(unchanged)), (dst,))


def _perturb_index(src: Path, dst: Path, seed: int) -> PerturbResult:
    """Every shard the index names is perturbed to the same relative name beside ``dst``;
    the index is copied unchanged."""
    try:
        index = read_safetensors_index(src, src.parent)
    except FormatError as exc:
        raise PerturbUnsupported(
            f"safetensors-index: corrupt index {src.name}: {exc}", format="corrupt"
        ) from None
    changed: set[str] = set()
    unchanged: set[str] = set()
    written: list[Path] = []
    for shard in index.shards:
        shard_src = src.parent / shard
        shard_dst = dst.parent / shard
        if not shard_src.is_file():
            raise PerturbUnsupported(
                f"safetensors-index: shard {shard!r} listed in {src.name} does not exist",
                format="corrupt",
            )
        _check_distinct(shard_src, shard_dst)
        fmt = detect_format(shard_src)
        if fmt != "safetensors":
            raise PerturbUnsupported(
                f"safetensors-index: shard {shard!r} is not a safetensors file ({fmt})",
                format="corrupt",
            )
        result = _perturb_safetensors(shard_src, shard_dst, seed)
        changed.update(result.changed)
        unchanged.update(result.unchanged)
        written.append(shard_dst)
    with open_regular(src) as fin, _atomic_output(dst) as fout:
        shutil.copyfileobj(fin, fout)
    return PerturbResult(
        "safetensors-index", tuple(sorted(changed)), tuple(sorted(unchanged)), (dst, *written)
    )


# --------------------------------------------------------------------------- numpy


def _np_kind(dtype: np.dtype[Any], where: str) -> _Kind:
    if dtype.hasobject:
        raise _pickle_error(where)
    if dtype.kind == "f" and dtype.itemsize in (2, 4, 8):
        return _Kind("float", dtype)
    if dtype.kind == "c" and dtype.itemsize in (8, 16):
        order = dtype.byteorder if dtype.byteorder in "<>" else "="
        return _Kind("float", np.dtype(f"{order}f{dtype.itemsize // 2}"))
    if dtype.kind in "biuSUMm":
        return _COPY
    raise PerturbUnsupported(f"{where}: arrays of dtype {dtype} are not supported", format=where)


def _perturb_npy(src: Path, dst: Path, seed: int) -> PerturbResult:
    fmt = np.lib.format
    size = src.stat().st_size
    with open_regular(src) as fin:
        try:
            version = fmt.read_magic(fin)
            if version == (1, 0):
                shape, _fortran, dtype = fmt.read_array_header_1_0(fin)
            else:
                shape, _fortran, dtype = fmt.read_array_header_2_0(fin)
        except (ValueError, SyntaxError, OSError) as exc:
            raise PerturbUnsupported(f"npy: corrupt header: {exc}", format="corrupt") from exc
        data_start = fin.tell()
    kind = _np_kind(dtype, "npy")
    nbytes = math.prod(shape) * dtype.itemsize
    if data_start + nbytes > size:
        raise PerturbUnsupported(f"npy: {src.name} is truncated", format="corrupt")
    name = src.name
    modified = kind.op != "copy" and nbytes > 0
    _rewrite_regions(src, dst, [_Region(data_start, nbytes, kind, "npy")] if modified else [], seed)
    changed = (name,) if modified else ()
    return PerturbResult("npy", changed, () if changed else (name,), (dst,))


def _perturb_array(arr: npt.NDArray[Any], kind: _Kind, seed: int, name: str) -> Any:
    """Change ``arr`` (an array this module just read and owns) chunk by chunk, in its own
    memory: a member of several GiB needs no second copy of itself."""
    fortran = arr.flags.f_contiguous and not arr.flags.c_contiguous
    flat = arr.ravel(order="F" if fortran else "C")  # a view: read_array returns it contiguous
    raw = flat.view(np.uint8)
    for chunk, start in enumerate(range(0, raw.size, CHUNK_BYTES)):
        piece = raw[start : start + CHUNK_BYTES]
        changed = _transform(kind, piece, seed, name, chunk, in_place=True)
        if changed is not piece:
            piece[:] = changed
    return flat.reshape(arr.shape, order="F" if fortran else "C")


def _perturb_npz(src: Path, dst: Path, seed: int) -> PerturbResult:
    with zipfile.ZipFile(src) as zin:
        names = {i.filename: i.filename[: -len(".npy")] for i in zin.infolist()}
    return _perturb_npy_members(src, dst, seed, "npz", names)


def _perturb_skops(src: Path, dst: Path, seed: int) -> PerturbResult:
    from pytest_corrsource.formats.skops import skops_arrays

    try:
        arrays = skops_arrays(src)
    except FormatError as exc:
        raise _format_error("skops", src, exc) from None
    return _perturb_npy_members(src, dst, seed, "skops", {m: n for n, m in arrays.items()})


def _member_error(fmt: str, name: str, exc: BaseException) -> PerturbUnsupported:
    return PerturbUnsupported(f"{fmt}: member {name!r}: {exc}", format="corrupt")


def _perturb_npy_members(
    src: Path, dst: Path, seed: int, fmt: str, names: dict[str, str]
) -> PerturbResult:
    """Rewrite a zip member by member: the ``.npy`` members in ``names`` (member -> tensor
    name) are loaded one at a time with ``allow_pickle=False`` and perturbed; every other
    member (skops' ``schema.json``) is copied. Names, order and compression are kept."""
    changed: list[str] = []
    unchanged: list[str] = []
    try:
        zin = zipfile.ZipFile(src)
    except (OSError, zipfile.BadZipFile) as exc:
        raise PerturbUnsupported(f"{fmt}: cannot read {src.name}: {exc}", format="corrupt") from exc
    with zin, _atomic_output(dst) as fout, zipfile.ZipFile(fout, "w", allowZip64=True) as zout:
        for info in zin.infolist():
            out_info = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            out_info.compress_type = info.compress_type
            out_info.external_attr = info.external_attr
            name = names.get(info.filename)
            if name is None:
                with zin.open(info) as member_in, zout.open(out_info, "w") as member_out:
                    shutil.copyfileobj(member_in, member_out, CHUNK_BYTES)
                continue
            try:
                check_npy_member(zin, info)  # read_array allocates the declared shape at once
                with zin.open(info) as member_in:
                    arr = np.lib.format.read_array(member_in, allow_pickle=False)
            except ValueError as exc:
                if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
                    raise _pickle_error(fmt) from exc
                raise PerturbUnsupported(
                    f"{fmt}: member {name!r}: {exc}", format="corrupt"
                ) from exc
            except ObjectDtypeError as exc:
                raise _pickle_error(fmt) from exc
            except FormatError as exc:  # it names the member
                raise PerturbUnsupported(f"{fmt}: {exc}", format="corrupt") from exc
            except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
                raise PerturbUnsupported(
                    f"{fmt}: member {name!r}: {exc}", format="corrupt"
                ) from exc
            kind = _np_kind(arr.dtype, fmt)
            if kind.op == "copy" or arr.size == 0:
                unchanged.append(name)
                new = arr
            else:
                changed.append(name)
                new = _perturb_array(arr, kind, seed, name)
            with zout.open(out_info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, new, allow_pickle=False)
    return PerturbResult(fmt, tuple(sorted(changed)), tuple(sorted(unchanged)), (dst,))


# --------------------------------------------------------------------------- torch zip


def _torch_kind(dtype: str, byteorder: str, where: str) -> _Kind:
    if dtype == "C128":
        kind = _Kind("float", np.dtype("<f8"))
    elif dtype in SAFETENSORS_DTYPE_BITS:
        kind = _st_kind(dtype)
    else:  # quantized storages: integers plus per-tensor scales kept in the pickle
        return _COPY
    if byteorder == "big" and kind.op != "copy":
        if kind.op != "float" or kind.dtype is None:
            raise PerturbUnsupported(
                f"{where}: big-endian {dtype} storages cannot be modified", format="torch-zip"
            )
        kind = _Kind("float", kind.dtype.newbyteorder(">"))
    return kind


def _patch_u32(fout: IO[bytes], fin: IO[bytes], offset: int, old: int, new: int) -> None:
    """Overwrite a CRC field at ``offset`` when the source holds ``old`` there (a local header
    written with flag bit 3 holds 0 instead and is left so)."""
    fin.seek(offset)
    if fin.read(4) == struct.pack("<I", old):
        fout.seek(offset)
        fout.write(struct.pack("<I", new))


def _perturb_torch_zip(src: Path, dst: Path, seed: int) -> PerturbResult:
    """Rewrite every floating-point storage of a torch zip checkpoint in place.

    All float storages are changed — model parameters and buffers, and optimizer state too
    (a run that resumes from the checkpoint must honour whatever it loads); integer, bool and
    quantized storages are copied. Every other byte, ``data.pkl`` included, is copied; the
    CRC-32 of each changed member is rewritten in its data descriptor, local header (when it
    holds one) and central-directory record, so member names, order, offsets and 64-byte
    alignment are unchanged.
    """
    from pytest_corrsource.formats.torch_zip import central_directory_records, read_torch_zip

    try:
        archive = read_torch_zip(src)
    except FormatError as exc:
        raise _format_error("torch-zip", src, exc) from None
    records = central_directory_records(src, archive.central_dir)
    changed: set[str] = set()
    unchanged: set[str] = {t.name for t in archive.tensors}
    regions: list[_Region] = []
    members = []
    for storage in archive.storages.values():
        kind = _torch_kind(storage.dtype, archive.byteorder, src.name)
        if kind.op != "copy" and storage.nbytes:
            name = f"storage/{storage.key}"
            regions.append(_Region(storage.data_offset, storage.nbytes, kind, name))
            members.append(storage)
            changed.update(storage.tensors)
    with open_regular(src) as fin, _atomic_output(dst) as fout:
        written = _rewrite(fin, fout, regions, seed, where=src.name, crc=True)
        crcs = zip(members, written, strict=True)
        for storage, crc in crcs:
            _patch_u32(fout, fin, storage.header_offset + 14, storage.crc, crc)
            if storage.descriptor:
                end = storage.data_offset + storage.nbytes
                fin.seek(end)
                at = end + 4 if fin.read(4) == b"PK\x07\x08" else end
                _patch_u32(fout, fin, at, storage.crc, crc)
            record = records.get(storage.member)
            if record is None:
                raise PerturbUnsupported(
                    f"torch-zip: {storage.member} has no central-directory record",
                    format="corrupt",
                )
            _patch_u32(fout, fin, record + 16, storage.crc, crc)
    return PerturbResult(
        "torch-zip", tuple(sorted(changed)), tuple(sorted(unchanged - changed)), (dst,)
    )


# --------------------------------------------------------------------------- pickled numpy


def _perturb_torch_storages(src: Path, dst: Path, seed: int, fmt: str) -> PerturbResult:
    """Pre-1.6 ``torch.save`` (``torch-legacy``: the storages' raw bytes follow the pickles)
    and torch < 0.4's tar (``torch-tar``: they lie in its ``storages`` member, whose bytes tar
    checksums do not cover): change the float storages in place (same rules as the zip
    format); every other byte is copied."""
    from pytest_corrsource.formats.torch_zip import read_torch_checkpoint

    try:
        archive = read_torch_checkpoint(src, fmt)
    except FormatError as exc:
        raise _format_error(fmt, src, exc) from None
    regions: list[_Region] = []
    changed: set[str] = set()
    for storage in archive.storages.values():
        kind = _torch_kind(storage.dtype, archive.byteorder, src.name)
        if kind.op != "copy" and storage.nbytes:
            regions.append(_Region(storage.data_offset, storage.nbytes, kind, storage.key))
            changed.update(storage.tensors)
    _rewrite_regions(src, dst, regions, seed)
    unchanged = {t.name for t in archive.tensors} - changed
    return PerturbResult(fmt, tuple(sorted(changed)), tuple(sorted(unchanged)), (dst,))


def _perturb_pickle(src: Path, dst: Path, seed: int, fmt: str = "pickle") -> PerturbResult:
    """Change the float payloads of the numpy arrays pickled in ``src`` (scikit-learn models,
    ``joblib.dump`` files), byte for byte in place: every opcode, and so the pickle's meaning,
    stays the same; nothing is unpickled."""
    from pytest_corrsource.formats.pickled_arrays import read_pickled_arrays
    from pytest_corrsource.formats.torch_zip import torch_pickle_format

    torch_fmt = torch_pickle_format(src)
    if torch_fmt is not None:
        return _perturb_torch_storages(src, dst, seed, torch_fmt)
    try:
        arrays = read_pickled_arrays(src)
    except FormatError as exc:
        raise _format_error(fmt, src, exc) from None
    regions: list[_Region] = []
    changed: list[str] = []
    unchanged: list[str] = []
    for array in arrays:
        kind = _np_kind(array.dtype, fmt)
        if kind.op == "copy" or array.nbytes == 0:
            unchanged.append(array.name)
            continue
        if array.payload is None:
            raise PerturbUnsupported(
                f"{fmt}: array {array.name!r} is pickled as text (pickle protocol 2), which "
                "cannot be changed in place; re-save with protocol 3 or later",
                format=fmt,
            )
        regions.append(_Region(array.payload.offset, array.payload.length, kind, array.name))
        changed.append(array.name)
    _rewrite_regions(src, dst, regions, seed)
    return PerturbResult(fmt, tuple(sorted(changed)), tuple(sorted(unchanged)), (dst,))


def _perturb_compressed_joblib(src: Path, dst: Path, seed: int, codec: str) -> PerturbResult:
    """joblib's compressed files: decompress -> change in place -> recompress (same codec)."""
    import tempfile

    from pytest_corrsource.formats.pickle_values import opcode_limit
    from pytest_corrsource.formats.tensors import decompress_joblib, joblib_opcode_limit

    fmt = f"joblib-{codec}"
    dst.parent.mkdir(parents=True, exist_ok=True)  # as _atomic_output does for every format
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".joblib-") as tmp:
        # the decompressed copy keeps the source's name: errors about it name the file the user has
        plain, changed = Path(tmp) / src.name, Path(tmp) / f"changed-{src.name}"
        try:
            decompress_joblib(src, codec, plain)
        except FormatError as exc:
            raise PerturbUnsupported(
                f"{src.name}: unknown format ({exc})", format="unknown"
            ) from None
        if detect_format(plain) != "pickle":
            raise PerturbUnsupported(f"{src.name}: unknown format", format="unknown")
        with opcode_limit(joblib_opcode_limit(src)):  # a few bytes can inflate to an opcode bomb
            result = _perturb_pickle(plain, changed, seed, fmt)
            schema = _verify_same_schema(plain, changed, "pickle")
        with changed.open("rb") as fin, _atomic_output(dst) as fout:
            _compress(fin, fout, codec)
    return _with_counts(replace(result, files=(dst,)), schema)


def _with_counts(
    result: PerturbResult, schema: dict[str, tuple[str, tuple[int, ...]]]
) -> PerturbResult:
    counts = {name: math.prod(shape) for name, (_dtype, shape) in schema.items()}
    return replace(
        result,
        values_changed=sum(counts.get(name, 0) for name in result.changed),
        values_total=sum(counts.values()),
    )


def _compress(fin: IO[bytes], fout: IO[bytes], codec: str) -> None:
    import bz2
    import lzma

    packer: Any
    if codec == "zlib":
        packer = zlib.compressobj(3, zlib.DEFLATED, 15)
    elif codec == "gzip":
        packer = zlib.compressobj(3, zlib.DEFLATED, 31)
    elif codec == "bz2":
        packer = bz2.BZ2Compressor(3)
    elif codec == "xz":
        packer = lzma.LZMACompressor(lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=3)
    else:
        packer = lzma.LZMACompressor(lzma.FORMAT_ALONE, preset=3)
    while block := fin.read(CHUNK_BYTES):
        fout.write(packer.compress(block))
    fout.write(packer.flush())


# --------------------------------------------------------------------------- GGUF

#: ggml block type -> its scale fields as (offset in the block, encoding), from the block structs
#: of llama.cpp's ggml/src/ggml-common.h (``block_q4_0 {ggml_half d; uint8_t qs[16]}``,
#: ``block_q6_K {ql[128]; qh[64]; scales[16]; ggml_half d}``, ``block_tq1_0 {qs[48]; qh[4];
#: ggml_half d}``, ``block_mxfp4 {uint8_t e; qs[16]}`` …) and, for NVFP4, gguf-py's quants.py
#: (four unsigned-E4M3 sub-block scales, then the quants). Only the super-block scale is
#: changed: mins (``m``/``dmin``) and the 3-8-bit sub-block scales keep their bits, and every
#: dequantised value ``d * q (- min)`` with q != 0 moves. Block sizes: formats.gguf.GGML_TYPES.
#: Encodings: ``f16``/``f32`` IEEE floats, ``e8m0`` a power-of-two exponent byte,
#: ``ue4m3x4`` four unsigned E4M3 bytes, ``iq1m`` an fp16 spread over four uint16 words.
_D_FIRST: tuple[str, ...] = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K")
_D_FIRST += ("IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ1_S", "IQ4_NL", "IQ4_XS")
GGML_BLOCK_SCALES: dict[str, tuple[tuple[int, str], ...]] = {
    **{name: ((0, "f16"),) for name in _D_FIRST},  # {ggml_half d; …}
    "Q2_K": ((80, "f16"),),  # {scales[16]; qs[64]; d; dmin}
    "Q3_K": ((108, "f16"),),  # {hmask[32]; qs[64]; scales[12]; d}
    "Q6_K": ((208, "f16"),),  # {ql[128]; qh[64]; scales[16]; d}
    "Q8_K": ((0, "f32"),),  # {float d; int8 qs[256]; int16 bsums[16]}: bsums count quants
    "IQ1_M": ((48, "iq1m"),),  # {qs[32]; qh[16]; scales[8]}
    "TQ1_0": ((52, "f16"),),  # {qs[48]; qh[4]; d}
    "TQ2_0": ((64, "f16"),),  # {qs[64]; d}
    "MXFP4": ((0, "e8m0"),),  # {uint8_t e; qs[16]}
    "NVFP4": ((0, "ue4m3x4"),),  # {uint8_t d[4]; qs[32]} (gguf-py)
}
#: ggml types whose blocks are not changed, and why (a limit of this plugin, not of the file)
GGML_UNMODIFIABLE: dict[str, str] = {
    "Q8_1": "its blocks also hold s = d * sum(q), which would have to change with d; llama.cpp "
    "uses this type only for intermediate results",
    "Q1_0": "no block layout for it is published in ggml-common.h or gguf-py that this plugin "
    "was checked against",
}


def _gguf_kind(dtype: str) -> _Kind | None:
    """None for a type this module cannot change (:data:`GGML_UNMODIFIABLE`)."""
    from pytest_corrsource.formats.gguf import GGML_TYPES

    if dtype in ("F32", "F16", "F64"):
        return _st_kind(dtype)
    if dtype == "BF16":
        return _Kind("bf16")
    if dtype in ("I8", "I16", "I32", "I64"):
        return _COPY
    if dtype in GGML_BLOCK_SCALES:
        block = next(size for name, _n, size in GGML_TYPES.values() if name == dtype)
        return _Kind("blocks", block=block, fields=GGML_BLOCK_SCALES[dtype])
    return None


def _perturb_gguf(src: Path, dst: Path, seed: int) -> PerturbResult:
    """Change every float tensor and the scales of every supported quantized block in place;
    the header, metadata, alignment padding and integer tensors are copied."""
    from pytest_corrsource.formats.gguf import read_gguf_layout

    try:
        header, data_start, offsets = read_gguf_layout(src)
    except FormatError as exc:
        raise PerturbUnsupported(f"gguf: {src.name}: {exc}", format="corrupt") from None
    regions: list[_Region] = []
    changed: list[str] = []
    unchanged: list[str] = []
    for tensor in header.tensors:
        kind = _gguf_kind(tensor.dtype)
        if kind is None:
            why = GGML_UNMODIFIABLE.get(tensor.dtype, "a ggml type this plugin does not know")
            raise PerturbUnsupported(
                f"gguf: cannot modify {tensor.dtype} (tensor {tensor.name!r}): {why}",
                format="gguf",
            )
        if kind.op == "copy" or tensor.nbytes == 0:
            unchanged.append(tensor.name)
            continue
        offset = data_start + offsets[tensor.name]
        regions.append(_Region(offset, tensor.nbytes, kind, tensor.name))
        changed.append(tensor.name)
    _rewrite_regions(src, dst, regions, seed)
    return PerturbResult("gguf", tuple(sorted(changed)), tuple(sorted(unchanged)), (dst,))


# --------------------------------------------------------------------------- raw layouts

_RAW_KINDS = {
    "float32": _Kind("float", np.dtype("<f4")),
    "float16": _Kind("float", np.dtype("<f2")),
    "float64": _Kind("float", np.dtype("<f8")),
    "bfloat16": _Kind("bf16"),
}


def _perturb_raw(src: Path, dst: Path, seed: int, layout: RawLayout) -> PerturbResult:
    """The manifest says which bytes are floats (``weights[].layout``): change exactly those."""
    from pytest_corrsource.formats.tensors import RAW_ITEMSIZE, raw_ranges

    try:
        ranges = raw_ranges(src, layout)
    except FormatError as exc:
        raise PerturbUnsupported(str(exc), format="raw") from None
    regions = [
        _Region(offset, length, _RAW_KINDS[dtype], name)
        for name, offset, length, dtype in ranges
        if length
    ]
    _rewrite_regions(src, dst, regions, seed)
    if dst.stat().st_size != src.stat().st_size:  # pragma: no cover - _rewrite_regions keeps it
        raise PerturbUnsupported(f"raw: {src.name}: the copy changed size", format="raw")
    total = sum(length // RAW_ITEMSIZE[dtype] for _, _, length, dtype in ranges)
    return PerturbResult(
        "raw",
        tuple(sorted(r.name for r in regions)),
        tuple(sorted(name for name, _, length, _ in ranges if not length)),
        (dst,),
        values_changed=total,
        values_total=total,
    )


# --------------------------------------------------------------------------- entry point

_HANDLERS: dict[str, Callable[[Path, Path, int], PerturbResult]] = {
    "safetensors": _perturb_safetensors,
    "safetensors-index": _perturb_index,
    "npy": _perturb_npy,
    "npz": _perturb_npz,
    "torch-zip": _perturb_torch_zip,
    "pickle": _perturb_pickle,
    "skops": _perturb_skops,
    "gguf": _perturb_gguf,
}


def perturb_weights(
    src: Path, dst: Path, *, seed: int = 0, layout: RawLayout | None = None
) -> PerturbResult:
    """Write a modified copy of the weights at ``src`` to ``dst``.

    The output is deterministic for a given ``seed``.  ``dst`` is replaced atomically;
    for a sharded checkpoint (``src`` is the index) the shards go next to ``dst``.
    Raises :class:`PerturbUnsupported` for pickle-based, unknown or corrupt sources and
    ``ValueError`` if ``dst`` is ``src``.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise PerturbUnsupported(f"{src}: not a file", format="unknown")
    _check_distinct(src, dst)
    if layout is not None:
        return _perturb_raw(src, dst, seed, layout)
    fmt: str = detect_format(src)  # or a format the first bytes alone do not tell:
    if fmt == "opaque":
        from pytest_corrsource.formats.pickled_arrays import compression_of
        from pytest_corrsource.formats.skops import is_skops

        if is_skops(src):
            fmt = "skops"
        else:
            with open_regular(src) as fh:
                codec = compression_of(fh.read(8))
            if codec is not None:
                return _perturb_compressed_joblib(src, dst, seed, codec)
    handler = _HANDLERS.get(fmt)
    if handler is None:
        raise PerturbUnsupported(f"{src.name}: unknown format", format="unknown")
    result = handler(src, dst, seed)
    return _with_counts(result, _verify_same_schema(src, dst, fmt))


def _verify_same_schema(src: Path, dst: Path, fmt: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The plugin's own reader must see the released schema in the modified copy: only values
    may differ. A difference is a bug of this module, reported rather than run."""
    from pytest_corrsource.formats.tensors import UnreadableTensors, read_schema

    try:
        before = read_schema(src, fmt, root=src.parent)
    except UnreadableTensors:
        return {}  # nothing this reader can compare (e.g. raw layouts): the writer keeps sizes
    try:
        after = read_schema(dst, fmt, root=dst.parent)
    except FormatError as exc:
        after_error: str | None = str(exc)
    else:
        if fmt == "npy":  # a lone array is named after its file, which the copy may rename
            after, before = dict(zip(before, after.values(), strict=True)), before
        after_error = None if after == before else "tensor names, dtypes or shapes differ"
    if after_error is not None:
        with contextlib.suppress(OSError):
            dst.unlink()
        raise PerturbUnsupported(
            f"{fmt}: the modified copy of {src.name} does not read back like the original "
            f"({after_error}); a bug in pytest-corrsource",
            format=fmt,
        )
    return before
