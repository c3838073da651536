"""The rewrite engine every format goes through: chunks of many regions on worker threads.

Long tensors (several chunks, a short last one) written with one worker and with several must
be byte-identical; each zip member's CRC is combined from its chunks' CRCs; an error on any
worker fails the modification with its reason, leaves no partial output and no thread behind.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import stand_in_torch
from safetensors.numpy import save_file

from pytest_corrsource import perturb
from pytest_corrsource.formats.tensors import open_tensors
from pytest_corrsource.perturb import CHUNK_BYTES, PerturbUnsupported, perturb_weights

#: element counts: several chunks with a short last one, exactly one chunk, and a small one
SIZES = {"big": (CHUNK_BYTES * 3 + 4_000) // 4, "one": CHUNK_BYTES // 4, "small": 10}


def torch_like_zip(path: Path, monkeypatch: pytest.MonkeyPatch, sizes: dict[str, int]) -> Path:
    """A torch zip checkpoint of float32 vectors, pickled as torch.save does against a
    stand-in ``torch`` module (torch is not in the test extra); the storages are random."""
    with monkeypatch.context() as patched:
        torch = stand_in_torch(patched)
        rebuild, float_storage = torch.rebuild_tensor_v2, torch.float_storage

        class StorageRef:
            def __init__(self, key: str, numel: int) -> None:
                self.key, self.numel = key, numel

        class Tensor:
            def __init__(self, key: str, numel: int) -> None:
                self.ref = StorageRef(key, numel)

            def __reduce__(self) -> tuple[Any, ...]:
                args: tuple[object, ...] = (
                    self.ref,
                    0,
                    (self.ref.numel,),
                    (1,),
                    False,
                    collections.OrderedDict(),
                )
                return (rebuild, args)

        class TorchPickler(pickle.Pickler):
            def persistent_id(self, obj: object) -> object:
                if isinstance(obj, StorageRef):
                    return ("storage", float_storage, obj.key, "cpu", obj.numel)
                return None

        state = collections.OrderedDict(
            (name, Tensor(str(i), numel)) for i, (name, numel) in enumerate(sizes.items())
        )
        buffer = io.BytesIO()
        TorchPickler(buffer, protocol=2).dump(state)
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        archive.writestr("archive/byteorder", b"little")
        for i, numel in enumerate(sizes.values()):
            values = rng.standard_normal(numel).astype("<f4")
            archive.writestr(f"archive/data/{i}", values.tobytes())
        archive.writestr("archive/version", b"3\n")
    return path


def test_a_torch_zip_of_long_storages_gets_the_crc_of_every_member_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = torch_like_zip(tmp_path / "ck.pt", monkeypatch, SIZES)
    dst = tmp_path / "out.pt"
    result = perturb_weights(src, dst)
    assert set(result.changed) == set(SIZES)
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst) as b:
        assert b.testzip() is None  # every member's CRC matches its new bytes
        for i, numel in enumerate(SIZES.values()):
            old = np.frombuffer(a.read(f"archive/data/{i}"), "<f4")
            new = np.frombuffer(b.read(f"archive/data/{i}"), "<f4")
            assert new.size == numel
            assert np.all(old != new)
        assert a.read("archive/data.pkl") == b.read("archive/data.pkl")


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_the_output_does_not_depend_on_the_number_of_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    rng = np.random.default_rng(1)
    src = tmp_path / "m.safetensors"
    save_file({name: rng.standard_normal(n).astype(np.float32) for name, n in SIZES.items()}, src)
    perturb_weights(src, tmp_path / "alone.safetensors")  # this machine's worker count
    monkeypatch.setattr(perturb, "_workers", lambda: workers)
    perturb_weights(src, tmp_path / "out.safetensors")
    assert (tmp_path / "out.safetensors").read_bytes() == (
        tmp_path / "alone.safetensors"
    ).read_bytes()
    torch_src = torch_like_zip(tmp_path / "ck.pt", monkeypatch, SIZES)
    perturb_weights(torch_src, tmp_path / f"ck-{workers}.pt")
    monkeypatch.setattr(perturb, "_workers", lambda: 1)
    perturb_weights(torch_src, tmp_path / "ck-1.pt")
    assert (tmp_path / f"ck-{workers}.pt").read_bytes() == (tmp_path / "ck-1.pt").read_bytes()


def _perturb_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("perturb")]


def test_an_error_on_a_worker_fails_the_copy_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(2)
    src = tmp_path / "m.safetensors"
    save_file({"big": rng.standard_normal(SIZES["big"]).astype(np.float32)}, src)
    real = perturb._transform

    def failing(kind: Any, raw: Any, seed: int, name: str, chunk: int, **kw: Any) -> Any:
        if chunk == 2:
            raise PerturbUnsupported("chunk 2 failed", format="corrupt")
        return real(kind, raw, seed, name, chunk, **kw)

    monkeypatch.setattr(perturb, "_transform", failing)
    with pytest.raises(PerturbUnsupported, match="chunk 2 failed"):
        perturb_weights(src, tmp_path / "out" / "m.safetensors")
    assert os.listdir(tmp_path / "out") == []  # no partial file, no temporary
    assert _perturb_threads() == []


def test_a_source_that_ends_early_is_a_corrupt_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file shrinks after its layout was read (another process truncated it): the read
    that comes back short names the file and the tensor, never a crash or a short copy."""
    rng = np.random.default_rng(3)
    src = tmp_path / "m.safetensors"
    save_file({"big": rng.standard_normal(SIZES["big"]).astype(np.float32)}, src)
    real = os.preadv

    def shrunk(fd: int, buffers: list[memoryview], offset: int) -> int:
        return 0 if offset > CHUNK_BYTES * 2 else real(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", shrunk)
    with pytest.raises(PerturbUnsupported, match=r"unexpected end of file of m\.safetensors in"):
        perturb_weights(src, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()
    assert _perturb_threads() == []


def test_regions_are_read_back_with_the_reader_after_the_copy(tmp_path: Path) -> None:
    """Many small tensors and one long one in the same file: every float tensor changes and
    every other byte is the source's."""
    rng = np.random.default_rng(4)
    tensors: dict[str, np.ndarray[Any, Any]] = {
        f"t{i:03}": rng.standard_normal(50).astype(np.float32) for i in range(200)
    }
    tensors["long"] = rng.standard_normal(SIZES["big"]).astype(np.float32)
    tensors["ids"] = np.arange(1000, dtype=np.int64)
    src = tmp_path / "m.safetensors"
    save_file(tensors, src)
    perturb_weights(src, tmp_path / "out.safetensors")
    old, new = open_tensors(src), open_tensors(tmp_path / "out.safetensors")
    for name in tensors:
        if name == "ids":
            assert np.array_equal(old.raw(name), new.raw(name))
        else:
            assert np.all(old.values(name) != new.values(name)), name


@pytest.mark.parametrize("weights_only", [True, False])
def test_torch_loads_a_modified_checkpoint_of_long_tensors(
    tmp_path: Path, weights_only: bool
) -> None:
    """torch.save's own file (64-byte aligned members, its record order), with tensors of
    several chunks: torch.load reads the copy with the same keys, dtypes, shapes and strides
    and every float value changed; torch does not check the members' CRCs, zipfile does."""
    torch = pytest.importorskip("torch")
    generator = torch.Generator().manual_seed(0)
    state = {
        "long": torch.randn(SIZES["big"], generator=generator),
        "matrix": torch.randn(700, 900, generator=generator).t(),  # a strided view
        "half": torch.randn(SIZES["one"], generator=generator).half(),
        "step": torch.tensor(7),
    }
    src, dst = tmp_path / "ck.pt", tmp_path / "out.pt"
    torch.save(state, src)
    perturb_weights(src, dst)
    with zipfile.ZipFile(dst) as archive:
        assert archive.testzip() is None
    before = torch.load(src, weights_only=weights_only)
    after = torch.load(dst, weights_only=weights_only)
    assert before.keys() == after.keys()
    for key, old in before.items():
        new = after[key]
        assert (old.dtype, old.shape, old.stride()) == (new.dtype, new.shape, new.stride())
        if old.is_floating_point():
            assert bool((old != new).all()), key
        else:
            assert torch.equal(old, new)


def test_weights_swapped_for_a_fifo_after_their_layout_was_read_are_refused_not_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostile step could swap the file between the layout read and the copy: opening a
    FIFO for reading waits for a writer forever; the copy refuses it at once instead."""
    rng = np.random.default_rng(5)
    src = tmp_path / "m.safetensors"
    save_file({"w": rng.standard_normal(100).astype(np.float32)}, src)
    from pytest_corrsource.formats.safetensors import read_safetensors_layout as real

    def swapped(path: Path) -> Any:
        layout = real(path)
        path.unlink()
        os.mkfifo(path)
        return layout

    monkeypatch.setattr(perturb, "read_safetensors_layout", swapped)
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            perturb_weights(src, tmp_path / "out.safetensors")
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=attempt, daemon=True)  # daemon: a regression blocks it
    thread.start()
    thread.join(timeout=30)
    assert outcome, "perturb_weights blocked on the FIFO"
    assert isinstance(outcome[0], OSError)
    assert "is a FIFO (named pipe), not a regular file" in str(outcome[0])
    assert not (tmp_path / "out.safetensors").exists()


def test_an_interrupt_while_waiting_for_the_helpers_still_waits_for_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the calling thread waits for a helper: the helper is still waited for
    (it would otherwise write through a descriptor the copy is about to close), then the
    interrupt goes on."""
    rng = np.random.default_rng(6)
    src = tmp_path / "m.safetensors"
    save_file({"big": rng.standard_normal(SIZES["big"]).astype(np.float32)}, src)
    monkeypatch.setattr(perturb, "_workers", lambda: 2)
    release = threading.Event()
    real_transform = perturb._transform

    def held(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is not threading.main_thread():
            release.wait()  # the helper holds its chunk until the interrupt has happened
        return real_transform(*args, **kwargs)

    real_join = threading.Thread.join
    joins: list[str] = []

    def interrupted_join(self: threading.Thread, timeout: float | None = None) -> None:
        joins.append(self.name)
        if len(joins) == 1:
            raise KeyboardInterrupt
        release.set()
        real_join(self, timeout)

    monkeypatch.setattr(perturb, "_transform", held)
    monkeypatch.setattr(threading.Thread, "join", interrupted_join)
    try:
        with pytest.raises(KeyboardInterrupt):
            perturb_weights(src, tmp_path / "out.safetensors")
        assert _perturb_threads() == []  # waited for, not left writing
    finally:
        release.set()  # a regression must not leave the helper blocked forever
    assert len(joins) >= 2
    assert not (tmp_path / "out.safetensors").exists()


def test_regions_that_overlap_or_pass_the_end_are_a_corrupt_layout(tmp_path: Path) -> None:
    """Every reader proves its layout first; the engine still refuses one it cannot honour."""
    src = tmp_path / "m.bin"
    src.write_bytes(bytes(1000))
    kind = perturb._Kind("float", np.dtype("<f4"))
    layouts = {
        "overlap": [perturb._Region(0, 400, kind, "a"), perturb._Region(200, 400, kind, "b")],
        "past the end": [perturb._Region(800, 400, kind, "c")],
    }
    for label, regions in layouts.items():
        with pytest.raises(PerturbUnsupported) as refused:
            perturb._rewrite_regions(src, tmp_path / "out.bin", regions, 0)
        assert refused.value.format == "corrupt", label
        expected = {"overlap": "'b'", "past the end": "'c'"}[label]
        assert str(refused.value) == (
            f"m.bin: region {expected} overlaps another or the end of the file"
        ), label
        assert not (tmp_path / "out.bin").exists()


def test_a_source_that_ends_early_in_an_untouched_span_is_a_corrupt_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same as a short read inside a tensor, for the bytes copied as they are (when the
    kernel copy is refused and the read/write fallback meets the end of the file)."""
    rng = np.random.default_rng(7)
    src = tmp_path / "m.safetensors"
    save_file({"ids": np.arange(1 << 17, dtype=np.int64), "w": rng.standard_normal(8)}, src)
    monkeypatch.delattr(os, "copy_file_range", raising=False)
    real = os.preadv
    monkeypatch.setattr(
        os, "preadv", lambda fd, buffers, offset: 0 if offset > 4096 else real(fd, buffers, offset)
    )
    with pytest.raises(PerturbUnsupported, match=r"unexpected end of file of m\.safetensors while"):
        perturb_weights(src, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()
