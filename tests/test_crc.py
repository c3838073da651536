"""The CRC of a whole combined from the CRCs of its pieces, against zlib's CRC of the whole."""

from __future__ import annotations

import random
import zlib

import pytest

from pytest_corrsource.crc import crc32, crc32_combine


def test_crc32_is_the_zip_crc() -> None:
    data = random.Random(1).randbytes(100_003)
    assert crc32(data) == zlib.crc32(data)
    assert crc32(data[50:], crc32(data[:50])) == zlib.crc32(data)


@pytest.mark.parametrize("split", [0, 1, 7, 8, 4096, 99_999, 100_003])
def test_two_pieces_combine_to_the_crc_of_the_whole(split: int) -> None:
    data = random.Random(split).randbytes(100_003)
    first, second = data[:split], data[split:]
    combined = crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second))
    assert combined == zlib.crc32(data)


def test_many_pieces_of_one_length_and_a_short_last_combine_in_order() -> None:
    data = random.Random(2).randbytes((1 << 20) * 3 + 12_345)
    step = 1 << 20
    total = 0
    for start in range(0, len(data), step):
        piece = data[start : start + step]
        total = crc32_combine(total, zlib.crc32(piece), len(piece))
    assert total == zlib.crc32(data)
    swapped = crc32_combine(zlib.crc32(data[step:]), zlib.crc32(data[:step]), step)
    assert swapped != zlib.crc32(data)  # order matters: a combine that ignored it would pass


def test_a_negative_length_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        crc32_combine(0, 0, -1)
