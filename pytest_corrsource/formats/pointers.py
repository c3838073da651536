"""Recognise large-file pointers that stand in for weights that were never fetched.

Three kinds: Git LFS pointer files (git-lfs ``docs/spec.md``), git-annex symlinks or
unlocked pointer files, and DVC ``.dvc`` stubs; a DVC output (of a ``dvc.yaml`` stage or a
``.dvc`` stub, see :mod:`pytest_corrsource.tracking`) that is not in the work tree is reported
as a pointer too. ``Pointer.oid`` is ``"<algorithm>:<hex>"`` (``sha256:…`` for LFS and SHA256
annex keys, ``md5:…`` for DVC and MD5 annex keys) or None when the pointer names no usable
digest. ``fetch_hint`` is a command quoted for a POSIX shell: a hostile file name cannot make
the pasted hint run anything.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from pytest_corrsource.tracking import LFS_POINTER_MAX, dvc_output, lfs_pointer_fields, shell_word

__all__ = ["Pointer", "detect_pointer"]

_DVC_MAX = 64 * 1024
_ANNEX_MAX = 4096
_ANNEX_KEY = re.compile(r"^([A-Z0-9]+)-s(\d+)(?:-[a-zA-Z0-9]+)*--([^/]+)$")
_DVC_OUTS = re.compile(r"^outs:", re.MULTILINE)
_DVC_MD5 = re.compile(r"\bmd5:\s*['\"]?([0-9a-fA-F]{32})(\.dir)?")
_DVC_SIZE = re.compile(r"\bsize:\s*(\d+)")


@dataclass(frozen=True)
class Pointer:
    """A stand-in for content that is stored elsewhere. ``kind``: git-lfs, git-annex, dvc."""

    kind: str
    oid: str | None
    size: int | None
    fetch_hint: str
    source: str = ""  # what declares it, when not the file itself: "dvc.lock (stage `train`)"

    @property
    def tracked_by(self) -> str:
        """e.g. "git-lfs" or "dvc (dvc.lock (stage `train`))"."""
        return f"{self.kind} ({self.source})" if self.source else self.kind


def _relpath(path: Path, repo_root: Path) -> str:
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(repo_root)).as_posix()
    except ValueError:
        return path.as_posix()


def _read_small(path: Path, limit: int) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit + 1)
    except OSError:
        return None


def _annex_pointer(key: str, rel: str) -> Pointer:
    match = _ANNEX_KEY.match(key)
    oid: str | None = None
    size: int | None = None
    if match:
        backend, size_text, rest = match.groups()
        size = int(size_text)
        digest = rest.split(".", 1)[0]
        algorithm = backend.rstrip("E").lower()
        if algorithm in ("sha256", "sha512", "sha1", "md5", "blake2b256") and re.fullmatch(
            r"[0-9a-f]+", digest
        ):
            oid = f"{algorithm}:{digest}"
    return Pointer("git-annex", oid, size, f"git annex get {shell_word(rel)}")


def _lfs_pointer(data: bytes, rel: str) -> Pointer | None:
    fields = lfs_pointer_fields(data)
    if fields is None:
        return None
    oid, size = fields
    return Pointer(
        "git-lfs",
        f"sha256:{oid}" if oid else None,
        size,
        f"git lfs pull --include {shell_word(rel)}",
    )


def _parse_dvc(dvc_file: Path) -> tuple[str | None, int | None] | None:
    data = _read_small(dvc_file, _DVC_MAX)
    if data is None or len(data) > _DVC_MAX:
        return None
    text = data.decode("utf-8", errors="replace")
    if not _DVC_OUTS.search(text):
        return None
    md5 = _DVC_MD5.search(text)
    size = _DVC_SIZE.search(text)
    if md5 is None and "path:" not in text:
        return None
    oid = f"md5:{md5.group(1).lower()}{md5.group(2) or ''}" if md5 else None
    return oid, int(size.group(1)) if size else None


def _missing_dvc_output(rel: str, repo_root: Path) -> Pointer | None:
    output = dvc_output(repo_root, rel)
    if output is None:
        return None
    oid = f"md5:{output.md5}" if output.md5 else None
    return Pointer("dvc", oid, output.size, output.fetch_hint(rel), output.described)


def detect_pointer(path: Path, repo_root: Path) -> Pointer | None:
    """Return the :class:`Pointer` that ``path`` is (or stands for), or None for real content.

    A DVC output present in the work tree is real content (whether it is the content DVC
    recorded is CS104's question); one that is absent, or a dangling link into DVC's cache, is
    a pointer whose hint says what to pull.
    """
    path = Path(path)
    rel = _relpath(path, repo_root)
    try:
        info = os.lstat(path)
    except OSError:
        info = None

    if info is not None and stat.S_ISLNK(info.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            return None
        if "/annex/objects/" in target.replace("\\", "/"):
            return _annex_pointer(target.rstrip("/").rsplit("/", 1)[-1], rel)
        if not path.exists():  # DVC's `cache.type: symlink` before `dvc pull`
            return _missing_dvc_output(rel, repo_root)
        return None

    if path.name.endswith(".dvc") and info is not None and stat.S_ISREG(info.st_mode):
        parsed = _parse_dvc(path)
        if parsed is not None:
            return Pointer("dvc", parsed[0], parsed[1], f"dvc pull {shell_word(rel)}")
        return None

    if info is not None and stat.S_ISREG(info.st_mode) and info.st_size < _ANNEX_MAX:
        data = _read_small(path, _ANNEX_MAX)
        if data is not None:
            if info.st_size < LFS_POINTER_MAX and (lfs := _lfs_pointer(data, rel)) is not None:
                return lfs
            line = data.rstrip(b"\n")
            if line.startswith(b"/annex/objects/") and b"\n" not in line:
                key = line.decode("utf-8", errors="replace").rsplit("/", 1)[-1]
                return _annex_pointer(key, rel)

    if info is None:
        return _missing_dvc_output(rel, repo_root)
    return None
