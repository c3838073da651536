"""Static pickle scanner. Nothing here is ever unpickled: malicious streams are built as bytes
(or by pickling references to harmless stand-ins) and only disassembled."""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import stand_in_torch

from pytest_corrsource.formats.pickle_scan import (
    SAFE_GLOBALS,
    UNRESOLVED_STACK_GLOBAL,
    looks_like_pickle,
    scan_pickle_file,
)

EVIL_PROTO0 = b"cos\nsystem\n(S'echo hi'\ntR."
EVIL_INST = b"(S'echo hi'\nios\nsystem\n."


def short_str(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE


# protocol 4: "builtins" and "eval" are memoized, popped, fetched back with BINGET, then
# resolved by STACK_GLOBAL and called.
EVIL_STACK_GLOBAL = (
    b"\x80\x04"
    + short_str("builtins")
    + b"\x94"
    + b"0"  # MEMOIZE -> 0, POP
    + short_str("eval")
    + b"\x94"
    + b"0"  # MEMOIZE -> 1, POP
    + b"h\x00h\x01\x93"  # BINGET 0, BINGET 1, STACK_GLOBAL
    + short_str("1+1")
    + b"\x85R."  # TUPLE1, REDUCE, STOP
)


def write(tmp_path: Path, content: bytes, name: str = "model.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("protocol", range(6))
def test_plain_data_is_safe(tmp_path: Path, protocol: int) -> None:
    data = pickle.dumps({"a": [1, 2.5, None], "b": ("x", b"y"), "c": {1, 2}}, protocol=protocol)
    scan = scan_pickle_file(write(tmp_path, data))
    assert scan.errors == ()
    assert set(scan.globals) <= {"builtins.set", "_codecs.encode"}
    assert scan.members == ("model.bin",)
    assert scan.safe


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_ordered_dict_and_numpy_are_safe(tmp_path: Path, protocol: int) -> None:
    obj = collections.OrderedDict(w=np.arange(4, dtype=np.float32), n=np.float64(1.5))
    scan = scan_pickle_file(write(tmp_path, pickle.dumps(obj, protocol=protocol)))
    assert scan.safe, scan
    assert "collections.OrderedDict" in scan.globals
    assert "numpy.ndarray" in scan.globals


def test_os_system_protocol_0(tmp_path: Path) -> None:
    scan = scan_pickle_file(write(tmp_path, EVIL_PROTO0))
    assert scan.globals == ("os.system",)
    assert scan.unsafe == ("os.system",)
    assert scan.errors == ()
    assert not scan.safe


def test_inst_opcode(tmp_path: Path) -> None:
    scan = scan_pickle_file(write(tmp_path, EVIL_INST))
    assert scan.unsafe == ("os.system",)


def test_posix_system_via_real_pickler(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, ("echo hi",))

    data = pickle.dumps({"x": Evil()}, protocol=2)
    scan = scan_pickle_file(write(tmp_path, data))
    assert scan.unsafe == (f"{os.system.__module__}.system",)


def test_stack_global_through_memo(tmp_path: Path) -> None:
    scan = scan_pickle_file(write(tmp_path, EVIL_STACK_GLOBAL))
    assert scan.globals == ("builtins.eval",)
    assert scan.unsafe == ("builtins.eval",)
    assert scan.errors == ()


def test_memo_overwrite_is_tracked(tmp_path: Path) -> None:
    data = (
        b"\x80\x04"
        + short_str("collections")
        + b"q\x00"
        + b"0"  # BINPUT 0 = "collections", POP
        + short_str("os")
        + b"q\x00"
        + b"0"  # BINPUT 0 = "os" (overwrite), POP
        + b"h\x00"
        + short_str("system")
        + b"\x93"
        + short_str("id")
        + b"\x85R."
    )
    scan = scan_pickle_file(write(tmp_path, data))
    assert scan.unsafe == ("os.system",)


def test_memo_overwrite_with_non_string_is_unresolved(tmp_path: Path) -> None:
    data = (
        b"\x80\x04"
        + short_str("collections")
        + b"q\x00"
        + b"0"
        + b"K\x05q\x00"
        + b"0"  # BINPUT 0 = an int now
        + b"h\x00"
        + short_str("OrderedDict")
        + b"\x93)R."
    )
    scan = scan_pickle_file(write(tmp_path, data))
    assert scan.unsafe == (UNRESOLVED_STACK_GLOBAL,)
    assert not scan.safe


def test_stack_global_with_non_string_operand(tmp_path: Path) -> None:
    data = b"\x80\x04K\x01" + short_str("system") + b"\x93)R."
    scan = scan_pickle_file(write(tmp_path, data))
    assert scan.unsafe == (UNRESOLVED_STACK_GLOBAL,)


def test_python2_names_are_mapped(tmp_path: Path) -> None:
    scan = scan_pickle_file(write(tmp_path, b"\x80\x02c__builtin__\neval\n)R."))
    assert scan.unsafe == ("builtins.eval",)
    scan = scan_pickle_file(write(tmp_path, b"c__builtin__\nset\n)R."))
    assert scan.globals == ("builtins.set",)
    assert scan.safe


def test_extension_registry_is_unsafe(tmp_path: Path) -> None:
    scan = scan_pickle_file(write(tmp_path, b"\x80\x02\x82\x01)R."))
    assert scan.unsafe == ("<extension code 1>",)


def test_get_of_unknown_memo_key_is_an_error(tmp_path: Path) -> None:
    scan = scan_pickle_file(write(tmp_path, b"\x80\x04h\x07."))
    assert scan.errors == ("opcode BINGET at byte 2: memo key 7 was never stored",)


def test_truncated_argument_message(tmp_path: Path) -> None:
    scan = scan_pickle_file(write(tmp_path, b"\x80\x02X\x10\x00\x00\x00abc"))
    assert len(scan.errors) == 1
    assert scan.errors[0].startswith("opcode BINUNICODE at byte 2: ")
    assert "16" in scan.errors[0]
    assert not scan.safe


def test_huge_declared_length_does_not_allocate(tmp_path: Path) -> None:
    data = b"\x80\x04\x8e" + struct.pack("<Q", 2**62) + b"abc"  # BINBYTES8
    scan = scan_pickle_file(write(tmp_path, data))
    assert scan.errors
    assert scan.errors[0].startswith("opcode BINBYTES8 at byte 2: ")


def test_unknown_opcode_in_the_first_pickle(tmp_path: Path) -> None:
    scan = scan_pickle_file(write(tmp_path, b"\x80\x02K\x01\xff."))
    assert scan.errors == ("opcode 0xff at byte 4: unknown opcode",)


def test_trailing_garbage_after_a_complete_pickle_is_never_read(tmp_path: Path) -> None:
    # pickle.load, numpy.load and torch.load read one pickle and stop: bytes after it cannot
    # run, so they are not an error (an unknown opcode there is just data).
    first = pickle.dumps(1, protocol=2)
    scan = scan_pickle_file(write(tmp_path, first + b"\xff\xff"))
    assert scan.errors == ()
    assert scan.safe


def test_truncated_pickle(tmp_path: Path) -> None:
    data = pickle.dumps({"a": 1}, protocol=2)[:-1]
    scan = scan_pickle_file(write(tmp_path, data))
    assert scan.errors == (f"end of data at byte {len(data)}: pickle exhausted before seeing STOP",)


def test_empty_file(tmp_path: Path) -> None:
    scan = scan_pickle_file(write(tmp_path, b""))
    assert scan.errors == ("no pickle found: the data is empty",)


def test_concatenated_pickles_are_all_scanned(tmp_path: Path) -> None:
    data = pickle.dumps(1, protocol=2) + pickle.dumps([2], protocol=2) + EVIL_PROTO0
    scan = scan_pickle_file(write(tmp_path, data))
    assert scan.unsafe == ("os.system",)
    assert scan.errors == ()


def test_mark_misuse_is_an_error(tmp_path: Path) -> None:
    scan = scan_pickle_file(write(tmp_path, b"\x80\x02e."))  # APPENDS without a MARK
    assert scan.errors == ("opcode APPENDS at byte 2: no MARK on the stack",)


def test_pop_across_mark_is_an_error(tmp_path: Path) -> None:
    scan = scan_pickle_file(write(tmp_path, b"\x80\x02K\x01(\x85."))  # TUPLE1 right after MARK
    assert scan.errors == ("opcode TUPLE1 at byte 5: pops 1 items from a stack holding 0",)


# --- torch-like checkpoints --------------------------------------------------------------


def torch_like_pickle(monkeypatch: pytest.MonkeyPatch, *, evil: bool = False) -> bytes:
    """Pickle a state dict the way torch does, against a stand-in ``torch`` module."""
    torch = stand_in_torch(monkeypatch)
    _rebuild_tensor_v2, float_storage = torch.rebuild_tensor_v2, torch.float_storage

    class StorageRef:
        pass

    class Tensor:
        def __reduce__(self) -> tuple[Any, ...]:
            return (
                _rebuild_tensor_v2,
                (StorageRef(), 0, (2, 2), (2, 1), False, collections.OrderedDict()),
            )

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, ("echo hi",))

    class TorchPickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            if isinstance(obj, StorageRef):
                return ("storage", float_storage, "0", "cpu", 4)
            return None

    state: dict[str, object] = collections.OrderedDict(weight=Tensor())
    if evil:
        state["payload"] = Evil()
    buffer = io.BytesIO()
    TorchPickler(buffer, protocol=2).dump(state)
    return buffer.getvalue()


def torch_zip(path: Path, data_pkl: bytes, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", b"little")
        # a raw storage that happens to start like a pickle: never unpickled by torch
        archive.writestr("archive/data/0", b"\x80\x02" + bytes(14))
        archive.writestr("archive/version", b"3\n")
        archive.writestr("archive/.data/serialization_id", b"1234567890")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


def test_torch_zip_benign(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = torch_zip(tmp_path / "pytorch_model.bin", torch_like_pickle(monkeypatch))
    scan = scan_pickle_file(path)
    assert scan.safe, scan
    assert scan.members == ("archive/data.pkl",)
    assert set(scan.globals) == {
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2",
        "torch.FloatStorage",
    }


def test_torch_zip_with_posix_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = torch_zip(tmp_path / "pytorch_model.bin", torch_like_pickle(monkeypatch, evil=True))
    scan = scan_pickle_file(path)
    assert not scan.safe
    assert scan.unsafe == (f"{os.system.__module__}.system",)


def test_torch_zip_other_pickle_member_is_scanned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = torch_zip(
        tmp_path / "model.pt",
        torch_like_pickle(monkeypatch),
        {"archive/extra/blob": b"\x80\x04" + EVIL_STACK_GLOBAL[2:], "notes.pickle": EVIL_PROTO0},
    )
    scan = scan_pickle_file(path)
    assert scan.unsafe == ("builtins.eval", "os.system")
    assert scan.members == ("archive/data.pkl", "archive/extra/blob", "notes.pickle")


def test_torch_zip_broken_member_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = torch_zip(tmp_path / "model.pt", torch_like_pickle(monkeypatch)[:-4])
    scan = scan_pickle_file(path)
    assert len(scan.errors) == 1
    assert scan.errors[0].startswith("member archive/data.pkl: ")


def test_torch_zip_at_archive_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data.pkl", torch_like_pickle(monkeypatch))
        archive.writestr("data/0", b"\x80\x02" + bytes(14))
    scan = scan_pickle_file(path)
    assert scan.safe, scan
    assert scan.members == ("data.pkl",)


def test_torch_legacy_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sys_info = {
        "protocol_version": 1001,
        "little_endian": True,
        "type_sizes": {"short": 2, "int": 4, "long": 4},
    }
    parts = [
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2),
        pickle.dumps(1001, protocol=2),
        pickle.dumps(sys_info, protocol=2),
        torch_like_pickle(monkeypatch),
        pickle.dumps(["0"], protocol=2),
    ]
    raw_storage = struct.pack("<q", 4) + np.arange(4, dtype=np.float32).tobytes() + b"\xff\x00"
    scan = scan_pickle_file(write(tmp_path, b"".join(parts) + raw_storage))
    assert scan.safe, scan
    assert "torch._utils._rebuild_tensor_v2" in scan.globals


def test_truncated_torch_legacy_sequence_is_an_error(tmp_path: Path) -> None:
    data = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
    scan = scan_pickle_file(write(tmp_path, data))
    assert scan.errors == ("torch legacy format: 2 of its 5 pickles present",)


def test_object_npy_is_scanned(tmp_path: Path) -> None:
    path = tmp_path / "obj.npy"
    np.save(path, np.array([os.system, None], dtype=object), allow_pickle=True)
    scan = scan_pickle_file(path)
    assert f"{os.system.__module__}.system" in scan.unsafe
    assert scan.members == ("obj.npy",)


def test_plain_npy_has_nothing_to_scan(tmp_path: Path) -> None:
    path = tmp_path / "w.npy"
    np.save(path, np.zeros(3))
    scan = scan_pickle_file(path)
    assert scan.safe
    assert scan.members == ()


def test_npz_object_member_is_scanned(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    np.savez(path, ok=np.zeros(2), bad=np.array([{"k": 1}], dtype=object))
    scan = scan_pickle_file(path)
    assert scan.members == ("bad.npy",)
    assert scan.safe, scan  # a dict inside an object array only references numpy globals


def test_bad_zip_is_an_error(tmp_path: Path) -> None:
    scan = scan_pickle_file(write(tmp_path, b"PK\x03\x04 broken"))
    assert scan.errors
    assert scan.errors[0].startswith("not a readable zip archive")


def test_missing_file(tmp_path: Path) -> None:
    scan = scan_pickle_file(tmp_path / "absent.bin")
    assert scan.errors
    assert scan.errors[0].startswith("cannot read the file")


def test_allow_list() -> None:
    for name in (
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2",
        "torch.FloatStorage",
        "torch.bfloat16",
        "numpy.core.multiarray._reconstruct",
        "_codecs.encode",
        "torch.storage.UntypedStorage",
        "torch.nn.parameter.Parameter",
    ):
        assert name in SAFE_GLOBALS
    for name in (
        "builtins.eval",
        "posix.system",
        "os.system",
        "builtins.getattr",
        "torch.serialization.load",
        "builtins.frozenset",
    ):
        assert name not in SAFE_GLOBALS


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_looks_like_pickle_true(protocol: int) -> None:
    assert looks_like_pickle(pickle.dumps({"a": [1, 2]}, protocol=protocol))
    assert looks_like_pickle(EVIL_PROTO0)


def test_looks_like_pickle_on_a_window_of_a_large_pickle() -> None:
    data = pickle.dumps(list(range(5000)), protocol=0)
    assert len(data) > 4096
    assert looks_like_pickle(data[:4096])


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"hello world",
        b'{"weight_map": {}}',
        b"(c) 2024 Example\nAll rights\n",
        b"I am a README\n",
        b"\x80\x09",
        b"\x89PNG\r\n",
        pickle.dumps([1], protocol=0)[:-1],
    ],
)
def test_looks_like_pickle_false(head: bytes) -> None:
    assert not looks_like_pickle(head)


def test_zip_member_with_empty_name(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo(""), EVIL_PROTO0)
    assert scan_pickle_file(path).unsafe == ("os.system",)
