"""torch zip checkpoints: read without unpickling, modified in place, read back by torch.

The fixtures in ``tests/fixtures`` were written by ``torch.save`` (see make_fixtures.py), so the
reading tests run without torch; the round-trip tests load the modified copies with the real
``torch.load`` where torch is installed (the ``real`` extra).
"""

from __future__ import annotations

import contextlib
import shutil
import struct
import tempfile
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import RUNNABLE_FILES, PlannedChecks, RepoFactory
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_corrsource.checks.api import Options
from pytest_corrsource.formats import FormatError
from pytest_corrsource.formats.tensors import open_tensors, read_schema
from pytest_corrsource.formats.torch_zip import read_torch_zip
from pytest_corrsource.perturb import PerturbUnsupported, perturb_weights
from pytest_corrsource.results import CheckResult

FIXTURES = Path(__file__).parent / "fixtures"
CHECKPOINT = FIXTURES / "torch_checkpoint.pt"
DTYPES = FIXTURES / "torch_dtypes.pt"
OTHER_ARCH = FIXTURES / "torch_other_arch.pt"

MODEL_TENSORS = {
    "model.0.weight": ("F32", (4, 3)),
    "model.0.bias": ("F32", (4,)),
    "model.1.weight": ("F32", (4,)),
    "model.1.bias": ("F32", (4,)),
    "model.1.running_mean": ("F32", (4,)),
    "model.1.running_var": ("F32", (4,)),
    "model.1.num_batches_tracked": ("I64", ()),
    "model.2.weight": ("F32", (2, 4)),
    "model.2.bias": ("F32", (2,)),
}


# ------------------------------------------------------------------------ reading (no torch)


def test_schema_of_a_nanogpt_style_checkpoint() -> None:
    schema = read_schema(CHECKPOINT)
    assert {k: v for k, v in schema.items() if k.startswith("model.")} == MODEL_TENSORS
    # Adam state: step, exp_avg, exp_avg_sq for each of the 6 parameters
    optimizer = sorted(k for k in schema if k.startswith("optimizer."))
    assert len(optimizer) == 18
    assert schema["optimizer.state.0.exp_avg"] == ("F32", (4, 3))


def test_every_dtype_view_and_parameter_is_described() -> None:
    schema = read_schema(DTYPES)
    assert schema == {
        "f64": ("F64", (3,)),
        "f16": ("F16", (2, 3)),
        "bf16": ("BF16", (5,)),
        "f8": ("F8_E4M3", (4,)),
        "i64": ("I64", (6,)),
        "mask": ("BOOL", (3,)),
        "u8": ("U8", (4,)),
        "base": ("F32", (4, 6)),
        "view_t": ("F32", (6, 4)),
        "view_row": ("F32", (6,)),
        "param": ("F32", (2, 2)),
        "empty": ("F32", (0, 3)),
    }
    archive = read_torch_zip(DTYPES)
    shared = {t.name: t.storage for t in archive.tensors}
    assert shared["base"] == shared["view_t"] == shared["view_row"]


def test_views_read_with_their_strides_and_offsets() -> None:
    tensors = open_tensors(DTYPES)
    base = tensors.raw("base")
    assert np.array_equal(tensors.raw("view_t"), base.T)
    assert np.array_equal(tensors.raw("view_row"), base[1])
    assert tensors.raw("i64").tolist() == [0, 1, 2, 3, 4, 5]
    assert tensors.raw("mask").tolist() == [True, False, True]
    assert tensors.values("bf16").dtype == np.float32


def corrupt_copy(tmp_path: Path, edit: object) -> Path:
    data = bytearray(CHECKPOINT.read_bytes())
    assert callable(edit)
    edit(data)
    out = tmp_path / "bad.pt"
    out.write_bytes(bytes(data))
    return out


def test_a_storage_of_the_wrong_size_is_a_format_error(tmp_path: Path) -> None:
    src = tmp_path / "bad.pt"
    with zipfile.ZipFile(CHECKPOINT) as zin, zipfile.ZipFile(src, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("/data/0"):
                data = data[:-4]
            zout.writestr(info.filename, data)
    with pytest.raises(FormatError, match=r"storage '0' .* is 44 bytes .* needs 48 stored"):
        read_schema(src)
    with pytest.raises(PerturbUnsupported, match="needs 48 stored") as raised:
        perturb_weights(src, tmp_path / "out.pt")
    assert raised.value.format == "corrupt"


def test_a_compressed_storage_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "deflated.pt"
    with zipfile.ZipFile(CHECKPOINT) as zin, zipfile.ZipFile(src, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info), zipfile.ZIP_DEFLATED)
    with pytest.raises(PerturbUnsupported, match=r"is compressed; torch\.save stores") as raised:
        perturb_weights(src, tmp_path / "out.pt")
    assert raised.value.format == "torch-zip"  # a limit of the plugin, not corruption


def test_a_tensor_reaching_past_its_storage_is_a_format_error(tmp_path: Path) -> None:
    # rewrite data.pkl so 0.weight claims shape (40, 3): same pickle, one byte changed
    src = tmp_path / "long.pt"
    with zipfile.ZipFile(CHECKPOINT) as zin, zipfile.ZipFile(src, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"K\x00K\x04K\x03\x86", b"K\x00K(K\x03\x86", 1)
            zout.writestr(info.filename, data)
    with pytest.raises(FormatError, match="reaches past the end of storage"):
        read_schema(src)


def test_a_pickle_with_code_is_read_but_never_run(tmp_path: Path) -> None:
    """A global the reader does not know (os.system) is an inert record: nothing is called."""
    src = tmp_path / "evil.pt"
    marker = tmp_path / "pwned"
    evil = (
        b"\x80\x02}q\x00X\x01\x00\x00\x00xq\x01cos\nsystem\nq\x02X"
        + struct.pack("<I", len(f"touch {marker}"))
        + f"touch {marker}".encode()
        + b"\x85R\x8a\x01\x01\x86s."
    )
    with zipfile.ZipFile(src, "w") as zout:
        zout.writestr("archive/data.pkl", evil)
    assert read_schema(src) == {}
    result = perturb_weights(src, tmp_path / "out.pt")
    assert result.changed == ()
    assert not marker.exists()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x80\x02}q\x00(X\x01\x00\x00\x00a", "before its STOP"),
        (b"\x80\x02h\x07.", "memo key 7 read at byte 2 was never stored"),
        (b"\x80\x02\xff.", "unknown pickle opcode 0xff"),
        (b"\x80\x020.", "pops from an empty stack"),
        (b"\x80\x02(((((" * 50 + b".", "ends before its STOP|before its STOP|pops"),
    ],
)
def test_malformed_pickles_are_format_errors(tmp_path: Path, payload: bytes, message: str) -> None:
    src = tmp_path / "bad.pt"
    with zipfile.ZipFile(src, "w") as zout:
        zout.writestr("archive/data.pkl", payload)
    with pytest.raises(FormatError, match=message):
        read_schema(src)


def test_a_self_referencing_pickle_does_not_recurse_forever(tmp_path: Path) -> None:
    # l = []; l.append(l) -> EMPTY_LIST BINPUT 0 BINGET 0 APPEND STOP
    src = tmp_path / "cycle.pt"
    with zipfile.ZipFile(src, "w") as zout:
        zout.writestr("archive/data.pkl", b"\x80\x02]q\x00h\x00a.")
    with pytest.raises(FormatError, match="nests deeper than"):
        read_schema(src)


# ------------------------------------------------------------------------ modifying


def test_modified_copy_keeps_every_byte_but_float_storages(tmp_path: Path) -> None:
    dst = tmp_path / "ck.pt"
    result = perturb_weights(CHECKPOINT, dst)
    assert result.format == "torch-zip"
    assert "model.1.num_batches_tracked" in result.unchanged
    assert "model.0.weight" in result.changed
    assert "optimizer.state.0.exp_avg" in result.changed  # optimizer state is perturbed too
    assert 0.9 < result.share < 1.0
    before, after = read_torch_zip(CHECKPOINT), read_torch_zip(dst)
    with zipfile.ZipFile(CHECKPOINT) as a, zipfile.ZipFile(dst) as b:
        assert [(i.filename, i.header_offset, i.file_size) for i in a.infolist()] == [
            (i.filename, i.header_offset, i.file_size) for i in b.infolist()
        ]
        assert a.read("torch_checkpoint/data.pkl") == b.read("torch_checkpoint/data.pkl")
        assert b.testzip() is None  # every CRC matches the new bytes
    assert before.tensors == after.tensors
    old, new = open_tensors(CHECKPOINT), open_tensors(dst)
    assert not np.array_equal(old.raw("model.0.weight"), new.raw("model.0.weight"))
    assert np.array_equal(
        old.raw("model.1.num_batches_tracked"), new.raw("model.1.num_batches_tracked")
    )
    assert np.all(np.isfinite(new.values("model.0.weight")))


def test_every_float_dtype_changes_and_integers_do_not(tmp_path: Path) -> None:
    dst = tmp_path / "d.pt"
    result = perturb_weights(DTYPES, dst)
    assert set(result.unchanged) == {"i64", "mask", "u8", "empty"}
    old, new = open_tensors(DTYPES), open_tensors(dst)
    for name in ("f64", "f16", "bf16", "f8", "base", "view_t", "view_row", "param"):
        assert (old.raw(name) != new.raw(name)).all(), name
    # views of one storage stay views of the (one) modified storage
    assert np.array_equal(new.raw("view_t"), new.raw("base").T)


def test_the_copy_is_deterministic_per_seed(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "c.pt"
    perturb_weights(CHECKPOINT, a, seed=1)
    perturb_weights(CHECKPOINT, b, seed=1)
    perturb_weights(CHECKPOINT, c, seed=2)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


# ------------------------------------------------------------------------ the real loader


@pytest.mark.parametrize("weights_only", [True, False])
@pytest.mark.parametrize("fixture", [CHECKPOINT, DTYPES])
def test_torch_loads_the_modified_copy(tmp_path: Path, weights_only: bool, fixture: Path) -> None:
    torch = pytest.importorskip("torch")
    dst = tmp_path / fixture.name
    perturb_weights(fixture, dst)
    before = torch.load(fixture, weights_only=weights_only)
    after = torch.load(dst, weights_only=weights_only)
    flat_before, flat_after = dict(_flatten(before)), dict(_flatten(after))
    assert flat_before.keys() == flat_after.keys()
    changed = 0
    for key, old in flat_before.items():
        new = flat_after[key]
        if not isinstance(old, torch.Tensor):
            assert old == new, key
            continue
        assert (old.dtype, old.shape, old.stride()) == (new.dtype, new.shape, new.stride()), key
        if old.is_floating_point() and old.numel():
            assert not torch.equal(old.float(), new.float()), key
            changed += 1
        else:
            assert torch.equal(old, new), key
    assert changed >= 6


def _flatten(value: object, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted path, leaf) of what ``torch.load`` returned; a leaf is Any: torch's own types
    are not known here (the test venv has no torch, the test skips)."""
    if isinstance(value, dict):
        out: list[tuple[str, Any]] = []
        for key, item in value.items():
            out += _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(value, list):
        return [pair for i, item in enumerate(value) for pair in _flatten(item, f"{prefix}.{i}")]
    return [(prefix, value)]


def test_torch_mmap_load_of_the_modified_copy(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    dst = tmp_path / "ck.pt"
    perturb_weights(CHECKPOINT, dst)
    after = torch.load(dst, weights_only=True, mmap=True)
    assert after["model"]["0.weight"].shape == (4, 3)


# ------------------------------------------------------------------------ CS403 / CS603

# A run that honours the weights it is given: it reads every storage of the torch zip with
# the standard library (the isolated environment has no torch) and prints a digest of them.
HONOURS = textwrap.dedent(
    """
    import hashlib, sys, zipfile
    weights = sys.argv[sys.argv.index("--weights") + 1]
    digest = hashlib.sha256()
    with zipfile.ZipFile(weights) as archive:
        for name in sorted(archive.namelist()):
            if "/data/" in name:
                digest.update(archive.read(name))
    print("model output:", digest.hexdigest()[:16])
    """
)
IGNORES = HONOURS.replace('sys.argv[sys.argv.index("--weights") + 1]', '"assets/ck.pt"')
COPY_TRAINING = textwrap.dedent(
    """
    import shutil, sys
    shutil.copyfile(sys.argv[1], sys.argv[2])
    print("trained")
    """
)


def torch_repo(make_repo: RepoFactory, run: str, training_source: str = "") -> Path:
    from conftest import RUNNABLE_MANIFEST

    manifest = RUNNABLE_MANIFEST.replace("weights/model.safetensors", "weights/ck.pt")
    if training_source:
        manifest += textwrap.dedent(
            f"""\
            training:
              code: [train.py]
              command: python train.py {training_source} {{outdir}}/ck.pt
              produces: "{{outdir}}/ck.pt"
              timeout: 60
              reproduce: schema
            """
        )
    root = make_repo(
        manifest,
        {
            **RUNNABLE_FILES,
            "run.py": run,
            "train.py": COPY_TRAINING,
            "assets/ck.pt": CHECKPOINT.read_bytes(),
            "assets/other.pt": OTHER_ARCH.read_bytes(),
        },
    )
    shutil.copyfile(CHECKPOINT, root / "weights" / "ck.pt")
    from conftest import sha256

    text = (root / "corresponding-source.yaml").read_text()
    old_sha = sha256(root / "weights" / "model.safetensors")
    (root / "corresponding-source.yaml").write_text(
        text.replace(old_sha, sha256(root / "weights" / "ck.pt"))
    )
    return root


def check(root: Path, check_id: str) -> CheckResult:
    return PlannedChecks(root, Options(level="open-source-ai"))(check_id)


@pytest.mark.e2e
def test_cs403_passes_a_run_that_honours_a_torch_checkpoint(make_repo: RepoFactory) -> None:
    result = check(torch_repo(make_repo, HONOURS), "CS403")
    assert result.outcome == "passed", result.message
    assert result.message.endswith("ran on modified weights/ck.pt; the output changed")
    (record,) = result.data["modified"]
    assert record["format"] == "torch-zip"
    assert record["tensors_changed"] == 26  # 8 float model tensors + 18 optimizer tensors
    assert 0.9 < record["share_of_values"] < 1


@pytest.mark.e2e
def test_cs403_fails_a_run_that_ignores_a_torch_checkpoint(make_repo: RepoFactory) -> None:
    result = check(torch_repo(make_repo, IGNORES), "CS403")
    assert result.outcome == "failed", result.message
    assert "the run's output is identical with modified weights" in result.message


@pytest.mark.e2e
def test_cs603_schema_passes_the_same_architecture(make_repo: RepoFactory) -> None:
    result = check(torch_repo(make_repo, HONOURS, "assets/ck.pt"), "CS603")
    assert result.outcome == "passed", result.message
    assert result.message.endswith("same 27 tensor names, dtypes and shapes")


@pytest.mark.e2e
def test_cs603_schema_fails_a_different_architecture(make_repo: RepoFactory) -> None:
    result = check(torch_repo(make_repo, HONOURS, "assets/other.pt"), "CS603")
    assert result.outcome == "failed", result.message
    assert "do not have the schema of weights/ck.pt" in result.message
    assert "missing tensors: optimizer.state.0.exp_avg, " in result.message
    assert "shape mismatch: model.0.bias ([4] released, [5] regenerated)" in result.message


# ------------------------------------------------------------------------ legacy (< 1.6)

LEGACY = FIXTURES / "torch_legacy.pt"


def test_legacy_checkpoint_schema() -> None:
    assert read_schema(LEGACY) == MODEL_TENSORS


def test_legacy_checkpoint_modified_in_place(tmp_path: Path) -> None:
    dst = tmp_path / "legacy.pt"
    result = perturb_weights(LEGACY, dst)
    assert result.format == "torch-legacy"
    assert result.unchanged == ("model.1.num_batches_tracked",)
    assert LEGACY.stat().st_size == dst.stat().st_size
    old, new = open_tensors(LEGACY), open_tensors(dst)
    assert not np.array_equal(old.raw("model.0.weight"), new.raw("model.0.weight"))


def test_legacy_checkpoint_with_a_wrong_storage_size_is_refused(tmp_path: Path) -> None:
    data = bytearray(LEGACY.read_bytes())
    keys_end = data.index(b"]q", 1100)  # the storage-key list pickle
    first = data.index(b".", keys_end) + 1  # its STOP; the first storage's size follows
    data[first] += 1
    src = tmp_path / "bad.pt"
    src.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="stored size differs from the pickle's 4"):
        read_schema(src)
    with pytest.raises(PerturbUnsupported, match=r"torch-legacy: cannot modify bad\.pt"):
        perturb_weights(src, tmp_path / "out.pt")


@pytest.mark.parametrize("weights_only", [True, False])
def test_torch_loads_the_modified_legacy_checkpoint(tmp_path: Path, weights_only: bool) -> None:
    torch = pytest.importorskip("torch")
    dst = tmp_path / "legacy.pt"
    perturb_weights(LEGACY, dst)
    before = torch.load(LEGACY, weights_only=weights_only)["model"]
    after = torch.load(dst, weights_only=weights_only)["model"]
    assert before.keys() == after.keys()
    for key in before:
        assert before[key].shape == after[key].shape
        assert torch.equal(before[key], after[key]) == (key == "1.num_batches_tracked"), key


# ------------------------------------------------------------------------ fuzzing

REAL_PICKLE = zipfile.ZipFile(CHECKPOINT).read("torch_checkpoint/data.pkl")
MUTATED = st.builds(
    lambda cut, drop, byte: REAL_PICKLE[:cut] + bytes([byte]) + REAL_PICKLE[cut + drop :],
    st.integers(0, len(REAL_PICKLE)),
    st.integers(0, 3),
    st.integers(0, 255),
)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400) | MUTATED)
def test_any_bytes_as_data_pkl_are_read_or_refused_never_crash(payload: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "ck.pt"
        with zipfile.ZipFile(CHECKPOINT) as zin, zipfile.ZipFile(src, "w") as zout:
            for info in zin.infolist():
                data = payload if info.filename.endswith("data.pkl") else zin.read(info)
                zout.writestr(info.filename, data)
        with contextlib.suppress(FormatError):
            read_schema(src)
        with contextlib.suppress(PerturbUnsupported):
            perturb_weights(src, Path(tmp) / "out.pt")


@pytest.mark.e2e
def test_cs403_fails_a_corrupt_checkpoint_and_skips_a_plugin_limit(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    root = torch_repo(make_repo, HONOURS)
    weights = root / "weights" / "ck.pt"
    with zipfile.ZipFile(CHECKPOINT) as zin, zipfile.ZipFile(weights, "w") as zout:
        for info in zin.infolist():  # every storage member but one
            if not info.filename.endswith("/data/3"):
                zout.writestr(info, zin.read(info))
    from conftest import sha256

    text = (root / "corresponding-source.yaml").read_text()
    old = text.split("sha256: ")[1].split()[0]
    (root / "corresponding-source.yaml").write_text(text.replace(old, sha256(weights)))
    result = check(root, "CS403")
    assert result.outcome == "failed", result.message
    assert "weights/ck.pt is corrupt, so no modified copy can be made" in result.message
    assert "storage '3' has no member torch_checkpoint/data/3" in result.message


def test_shared_references_cannot_make_the_walk_exponential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """l0 = []; l1 = [l0, l0]; … l40 = [l39, l39]: 2**40 paths through 41 lists."""
    from pytest_corrsource.formats import pickle_values

    monkeypatch.setattr(pickle_values, "MAX_VISITS", 100_000)
    body = b"]q\x00"  # EMPTY_LIST, BINPUT 0
    for i in range(1, 41):
        body += b"(h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"lq" + bytes([i])
    src = tmp_path / "dag.pt"
    with zipfile.ZipFile(src, "w") as zout:
        zout.writestr("archive/data.pkl", b"\x80\x02" + body + b".")
    with pytest.raises(FormatError, match="more than 100000 values to walk"):
        read_schema(src)
