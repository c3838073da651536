"""dvc.lock and .dvc md5s as declared digests (CS104), and DVC's md5 computed as DVC computes
it: plain for DVC 3 entries (`hash: md5`), CRLF-as-LF per 1 MiB chunk for text files in DVC 2
entries. The expected md5s below are DVC's own (dvc-data's tests and fixed digests), not values
this code produced."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import RepoFactory
from test_checks_weights import check

from pytest_corrsource.hashing import (
    DVC_CHUNK,
    DigestCache,
    dvc_md5_files,
    identity_of,
    sha256_and_md5_file,
    sha256_file,
)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --------------------------------------------------------------------------- DVC's md5


@pytest.mark.parametrize(
    ("content", "name", "expected"),
    [
        # DVC 3: the bytes as they are.
        (b"a\r\nb\r\nc", "md5", md5(b"a\r\nb\r\nc")),
        # DVC 2 (dvc-data test_file_md5_dos2unix): text reads CRLF as LF.
        (b"a\r\nb\r\nc", "md5-dos2unix", md5(b"a\nb\nc")),
        # A NUL makes it binary: untouched (DVC 3.67.1's fixed digest).
        (b"a\0\r\n", "md5-dos2unix", "a200e344e12b35719025ffdb8b428ee8"),
        # A CRLF split across DVC's 1 MiB chunks stays as it is (DVC 3.67.1's fixed digest).
        (b"a" * (DVC_CHUNK - 1) + b"\r\nb", "md5-dos2unix", "8c5619e93d78797e95a4233d0df49978"),
        # Mostly non-ASCII in the first 512 bytes: binary, untouched.
        (
            bytes(range(128, 256)) * 4 + b"\r\n",
            "md5-dos2unix",
            md5(bytes(range(128, 256)) * 4 + b"\r\n"),
        ),
        (b"", "md5-dos2unix", md5(b"")),
        # Text-ness is decided once, by the first 512 bytes, as DVC 2 (which wrote these
        # entries) did: a binary-looking start keeps a later chunk's CRLF.
        (
            b"\x80" * DVC_CHUNK + b"text\r\n",
            "md5-dos2unix",
            md5(b"\x80" * DVC_CHUNK + b"text\r\n"),
        ),
    ],
)
def test_dvc_md5_as_dvc_computes_it(
    tmp_path: Path, content: bytes, name: str, expected: str
) -> None:
    path = tmp_path / "f"
    path.write_bytes(content)
    sha, digest = sha256_and_md5_file(path, name)
    assert digest == expected
    assert sha == hashlib.sha256(content).hexdigest() == sha256_file(path)


def test_text_crlf_in_the_second_chunk_is_converted(tmp_path: Path) -> None:
    content = b"x\n" * DVC_CHUNK + b"y\r\nz"
    path = tmp_path / "f"
    path.write_bytes(content)
    _, digest = sha256_and_md5_file(path, "md5-dos2unix")
    assert digest == md5(content.replace(b"\r\n", b"\n"))


def test_unknown_hash_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown DVC hash 'sha1'"):
        sha256_and_md5_file(tmp_path / "f", "sha1")


def test_md5s_are_cached_with_the_sha256_and_dropped_when_the_file_changes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(b"weights")
    cache = DigestCache()
    cache.store_md5(path, identity_of(path), "5" * 64, "md5", "0" * 32)
    # Served from the cache (the recorded values, not the file's): the file was not re-read.
    assert dvc_md5_files([path], cache, "md5") == {path: ("5" * 64, "0" * 32)}
    assert cache.lookup_md5(path, "md5-dos2unix") is None  # another DVC hash: not known
    again = DigestCache.from_json(cache.to_json())
    assert again.lookup_md5(path, "md5") == ("5" * 64, "0" * 32)
    path.write_bytes(b"retrained weights")
    assert again.lookup_md5(path, "md5") is None
    assert dvc_md5_files([path], again, "md5")[path][1] == md5(b"retrained weights")


def test_malformed_cached_md5s_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(b"weights")
    identity = identity_of(path)
    entry = {
        "size": identity.size,
        "mtime_ns": identity.mtime_ns,
        "inode": identity.inode,
        "sha256": "a" * 64,
        "md5": "not hex",
        "md5-dos2unix": "B" * 32,  # upper case is not what is stored
    }
    cache = DigestCache.from_json({str(path.resolve()): entry})
    assert cache.lookup(path) == "a" * 64
    assert cache.lookup_md5(path, "md5") is None
    assert cache.lookup_md5(path, "md5-dos2unix") is None


# --------------------------------------------------------------------------- CS104


def repo_with_lock(make_repo: RepoFactory, digest: str) -> Path:
    lock = (
        "schema: '2.0'\nstages:\n  train:\n    cmd: python train.py\n    outs:\n"
        f"    - path: weights/model.safetensors\n      hash: md5\n      md5: {digest}\n"
    )
    manifest = (
        "version: 1\nname: tiny\nlicenses: {distribution: MIT}\n"
        "weights:\n  - path: weights/model.safetensors\n"
    )
    return make_repo(manifest, {"dvc.lock": lock})


def weights_md5(root: Path) -> str:
    return md5((root / "weights" / "model.safetensors").read_bytes())


def test_cs104_passes_when_the_file_matches_dvc_lock(make_repo: RepoFactory) -> None:
    root = repo_with_lock(make_repo, "0" * 32)
    actual = weights_md5(root)
    (root / "dvc.lock").write_text((root / "dvc.lock").read_text().replace("0" * 32, actual))
    result = check(root, "CS104", "weights/model.safetensors")
    assert result.outcome == "passed"
    assert f"md5 {actual} matches dvc.lock's md5 (stage `train`)" in result.message
    assert result.data["md5"] == actual
    assert result.data["sha256"] == sha256_file(root / "weights" / "model.safetensors")
    assert result.warnings == []


def test_cs104_fails_naming_dvc_lock_when_the_file_differs(make_repo: RepoFactory) -> None:
    root = repo_with_lock(make_repo, "f" * 32)
    result = check(root, "CS104", "weights/model.safetensors")
    assert result.outcome == "failed"
    assert (
        f"weights/model.safetensors has md5 {weights_md5(root)}; dvc.lock's md5 (stage `train`) "
        f"is {'f' * 32} (the manifest declares no sha256)" in result.message
    )
    assert "dvc pull --force weights/model.safetensors" in result.message


def test_cs104_reads_a_dvc2_stub_with_dvc2_md5(make_repo: RepoFactory) -> None:
    # A text "weights" file with CRLF line ends, tracked by a DVC 2 stub (no `hash:` key): DVC 2
    # recorded the md5 of the LF form, which the plain md5 of the bytes does not match.
    content = b"vocab\r\nweights\r\n"
    manifest = (
        "version: 1\nname: tiny\nlicenses: {distribution: MIT}\n"
        "weights:\n  - path: weights/vocab.txt\n"
    )
    dvc2_md5 = md5(content.replace(b"\r\n", b"\n"))
    stub = f"outs:\n- md5: {dvc2_md5}\n  path: vocab.txt\n"
    root = make_repo(manifest, {"weights/vocab.txt": content, "weights/vocab.txt.dvc": stub})
    result = check(root, "CS104", "weights/vocab.txt")
    assert result.outcome == "passed", result.message
    assert "matches weights/vocab.txt.dvc's md5" in result.message
    (root / "weights/vocab.txt.dvc").write_text(stub.replace("path:", "hash: md5\n  path:"))
    result = check(root, "CS104", "weights/vocab.txt")  # DVC 3 would read the bytes as they are
    assert result.outcome == "failed"
    assert f"has md5 {md5(content)}; weights/vocab.txt.dvc's md5 is" in result.message


def test_cs104_cannot_compare_a_file_in_a_dvc_tracked_folder(make_repo: RepoFactory) -> None:
    manifest = (
        "version: 1\nname: tiny\nlicenses: {distribution: MIT}\n"
        "weights:\n  - path: weights/model.safetensors\n"
    )
    stub = "outs:\n- md5: " + "a" * 32 + ".dir\n  nfiles: 1\n  hash: md5\n  path: weights\n"
    root = make_repo(manifest, {"weights.dvc": stub})
    result = check(root, "CS104", "weights/model.safetensors")
    # Nothing was compared: the existing "no digest declared" outcome, saying why.
    assert result.outcome == "passed"
    assert "md5" not in result.data
    assert result.warnings[0] == (
        "weights/model.safetensors lies in weights/, a DVC-tracked folder (weights.dvc): DVC "
        "records the md5 of the folder's listing, not of this file, so no digest could be compared"
    )
    assert result.warnings[1].startswith("no sha256 declared for weights/model.safetensors")


def test_the_manifest_sha256_still_decides_when_declared(make_repo: RepoFactory) -> None:
    manifest = (
        "version: 1\nname: tiny\nlicenses: {distribution: MIT}\n"
        "weights:\n  - path: weights/model.safetensors\n    sha256: {sha}\n"
    )
    lock = "stages:\n  t:\n    outs:\n    - path: weights/model.safetensors\n      md5: " + "f" * 32
    root = make_repo(manifest, {"dvc.lock": lock + "\n"})
    result = check(root, "CS104", "weights/model.safetensors")
    assert result.outcome == "passed"
    assert "md5" not in result.data


def test_cs104_on_the_example_get_started_layout(make_repo: RepoFactory) -> None:
    # iterative/example-get-started: a DVC 2 dvc.lock (no `hash:` keys), `train` writes
    # model.pkl (a binary pickle: DVC 2's md5 of it is the plain md5), data/ is a folder out.
    model = b"\x80\x04\x95\x00\x00\x00\x00\r\n" * 1000
    lock = (
        "schema: '2.0'\nstages:\n  featurize:\n    outs:\n    - path: data/features\n"
        "      md5: 52c1fddf9b7b11dff75bffbeff7958d3.dir\n      size: 12730163\n      nfiles: 2\n"
        f"  train:\n    cmd: python src/train.py data/features model.pkl\n    outs:\n"
        f"    - path: model.pkl\n      md5: {md5(model)}\n      size: {len(model)}\n"
    )
    manifest = (
        "version: 1\nname: get-started\nlicenses: {distribution: Apache-2.0}\n"
        "weights:\n  - path: model.pkl\n    format: pickle\n    allow-unsafe: true\n"
    )
    root = make_repo(manifest, {"dvc.lock": lock, "model.pkl": model})
    result = check(root, "CS104", "model.pkl")
    assert result.outcome == "passed", result.message
    assert result.message.endswith(f"md5 {md5(model)} matches dvc.lock's md5 (stage `train`)")
