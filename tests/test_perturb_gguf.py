"""Modified copies of quantized GGUF tensors: every ggml block type's scale field changes, and
nothing else in the block does.

The files are built by hand (tests/test_format_gguf.py's helpers), one tensor of a few random
blocks per type with plausible scales; where the ``gguf`` package is installed (the ``real``
extra) its reader and dequantizers are the differential oracle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_format_gguf import ARCH, gguf, tinfo

from pytest_corrsource.formats.gguf import GGML_TYPES
from pytest_corrsource.formats.tensors import open_tensors, read_schema
from pytest_corrsource.perturb import (
    GGML_BLOCK_SCALES,
    GGML_UNMODIFIABLE,
    PerturbUnsupported,
    perturb_weights,
)

TYPE_IDS = {name: type_id for type_id, (name, _elems, _size) in GGML_TYPES.items()}
FLOATS_AND_INTS = {"F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64"}
N_BLOCKS = 6
#: which bytes of a block each scale encoding occupies
WIDTH = {"f16": 2, "f32": 4, "e8m0": 1, "ue4m3x4": 4, "iq1m": 8}
#: the fp16 mins (``m``/``dmin``) of ggml-common.h's blocks: kept, but must be finite in the test
MINS = {"Q4_1": 2, "Q5_1": 2, "Q2_K": 82, "Q4_K": 2, "Q5_K": 2}


def iq1m_scale(blocks: np.ndarray) -> np.ndarray:
    """The fp16 scale of each IQ1_M block, assembled as ggml-common.h's iq1m_scale_t says."""
    words = blocks[:, 48:56].copy().view("<u2")
    bits = np.zeros(len(blocks), dtype=np.uint16)
    for k in range(4):
        bits |= (words[:, k] >> np.uint16(12)) << np.uint16(4 * k)
    return bits.view("<f2").astype(np.float32)


def random_blocks(qtype: str, rng: np.random.Generator) -> np.ndarray:
    """N_BLOCKS random blocks of ``qtype`` whose scale fields hold plausible, finite scales."""
    _elems, size = next((e, s) for n, e, s in GGML_TYPES.values() if n == qtype)
    blocks = rng.integers(0, 256, size=(N_BLOCKS, size), dtype=np.uint8)
    if qtype in MINS:
        minimum = rng.uniform(0.01, 0.1, size=(N_BLOCKS, 1)).astype("<f2")
        blocks[:, MINS[qtype] : MINS[qtype] + 2] = minimum.view(np.uint8)
    for offset, encoding in GGML_BLOCK_SCALES[qtype]:
        if encoding == "f16":
            scale = rng.uniform(0.01, 0.1, size=(N_BLOCKS, 1)).astype("<f2")
            blocks[:, offset : offset + 2] = scale.view(np.uint8)
        elif encoding == "f32":
            scale = rng.uniform(0.01, 0.1, size=(N_BLOCKS, 1)).astype("<f4")
            blocks[:, offset : offset + 4] = scale.view(np.uint8)
        elif encoding == "e8m0":
            blocks[:, offset] = rng.integers(118, 126, size=N_BLOCKS)
        elif encoding == "ue4m3x4":
            blocks[:, offset : offset + 4] = rng.integers(0x20, 0x50, size=(N_BLOCKS, 4))
        else:  # iq1m: an fp16 of ~0.05 spread over the top nibbles of four uint16 words
            half = rng.uniform(0.01, 0.1, size=N_BLOCKS).astype("<f2").view("<u2")
            words = blocks[:, 48:56].copy().view("<u2") & np.uint16(0x0FFF)
            for k in range(4):
                words[:, k] |= ((half >> np.uint16(4 * k)) & np.uint16(0xF)) << np.uint16(12)
            blocks[:, 48:56] = words.view(np.uint8)
    return blocks


def gguf_with(tmp_path: Path, qtype: str, seed: int = 0) -> Path:
    """A GGUF holding one F32 tensor and one ``qtype`` tensor of N_BLOCKS blocks."""
    elems, _size = next((e, s) for n, e, s in GGML_TYPES.values() if n == qtype)
    rng = np.random.default_rng(seed)
    floats = rng.standard_normal(8).astype("<f4").tobytes()
    blocks = random_blocks(qtype, rng).tobytes()
    infos = [
        tinfo("norm.weight", [8], TYPE_IDS["F32"], 0),
        tinfo("q.weight", [elems, N_BLOCKS], TYPE_IDS[qtype], 32),
    ]
    path = tmp_path / f"{qtype}.gguf"
    path.write_bytes(gguf([ARCH], infos, floats + blocks))
    return path


QUANTIZED = sorted(GGML_BLOCK_SCALES)


def test_every_ggml_type_is_modifiable_or_refused_with_a_reason() -> None:
    for name, _elems, size in GGML_TYPES.values():
        if name in FLOATS_AND_INTS:
            continue
        assert (name in GGML_BLOCK_SCALES) != (name in GGML_UNMODIFIABLE), name
        for offset, encoding in GGML_BLOCK_SCALES.get(name, ()):
            assert offset + WIDTH[encoding] <= size, name


@pytest.mark.parametrize("qtype", QUANTIZED)
def test_only_the_scale_bytes_of_every_block_change(tmp_path: Path, qtype: str) -> None:
    src, dst = gguf_with(tmp_path, qtype), tmp_path / "out.gguf"
    result = perturb_weights(src, dst)
    assert result.changed == ("norm.weight", "q.weight")
    assert read_schema(dst) == read_schema(src)
    assert dst.stat().st_size == src.stat().st_size
    size = next(s for n, _e, s in GGML_TYPES.values() if n == qtype)
    before = open_tensors(src).raw("q.weight").reshape(-1, size)
    after = open_tensors(dst).raw("q.weight").reshape(-1, size)
    in_scale = np.zeros(size, dtype=bool)
    for offset, encoding in GGML_BLOCK_SCALES[qtype]:
        in_scale[offset : offset + WIDTH[encoding]] = True
        field_before = before[:, offset : offset + WIDTH[encoding]]
        field_after = after[:, offset : offset + WIDTH[encoding]]
        assert (field_before != field_after).any(axis=1).all(), "a block kept its scale"
    if qtype == "IQ1_M":  # only the scale's nibbles: the 3-bit sub-block scales stay
        words_before = before[:, 48:56].copy().view("<u2")
        words_after = after[:, 48:56].copy().view("<u2")
        assert np.array_equal(words_before & 0x0FFF, words_after & 0x0FFF)
        old, new = iq1m_scale(before), iq1m_scale(after)
        assert np.isfinite(new).all()
        assert (old != new).all()
    np.testing.assert_array_equal(before[:, ~in_scale], after[:, ~in_scale])
    # the bytes around the tensor (header, the F32 tensor's neighbours) are the source's
    data_before, data_after = src.read_bytes(), dst.read_bytes()
    start = len(data_before) - before.size
    assert data_before[: start - 32] == data_after[: start - 32]


@pytest.mark.parametrize("qtype", sorted(GGML_UNMODIFIABLE))
def test_a_type_without_a_known_scale_is_refused_without_blaming_the_file(
    tmp_path: Path, qtype: str
) -> None:
    elems, size = next((e, s) for n, e, s in GGML_TYPES.values() if n == qtype)
    infos = [tinfo("q.weight", [elems, 2], TYPE_IDS[qtype], 0)]
    src = tmp_path / "m.gguf"
    src.write_bytes(gguf([ARCH], infos, bytes(2 * size)))
    dst = tmp_path / "out.gguf"
    with pytest.raises(PerturbUnsupported, match=rf"gguf: cannot modify {qtype} \(tensor") as exc:
        perturb_weights(src, dst)
    assert exc.value.format == "gguf"  # a limit of the plugin: CS403 skips, never fails
    assert GGML_UNMODIFIABLE[qtype] in str(exc.value)
    assert not dst.exists()


def test_a_non_finite_fp16_scale_is_kept(tmp_path: Path) -> None:
    src = gguf_with(tmp_path, "IQ2_XXS")
    data = bytearray(src.read_bytes())
    start = len(data) - N_BLOCKS * 66
    data[start : start + 2] = np.array([np.inf], dtype="<f2").tobytes()  # first block's d
    src.write_bytes(bytes(data))
    perturb_weights(src, tmp_path / "out.gguf")
    after = (tmp_path / "out.gguf").read_bytes()
    assert after[start : start + 2] == bytes(data[start : start + 2])
    assert after[start + 66 : start + 68] != bytes(data[start + 66 : start + 68])


# ------------------------------------------------------------------------ the gguf package


@pytest.mark.parametrize("qtype", QUANTIZED)
def test_the_reference_reader_dequantizes_the_modified_blocks(tmp_path: Path, qtype: str) -> None:
    gguf_py = pytest.importorskip("gguf")
    src, dst = gguf_with(tmp_path, qtype), tmp_path / "out.gguf"
    perturb_weights(src, dst)
    before, after = gguf_py.GGUFReader(str(src)), gguf_py.GGUFReader(str(dst))
    assert [(t.name, t.tensor_type, list(t.shape)) for t in before.tensors] == [
        (t.name, t.tensor_type, list(t.shape)) for t in after.tensors
    ]
    old, new = before.tensors[1], after.tensors[1]
    try:
        a = gguf_py.quants.dequantize(old.data, old.tensor_type).astype(np.float32)
    except NotImplementedError:
        pytest.skip(f"gguf-py cannot dequantize {qtype}")
    b = gguf_py.quants.dequantize(new.data, new.tensor_type).astype(np.float32)
    assert a.shape == b.shape
    assert np.isfinite(b).all()
    moved = a != b
    assert moved.mean() > 0.5
    if qtype not in MINS:  # d * q: every non-zero value moves (with mins, d * q - m: a
        # quant of 0 stays at its sub-block's minimum; the byte test above covers those types)
        assert moved[a != 0].all(), "a non-zero value kept its value"
