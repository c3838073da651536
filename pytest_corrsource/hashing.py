"""Streaming SHA-256 of weight files (and DVC's md5, in the same read), with a digest cache
keyed by file identity.

Stage: below the checks; standard library only. Imported by the checks that need digests,
never at pytest start-up.

Why SHA-256: it is the interoperable choice (Git LFS oids, OpenSSF model signing, the Hub),
and with SHA-NI it is faster than BLAKE2b (benchmarks/bench_hashing.py: ~1.8 GB/s through
hashlib on the development machine).

The cache makes a warm re-run cheap: a digest is reused while the file's (size, mtime_ns,
inode) are unchanged, the same trust model as ``git status`` and ``make``. Content rewritten
in place with the same size and a restored mtime is NOT detected; that is the price of not
reading the file. Errors (a missing file, a permission problem) propagate as :class:`OSError`;
the caller turns them into a failed check.

DVC records an md5 per output (``dvc.lock``, ``.dvc``): :func:`dvc_md5_files` computes it
exactly as DVC does, in the same read as the sha256 (``benchmarks`` in the final report:
the second digest costs what md5 costs, no second read of a multi-gigabyte file).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from pytest_corrsource.safe_io import open_regular

__all__ = [
    "CACHE_KEY",
    "MD5_NAMES",
    "DigestCache",
    "FileIdentity",
    "dvc_md5_files",
    "hash_files",
    "identity_of",
    "sha256_and_md5_file",
    "sha256_file",
]

#: Key under which the plugin keeps :meth:`DigestCache.to_json` in pytest's ``config.cache``.
#: Bump the version if the JSON shape or the identity rule changes: old caches are then ignored.
CACHE_KEY = "corrsource/v1/sha256"

# Read size for the Python 3.10 fallback. 1 MiB into a preallocated buffer runs as fast as
# hashlib.file_digest (see the README's benchmark table); larger buffers do not help
# (hashing, not I/O, is the limit).
_BUFSIZE = 1 << 20

# A digest is only cached if the file's mtime is at least this much older than the moment we
# started reading it. Otherwise a rewrite of the same size within the same timestamp tick
# (coarse kernel clocks, 1-2 s on FAT/some network filesystems) would keep the identity and
# be missed: git's "racily clean" problem. Such files are simply re-hashed next time.
RACY_WINDOW_NS = 2_000_000_000

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")

#: DVC's two md5s of a file: "md5" (DVC 3, `hash: md5`) is the md5 of its bytes;
#: "md5-dos2unix" (DVC 2.x entries) that of its bytes with CRLF read as LF if it looks like text.
MD5_NAMES = ("md5", "md5-dos2unix")
#: DVC reads files in chunks of this size and converts CRLF within each chunk only, so a CRLF
#: split across two chunks stays as it is: the chunking is part of the digest. Whether the file
#: is text is decided once, from its first 512 bytes, as DVC 2 (which wrote every entry without
#: `hash:`) decided it; dvc-data 3.18 re-decides per chunk, which differs only for a file whose
#: chunks look text and binary in turn (checked against dvc-data on 94 files: that one case).
DVC_CHUNK = 1 << 20
# DVC's text heuristic (dvc_data istextfile): the first 512 bytes hold no NUL and at most 30 %
# bytes outside printable ASCII and \n\r\t\f\b.
_DVC_TEXT_BLOCK = 512
_DVC_TEXT_CHARS = bytes(range(32, 127)) + b"\n\r\t\f\b"

# JSON form of one cache entry: {"size": int, "mtime_ns": int, "inode": int, "sha256": str},
# plus "md5" / "md5-dos2unix" (str) when DVC's md5 of the file was computed too.
JsonEntry = dict[str, int | str]


def sha256_file(path: Path) -> str:
    """Return the lowercase hex SHA-256 of the file at ``path``, streaming it.

    Memory use is one fixed buffer whatever the file size. Raises :class:`OSError`.
    """
    # buffering=0: read straight into our buffer, no second copy through BufferedReader.
    # open_regular: a FIFO or device in place of weights fails (NotRegularFile), never blocks.
    with open_regular(path, buffering=0) as handle:
        f = cast("io.FileIO", handle)  # buffering=0 gives the raw FileIO
        if sys.version_info >= (3, 11):
            return hashlib.file_digest(f, "sha256").hexdigest()
        h = hashlib.sha256()
        buf = bytearray(_BUFSIZE)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])  # hashlib releases the GIL for large updates
        return h.hexdigest()


def _dvc_text_block(block: bytes) -> bool:
    if not block:
        return True
    if b"\0" in block:
        return False
    return len(block.translate(None, _DVC_TEXT_CHARS)) / len(block) <= 0.30


def _read_chunk(handle: io.FileIO, buf: bytearray) -> memoryview:
    """Fill ``buf`` (short only at the end of the file): DVC's chunks are exactly 1 MiB."""
    view = memoryview(buf)
    filled = 0
    while filled < len(buf):
        n = handle.readinto(view[filled:])
        if not n:
            break
        filled += n
    return view[:filled]


def sha256_and_md5_file(path: Path, md5_name: str) -> tuple[str, str]:
    """(sha256, DVC's ``md5_name`` md5) of the file at ``path``, both from one streamed read.

    The md5 of each chunk is computed in a helper thread while this one computes the sha256
    (hashlib releases the GIL): with a core to spare the pair costs what md5 alone costs.
    Raises :class:`OSError` (a FIFO or device in place of the file: NotRegularFile)."""
    if md5_name not in MD5_NAMES:
        raise ValueError(f"unknown DVC hash {md5_name!r}")
    sha = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)  # DVC's content address, not a security digest
    text: bool | None = None if md5_name == "md5-dos2unix" else False

    def add_md5(chunk: memoryview, as_text: bool) -> None:
        md5.update(bytes(chunk).replace(b"\r\n", b"\n") if as_text else chunk)

    buf = bytearray(DVC_CHUNK)
    with (
        open_regular(path, buffering=0) as handle,
        ThreadPoolExecutor(1, thread_name_prefix="corrsource-md5") as pool,
    ):
        f = cast("io.FileIO", handle)
        while chunk := _read_chunk(f, buf):
            if text is None:
                text = _dvc_text_block(bytes(chunk[:_DVC_TEXT_BLOCK]))
            pending = pool.submit(add_md5, chunk, text)
            sha.update(chunk)
            pending.result()  # before the buffer is refilled
    return sha.hexdigest(), md5.hexdigest()


@dataclass(frozen=True)
class FileIdentity:
    """What we compare to decide that a file is unchanged without reading it."""

    size: int
    mtime_ns: int
    inode: int


def identity_of(path: Path) -> FileIdentity:
    """``os.stat`` the file (following symlinks) and return its identity. Raises OSError."""
    st = os.stat(path)
    return FileIdentity(size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino)


def _key(path: Path) -> str:
    # Resolved absolute path: "w.safetensors", "./w.safetensors" and a symlink to it share one
    # entry, and the identity (which follows symlinks) belongs to the same file.
    return str(Path(path).resolve())


def _parse_md5s(value: dict[object, object]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in MD5_NAMES:
        digest = value.get(name)
        if isinstance(digest, str) and _HEX32.fullmatch(digest):
            found[name] = digest
    return found


def _parse_entry(value: object) -> tuple[FileIdentity, str] | None:
    if not isinstance(value, dict):
        return None
    size, mtime_ns, inode = value.get("size"), value.get("mtime_ns"), value.get("inode")
    digest = value.get("sha256")
    # type() rather than isinstance(): a JSON true/false must not pass as 1/0.
    if not (type(size) is int and type(mtime_ns) is int and type(inode) is int):
        return None
    if size < 0 or inode < 0 or not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        return None
    return FileIdentity(size, mtime_ns, inode), digest


def _entry_json(identity: FileIdentity, digest: str, md5s: dict[str, str] | None) -> JsonEntry:
    entry: JsonEntry = {
        "size": identity.size,
        "mtime_ns": identity.mtime_ns,
        "inode": identity.inode,
        "sha256": digest,
    }
    entry.update(md5s or {})
    return entry


class DigestCache:
    """Resolved absolute path -> (identity at hashing time, sha256 hex digest).

    Its JSON form (:meth:`to_json`) holds builtins only, so it can live in pytest's
    ``config.cache`` and cross pytest-xdist's execnet channel. Not thread-safe:
    :func:`hash_files` only touches it from the calling thread.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[FileIdentity, str]] = {}
        self._new: dict[str, tuple[FileIdentity, str]] = {}
        # DVC md5s by name, valid while the entry's identity (the same key) is unchanged.
        self._md5s: dict[str, dict[str, str]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def from_json(cls, data: object) -> DigestCache:
        """Build a cache from :meth:`to_json` output. Never raises: malformed parts are
        dropped (a cache file from another version or a corrupted one just means re-hashing)."""
        cache = cls()
        cache._load(data)
        return cache

    def merge(self, other_json: object) -> None:
        """Add entries from another cache's JSON (e.g. an xdist worker's :meth:`new_entries`).

        Incoming entries win over existing ones for the same path. Malformed input is ignored.
        Merged entries are not counted as :meth:`new_entries` of this cache.
        """
        self._load(other_json)

    def _load(self, data: object) -> None:
        if not isinstance(data, dict):
            return
        for key, value in data.items():
            parsed = _parse_entry(value)
            if isinstance(key, str) and os.path.isabs(key) and parsed is not None:
                self._entries[key] = parsed
                assert isinstance(value, dict)
                self._md5s[key] = _parse_md5s(value)

    def to_json(self) -> dict[str, JsonEntry]:
        """All entries as ``{path: {"size", "mtime_ns", "inode", "sha256"}}``."""
        return {k: _entry_json(i, d, self._md5s.get(k)) for k, (i, d) in self._entries.items()}

    def new_entries(self) -> dict[str, JsonEntry]:
        """Entries stored since construction (not loaded or merged ones), in the JSON form of
        :meth:`to_json`, so an xdist worker can send back only what it computed."""
        return {k: _entry_json(i, d, self._md5s.get(k)) for k, (i, d) in self._new.items()}

    def lookup(self, path: Path) -> str | None:
        """The cached digest if the file's size, mtime_ns and inode all still match what was
        recorded; ``None`` on a miss (including when the file cannot be stat'ed now)."""
        return self._lookup_key(_key(path), path)

    def _lookup_key(self, key: str, path: Path) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        try:
            now = identity_of(path)
        except OSError:
            return None  # let the hashing attempt raise the real error
        identity, digest = entry
        return digest if now == identity else None

    def store(self, path: Path, identity: FileIdentity, digest: str) -> None:
        """Record ``digest`` for ``path``. ``identity`` must be the one taken BEFORE hashing
        (see :func:`hash_files`), so that a change during hashing is never cached."""
        self._store_key(_key(path), identity, digest)

    def _store_key(self, key: str, identity: FileIdentity, digest: str) -> None:
        if self._entries.get(key, (None, ""))[0] != identity:
            self._md5s.pop(key, None)  # computed for other content
        self._entries[key] = self._new[key] = (identity, digest)

    def lookup_md5(self, path: Path, md5_name: str) -> tuple[str, str] | None:
        """(sha256, DVC md5 ``md5_name``) if both are cached for the file as it is now."""
        key = _key(path)
        sha = self._lookup_key(key, path)
        md5 = self._md5s.get(key, {}).get(md5_name)
        return None if sha is None or md5 is None else (sha, md5)

    def store_md5(
        self, path: Path, identity: FileIdentity, sha256: str, md5_name: str, md5: str
    ) -> None:
        """Record the sha256 and DVC md5 of ``path``, taken before hashing (see :meth:`store`)."""
        key = _key(path)
        self._store_key(key, identity, sha256)
        self._md5s.setdefault(key, {})[md5_name] = md5


def _hash_one(path: Path) -> tuple[FileIdentity, str, FileIdentity, int]:
    started_ns = time.time_ns()
    before = identity_of(path)
    digest = sha256_file(path)
    after = identity_of(path)
    return before, digest, after, started_ns


def _cacheable(before: FileIdentity, after: FileIdentity, started_ns: int) -> bool:
    # Unchanged while we read it, and old enough that a same-tick rewrite is impossible.
    return before == after and before.mtime_ns <= started_ns - RACY_WINDOW_NS


def hash_files(
    paths: Sequence[Path],
    cache: DigestCache | None = None,
    *,
    max_workers: int | None = None,
) -> dict[Path, str]:
    """SHA-256 of every file in ``paths``, as ``{path as given: hex digest}``.

    - Paths resolving to the same file (repeats, ``./x``, symlinks) are hashed once.
    - With a ``cache``, unchanged files are answered without reading them, and fresh
      digests are stored (only if the file did not change while being hashed).
    - The rest are hashed in a thread pool (hashlib releases the GIL, so threads give real
      parallelism when there are cores and I/O to spare); ``max_workers`` defaults to
      ``min(files to hash, os.cpu_count())``. A single file is hashed inline.

    Raises the first :class:`OSError` (in input order), e.g. :class:`FileNotFoundError` or
    :class:`PermissionError`, for the caller to turn into a failed check.
    """
    key_of: dict[Path, str] = {}
    digests: dict[str, str] = {}
    todo: dict[str, Path] = {}  # key -> first path given for it (nicer in error messages)
    for path in paths:
        key = key_of[path] = _key(path)
        if key in digests or key in todo:
            continue
        hit = cache._lookup_key(key, path) if cache is not None else None
        if hit is not None:
            digests[key] = hit
        else:
            todo[key] = path

    workers = max_workers if max_workers is not None else min(len(todo), os.cpu_count() or 1)
    if len(todo) <= 1 or workers <= 1:
        results = {key: _hash_one(path) for key, path in todo.items()}
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="corrsource-sha256") as pool:
            futures = {key: pool.submit(_hash_one, path) for key, path in todo.items()}
            try:
                results = {key: future.result() for key, future in futures.items()}
            except BaseException:
                pool.shutdown(cancel_futures=True)  # don't read the other files for nothing
                raise

    for key, (before, digest, after, started_ns) in results.items():
        digests[key] = digest
        if cache is not None and _cacheable(before, after, started_ns):
            cache._store_key(key, before, digest)
    return {path: digests[key] for path, key in key_of.items()}


def dvc_md5_files(
    paths: Sequence[Path], cache: DigestCache | None, md5_name: str
) -> dict[Path, tuple[str, str]]:
    """(sha256, DVC md5 ``md5_name``) of each file, one read per file not in ``cache``.

    Raises :class:`OSError` like :func:`hash_files`."""
    found: dict[Path, tuple[str, str]] = {}
    for path in paths:
        hit = cache.lookup_md5(path, md5_name) if cache is not None else None
        if hit is not None:
            found[path] = hit
            continue
        started_ns = time.time_ns()
        before = identity_of(path)
        sha256, md5 = found[path] = sha256_and_md5_file(path, md5_name)
        after = identity_of(path)
        if cache is not None and _cacheable(before, after, started_ns):
            cache.store_md5(path, before, sha256, md5_name, md5)
    return found
