"""Hostile weights files: every entry point refuses them with a message, none crashes or hangs.

Each file is built by hand (a few KiB) and read in a subprocess limited to 2 GiB of address
space with a 60 s timeout, through every entry point a check uses: ``read_schema``,
``open_tensors(...).raw`` and ``.values`` for each tensor, and ``perturb_weights``. The only
acceptable outcomes are success, or a FormatError (UnreadableTensors) / PerturbUnsupported /
OSError whose message is asserted; a MemoryError, ValueError or a killed process is a defect.

Defects found (each test below failed on the code before its fix):

* shapes numpy cannot hold — ``[0, 2**64 - 1]`` (zero elements, valid for safetensors and GGUF)
  or more than 64 dimensions — made ``raw``/``values`` raise ValueError;
* a torch view of stride 0 over one stored element declaring ``2**40`` elements made ``raw``
  allocate 4 TiB (MemoryError);
* a torch zip whose central directory claims a 2 GiB storage member in a 300-byte file passed
  ``read_schema`` and made ``raw`` allocate 2 GiB before reading (MemoryError);
* ``perturb_weights`` of a compressed joblib file into a folder that does not exist yet raised
  FileNotFoundError (every other format creates it): the joblib cases below failed on it;
* a 4 KiB torch zip whose deflated data.pkl inflates to 4 MB of two-byte opcodes took about
  15 s per reading (a minute for the entry points together): a compressed data.pkl may now
  exceed 1 MiB only at up to 16x (torch.save never compresses it). Its byteorder member, read
  whole into memory, may be at most 16 bytes (hardening: no crash at the size tested here).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from test_format_torch_tar import Ref, Storage, Tensor, torch_tar

FIXTURES = Path(__file__).parent / "fixtures"

#: Runs every entry point on argv[1]; prints one [entry, outcome, message] row per call.
_PROBE = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from pathlib import Path
from pytest_corrsource.formats.tensors import open_tensors, read_schema
from pytest_corrsource.perturb import perturb_weights

path = Path(sys.argv[1])
rows = []

def attempt(entry, call):
    try:
        call()
    except BaseException as exc:  # the parent decides which exceptions are acceptable
        kind = "OSError" if isinstance(exc, OSError) else type(exc).__name__
        rows.append([entry, kind, f"{type(exc).__name__}: {exc}"])
    else:
        rows.append([entry, "ok", ""])

attempt("read_schema", lambda: read_schema(path))
try:
    tensors = open_tensors(path)
except Exception:
    tensors = None
if tensors is not None:
    for name in tensors.entries:
        attempt("raw", lambda: tensors.raw(name))
        attempt("values", lambda: tensors.values(name))
attempt("perturb_weights", lambda: perturb_weights(path, Path(sys.argv[2])))
print(json.dumps(rows))
"""

ACCEPTABLE = {
    "ok",
    "FormatError",
    "UnreadableTensors",
    "UnsupportedFeature",  # pickle_values: a FormatError saying the plugin does not read it
    "PerturbUnsupported",
    "OSError",
}


def probe(path: Path) -> dict[str, list[tuple[str, str]]]:
    """entry point -> [(outcome, message)] for the file at ``path``, read in a bounded child."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), str(path.parent / "out" / path.name)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, f"the reader died ({done.returncode}): {done.stderr[-2000:]}"
    rows = json.loads(done.stdout.splitlines()[-1])
    outcomes: dict[str, list[tuple[str, str]]] = {}
    for entry, outcome, message in rows:
        assert outcome in ACCEPTABLE, f"{entry}: {outcome}: {message}"
        outcomes.setdefault(entry, []).append((outcome, message))
    return outcomes


@dataclass(frozen=True)
class Expect:
    """Per entry point: None for success, else a regex the refusal's message must match.
    ``tensors`` applies to every ``raw`` and ``values`` call (there are none when the schema
    is refused)."""

    schema: str | None
    tensors: str | None = None
    perturb: str | None = None


def check(path: Path, expect: Expect) -> None:
    outcomes = probe(path)
    wanted = {"read_schema": expect.schema, "perturb_weights": expect.perturb}
    if expect.schema is None:
        assert outcomes.get("raw"), "the schema was read but no tensor was"
        wanted |= {"raw": expect.tensors, "values": expect.tensors}
    else:
        assert "raw" not in outcomes
    for entry, pattern in wanted.items():
        for outcome, message in outcomes[entry]:
            if pattern is None:
                assert outcome == "ok", f"{entry}: {outcome}: {message}"
            else:
                assert outcome != "ok", f"{entry} accepted the file"
                assert re.search(pattern, message), f"{entry}: {message!r} !~ {pattern!r}"


# ------------------------------------------------------------------------ hand-built files


def safetensors(header: dict[str, object], data: bytes = b"", length: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def st_tensor(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, object]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def gguf_string(value: str, length: int | None = None) -> bytes:
    raw = value.encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw


def gguf(
    tensors: list[tuple[str, list[int], int, int]],
    kvs: bytes = b"",
    kv_count: int = 0,
    *,
    tensor_count: int | None = None,
    data: bytes = b"",
) -> bytes:
    """GGUF v3 (ggml docs/gguf.md): magic, version, tensor count, kv count, kvs, tensor infos
    (name, n_dims, dims, ggml type, offset), padding to 32, data."""
    count = len(tensors) if tensor_count is None else tensor_count
    out = b"GGUF" + struct.pack("<IQQ", 3, count, kv_count) + kvs
    for name, dims, ggml_type, offset in tensors:
        out += gguf_string(name) + struct.pack(
            f"<I{len(dims)}QIQ", len(dims), *dims, ggml_type, offset
        )
    return out + b"\0" * (-len(out) % 32) + data


def pickle_int(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if 0 <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def pickle_text(value: str) -> bytes:
    raw = value.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def pickle_ints(values: tuple[int, ...]) -> bytes:
    return b"(" + b"".join(pickle_int(v) for v in values) + b"t"


def torch_zip(
    shape: tuple[int, ...], stride: tuple[int, ...], numel: int, storage: bytes
) -> Callable[[Path], None]:
    """A torch.save zip: ``{"w": _rebuild_tensor_v2(FloatStorage '0' of numel, 0, shape,
    stride, False, OrderedDict())}``, ``storage`` as the stored member ``archive/data/0``."""
    pkl = (
        b"\x80\x02}"
        + pickle_text("w")
        + b"ctorch._utils\n_rebuild_tensor_v2\n("
        + b"("
        + pickle_text("storage")
        + b"ctorch\nFloatStorage\n"
        + pickle_text("0")
        + pickle_text("cpu")
        + pickle_int(numel)
        + b"tQ"  # TUPLE, BINPERSID
        + pickle_int(0)
        + pickle_ints(shape)
        + pickle_ints(stride)
        + b"\x89ccollections\nOrderedDict\n)Rt"  # False, OrderedDict(), TUPLE
        + b"Rs."  # REDUCE, SETITEM, STOP
    )

    def write(path: Path) -> None:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", pkl)
            archive.writestr("archive/byteorder", "little")
            archive.writestr("archive/data/0", storage)

    return write


def write_bytes(content: bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(content)

    return write


def pickled_array(shape: tuple[int, ...], payload: bytes) -> Callable[[Path], None]:
    """A protocol-3 pickle of ``{"w": float32 array}`` (numpy's ``_reconstruct`` + BUILD
    state) whose shape is ``shape`` and whose BINBYTES payload is ``payload``."""
    template = pickle.dumps({"w": np.zeros(3, dtype=np.float32)}, protocol=3)
    declared = b"K\x03\x85"  # the shape (3,): BININT1 3, TUPLE1
    payload_at = template.index(b"C\x0c" + bytes(12))  # SHORT_BINBYTES of 12 zero bytes
    assert template.count(declared) == 1
    head, tail = template[:payload_at], template[payload_at + 14 :]
    head = head.replace(declared, pickle_ints(shape))
    return write_bytes(head + b"B" + struct.pack("<I", len(payload)) + payload + tail)


def zlib_of(build: Callable[[Path], None]) -> Callable[[Path], None]:
    """What ``build`` writes, as joblib's zlib compressor writes it (one zlib stream)."""

    def write(path: Path) -> None:
        build(path)
        path.write_bytes(zlib.compress(path.read_bytes()))

    return write


def tar_view(shape: tuple[int, ...], stride: tuple[int, ...]) -> Callable[[Path], None]:
    storages = [Storage(1, "FloatStorage", np.zeros(1, dtype=np.float32))]
    tensors = [Tensor(2, 1, shape, stride)]
    return write_bytes(torch_tar(storages, tensors, {"w": Ref(2)}))


def deflated_members(members: dict[str, bytes]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in members.items():
                archive.writestr(name, data)

    return write


def oversized_central_directory(path: Path) -> None:
    """A torch zip whose central directory claims ``archive/data/0`` holds 2 GiB (as the
    pickle needs) while the member holds 16 bytes and the file about 300."""
    torch_zip((2**29,), (1,), 2**29, bytes(16))(path)
    data = bytearray(path.read_bytes())
    record = 0
    while True:
        record = data.index(b"PK\x01\x02", record)
        (name_length,) = struct.unpack("<H", data[record + 28 : record + 30])
        if data[record + 46 : record + 46 + name_length] == b"archive/data/0":
            break
        record += 4
    data[record + 20 : record + 28] = struct.pack("<II", 2**31, 2**31)  # compressed, size
    path.write_bytes(bytes(data))


# ------------------------------------------------------------------------ defects (fixed)

NUMPY_CANNOT_HOLD = (
    r"cannot read tensors of format \S+: 'w' has shape .*(too large for numpy|at most 64)"
)

DEFECTS: dict[str, tuple[str, Callable[[Path], None], Expect]] = {
    "safetensors zero elements of 2**64-1": (
        "w.safetensors",
        write_bytes(safetensors({"w": st_tensor("F32", [0, 2**64 - 1], 0, 0)})),
        Expect(None, NUMPY_CANNOT_HOLD),
    ),
    "safetensors 100 dimensions": (
        "w.safetensors",
        write_bytes(safetensors({"w": st_tensor("F32", [1] * 100, 0, 4)}, bytes(4))),
        Expect(None, NUMPY_CANNOT_HOLD),
    ),
    "gguf zero elements of 2**62": (
        "w.gguf",
        write_bytes(gguf([("w", [0, 2**62], 0, 0)])),
        Expect(None, NUMPY_CANNOT_HOLD),
    ),
    "torch zip zero elements of 2**70": (
        "w.pt",
        torch_zip((0, 2**70), (1, 1), 1, bytes(4)),
        Expect(None, NUMPY_CANNOT_HOLD),
    ),
    "pickled array zero elements of 2**70": (
        "w.pkl",
        pickled_array((0, 2**70), b""),
        Expect(None, NUMPY_CANNOT_HOLD),
    ),
    "torch zip stride-0 view of 2**40 elements": (
        "w.pt",
        torch_zip((2**20, 2**20), (0, 0), 1, bytes(4)),
        Expect(None, r"'w' is a view of 4 stored bytes that reads as 4398046511104 bytes"),
    ),
    "torch tar stride-0 view of 2**40 elements": (
        "w.pt",
        tar_view((2**40,), (0,)),
        Expect(None, r"'w' is a view of 4 stored bytes that reads as 4398046511104 bytes"),
    ),
    "torch zip storage oversized by the central directory": (
        "w.pt",
        oversized_central_directory,
        Expect(
            r"storage '0' \(archive/data/0\) needs 2147483648 bytes at byte \d+, past the "
            r"zip's central directory",
            perturb=r"needs 2147483648 bytes",
        ),
    ),
    # 2,000,000 (NONE, POP) pairs: 4 MB of opcodes in a 4 KiB file; about 15 s per reading,
    # and every entry point reads it (the old code hit the 60 s timeout)
    "torch zip deflated data.pkl of 4 million opcodes": (
        "w.pt",
        deflated_members({"archive/data.pkl": b"\x80\x02" + b"N0" * 2_000_000 + b"}."}),
        Expect(r"data.pkl is compressed \d+ -> 4000004 bytes \(over 16x\)", perturb="over 16x"),
    ),
    # inflated in memory before being compared with `little`: 2 GiB took a 2 MiB file
    "torch zip deflated byteorder of 16 MiB": (
        "w.pt",
        deflated_members(
            {"archive/data.pkl": b"\x80\x02}.", "archive/byteorder": b"little" + b" " * (16 << 20)}
        ),
        Expect(r"byteorder is 16777222 bytes, not `little` or `big`", perturb="byteorder is"),
    ),
}


@pytest.mark.parametrize("case", DEFECTS)
def test_defects_found_are_refused_with_a_message(tmp_path: Path, case: str) -> None:
    name, build, expect = DEFECTS[case]
    path = tmp_path / name
    build(path)
    check(path, expect)


def test_an_expanded_view_within_the_ratio_is_still_read(tmp_path: Path) -> None:
    """The stride-0 bound refuses only views over 1000x their bytes (and over 1 GiB)."""
    path = tmp_path / "w.pt"
    torch_zip((2, 3), (0, 1), 3, np.arange(3, dtype=np.float32).tobytes())(path)
    check(path, Expect(None))
    from pytest_corrsource.formats.tensors import open_tensors

    with open_tensors(path) as tensors:
        assert tensors.values("w").tolist() == [[0, 1, 2], [0, 1, 2]]


def test_a_file_that_shrank_since_it_was_described_is_checked_before_allocating(
    tmp_path: Path,
) -> None:
    """``raw`` checks the bytes are in the file now: np.fromfile allocates its count first."""
    from pytest_corrsource.formats import FormatError
    from pytest_corrsource.formats.tensors import open_tensors

    path = tmp_path / "w.safetensors"
    path.write_bytes(safetensors({"w": st_tensor("F32", [4], 0, 16)}, bytes(16)))
    with open_tensors(path) as tensors:
        path.write_bytes(path.read_bytes()[:-8])
        with pytest.raises(FormatError, match=r"'w' needs 16 bytes at byte \d+ but w.safetensors"):
            tensors.raw("w")


# ------------------------------------------------------------------------ families found safe

KV_ALIGNMENT_0 = gguf_string("general.alignment") + struct.pack("<II", 4, 0)
KV_HUGE_STRING = gguf_string("general.name") + struct.pack("<I", 8) + gguf_string("", 2**63)
KV_HUGE_ARRAY = gguf_string("a") + struct.pack("<IIQ", 9, 0, 2**62)

SAFE: dict[str, tuple[str, Callable[[Path], None], Expect]] = {
    "safetensors header length 2**63": (
        "w.safetensors",
        write_bytes(safetensors({}, length=2**63)),
        # detection already declines a length no safetensors file has: the file is opaque
        Expect(r"cannot read tensors of format opaque", perturb=r"unknown format"),
    ),
    "safetensors header longer than the file": (
        "w.safetensors",
        write_bytes(safetensors({}, length=99_999_999)),
        Expect(r"header length 99999999 exceeds the file"),
    ),
    "safetensors offsets past the end": (
        "w.safetensors",
        write_bytes(safetensors({"w": st_tensor("F32", [2**28], 0, 2**30)}, bytes(16))),
        Expect(r"file truncated: tensors end at byte \d+ but the file has only"),
    ),
    "safetensors shape product overflows": (
        "w.safetensors",
        write_bytes(safetensors({"w": st_tensor("F32", [2**32, 2**32, 2**32], 0, 0)})),
        Expect(r"shape \[4294967296, 4294967296, 4294967296\] overflows 64-bit size"),
    ),
    "gguf alignment 0": (
        "w.gguf",
        write_bytes(gguf([], KV_ALIGNMENT_0, 1)),
        Expect(r"general.alignment 0 is not a power of two"),
    ),
    "gguf string length 2**63": (
        "w.gguf",
        write_bytes(gguf([], KV_HUGE_STRING, 1)),
        Expect(r"is 9223372036854775808 bytes long but only \d+ bytes remain"),
    ),
    "gguf array count 2**62": (
        "w.gguf",
        write_bytes(gguf([], KV_HUGE_ARRAY, 1)),
        Expect(r"claims 4611686018427387904 items but only \d+ bytes remain"),
    ),
    "gguf tensor count 2**62": (
        "w.gguf",
        write_bytes(gguf([], tensor_count=2**62)),
        Expect(r"tensor count 4611686018427387904 cannot fit"),
    ),
    "gguf dims multiplying past int64": (
        "w.gguf",
        write_bytes(gguf([("w", [2**31, 2**31, 2**31], 0, 0)])),
        Expect(r"tensor `w`: element count overflows int64"),
    ),
    "gguf data past the end": (
        "w.gguf",
        write_bytes(gguf([("w", [2**28], 0, 0)], data=bytes(16))),
        Expect(r"tensor `w`: data ends at byte \d+ but the file has only \d+ bytes"),
    ),
    "torch zip numel 2**61": (
        "w.pt",
        torch_zip((2,), (1,), 2**61, bytes(8)),
        Expect(r"storage '0' \(archive/data/0\) is 8 bytes \(stored\), the pickle needs"),
    ),
    "torch zip view past its storage": (
        "w.pt",
        torch_zip((2**30,), (2**30,), 1, bytes(4)),
        Expect(r"tensor 'w' reaches past the end of storage '0'"),
    ),
    "torch tar view past its storage": (
        "w.pt",
        tar_view((2, 2), (2**40, 1)),
        Expect(r"tensor 'w' reaches past the end of storage '1'"),
    ),
    "pickled array shape beyond its payload": (
        "w.pkl",
        pickled_array((2**40,), bytes(16)),
        Expect(r"array 'w': 16 bytes for <f4\[1099511627776\]"),
    ),
    "joblib zlib stream cut short": (
        "w.joblib",
        write_bytes((FIXTURES / "sklearn_mlp.joblib.zlib").read_bytes()[:200]),
        Expect(r"cannot decompress the zlib stream|bad pickle opcode .* but only \d+ remain"),
    ),
    "joblib zlib stream of an array shaped beyond its payload": (
        "w.joblib",
        zlib_of(pickled_array((2**40,), bytes(16))),
        Expect(r"array 'w': 16 bytes for <f4\[1099511627776\]"),
    ),
}


@pytest.mark.parametrize("case", SAFE)
def test_families_already_safe_stay_refused(tmp_path: Path, case: str) -> None:
    name, build, expect = SAFE[case]
    path = tmp_path / name
    build(path)
    if expect.perturb is None and expect.schema is not None:
        expect = Expect(expect.schema, perturb=expect.schema)
    check(path, expect)


def test_a_zip_end_record_spanning_disks_is_scanned_not_raised(tmp_path: Path) -> None:
    """zipfile.is_zipfile raises BadZipFile (it does not return False) for a zip64 end-of-
    central-directory locator whose disk number is not 0; the pickle scanner let it escape
    (found by tests/test_format_torch_archive.py's mutation test: two bytes changed)."""
    from pytest_corrsource.formats.pickle_scan import scan_weights_file

    data = bytearray((FIXTURES / "torch_state_dict.pt").read_bytes())
    data[0] = 0  # not a zip by its first bytes: the end record decides
    locator = data.rindex(b"PK\x06\x07")  # torch writes zip64 records
    data[locator + 4 : locator + 8] = struct.pack("<I", 1)  # "disk with the zip64 record"
    path = tmp_path / "w.pt"
    path.write_bytes(bytes(data))
    scan = scan_weights_file(path, claims_pickle=True)
    assert not scan.safe
    check(path, Expect(r"cannot read tensors of format \w+", perturb=r"unknown format|pickle"))


def test_a_compressed_joblib_opcode_bomb_is_refused_within_its_budget(tmp_path: Path) -> None:
    """1.6 KB of xz inflate to a pickle of 600,000 opcodes: evaluation costs microseconds per
    opcode, and such files took minutes through the entry points. A decompressed stream may
    take 16 opcodes per compressed byte (real models: about 0.04), at least 250,000."""
    import lzma

    from pytest_corrsource.formats import FormatError
    from pytest_corrsource.formats.tensors import read_schema
    from pytest_corrsource.perturb import PerturbUnsupported, perturb_weights

    pickle_bytes = b"\x80\x04" + b"N0" * 300_000 + b"N."  # 600,002 opcodes, no array
    bomb = tmp_path / "bomb.joblib.xz"
    bomb.write_bytes(lzma.compress(pickle_bytes, format=lzma.FORMAT_XZ, preset=9))
    assert bomb.stat().st_size * 16 < 250_000  # so the floor applies
    limit = "more than 250000 opcodes"
    with pytest.raises(FormatError, match=limit):
        read_schema(bomb)
    with pytest.raises(PerturbUnsupported, match=rf"cannot modify bomb\.joblib\.xz: .*{limit}"):
        perturb_weights(bomb, tmp_path / "out" / bomb.name)
    # the same pickle uncompressed pays for its opcodes with its own bytes: no budget
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle_bytes)
    assert read_schema(plain) == {}


def test_an_opcode_budget_is_shared_and_names_where_it_ran_out() -> None:
    from pytest_corrsource.formats import FormatError
    from pytest_corrsource.formats.pickle_values import OpcodeBudget, new_budget, opcode_limit
    from pytest_corrsource.formats.tensors import JOBLIB_MIN_OPCODES, joblib_opcode_limit

    budget = OpcodeBudget(2)
    budget.spend(0)
    budget.spend(1)
    with pytest.raises(FormatError, match=r"more than 2 opcodes \(at byte 7\)"):
        budget.spend(7)
    assert new_budget() is None  # outside a decompressed stream: no limit
    with opcode_limit(5):
        first, second = new_budget(), new_budget()
        assert first is not None
        assert second is not None
        assert first is not second
        assert first.left == second.left == 5  # one budget per reading of the file
    assert new_budget() is None
    assert joblib_opcode_limit(FIXTURES / "sklearn_mlp.joblib.xz") == JOBLIB_MIN_OPCODES
