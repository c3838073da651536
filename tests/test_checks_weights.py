"""CS101–CS105 run as plain functions over real files: each check passes and fails, and its
failure text says what was found.

Pickles here are only ever written as bytes and scanned: nothing is unpickled.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import MINIMAL_MANIFEST, PlannedChecks, RepoFactory, sha256, write_weights
from safetensors.numpy import save_file

from pytest_corrsource.checks.api import Options
from pytest_corrsource.results import CheckResult
from pytest_corrsource.vocabulary import Level

LEVEL: Level = "corresponding-source"

# A protocol-0 pickle that calls os.system("echo pwned") when loaded. Never loaded here.
EVIL_PICKLE = b"cos\nsystem\n(S'echo pwned'\ntR."

LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\noid sha256:" + "4d7a" * 16 + "\nsize 123\n"
)


def check(
    root: Path,
    check_id: str,
    subject: str,
    *,
    component: str = "weights",
    level: Level = LEVEL,
) -> CheckResult:
    """Run one planned check of the repository at ``root`` the way the plugin would."""
    return PlannedChecks(root, Options(level=level))(check_id, subject, component=component)


def weights_manifest(*entries: str) -> str:
    """A manifest whose weights are the given YAML list items (already indented)."""
    return "version: 1\nname: tiny\nlicenses: {distribution: MIT}\nweights:\n" + "".join(entries)


def sharded(root: Path, total_size: int | None = None) -> dict[str, str]:
    """Write a real 2-shard checkpoint with its index in ``root/weights``; return shard digests."""
    folder = root / "weights"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    shards = {
        "model-00001-of-00002.safetensors": {"a.weight": rng.standard_normal((2, 3)).astype("f4")},
        "model-00002-of-00002.safetensors": {"b.weight": rng.standard_normal(5).astype("f4")},
    }
    weight_map: dict[str, str] = {}
    size = 0
    for name, tensors in shards.items():
        save_file(tensors, str(folder / name))
        for key, array in tensors.items():
            weight_map[key] = name
            size += array.nbytes
    index: dict[str, object] = {
        "metadata": {"total_size": size if total_size is None else total_size}
    }
    index["weight_map"] = weight_map
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return {name: sha256(folder / name) for name in shards}


INDEX = "weights/model.safetensors.index.json"


# ------------------------------------------------------------------------------------ CS101


def test_cs101_passes_for_a_present_file(make_repo: RepoFactory) -> None:
    root = make_repo(MINIMAL_MANIFEST)
    result = check(root, "CS101", "weights/model.safetensors")
    assert result.outcome == "passed", result.message


def test_cs101_fails_for_a_missing_file(make_repo: RepoFactory) -> None:
    root = make_repo(weights_manifest("  - path: weights/gone.safetensors\n"))
    result = check(root, "CS101", "weights/gone.safetensors")
    assert result.outcome == "failed"
    assert result.message.startswith("CS101 weights::present[weights/gone.safetensors]")
    assert "found: weights/gone.safetensors: not found" in result.message
    assert "fix:" in result.message
    assert "requirement:" in result.message


def test_cs101_fails_for_a_dangling_symlink(make_repo: RepoFactory) -> None:
    root = make_repo(weights_manifest("  - path: weights/link.safetensors\n"))
    (root / "weights" / "link.safetensors").symlink_to("nowhere.safetensors")
    result = check(root, "CS101", "weights/link.safetensors")
    assert result.outcome == "failed"
    assert "found: weights/link.safetensors: a dangling symlink" in result.message


def test_cs101_passes_for_a_complete_sharded_checkpoint(make_repo: RepoFactory) -> None:
    root = make_repo(weights_manifest(f"  - path: {INDEX}\n"))
    sharded(root)
    result = check(root, "CS101", INDEX)
    assert result.outcome == "passed", result.message
    assert result.message == "2 shards present"


def test_cs101_fails_when_a_shard_is_missing(make_repo: RepoFactory) -> None:
    root = make_repo(weights_manifest(f"  - path: {INDEX}\n"))
    sharded(root)
    (root / "weights" / "model-00002-of-00002.safetensors").unlink()
    result = check(root, "CS101", INDEX)
    assert result.outcome == "failed"
    assert (
        f"found: {INDEX} names 2 shards; missing: weights/model-00002-of-00002.safetensors"
        in result.message
    )


# ------------------------------------------------------------------------------------ CS102


def test_cs102_passes_for_real_content(make_repo: RepoFactory) -> None:
    root = make_repo(MINIMAL_MANIFEST)
    assert check(root, "CS102", "weights/model.safetensors").outcome == "passed"


def test_cs102_fails_for_a_git_lfs_pointer_and_says_how_to_fetch(make_repo: RepoFactory) -> None:
    root = make_repo(
        weights_manifest("  - path: weights/big.safetensors\n"),
        {"weights/big.safetensors": LFS_POINTER},
    )
    result = check(root, "CS102", "weights/big.safetensors")
    assert result.outcome == "failed"
    assert (
        "found: weights/big.safetensors is a git-lfs pointer of a 123-byte file, not the weights"
        in result.message
    )
    assert "run `git lfs pull --include weights/big.safetensors`" in result.message


def test_cs102_fails_for_a_git_annex_symlink(make_repo: RepoFactory) -> None:
    root = make_repo(weights_manifest("  - path: weights/annexed.safetensors\n"))
    key = "SHA256E-s1024--" + "ab" * 32 + ".safetensors"
    target = f"../.git/annex/objects/Xk/9m/{key}/{key}"
    (root / "weights" / "annexed.safetensors").symlink_to(target)
    # CS101 fails, and says why the file is not there and how to fetch it.
    present = check(root, "CS101", "weights/annexed.safetensors")
    assert present.outcome == "failed"
    assert "a dangling symlink; it is tracked by git-annex" in present.message
    assert "run `git annex get weights/annexed.safetensors`" in present.message
    # CS102 is blocked by it (one root failure, not two), repeating the reason.
    result = check(root, "CS102", "weights/annexed.safetensors")
    assert result.outcome == "skipped"
    assert result.message.startswith("blocked by CS101 (weights/annexed.safetensors: a dangling")


def test_cs102_fails_for_a_dvc_tracked_file_that_was_not_pulled(make_repo: RepoFactory) -> None:
    root = make_repo(
        weights_manifest("  - path: weights/dvc.safetensors\n"),
        {
            "weights/dvc.safetensors.dvc": (
                "outs:\n- md5: 0123456789abcdef0123456789abcdef\n  size: 2048\n"
                "  path: dvc.safetensors\n"
            )
        },
    )
    present = check(root, "CS101", "weights/dvc.safetensors")
    assert present.outcome == "failed"
    assert "run `dvc pull weights/dvc.safetensors`" in present.message
    result = check(root, "CS102", "weights/dvc.safetensors")
    assert result.outcome == "skipped"
    assert result.message.startswith("blocked by CS101 (weights/dvc.safetensors: not found;")
    assert "run `dvc pull weights/dvc.safetensors`" in result.message


# ------------------------------------------------------------------------------------ CS103


def test_cs103_passes_for_valid_safetensors(make_repo: RepoFactory) -> None:
    root = make_repo(MINIMAL_MANIFEST)
    result = check(root, "CS103", "weights/model.safetensors")
    assert result.outcome == "passed"
    assert result.message == "safetensors, 3 tensors"
    assert result.data == {"format": "safetensors", "tensors": 3}


def test_cs103_fails_for_truncated_safetensors(make_repo: RepoFactory) -> None:
    root = make_repo(MINIMAL_MANIFEST)
    path = root / "weights" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    result = check(root, "CS103", "weights/model.safetensors")
    assert result.outcome == "failed"
    claim = "is named `.safetensors` but does not parse as safetensors:"
    assert f"found: weights/model.safetensors {claim}" in result.message


def test_cs103_fails_when_the_declared_format_is_not_the_content(make_repo: RepoFactory) -> None:
    root = make_repo(weights_manifest("  - path: weights/model.safetensors\n    format: pickle\n"))
    result = check(root, "CS103", "weights/model.safetensors")
    assert result.outcome == "failed"
    assert (
        "weights/model.safetensors is declared `format: pickle` but its content is safetensors"
        in result.message
    )


NOISE = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()


def cs103(make_repo: RepoFactory, name: str, content: bytes, fmt: str = "") -> CheckResult:
    declared = f"    format: {fmt}\n" if fmt else ""
    root = make_repo(
        weights_manifest(f"  - path: weights/{name}\n{declared}"), {f"weights/{name}": content}
    )
    return check(root, "CS103", f"weights/{name}")


def test_cs103_passes_a_file_that_claims_nothing_as_opaque_with_a_warning(
    make_repo: RepoFactory,
) -> None:
    result = cs103(make_repo, "model.dat", NOISE)
    assert result.outcome == "passed"
    assert result.message.startswith("opaque")
    assert any("unverified" in w for w in result.warnings), result.warnings


def test_cs103_passes_a_raw_bin_layout_with_a_warning(make_repo: RepoFactory) -> None:
    result = cs103(make_repo, "model.bin", NOISE)
    assert result.outcome == "passed"
    assert result.message == "raw `.bin` layout (neither a pickle nor a zip), 0 tensors"
    assert "taken as a raw tensor layout (e.g. llama2.c)" in result.warnings[0]


@pytest.mark.parametrize("name", ["model.bin", "model.dat", "model.safetensors", "m.pt"])
def test_cs103_fails_an_empty_file(make_repo: RepoFactory, name: str) -> None:
    result = cs103(make_repo, name, b"")
    assert result.outcome == "failed"
    assert f"found: weights/{name} is empty" in result.message


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"\x08\x00\x00\x00{}", "header too small: the file has 6 bytes"),
        (struct.pack("<Q", 0) + b"{}", "header is not valid JSON"),
        (struct.pack("<Q", 2**63) + b"{}", "exceeds the limit of 100000000 bytes"),
        (struct.pack("<Q", 7) + b"[1,2,3]", "header is a list, not a JSON object"),
        (struct.pack("<Q", 10_000) + b'{"a":1}', "header length 10000 exceeds the file (15 bytes)"),
    ],
    ids=["7-bytes", "length-0", "length-2^63", "json-array", "length-past-eof"],
)
def test_cs103_fails_a_safetensors_file_that_does_not_parse(
    make_repo: RepoFactory, content: bytes, error: str
) -> None:
    result = cs103(make_repo, "model.safetensors", content)
    assert result.outcome == "failed", result.message
    assert (
        "weights/model.safetensors is named `.safetensors` but does not parse as safetensors: "
        in (result.message)
    )


@pytest.mark.parametrize(
    ("name", "fmt", "claimant"),
    [
        ("model.gguf", "", "named `.gguf`"),
        ("model.npy", "", "named `.npy`"),
        ("model.npz", "", "named `.npz`"),
        ("model.dat", "gguf", "declared `format: gguf`"),
    ],
)
def test_cs103_fails_noise_that_claims_a_format(
    make_repo: RepoFactory, name: str, fmt: str, claimant: str
) -> None:
    result = cs103(make_repo, name, NOISE, fmt)
    assert result.outcome == "failed"
    assert f"weights/{name} is {claimant} but does not parse as " in result.message
    assert "(its bytes look like: opaque)" in result.message


@pytest.mark.parametrize("name", ["model.pt", "model.pth", "model.ckpt", "model.pkl"])
def test_cs103_fails_a_torch_name_that_is_not_a_pickle_or_zip(
    make_repo: RepoFactory, name: str
) -> None:
    result = cs103(make_repo, name, NOISE)
    assert result.outcome == "failed"
    suffix = name.rsplit(".", 1)[1]
    assert f"weights/{name} is named `.{suffix}` but its content is opaque" in result.message


def test_cs103_passes_a_legacy_torch_tar_checkpoint(make_repo: RepoFactory) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:") as archive:
        for name in ("storages", "tensors", "pickle"):
            data = pickle.dumps(0, protocol=2)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    result = cs103(make_repo, "old.pt", buffer.getvalue())
    assert result.outcome == "passed", result.message
    assert result.message == "pickle, 0 tensors"


def test_cs103_fails_a_bin_that_starts_a_pickle_but_does_not_parse(make_repo: RepoFactory) -> None:
    result = cs103(make_repo, "model.bin", pickle.dumps({"a": list(range(100))}, protocol=2)[:-9])
    assert result.outcome == "failed"
    assert "weights/model.bin: invalid pickle: end of data at byte" in result.message


@pytest.mark.parametrize(
    ("name", "fmt", "tensors"),
    [
        ("torch_state_dict.pt", "torch-zip", "2 tensors"),
        ("scan_torch_legacy.pt", "pickle", "2 tensors"),
        ("scan_torch_checkpoint.pt", "torch-zip", "6 tensors"),
        ("torch_checkpoint.pt", "torch-zip", "27 tensors"),
    ],
)
def test_cs103_and_cs105_pass_real_torch_checkpoints(
    make_repo: RepoFactory, name: str, fmt: str, tensors: str
) -> None:
    content = (Path(__file__).parent / "fixtures" / name).read_bytes()
    root = make_repo(weights_manifest(f"  - path: weights/{name}\n"), {f"weights/{name}": content})
    header = check(root, "CS103", f"weights/{name}")
    assert header.outcome == "passed", header.message
    # The tensors are counted from the pickle's storages, never by unpickling (issue 13: a
    # 57-tensor checkpoint was reported as "0 tensors").
    assert header.message == f"{fmt}, {tensors}"
    safety = check(root, "CS105", f"weights/{name}")
    assert safety.outcome == "passed", safety.message
    assert safety.message == f"pickle-based ({fmt}) with only allow-listed globals"


def test_cs103_fails_for_an_npz_with_an_object_array(make_repo: RepoFactory) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, ok=np.zeros(3, dtype="f4"), bad=np.array([1, "x", None], dtype=object))
    root = make_repo(
        weights_manifest("  - path: weights/model.npz\n"), {"weights/model.npz": buffer.getvalue()}
    )
    result = check(root, "CS103", "weights/model.npz")
    assert result.outcome == "failed"
    claim = "is named `.npz` but does not parse as npz: member `bad.npy`: object dtype"
    assert f"found: weights/model.npz {claim}" in result.message
    # For CS105 an object array is a pickle like any other: this one imports nothing, so it
    # passes with the pickle warning (numpy.load(allow_pickle=True) runs no code for it) ...
    scanned = check(root, "CS105", "weights/model.npz")
    assert scanned.outcome == "passed", scanned.message
    assert scanned.message == "pickle-based (npz) with only allow-listed globals"


def test_cs105_fails_an_npz_object_array_that_imports_a_global(make_repo: RepoFactory) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, bad=np.array([os.system, None], dtype=object))
    root = make_repo(
        weights_manifest("  - path: weights/model.npz\n"), {"weights/model.npz": buffer.getvalue()}
    )
    result = check(root, "CS105", "weights/model.npz")
    assert result.outcome == "failed"
    assert "globals outside the allow-list: posix.system" in result.message


def test_cs103_checks_a_sharded_index(make_repo: RepoFactory) -> None:
    root = make_repo(weights_manifest(f"  - path: {INDEX}\n"))
    sharded(root)
    assert check(root, "CS103", INDEX).outcome == "passed"
    sharded(root, total_size=1)
    result = check(root, "CS103", INDEX)
    assert result.outcome == "failed"
    assert "metadata.total_size is 1" in result.message


# ------------------------------------------------------------------------------------ CS104


def test_cs104_passes_for_the_declared_digest(make_repo: RepoFactory) -> None:
    root = make_repo(MINIMAL_MANIFEST)
    result = check(root, "CS104", "weights/model.safetensors")
    assert result.outcome == "passed"
    assert result.data == {"sha256": sha256(root / "weights" / "model.safetensors")}


def test_cs104_fails_on_a_mismatch_naming_both_digests(make_repo: RepoFactory) -> None:
    wrong = "0" * 64
    root = make_repo(MINIMAL_MANIFEST.replace("{sha}", wrong))
    actual = sha256(root / "weights" / "model.safetensors")
    result = check(root, "CS104", "weights/model.safetensors")
    assert result.outcome == "failed"
    assert (
        f"found: weights/model.safetensors has sha256 {actual}, the manifest declares {wrong}"
        in result.message
    )


def test_cs104_without_a_declared_digest_warns_with_the_digest(make_repo: RepoFactory) -> None:
    root = make_repo(weights_manifest("  - path: weights/model.safetensors\n"))
    actual = sha256(root / "weights" / "model.safetensors")
    result = check(root, "CS104", "weights/model.safetensors")
    assert result.outcome == "passed"
    assert len(result.warnings) == 1
    assert "no sha256 declared" in result.warnings[0]
    assert actual in result.warnings[0]


def test_cs104_checks_declared_shard_digests(make_repo: RepoFactory, tmp_path: Path) -> None:
    # The shard digests are known only once the shards are written: build them elsewhere first.
    digests = sharded(tmp_path / "probe")
    shards_yaml = "".join(f"      {name}: {digest}\n" for name, digest in digests.items())
    root = make_repo(weights_manifest(f"  - path: {INDEX}\n    shards:\n{shards_yaml}"))
    assert sharded(root) == digests
    result = check(root, "CS104", INDEX)
    assert result.outcome == "passed", result.message

    second = "model-00002-of-00002.safetensors"
    bad = shards_yaml.replace(digests[second], "f" * 64)
    (root / "corresponding-source.yaml").write_text(
        weights_manifest(f"  - path: {INDEX}\n    shards:\n{bad}")
    )
    result = check(root, "CS104", INDEX)
    assert result.outcome == "failed"
    assert (
        f"weights/{second} has sha256 {digests[second]}, the manifest declares {'f' * 64}"
        in result.message
    )
    assert "model-00001-of-00002" not in result.message.split("requirement:")[0]


# ------------------------------------------------------------------------------------ CS105


def test_cs105_passes_safetensors(make_repo: RepoFactory) -> None:
    root = make_repo(MINIMAL_MANIFEST)
    result = check(root, "CS105", "weights/model.safetensors")
    assert result.outcome == "passed"
    assert result.message == "safetensors, no pickle anywhere: cannot carry code"


def test_cs105_fails_a_pickle_that_runs_os_system(make_repo: RepoFactory) -> None:
    root = make_repo(
        weights_manifest("  - path: weights/model.bin\n    format: pickle\n"),
        {"weights/model.bin": EVIL_PICKLE},
    )
    result = check(root, "CS105", "weights/model.bin")
    assert result.outcome == "failed"
    assert "found: weights/model.bin (pickle) would run code when loaded" in result.message
    assert "os.system" in result.message or "posix.system" in result.message
    assert "allow-unsafe: true" in result.message
    # Scanning is all that happened: the file is untouched.
    assert (root / "weights" / "model.bin").read_bytes() == EVIL_PICKLE


def cs105(make_repo: RepoFactory, name: str, content: bytes) -> CheckResult:
    root = make_repo(weights_manifest(f"  - path: weights/{name}\n"), {f"weights/{name}": content})
    return check(root, "CS105", f"weights/{name}")


def test_cs105_scans_a_pickle_sniffed_as_opaque(make_repo: RepoFactory) -> None:
    # FRAME first (a protocol-4 pickle without its PROTO opcode): pickle.load runs it.
    body = b"\x95" + struct.pack("<Q", len(EVIL_PICKLE)) + EVIL_PICKLE
    result = cs105(make_repo, "model.dat", body)
    assert result.outcome == "failed"
    assert "would run code when loaded: globals outside the allow-list: os.system" in (
        result.message
    )


def test_cs105_scans_a_file_with_the_gguf_magic(make_repo: RepoFactory) -> None:
    # BINFLOAT swallows "GUF" and 5 more bytes; the payload follows.
    result = cs105(make_repo, "model.gguf", b"GGUF\x03\x00\x00\x00\x00" + EVIL_PICKLE)
    assert result.outcome == "failed"
    assert "globals outside the allow-list: os.system" in result.message


def test_cs105_does_not_call_a_broken_gguf_code_free(make_repo: RepoFactory) -> None:
    # GGUF magic, then nothing parseable: no loader would unpickle it (the offset-0 stream
    # stops at once), so CS105 passes, but never as "gguf, cannot carry code": it warns, and
    # the failure is CS103's.
    result = cs105(make_repo, "model.gguf", b"GGUF\x03\x00\x00\x00\x05")
    assert result.outcome == "passed"
    assert result.message == "no pickle stream at offset 0 and no container holding one"
    assert result.warnings[0].startswith(
        "weights/model.gguf starts like gguf but does not parse as gguf ("
    )


def test_cs105_fails_an_ambiguous_archive(make_repo: RepoFactory) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))
        archive.writestr("archive/DATA.PKL", pickle.dumps({}, protocol=2))
    result = cs105(make_repo, "model.pt", buffer.getvalue())
    assert result.outcome == "failed"
    assert "weights/model.pt: ambiguous archive: member 'archive/DATA.PKL' and " in result.message


def test_cs105_allow_unsafe_does_not_waive_an_ambiguous_archive(make_repo: RepoFactory) -> None:
    # A reviewer who read the archive with zipfile may not have seen what torch loads.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))
        archive.writestr("archive/Data.pkl", EVIL_PICKLE)
    root = make_repo(
        weights_manifest("  - path: weights/model.pt\n    allow-unsafe: true\n"),
        {"weights/model.pt": buffer.getvalue()},
    )
    result = check(root, "CS105", "weights/model.pt")
    assert result.outcome == "failed"
    assert "ambiguous archive: member 'archive/Data.pkl' and 'archive/data.pkl'" in result.message


def test_cs105_scans_every_pkl_member_of_a_torch_zip(make_repo: RepoFactory) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))
        archive.writestr("archive/data/extra.PKL", EVIL_PICKLE)
    result = cs105(make_repo, "model.pt", buffer.getvalue())
    assert result.outcome == "failed"
    assert "globals outside the allow-list: os.system" in result.message


def test_cs105_refuses_the_legacy_torch_tar_format(make_repo: RepoFactory) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:") as archive:
        for name in ("storages", "tensors", "pickle"):
            info = tarfile.TarInfo(name)
            data = pickle.dumps(0, protocol=2)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    result = cs105(make_repo, "model.pt", buffer.getvalue())
    assert result.outcome == "failed"
    assert "legacy PyTorch tar checkpoint" in result.message
    assert "torch itself refuses to load this format with weights_only=True" in result.message


def test_cs105_passes_an_unknown_format_with_a_warning(make_repo: RepoFactory) -> None:
    result = cs105(make_repo, "model.dat", bytes(range(256)) * 4)
    assert result.outcome == "passed"
    assert result.message == "no pickle stream at offset 0 and no container holding one"
    assert "unknown format (opaque)" in result.warnings[0]


def test_cs105_a_file_named_as_a_pickle_must_parse_as_one(make_repo: RepoFactory) -> None:
    result = cs105(make_repo, "model.pkl", b"\x80\x02K\x01\xff.")
    assert result.outcome == "failed"
    assert "unparsable: opcode 0xff at byte 4: unknown opcode" in result.message


def test_cs105_checks_every_shard_of_an_index(make_repo: RepoFactory) -> None:
    root = make_repo(weights_manifest(f"  - path: {INDEX}\n"))
    sharded(root)
    first = root / "weights" / "model-00001-of-00002.safetensors"
    passed = check(root, "CS105", INDEX)
    assert passed.outcome == "passed", passed.message
    first.write_bytes(EVIL_PICKLE)
    failed = check(root, "CS105", INDEX)
    assert failed.outcome == "failed"
    assert "weights/model-00001-of-00002.safetensors" in failed.message
    assert "os.system" in failed.message


def test_cs105_allow_unsafe_passes_with_a_warning(make_repo: RepoFactory) -> None:
    root = make_repo(
        weights_manifest(
            "  - path: weights/model.bin\n    format: pickle\n    allow-unsafe: true\n"
        ),
        {"weights/model.bin": EVIL_PICKLE},
    )
    result = check(root, "CS105", "weights/model.bin")
    assert result.outcome == "passed"
    assert result.message == "allowed by `allow-unsafe: true`"
    assert len(result.warnings) == 1
    assert "system" in result.warnings[0]


def test_cs105_a_benign_pickle_passes_recommending_safetensors(make_repo: RepoFactory) -> None:
    benign = pickle.dumps({"layer": [1.0, 2.0, 3.0], "bias": [0.5]}, protocol=4)
    root = make_repo(
        weights_manifest("  - path: weights/model.bin\n    format: pickle\n"),
        {"weights/model.bin": benign},
    )
    result = check(root, "CS105", "weights/model.bin")
    assert result.outcome == "passed"
    assert "allow-listed" in result.message
    assert any("safetensors" in w for w in result.warnings), result.warnings
    # CS103 accepts it as a pickle (structure is the safety scan's business).
    assert check(root, "CS103", "weights/model.bin").outcome == "passed"


# ------------------------------------------------------------------------------ checkpoints


def test_checkpoint_failures_are_informational(make_repo: RepoFactory) -> None:
    root = make_repo(
        MINIMAL_MANIFEST
        + "checkpoints:\n  - path: ckpt/step-100.safetensors\n    sha256: "
        + "0" * 64
        + "\n"
    )
    result = check(root, "CS101", "ckpt/step-100.safetensors", component="checkpoints")
    assert result.outcome == "not-required"
    assert result.message.startswith(
        f"not required at level `{LEVEL}` (informational at every level):"
    )
    assert "found: ckpt/step-100.safetensors: not found" in result.message
    for level in ("open-weights", "open-source-ai"):
        again = check(
            root, "CS101", "ckpt/step-100.safetensors", component="checkpoints", level=level
        )
        assert again.outcome == "not-required"


def test_a_present_checkpoint_passes_and_a_wrong_digest_is_not_required(
    make_repo: RepoFactory,
) -> None:
    subject = "ckpt/step-100.safetensors"
    root = make_repo(
        MINIMAL_MANIFEST + f"checkpoints:\n  - path: {subject}\n    sha256: {'0' * 64}\n"
    )
    write_weights(root / subject, seed=3)
    for check_id in ("CS101", "CS102", "CS103", "CS105"):
        assert check(root, check_id, subject, component="checkpoints").outcome == "passed"
    result = check(root, "CS104", subject, component="checkpoints")
    assert result.outcome == "not-required"
    assert f"the manifest declares {'0' * 64}" in result.message


def test_no_check_reads_tensor_data_as_code(make_repo: RepoFactory) -> None:
    """A safetensors file whose metadata holds pickle-looking text is still just data."""
    root = make_repo(weights_manifest("  - path: weights/meta.safetensors\n"))
    save_file(
        {"w": np.ones(2, dtype="f4")},
        str(root / "weights" / "meta.safetensors"),
        metadata={"note": EVIL_PICKLE.decode()},
    )
    for check_id in ("CS101", "CS102", "CS103", "CS104", "CS105"):
        result = check(root, check_id, "weights/meta.safetensors")
        assert result.outcome == "passed", result.message


@pytest.mark.parametrize(
    ("codec", "compress"),
    [
        ("zlib", __import__("zlib").compress),
        ("gzip", __import__("gzip").compress),
        ("bz2", __import__("bz2").compress),
        ("xz", __import__("lzma").compress),
    ],
)
def test_cs105_scans_what_joblib_would_decompress(
    make_repo: RepoFactory, codec: str, compress: Any
) -> None:
    # joblib.load decompresses these and unpickles the result: a payload inside runs there,
    # though pickle.load, numpy.load and torch.load would refuse the compressed bytes.
    evil = compress(b"cos\nsystem\n(S'touch /tmp/pwned'\ntR.")
    benign = compress(pickle.dumps({"coef": [0.5, 1.5]}, protocol=4))
    root = make_repo(
        weights_manifest("  - path: weights/evil.joblib\n  - path: weights/benign.joblib\n"),
        {"weights/evil.joblib": evil, "weights/benign.joblib": benign},
    )
    bad = check(root, "CS105", "weights/evil.joblib")
    assert bad.outcome == "failed"
    assert (
        f"weights/evil.joblib ({codec}-compressed pickle) would run code under joblib.load: "
        "globals outside the allow-list: os.system"
    ) in bad.message
    good = check(root, "CS105", "weights/benign.joblib")
    assert good.outcome == "passed", good.message
    assert good.message == f"{codec}-compressed pickle with only allow-listed globals"
