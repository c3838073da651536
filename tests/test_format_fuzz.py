"""Property tests: arbitrary bytes make every reader raise FormatError and nothing else."""

from __future__ import annotations

import contextlib
import json
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_corrsource.formats import FormatError, WeightsHeader
from pytest_corrsource.formats.detect import detect_format, read_weights_header
from pytest_corrsource.formats.gguf import read_gguf_header
from pytest_corrsource.formats.npy import read_npy_header, read_npz_header
from pytest_corrsource.formats.pickle_scan import (
    PickleScan,
    looks_like_pickle,
    scan_pickle_file,
    scan_weights_file,
)
from pytest_corrsource.formats.pointers import detect_pointer
from pytest_corrsource.formats.safetensors import read_safetensors_header
from pytest_corrsource.formats.shards import read_safetensors_index


@contextmanager
def temp_file(content: bytes, name: str = "f.bin") -> Iterator[tuple[Path, Path]]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(content)
        yield path, Path(folder)


def only_format_errors(reader: Callable[[Path], object], content: bytes, name: str = "f") -> None:
    with temp_file(content, name) as (path, _):
        try:
            reader(path)
        except FormatError as error:
            message = str(error)
        else:
            message = "ok"
    assert message


READERS: list[Callable[[Path], object]] = [
    read_safetensors_header,
    read_gguf_header,
    read_npy_header,
    read_npz_header,
]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes(content: bytes) -> None:
    for reader in READERS:
        only_format_errors(reader, content)
    with temp_file(content) as (path, root):
        assert detect_format(path) in {
            "safetensors",
            "safetensors-index",
            "gguf",
            "npy",
            "npz",
            "torch-zip",
            "pickle",
            "opaque",
        }
        with contextlib.suppress(FormatError):
            assert isinstance(read_weights_header(path, root), WeightsHeader)
        assert isinstance(scan_pickle_file(path), PickleScan)
        detect_pointer(path, root)
    looks_like_pickle(content)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=600), st.binary(max_size=600))
def test_bytes_behind_a_plausible_safetensors_prefix(length: int, body: bytes) -> None:
    only_format_errors(read_safetensors_header, struct.pack("<Q", length) + body)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)
tensor_infos = (
    st.fixed_dictionaries(
        {
            "dtype": st.sampled_from(["F32", "U8", "F4", "BF16", "f32", "X"]),
            "shape": st.lists(st.integers(min_value=-2, max_value=2**40), max_size=3),
            "data_offsets": st.lists(
                st.integers(min_value=-1, max_value=64), min_size=1, max_size=3
            ),
        }
    )
    | json_values
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=6), tensor_infos, max_size=4), st.binary(max_size=64))
def test_structured_safetensors_headers(header: dict[str, object], data: bytes) -> None:
    raw = json.dumps(header).encode()
    only_format_errors(read_safetensors_header, struct.pack("<Q", len(raw)) + raw + data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_gguf_prefix_then_noise(body: bytes) -> None:
    only_format_errors(read_gguf_header, b"GGUF" + struct.pack("<I", 3) + body)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([b"\x01\x00", b"\x02\x00", b"\x03\x00"]))
def test_npy_prefix_then_noise(body: bytes, version: bytes) -> None:
    only_format_errors(read_npy_header, b"\x93NUMPY" + version + body)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_pickle_scan_never_raises(body: bytes) -> None:
    for prefix in (b"", b"\x80\x02", b"\x80\x04", b"("):
        with temp_file(prefix + body) as (path, _):
            scan = scan_pickle_file(path)
            assert isinstance(scan, PickleScan)
            if scan.safe:
                assert scan.errors == ()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_weights_scan_never_raises(body: bytes, claims_pickle: bool) -> None:
    for prefix in (b"", b"GGUF", b"\x93NUMPY\x01\x00", b"PK\x03\x04", b"\x95", b"T"):
        with temp_file(prefix + body) as (path, _):
            scan = scan_weights_file(path, claims_pickle=claims_pickle)
            assert isinstance(scan, PickleScan)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_index_json_only_format_errors(value: object) -> None:
    content = json.dumps(value).encode()
    with (
        temp_file(content, "model.safetensors.index.json") as (path, root),
        contextlib.suppress(FormatError),
    ):
        read_safetensors_index(path, root)


def test_temp_file_helper_cleans_up() -> None:
    with temp_file(b"x") as (path, _):
        assert path.exists()
    assert not path.exists()
