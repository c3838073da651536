"""Tests for pytest_corrsource.perturb (modified copies of weight files)."""

from __future__ import annotations

import json
import pickle
import struct
import tempfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.numpy import save_file

from pytest_corrsource.perturb import PerturbResult, PerturbUnsupported, perturb_weights

# ------------------------------------------------------------------------------ helpers


def write_safetensors(
    path: Path, tensors: dict[str, tuple[str, list[int], bytes]], metadata: dict[str, str] | None
) -> None:
    """Write a safetensors file by hand (for dtypes numpy cannot express)."""
    header: dict[str, object] = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        for _dtype, _shape, data in tensors.values():
            fh.write(data)


def header_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return data[: 8 + n]


def raw_tensor(path: Path, name: str) -> bytes:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    info = json.loads(data[8 : 8 + n])[name]
    begin, end = info["data_offsets"]
    return data[8 + n + begin : 8 + n + end]


def assert_bounded_change(
    before: np.ndarray, after: np.ndarray, where: np.ndarray | None = None
) -> None:
    b = before.astype(np.float64)
    a = after.astype(np.float64)
    nonzero = np.abs(b[b != 0])
    typical = float(np.median(nonzero)) if nonzero.size else 1.0
    # at most ~51 % of each value; zeros move by at most 50 % of the typical magnitude
    bound = 0.52 * np.abs(b) + 0.51 * typical
    ok = np.abs(a - b) <= bound
    assert np.all(ok if where is None else ok[where])


def special_floats(dtype: type[np.floating]) -> np.ndarray:
    fi = np.finfo(dtype)
    values = [0.0, -0.0, 1.0, -1.0, fi.max, -fi.max, fi.tiny, fi.smallest_subnormal, 1e-3, 7.5]
    return np.array(values, dtype=dtype)


FLOATS: dict[str, np.ndarray] = {
    "embed.weight": np.random.default_rng(1).standard_normal((16, 8)).astype(np.float32),
    "special32": special_floats(np.float32),
    "special16": special_floats(np.float16),
    "special64": special_floats(np.float64),
    "half": np.random.default_rng(2).standard_normal(33).astype(np.float16),
    "double": np.random.default_rng(3).standard_normal((3, 3)).astype(np.float64),
    "zeros": np.zeros((4, 4), dtype=np.float32),
}
INTS: dict[str, np.ndarray] = {
    "counts": np.arange(-5, 5, dtype=np.int64),
    "position_ids": np.arange(32, dtype=np.int32).reshape(1, 32),
    "mask": np.array([[True, False, True]]),
}
METADATA = {"format": "pt", "note": "perturb me"}


@pytest.fixture
def st_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    save_file({**FLOATS, **INTS}, str(path), metadata=METADATA)
    return path


# ------------------------------------------------------------------------------ safetensors


def test_safetensors_structure_is_preserved(st_file: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out" / "model.safetensors"
    result = perturb_weights(st_file, dst)
    assert result == PerturbResult(
        format="safetensors",
        changed=tuple(sorted(FLOATS)),
        unchanged=tuple(sorted(INTS)),
        files=(dst,),
    )
    assert header_bytes(dst) == header_bytes(st_file)
    assert dst.stat().st_size == st_file.stat().st_size
    with safe_open(str(st_file), "np") as a, safe_open(str(dst), "np") as b:
        assert list(a.keys()) == list(b.keys())
        assert b.metadata() == METADATA
        for key in a.keys():  # noqa: SIM118 - safe_open is not a mapping
            assert a.get_slice(key).get_dtype() == b.get_slice(key).get_dtype()
            assert a.get_slice(key).get_shape() == b.get_slice(key).get_shape()


def test_safetensors_floats_change_and_stay_finite(st_file: Path, tmp_path: Path) -> None:
    dst = tmp_path / "p.safetensors"
    perturb_weights(st_file, dst)
    with safe_open(str(dst), "np") as f:
        for name, before in FLOATS.items():
            after = f.get_tensor(name)
            assert after.dtype == before.dtype
            assert np.all(np.isfinite(after)), name
            assert np.all(after != before), name
            # "slightly": ~1 % of the value plus at most 0.1 % of the largest magnitude
            ordinary = np.abs(before) < np.finfo(before.dtype).max / 2
            assert_bounded_change(before, after, ordinary)


def test_safetensors_ints_and_bools_are_byte_identical(st_file: Path, tmp_path: Path) -> None:
    dst = tmp_path / "p.safetensors"
    perturb_weights(st_file, dst)
    for name in INTS:
        assert raw_tensor(dst, name) == raw_tensor(st_file, name)
    with safe_open(str(dst), "np") as f:
        np.testing.assert_array_equal(f.get_tensor("position_ids"), INTS["position_ids"])


def test_nonfinite_values_are_kept(tmp_path: Path) -> None:
    src = tmp_path / "nan.safetensors"
    x = np.array([np.nan, np.inf, -np.inf, 1.0, 0.0], dtype=np.float32)
    save_file({"x": x}, str(src))
    perturb_weights(src, tmp_path / "out.safetensors")
    with safe_open(str(tmp_path / "out.safetensors"), "np") as f:
        y = f.get_tensor("x")
    assert y[:3].tobytes() == x[:3].tobytes()
    assert np.all(np.isfinite(y[3:]))
    assert np.all(y[3:] != x[3:])


def test_seed_determinism(st_file: Path, tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    perturb_weights(st_file, a, seed=7)
    perturb_weights(st_file, b, seed=7)
    perturb_weights(st_file, c, seed=8)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert raw_tensor(a, "embed.weight") != raw_tensor(c, "embed.weight")


def bf16_bits(values: np.ndarray) -> np.ndarray:
    return (values.astype(np.float32).view(np.uint32) >> 16).astype("<u2")


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def test_bf16(tmp_path: Path) -> None:
    src, dst = tmp_path / "bf.safetensors", tmp_path / "out.safetensors"
    normal = bf16_bits(np.random.default_rng(0).standard_normal(1000))
    special = np.array(
        [0x0000, 0x8000, 0x0001, 0x7F7F, 0xFF7F, 0x3F80, 0x0080, 0x7F80, 0xFF80, 0x7FC0],
        dtype="<u2",
    )
    ids = np.arange(6, dtype="<i8")
    write_safetensors(
        src,
        {
            "w": ("BF16", [10, 100], normal.tobytes()),
            "s": ("BF16", [10], special.tobytes()),
            "ids": ("I64", [6], ids.tobytes()),
        },
        {"format": "pt"},
    )
    result = perturb_weights(src, dst)
    assert result.changed == ("s", "w")
    assert result.unchanged == ("ids",)
    assert header_bytes(dst) == header_bytes(src)
    with safe_open(str(dst), "np") as f:
        assert sorted(f.keys()) == ["ids", "s", "w"]
        assert f.metadata() == {"format": "pt"}
        assert f.get_slice("w").get_dtype() == "BF16"
    w_before, w_after = bf16_to_f32(normal), bf16_to_f32(np.frombuffer(raw_tensor(dst, "w"), "<u2"))
    assert np.all(np.isfinite(w_after))
    assert np.all(w_after != w_before)
    assert_bounded_change(w_before, w_after)
    s_after = np.frombuffer(raw_tensor(dst, "s"), "<u2")
    finite = np.isfinite(bf16_to_f32(special))
    assert np.all(bf16_to_f32(s_after)[finite] != bf16_to_f32(special)[finite])
    assert np.all(np.isfinite(bf16_to_f32(s_after)[finite]))
    assert s_after[~finite].tobytes() == special[~finite].tobytes()
    assert raw_tensor(dst, "ids") == ids.tobytes()


def _nonfinite(fmt: str, b: int) -> bool:
    if fmt == "F8_E4M3":
        return b & 0x7F == 0x7F
    if fmt == "F8_E5M2":
        return b & 0x7C == 0x7C
    if fmt == "F8_E8M0":
        return b == 0xFF
    return b == 0x80  # FNUZ


@pytest.mark.parametrize("fmt", ["F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F8_E8M0"])
def test_fp8_every_finite_byte_changes_and_stays_finite(tmp_path: Path, fmt: str) -> None:
    src, dst = tmp_path / "f8.safetensors", tmp_path / "out.safetensors"
    every = bytes(range(256))
    write_safetensors(src, {"q": (fmt, [16, 16], every), "u": ("U8", [4], b"\x01\x02\x03\x04")}, {})
    result = perturb_weights(src, dst)
    assert result.changed == ("q",)
    assert result.unchanged == ("u",)
    assert header_bytes(dst) == header_bytes(src)
    with safe_open(str(dst), "np") as f:
        assert f.get_slice("q").get_dtype() == fmt
    after = raw_tensor(dst, "q")
    for before_b, after_b in zip(every, after, strict=True):
        if _nonfinite(fmt, before_b):
            assert after_b == before_b
        else:
            assert after_b != before_b
            assert not _nonfinite(fmt, after_b), (fmt, hex(before_b), hex(after_b))
            if fmt != "F8_E8M0":  # sign and exponent untouched: only low mantissa bits move
                assert after_b ^ before_b in (1, 2)
    assert raw_tensor(dst, "u") == b"\x01\x02\x03\x04"


def test_sub_byte_floats(tmp_path: Path) -> None:
    src, dst = tmp_path / "f4.safetensors", tmp_path / "out.safetensors"
    every = bytes(range(256))
    write_safetensors(
        src,
        {"f4": ("F4", [512], every), "f6": ("F6_E2M3", [4, 8], bytes(range(24)))},
        None,
    )
    result = perturb_weights(src, dst)
    assert result.changed == ("f4", "f6")
    assert header_bytes(dst) == header_bytes(src)
    f4 = raw_tensor(dst, "f4")
    for before_b, after_b in zip(every, f4, strict=True):
        # both packed E2M1 values change in their mantissa bit only
        assert before_b ^ after_b == 0x11
    f6 = raw_tensor(dst, "f6")
    assert all(a != b for a, b in zip(f6, range(24), strict=True))


def test_c64_and_empty_tensor(tmp_path: Path) -> None:
    src, dst = tmp_path / "c.safetensors", tmp_path / "out.safetensors"
    z = (np.arange(4) + 1j * np.arange(4)).astype("<c8")
    write_safetensors(src, {"z": ("C64", [4], z.tobytes()), "e": ("F32", [0, 3], b"")}, None)
    result = perturb_weights(src, dst)
    assert result.changed == ("z",)
    assert result.unchanged == ("e",)
    after = np.frombuffer(raw_tensor(dst, "z"), "<c8")
    assert np.all(after.real != z.real)
    assert np.all(after.imag != z.imag)


def test_sharded_checkpoint(tmp_path: Path) -> None:
    src_dir, dst_dir = tmp_path / "src", tmp_path / "dst"
    src_dir.mkdir()
    weight_map: dict[str, str] = {}
    rng = np.random.default_rng(5)
    for i in range(3):
        shard = f"model-{i + 1:05d}-of-00003.safetensors"
        tensors: dict[str, np.ndarray] = {
            f"layers.{i}.weight": rng.standard_normal((4, 4)).astype(np.float32),
            f"layers.{i}.ids": np.arange(4, dtype=np.int64),
        }
        save_file(tensors, str(src_dir / shard), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, shard))
    index = src_dir / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": 1}, "weight_map": weight_map}))
    dst_index = dst_dir / index.name
    result = perturb_weights(index, dst_index)
    assert result.format == "safetensors-index"
    assert result.changed == tuple(sorted(k for k in weight_map if k.endswith("weight")))
    assert result.unchanged == tuple(sorted(k for k in weight_map if k.endswith("ids")))
    assert result.files[0] == dst_index
    assert sorted(p.name for p in result.files[1:]) == sorted(set(weight_map.values()))
    assert dst_index.read_bytes() == index.read_bytes()
    for tensor, shard in weight_map.items():
        assert header_bytes(dst_dir / shard) == header_bytes(src_dir / shard)
        with safe_open(str(src_dir / shard), "np") as a, safe_open(str(dst_dir / shard), "np") as b:
            before, after = a.get_tensor(tensor), b.get_tensor(tensor)
        if tensor.endswith("ids"):
            np.testing.assert_array_equal(before, after)
        else:
            assert np.all(before != after)


def test_index_with_escaping_shard_name(tmp_path: Path) -> None:
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"w": "../evil.safetensors"}}))
    with pytest.raises(PerturbUnsupported, match="not a plain relative path") as escaping:
        perturb_weights(index, tmp_path / "out" / index.name)
    assert escaping.value.format == "corrupt"
    index.write_text(json.dumps({"weight_map": {"w": "missing.safetensors"}}))
    with pytest.raises(PerturbUnsupported, match="does not exist"):
        perturb_weights(index, tmp_path / "out" / index.name)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=8, max_size=512), dtype=st.sampled_from(["F16", "BF16", "F32"]))
def test_any_bit_pattern_changes_and_stays_finite(data: bytes, dtype: str) -> None:
    """Arbitrary bit patterns (subnormals, extremes, NaN payloads): every finite value
    changes and stays finite, every non-finite value is kept bit-for-bit."""
    size = 2 if dtype != "F32" else 4
    data = data[: len(data) // size * size]
    if dtype == "BF16":
        before = bf16_to_f32(np.frombuffer(data, "<u2"))
    else:
        before = np.frombuffer(data, "<f2" if dtype == "F16" else "<f4")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "a.safetensors", Path(tmp) / "b.safetensors"
        write_safetensors(src, {"x": (dtype, [len(data) // size], data)}, None)
        perturb_weights(src, dst)
        out = raw_tensor(dst, "x")
    if dtype == "BF16":
        after = bf16_to_f32(np.frombuffer(out, "<u2"))
    else:
        after = np.frombuffer(out, before.dtype)
    finite = np.isfinite(before)
    assert np.all(after[finite] != before[finite])
    assert np.all(np.isfinite(after[finite]))
    raw_before = np.frombuffer(data, f"<u{size}")
    raw_after = np.frombuffer(out, f"<u{size}")
    assert np.array_equal(raw_after[~finite], raw_before[~finite])


# ------------------------------------------------------------------------------ numpy


@pytest.mark.parametrize("compressed", [False, True])
def test_npz(tmp_path: Path, compressed: bool) -> None:
    src, dst = tmp_path / "w.npz", tmp_path / "out.npz"
    arrays: dict[str, np.ndarray] = {
        "w": np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32),
        "f": np.asfortranarray(np.random.default_rng(1).standard_normal((3, 4))),
        "h": np.ones(3, dtype=np.float16),
        "ids": np.arange(7),
        "flags": np.array([True, False]),
    }
    if compressed:
        np.savez_compressed(src, **arrays)  # type: ignore[arg-type]
    else:
        np.savez(src, **arrays)  # type: ignore[arg-type]
    result = perturb_weights(src, dst)
    assert result.format == "npz"
    assert result.changed == ("f", "h", "w")
    assert result.unchanged == ("flags", "ids")
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst) as b:
        assert a.namelist() == b.namelist()
        assert [i.compress_type for i in a.infolist()] == [i.compress_type for i in b.infolist()]
    expected = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(dst) as b:
        assert {i.compress_type for i in b.infolist()} == {expected}
    with np.load(dst, allow_pickle=False) as out:
        for name, before in arrays.items():
            after = out[name]
            assert after.dtype == before.dtype
            assert after.shape == before.shape
            if name in result.changed:
                assert np.all(after != before)
                assert np.all(np.isfinite(after))
            else:
                np.testing.assert_array_equal(after, before)
        assert out["f"].flags.f_contiguous


def test_npy_big_endian_fortran(tmp_path: Path) -> None:
    src, dst = tmp_path / "w.npy", tmp_path / "out.npy"
    before = np.asfortranarray(np.random.default_rng(0).standard_normal((4, 3))).astype(">f4")
    np.save(src, before)
    result = perturb_weights(src, dst)
    assert result == PerturbResult("npy", ("w.npy",), (), (dst,))
    after = np.load(dst)
    assert after.dtype == before.dtype
    assert after.shape == before.shape
    assert np.all(after != before)
    assert np.all(np.isfinite(after))
    assert_bounded_change(before, after)
    n = len(src.read_bytes()) - before.nbytes
    assert dst.read_bytes()[:n] == src.read_bytes()[:n]


def test_npy_integers_unchanged(tmp_path: Path) -> None:
    src, dst = tmp_path / "i.npy", tmp_path / "out.npy"
    np.save(src, np.arange(10, dtype=np.int16))
    assert perturb_weights(src, dst).unchanged == ("i.npy",)
    assert dst.read_bytes() == src.read_bytes()


# ------------------------------------------------------------------------------ refusals


def test_pickle_without_arrays_changes_nothing(tmp_path: Path) -> None:
    """Floats in plain lists are not arrays: nothing to change (CS403 then skips, saying so);
    tests/test_tensors.py has the pickled numpy arrays."""
    src = tmp_path / "pytorch_model.bin"
    src.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=2))
    result = perturb_weights(src, tmp_path / "out.bin")
    assert (result.format, result.changed, result.unchanged) == ("pickle", (), ())


def test_torch_zip_without_tensors_changes_nothing(tmp_path: Path) -> None:
    """Read without unpickling (tests/test_format_torch_zip.py has the real checkpoints)."""
    src = tmp_path / "model.pt"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": 1}, protocol=2))
        zf.writestr("archive/data/0", b"\0" * 16)
    result = perturb_weights(src, tmp_path / "out.pt")
    assert (result.format, result.changed, result.unchanged) == ("torch-zip", (), ())


def test_npz_with_object_array_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "obj.npz"
    np.savez(src, a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(PerturbUnsupported, match=r"untrusted code \(pickle\)"):
        perturb_weights(src, tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


def test_unknown_format(tmp_path: Path) -> None:
    src = tmp_path / "model.onnx"
    src.write_bytes(b"\x08\x07\x12\x07pytorch" + b"\0" * 64)
    with pytest.raises(PerturbUnsupported, match="unknown format"):
        perturb_weights(src, tmp_path / "out.onnx")


def test_gguf_without_tensors_changes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "model.gguf"
    src.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\0" * 64)
    result = perturb_weights(src, tmp_path / "out.gguf")
    assert (result.format, result.changed) == ("gguf", ())


def _corrupt_variants(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    ok = tmp_path / "ok.safetensors"
    save_file({"w": np.ones(4, dtype=np.float32)}, str(ok))
    data = ok.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    cases: dict[str, tuple[bytes, str]] = {
        "truncated": (data[:-4], "file truncated"),
        "header_too_long": (struct.pack("<Q", 10_000) + data[8:], r"exceeds the file \("),
        "bad_json": (data[:8] + b"{" + b"x" * (n - 1) + data[8 + n :], "not valid JSON"),
    }

    def with_header(header: object) -> bytes:
        raw = json.dumps(header).encode()
        return struct.pack("<Q", len(raw)) + raw + b"\0" * 32

    cases["shape_mismatch"] = (
        with_header({"w": {"dtype": "F32", "shape": [5], "data_offsets": [0, 16]}}),
        "of F32 needs 20",
    )
    cases["overlap"] = (
        with_header(
            {
                "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
            }
        ),
        "overlap",
    )
    cases["unknown_dtype"] = (
        with_header({"w": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}),
        "unknown dtype `F128`",
    )
    dup = b'{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},' + (
        b'"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}'
    )
    cases["duplicate"] = (struct.pack("<Q", len(dup)) + dup + b"\0", "duplicate tensor name")
    cases["trailing_bytes"] = (data + b"\0" * 4, "4 trailing bytes")
    out: dict[str, tuple[Path, str]] = {}
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(content)
        out[name] = (path, message)
    return out


def test_corrupt_safetensors_is_reported(tmp_path: Path) -> None:
    for name, (path, message) in _corrupt_variants(tmp_path).items():
        dst = tmp_path / "out" / path.name
        with pytest.raises(PerturbUnsupported, match=message) as failure:
            perturb_weights(path, dst)
        assert failure.value.format == "corrupt", name
        assert not dst.exists(), name
        assert not any((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_refuses_to_overwrite_source(st_file: Path) -> None:
    with pytest.raises(ValueError, match="is the source"):
        perturb_weights(st_file, st_file)


# ------------------------------------------------------------------------------ memory


def test_large_file_uses_bounded_memory(tmp_path: Path) -> None:
    src, dst = tmp_path / "big.safetensors", tmp_path / "out.safetensors"
    n_bytes = 64 << 20
    header = json.dumps(
        {"w": {"dtype": "F32", "shape": [n_bytes // 4], "data_offsets": [0, n_bytes]}}
    ).encode()
    block = np.random.default_rng(0).standard_normal(1 << 18).astype("<f4").tobytes()  # 1 MiB
    with src.open("wb") as fh:
        fh.write(struct.pack("<Q", len(header)) + header)
        for _ in range(n_bytes // len(block)):
            fh.write(block)
    tracemalloc.start()
    try:
        perturb_weights(src, dst)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"peak {peak / 2**20:.1f} MiB"
    assert dst.stat().st_size == src.stat().st_size
    with src.open("rb") as a, dst.open("rb") as b:
        a.seek(len(header) + 8 + n_bytes - 4096)
        b.seek(len(header) + 8 + n_bytes - 4096)
        tail_a = np.frombuffer(a.read(), "<f4")
        tail_b = np.frombuffer(b.read(), "<f4")
    assert np.all(tail_a != tail_b)


# ------------------------------------------------------------------------------ fast paths


@pytest.mark.parametrize("dtype", ["<f4", "<f8"])
def test_the_in_place_path_writes_what_the_general_path_writes(dtype: str) -> None:
    from pytest_corrsource.perturb import _float_values, _Noise

    rng = np.random.default_rng(5)
    fi = np.finfo(dtype)
    plain = rng.standard_normal(4096).astype(dtype)
    chunks = {"normal": plain}
    chunks["all_positive"] = np.abs(plain) + 1
    chunks["all_negative"] = -np.abs(plain) - 1
    for label, value in [
        ("zero", 0.0),
        ("negative_zero", -0.0),
        ("nan", np.nan),
        ("inf", np.inf),
        ("negative_inf", -np.inf),
        ("subnormal", fi.smallest_subnormal),
        ("negative_subnormal", -fi.smallest_subnormal),
        ("below_twice_tiny", np.nextafter(2 * fi.tiny, 0, dtype=dtype)),
        ("negative_below_twice_tiny", -np.nextafter(2 * fi.tiny, 0, dtype=dtype)),
        ("huge", fi.max * 0.75),
        ("negative_huge", -fi.max * 0.75),
    ]:
        chunk = plain.copy()
        chunk[100] = value
        chunks[label] = chunk
    for label, chunk in chunks.items():
        noise = _Noise(3, label, 0)
        expected = _float_values(chunk.view(np.uint8), np.dtype(dtype), noise)
        buffer = chunk.copy().view(np.uint8)
        got = _float_values(buffer, np.dtype(dtype), noise, in_place=True)
        assert got.tobytes() == expected.tobytes(), label
        assert not np.array_equal(got.view(dtype)[:100], chunk[:100]), label


@pytest.mark.parametrize("dtype", ["<f4", "<f8"])
@pytest.mark.parametrize("sign", [1, -1])
def test_the_in_place_path_takes_exactly_the_values_it_can_scale(dtype: str, sign: int) -> None:
    """The bounds are inclusive and hold for either sign; one value past them, on either side,
    sends the chunk to the general path untouched."""
    from pytest_corrsource.perturb import _Noise, _scaled_in_place

    fi = np.finfo(dtype)
    signs = np.where(np.arange(256) % 2, 1, -1).astype(dtype)
    base = np.linspace(0.5, 2.0, 256, dtype=dtype) * signs
    assert base.dtype == np.dtype(dtype)
    half_max = np.array(fi.max / 2, dtype=dtype)
    twice_tiny = np.array(2 * fi.tiny, dtype=dtype)
    for value, scaled in [
        (twice_tiny, True),
        (np.nextafter(twice_tiny, 0), False),
        (half_max, True),
        (np.nextafter(half_max, np.inf), False),
    ]:
        chunk = base.copy()
        chunk[7] = sign * value
        before = chunk.copy()
        assert _scaled_in_place(chunk, _Noise(1, "x", 0)) is scaled, (value, sign)
        if scaled:
            assert np.all(chunk != before)
        else:
            assert chunk.tobytes() == before.tobytes()


def big_int_safetensors(path: Path) -> Path:
    """A float tensor between two integer tensors long enough for the kernel copy."""
    save_file(
        {
            "a_ids": np.arange(1 << 16, dtype=np.int64),
            "b_weight": np.random.default_rng(0).standard_normal(1 << 17).astype(np.float32),
            "c_ids": np.arange(1 << 15, dtype=np.int32),
        },
        str(path),
    )
    return path


def test_untouched_spans_are_copied_in_the_kernel_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    src = big_int_safetensors(tmp_path / "m.safetensors")
    calls: list[int] = []
    real = os.copy_file_range

    def spy(*args: int) -> int:
        calls.append(args[2])
        return real(*args)

    monkeypatch.setattr(os, "copy_file_range", spy)
    perturb_weights(src, tmp_path / "out.safetensors")
    assert sum(calls) >= (1 << 19) + (1 << 17)  # both integer tensors went through the kernel
    with safe_open(str(src), "np") as a, safe_open(str(tmp_path / "out.safetensors"), "np") as b:
        for name in ("a_ids", "c_ids"):
            np.testing.assert_array_equal(a.get_tensor(name), b.get_tensor(name))
        assert np.all(a.get_tensor("b_weight") != b.get_tensor("b_weight"))


@pytest.mark.parametrize("failure", ["refused", "short"])
def test_a_kernel_copy_that_fails_or_stops_short_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    import errno
    import os

    src = big_int_safetensors(tmp_path / "m.safetensors")
    perturb_weights(src, tmp_path / "expected.safetensors")
    real = os.copy_file_range

    def broken(src_fd: int, dst_fd: int, count: int, src_at: int, dst_at: int) -> int:
        if failure == "refused":
            raise OSError(errno.EXDEV, "cross-device")
        if count > 4096:  # copy a little, then fail: the rest must still arrive
            real(src_fd, dst_fd, 4096, src_at, dst_at)
            return 4096
        raise OSError(errno.EINVAL, "no more")

    monkeypatch.setattr(os, "copy_file_range", broken)
    perturb_weights(src, tmp_path / "out.safetensors")
    expected = (tmp_path / "expected.safetensors").read_bytes()
    assert (tmp_path / "out.safetensors").read_bytes() == expected


def test_the_bf16_fast_path_writes_what_the_general_path_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pytest_corrsource import perturb

    rng = np.random.default_rng(9)
    chunks = {
        "normal": rng.standard_normal(4096).astype(np.float32),
        "near_tiny": np.full(64, 3e-38, dtype=np.float32),  # just above 2 * tiny
        "near_max": np.full(64, 1.6e38, dtype=np.float32),  # just below max / 2
    }
    for label, values in chunks.items():
        raw = (values.view(np.uint32) >> np.uint32(16)).astype("<u2").view(np.uint8)
        noise = perturb._Noise(3, label, 0)
        fast = perturb._bf16_values(raw.copy(), noise)
        with monkeypatch.context() as patched:
            patched.setattr(perturb, "_scaled_in_place", lambda x, rng: False)
            general = perturb._bf16_values(raw.copy(), noise)
        assert fast.tobytes() == general.tobytes(), label
        assert np.all(fast.view("<u2") != raw.view("<u2")), label
