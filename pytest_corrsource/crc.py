"""CRC-32 (the zip one) of pieces computed apart, and the CRC of the whole from theirs.

Stage: below the formats; standard library (and ``isal`` when installed) only.

Why: perturb.py transforms the chunks of a zip member on several threads. Each thread adds its
chunk's CRC while the bytes are still in its cache; the member's CRC is then combined in
order from the chunks' CRCs and lengths, as zlib's ``crc32_combine`` does (Python's zlib does
not expose it). The algorithm is zlib's (crc32.c, Mark Adler): the CRC of ``A + B`` is the
CRC of ``A`` multiplied by ``x^(8 * len(B))`` modulo the CRC polynomial, xor the CRC of ``B``.
"""

from __future__ import annotations

import functools

try:  # ISA-L's CRC-32 runs at tens of GB/s, zlib's at one or two
    from isal.isal_zlib import crc32
except ImportError:  # pragma: no cover - isal is a dependency; a platform without its wheel
    from zlib import crc32

__all__ = ["crc32", "crc32_combine"]

#: the CRC-32 polynomial, bit-reversed (zlib's POLY)
_POLY = 0xEDB88320


def _multiply_mod_p(a: int, b: int) -> int:
    """``a * b`` modulo the polynomial, both in zlib's reflected representation (``a`` != 0)."""
    m = 1 << 31
    product = 0
    while True:
        if a & m:
            product ^= b
            if a & (m - 1) == 0:
                return product
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


def _powers() -> tuple[int, ...]:
    """``x^(2^k)`` modulo the polynomial for k = 0..31."""
    table = [1 << 30]  # x^1
    for _ in range(31):
        table.append(_multiply_mod_p(table[-1], table[-1]))
    return tuple(table)


_X_POW_2K = _powers()


@functools.lru_cache(maxsize=64)
def _x_pow_8n(n: int) -> int:
    """``x^(8 * n)`` modulo the polynomial: the shift a CRC undergoes over ``n`` more bytes.
    Cached: the chunks of a member all have the same length but the last."""
    power = 1 << 31  # x^0
    k = 3  # 8 * n = n * 2^3
    while n:
        if n & 1:
            power = _multiply_mod_p(_X_POW_2K[k & 31], power)
        n >>= 1
        k += 1
    return power


def crc32_combine(first: int, second: int, second_length: int) -> int:
    """The CRC-32 of ``A + B`` from ``crc32(A)``, ``crc32(B)`` and ``len(B)``."""
    if second_length < 0:
        raise ValueError("a length cannot be negative")
    return _multiply_mod_p(_x_pow_8n(second_length), first) ^ second
