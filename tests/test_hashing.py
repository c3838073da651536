"""Unit tests for pytest_corrsource.hashing (no timing assertions: see benchmarks/)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_corrsource import hashing
from pytest_corrsource.hashing import (
    CACHE_KEY,
    DigestCache,
    FileIdentity,
    hash_files,
    identity_of,
    sha256_file,
)

HOUR_NS = 3600 * 10**9


def write(path: Path, data: bytes, *, age_ns: int = HOUR_NS) -> Path:
    """Write ``data`` and backdate the mtime, so the digest is old enough to be cached."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - age_ns))
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record every file hash_files actually reads."""
    calls: list[Path] = []
    real = hashing.sha256_file

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(hashing, "sha256_file", counting)
    return calls


# --- sha256_file -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello weights\n",
        os.urandom(2 * 1024 * 1024 + 12345),  # several 1 MiB / 256 KiB buffers, ragged end
    ],
    ids=["empty", "small", "multi-buffer"],
)
def test_sha256_file_matches_hashlib(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path / "f.bin", data)
    assert sha256_file(path) == sha(data)


def test_sha256_file_missing_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        sha256_file(tmp_path / "nope")


# --- identity ------------------------------------------------------------------------------


def test_identity_of_follows_symlinks(tmp_path: Path) -> None:
    target = write(tmp_path / "t.bin", b"abc")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    st = target.stat()
    assert identity_of(link) == identity_of(target) == FileIdentity(3, st.st_mtime_ns, st.st_ino)


# --- DigestCache ---------------------------------------------------------------------------


def filled_cache(path: Path) -> DigestCache:
    cache = DigestCache()
    cache.store(path, identity_of(path), sha256_file(path))
    return cache


def test_lookup_hit_and_unknown(tmp_path: Path) -> None:
    path = write(tmp_path / "w.bin", b"weights")
    cache = filled_cache(path)
    assert cache.lookup(path) == sha(b"weights")
    assert cache.lookup(tmp_path / "." / "w.bin") == sha(b"weights")  # keyed by resolved path
    assert cache.lookup(tmp_path / "other.bin") is None
    assert cache.lookup(tmp_path / "missing") is None


def test_cache_hit_does_not_read_the_file(tmp_path: Path, count_reads: list[Path]) -> None:
    path = write(tmp_path / "w.bin", b"weights")
    cache = DigestCache()
    assert hash_files([path], cache) == {path: sha(b"weights")}
    assert len(count_reads) == 1
    assert hash_files([path], cache) == {path: sha(b"weights")}
    assert len(count_reads) == 1  # second call answered from the cache


def test_identity_is_the_key_not_the_content(tmp_path: Path) -> None:
    """Same size, restored mtime, same inode: the cache cannot tell, by design (like make/git).
    It trades detection of deliberate in-place tampering for not reading gigabytes."""
    path = write(tmp_path / "w.bin", b"AAAA")
    cache = filled_cache(path)
    st = path.stat()
    with path.open("r+b") as f:  # rewrite in place: keeps the inode
        f.write(b"BBBB")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_ino == st.st_ino
    assert cache.lookup(path) == sha(b"AAAA")  # stale, as documented
    assert hash_files([path], cache) == {path: sha(b"AAAA")}


def test_changed_mtime_is_a_miss(tmp_path: Path) -> None:
    path = write(tmp_path / "w.bin", b"AAAA")
    cache = filled_cache(path)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert cache.lookup(path) is None


def test_changed_size_is_a_miss(tmp_path: Path) -> None:
    path = write(tmp_path / "w.bin", b"AAAA")
    cache = filled_cache(path)
    st = path.stat()
    with path.open("ab") as f:
        f.write(b"B")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.lookup(path) is None


def test_replaced_file_is_a_miss(tmp_path: Path) -> None:
    path = write(tmp_path / "w.bin", b"AAAA")
    cache = filled_cache(path)
    st = path.stat()
    # Same size and mtime, new inode (what an atomic "write temp + rename" produces).
    # The old file is kept alive so that its inode number cannot be reused.
    keep = tmp_path / "old.bin"
    os.link(path, keep)
    tmp = write(tmp_path / "new.bin", b"BBBB")
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    tmp.replace(path)
    assert path.stat().st_ino != st.st_ino
    assert cache.lookup(path) is None
    assert hash_files([path], cache) == {path: sha(b"BBBB")}


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        42,
        "corrsource",
        b"bytes",
        [],
        [["/a", {"size": 1}]],
        {},
        {"/a": None},
        {"/a": "deadbeef"},
        {"/a": []},
        {"/a": {}},
        {"/a": {"size": 1, "mtime_ns": 2, "inode": 3}},  # no digest
        {"/a": {"size": 1, "mtime_ns": 2, "inode": 3, "sha256": "xyz"}},
        {"/a": {"size": 1, "mtime_ns": 2, "inode": 3, "sha256": "A" * 64}},  # not lowercase
        {"/a": {"size": "1", "mtime_ns": 2, "inode": 3, "sha256": "a" * 64}},
        {"/a": {"size": True, "mtime_ns": 2, "inode": 3, "sha256": "a" * 64}},
        {"/a": {"size": 1.0, "mtime_ns": 2, "inode": 3, "sha256": "a" * 64}},
        {"/a": {"size": -1, "mtime_ns": 2, "inode": 3, "sha256": "a" * 64}},
        {"relative": {"size": 1, "mtime_ns": 2, "inode": 3, "sha256": "a" * 64}},
        {7: {"size": 1, "mtime_ns": 2, "inode": 3, "sha256": "a" * 64}},
    ],
)
def test_from_json_garbage_gives_empty_cache(garbage: object) -> None:
    cache = DigestCache.from_json(garbage)
    assert len(cache) == 0
    assert cache.to_json() == {}
    assert cache.new_entries() == {}


def test_from_json_keeps_good_entries_among_bad(tmp_path: Path) -> None:
    path = write(tmp_path / "w.bin", b"x")
    good = filled_cache(path).to_json()
    cache = DigestCache.from_json({**good, "/bad": {"size": "no"}})
    assert cache.to_json() == good
    assert cache.lookup(path) == sha(b"x")


def test_json_round_trip(tmp_path: Path) -> None:
    paths = [write(tmp_path / f"{i}.bin", bytes([i]) * i) for i in range(3)]
    cache = DigestCache()
    hash_files(paths, cache)
    data = cache.to_json()
    assert len(data) == 3
    # Must survive real serialisation (pytest's config.cache stores JSON).
    restored = DigestCache.from_json(json.loads(json.dumps(data)))
    assert restored.to_json() == data
    for p in paths:
        assert restored.lookup(p) == sha(p.read_bytes())
    assert CACHE_KEY == "corrsource/v1/sha256"


def test_new_entries_only_contains_new(tmp_path: Path) -> None:
    old = write(tmp_path / "old.bin", b"old")
    new = write(tmp_path / "new.bin", b"new")
    worker = DigestCache.from_json(filled_cache(old).to_json())
    assert worker.new_entries() == {}
    hash_files([old, new], worker)
    assert list(worker.new_entries()) == [str(new.resolve())]

    # The controller merges what the worker computed; merged entries are not "new" there.
    controller = DigestCache.from_json(filled_cache(old).to_json())
    controller.merge(worker.new_entries())
    controller.merge("garbage is ignored")
    assert controller.lookup(new) == sha(b"new")
    assert controller.lookup(old) == sha(b"old")
    assert controller.new_entries() == {}


def test_file_changing_while_hashed_is_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "w.bin", b"before")
    real = hashing.sha256_file

    def hash_then_modify(p: Path) -> str:
        digest = real(p)
        write(p, b"after!!", age_ns=HOUR_NS // 2)  # a writer finished during our read
        return digest

    monkeypatch.setattr(hashing, "sha256_file", hash_then_modify)
    cache = DigestCache()
    hash_files([path], cache)
    assert len(cache) == 0


def test_recently_modified_file_is_not_cached(tmp_path: Path) -> None:
    """A same-size rewrite within the same mtime tick would keep the identity (git's
    "racily clean" case), so a digest of a just-written file is not trusted later."""
    path = write(tmp_path / "w.bin", b"fresh", age_ns=0)
    cache = DigestCache()
    assert hash_files([path], cache) == {path: sha(b"fresh")}
    assert len(cache) == 0


# --- hash_files ----------------------------------------------------------------------------


def test_hash_files_dedupes_repeats_and_symlinks(tmp_path: Path, count_reads: list[Path]) -> None:
    target = write(tmp_path / "w.bin", b"weights")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    dotted = tmp_path / "." / "w.bin"
    result = hash_files([target, target, link, dotted])
    assert result == {target: sha(b"weights"), link: sha(b"weights"), dotted: sha(b"weights")}
    assert len(count_reads) == 1


MakeFiles = Callable[[int], list[Path]]


@pytest.fixture
def make_files(tmp_path: Path) -> MakeFiles:
    def make(n: int) -> list[Path]:
        return [write(tmp_path / f"shard-{i}.bin", os.urandom(300_000 + i)) for i in range(n)]

    return make


@pytest.mark.parametrize("workers", [None, 2, 4, 16])
def test_parallel_equals_sequential(make_files: MakeFiles, workers: int | None) -> None:
    paths = make_files(6)
    expected = {p: sha(p.read_bytes()) for p in paths}
    assert hash_files(paths, max_workers=1) == expected
    assert hash_files(paths, max_workers=workers) == expected
    cache = DigestCache()
    assert hash_files(paths, cache, max_workers=workers) == expected
    assert len(cache) == 6


def test_hash_files_empty() -> None:
    assert hash_files([]) == {}


def test_missing_file_raises(tmp_path: Path, make_files: MakeFiles) -> None:
    with pytest.raises(FileNotFoundError):
        hash_files([tmp_path / "missing.safetensors"])
    paths = make_files(3)
    with pytest.raises(FileNotFoundError):
        hash_files([*paths, tmp_path / "missing.safetensors"], max_workers=2)
    # A cached-but-now-missing file is a miss, then the real error.
    cache = DigestCache()
    hash_files(paths, cache)
    paths[0].unlink()
    with pytest.raises(FileNotFoundError):
        hash_files(paths, cache)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_unreadable_file_raises(tmp_path: Path) -> None:
    path = write(tmp_path / "w.bin", b"secret")
    path.chmod(0)
    try:
        with pytest.raises(PermissionError):
            hash_files([path])
    finally:
        path.chmod(0o644)
