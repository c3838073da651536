"""Differential tests: our header readers against the reference implementations.

safetensors: hypothesis mutates a valid header (dtype, shape, offsets, names, metadata, extra
fields, duplicate keys, whitespace, truncation) and the verdict must equal the ``safetensors``
package's, except where we are deliberately stricter (README "Reader strictness").
GGUF (optional: ``gguf`` from the ``real`` extra): mutated files against ``gguf.GGUFReader``;
we follow llama.cpp's ``gguf.cpp`` rules, which are stricter than gguf-py, and gguf-py's Q8_1
block size (40 bytes) is not ggml's (36); only those differences are allowed.
"""

from __future__ import annotations

import json
import struct
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from test_format_gguf import ARCH, gguf, kv_str, kv_u32, tinfo

from pytest_corrsource.formats import FormatError
from pytest_corrsource.formats.gguf import read_gguf_header
from pytest_corrsource.formats.safetensors import read_safetensors_header

#: Our safetensors reader refuses these although the reference accepts them (documented).
SAFETENSORS_STRICTER = ("duplicate", "control character")
DTYPES = ["F32", "F16", "BF16", "U8", "I64", "BOOL", "F4", "F8_E4M3", "f32", "F128", "", 7]


def ours_accepts(path: Path) -> tuple[bool, str]:
    try:
        read_safetensors_header(path)
    except FormatError as error:
        return False, str(error)
    return True, ""


def reference_accepts(path: Path) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            safe_open(str(path), framework="numpy")
    except Exception:
        return False
    return True


text = st.text(st.characters(exclude_categories=()), max_size=6)  # surrogates included
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**65), st.floats(), text)
dims = st.lists(st.one_of(st.integers(-2, 9), st.just(2**63), st.just(0.5)), max_size=3)


@st.composite
def safetensors_files(draw: st.DrawFn) -> bytes:
    """A valid 2-tensor file, then a few random mutations of its header or bytes."""
    tensors: list[tuple[str, dict[str, object]]] = [
        ("a", {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}),
        ("b", {"dtype": "U8", "shape": [4], "data_offsets": [8, 12]}),
    ]
    metadata: dict[str, object] | None = None
    data_len = 12
    for _ in range(draw(st.integers(0, 3))):
        index = draw(st.integers(0, 1))
        info = tensors[index][1]
        kind = draw(
            st.sampled_from(
                ["dtype", "shape", "offsets", "name", "extra", "meta", "dup", "data", "drop"]
            )
        )
        if kind == "dtype":
            info["dtype"] = draw(st.sampled_from(DTYPES))
        elif kind == "shape":
            info["shape"] = draw(dims)
        elif kind == "offsets":
            info["data_offsets"] = [draw(st.integers(-1, 20)), draw(st.integers(-1, 20))]
        elif kind == "name":
            tensors[index] = (draw(text), info)
        elif kind == "extra":
            info[draw(text)] = draw(st.one_of(json_scalars, st.lists(json_scalars, max_size=2)))
        elif kind == "meta":
            metadata = {draw(text): draw(json_scalars)}
        elif kind == "dup":
            tensors.append(tensors[index])
        elif kind == "data":
            data_len = draw(st.integers(0, 16))
        else:
            info.pop(draw(st.sampled_from(["dtype", "shape", "data_offsets"])), None)
    parts = [f"{json.dumps(name)}:{json.dumps(info)}" for name, info in tensors]
    if metadata is not None:
        parts.append(f'"__metadata__":{json.dumps(metadata)}')
    header = ("{" + ",".join(parts) + "}").encode()
    header = (
        draw(st.sampled_from([b"", b" ", b"\n"])) + header + draw(st.sampled_from([b"", b"  "]))
    )
    return struct.pack("<Q", len(header)) + header + bytes(data_len)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(safetensors_files())
def test_safetensors_agrees_with_the_reference(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        path.write_bytes(content)
        ours, message = ours_accepts(path)
        reference = reference_accepts(path)
    if ours != reference:
        # The only allowed disagreement: we refuse, for a documented extra rule.
        assert not ours, "we accept what the reference refuses"
        assert reference
        assert any(reason in message for reason in SAFETENSORS_STRICTER), message


#: Our GGUF reader refuses these although gguf-py accepts them: llama.cpp's gguf.cpp rules.
GGUF_STRICTER = (
    "dimensions (at most 4)",
    "ggml requires fewer than 64",
    "must be contiguous, in file order",
    "not a multiple of the",
    "general.alignment",
    "is not valid UTF-8",
)


def gguf_reference_accepts(path: Path) -> tuple[bool, str]:
    reader_module = pytest.importorskip("gguf")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = reader_module.GGUFReader(path)
            for tensor in reader.tensors:
                _ = tensor.data.shape  # gguf-py maps the data lazily
    except Exception as error:
        return False, f"{type(error).__name__}: {error}"
    return True, ""


@st.composite
def gguf_files(draw: st.DrawFn) -> tuple[bytes, bool, bool]:
    """(file, uses Q8_1, has a 0-dimensional tensor): a valid 2-tensor file with a few mutated
    fields."""
    names = ["tok.weight", "out.weight"]
    shapes = [[4, 2], [64]]
    types = [0, 2]  # F32, Q4_0
    offsets = [0, 32]
    alignment = 32
    extra_kvs: list[bytes] = []
    data = 32 + 36
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, 1))
        kind = draw(st.sampled_from(["shape", "type", "offset", "name", "align", "data", "kv"]))
        if kind == "shape":
            shapes[i] = draw(st.lists(st.sampled_from([1, 2, 3, 32, 64]), min_size=0, max_size=6))
        elif kind == "type":
            types[i] = draw(st.sampled_from([0, 1, 2, 8, 9, 12, 24, 30, 39, 40, 41, 4, 42, 99]))
        elif kind == "offset":
            offsets[i] = draw(st.sampled_from([0, 16, 32, 64, 96, 2**40]))
        elif kind == "name":
            names[i] = draw(st.sampled_from(["x" * 63, "x" * 64, names[1 - i], "ü", "a"]))
        elif kind == "align":
            alignment = draw(st.sampled_from([8, 16, 32, 64]))
            extra_kvs = [kv_u32("general.alignment", alignment)]
        elif kind == "data":
            data = draw(st.integers(0, 200))
        else:
            extra_kvs.append(kv_str(draw(st.sampled_from(["general.name", "a.b"])), "v"))
    infos = [tinfo(names[i], shapes[i], types[i], offsets[i]) for i in range(2)]
    content = gguf([ARCH, *extra_kvs], infos, bytes(data) or b"", alignment=alignment)
    return content, 9 in types, any(not shape for shape in shapes)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gguf_files())
def test_gguf_agrees_with_gguf_py(case: tuple[bytes, bool, bool]) -> None:
    pytest.importorskip("gguf")
    content, uses_q8_1, has_scalar = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.gguf"
        path.write_bytes(content)
        try:
            read_gguf_header(path)
            ours, message = True, ""
        except FormatError as error:
            ours, message = False, str(error)
        reference, why = gguf_reference_accepts(path)
    if ours == reference or uses_q8_1:  # gguf-py's Q8_1 block is 40 bytes, ggml's 36
        return
    # A 0-dimensional tensor: ggml (gguf.cpp) reads n_dims <= GGML_MAX_DIMS and sets the
    # missing dimensions to 1, so it accepts one; gguf-py's reader fails on it with an
    # IndexError (its limit, not a malformed file).
    if ours and has_scalar and why.startswith("IndexError"):
        return
    if ours:
        pytest.fail(f"we accept what gguf-py refuses: {why}")
    assert any(reason in message for reason in GGUF_STRICTER), message
