"""Scratch copies of a repository, and snapshots proving the user's checkout was not written.

Every command of a model repository runs in a *copy* of it: :func:`create_scratch_copy` copies
the tree (never hardlinking: a hardlink shares the inode, so a script writing into it would
change the user's file), reflinking large files where the filesystem supports it. Callers take a
:class:`TreeSnapshot` of the user's repository before a step and :func:`diff` it against one taken
afterwards, failing loudly if anything changed.

Plain library code: it knows nothing of pytest or of the manifest.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from pytest_corrsource.errors import CorrsourceError

if TYPE_CHECKING:
    from pytest_corrsource.shipping import ShippedTree

__all__ = [
    "REFLINK_MIN_SIZE",
    "SKIPPED_NAMES",
    "Entry",
    "ScratchCopy",
    "TreeSnapshot",
    "WorkspaceError",
    "create_scratch_copy",
    "diff",
]

#: Directory entries never copied into a scratch copy, at any depth.
SKIPPED_NAMES = frozenset({".git", ".hg", ".svn", ".pytest_cache", "__pycache__"})

#: Files at least this large are reflinked (``FICLONE``) when the filesystem allows it.
REFLINK_MIN_SIZE = 1 << 20

_FICLONE = 0x40049409  # _IOW(0x94, 9, int)
_COPY_CHUNK = 1 << 24


class WorkspaceError(CorrsourceError):
    """The scratch copy cannot be made as asked."""


@dataclass(frozen=True)
class ScratchCopy:
    """A copy of a repository: its root, and notes about what was not copied and why."""

    root: Path
    notes: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# Copying


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _reflink(src_fd: int, dst_fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return False
    try:
        fcntl.ioctl(dst_fd, _FICLONE, src_fd)
    except OSError:
        return False
    return True


def _copy_bytes(src_fd: int, dst_fd: int, size: int) -> None:
    copy_file_range = getattr(os, "copy_file_range", None)
    if copy_file_range is not None:
        try:
            copied = 0
            while True:
                n = copy_file_range(src_fd, dst_fd, _COPY_CHUNK)
                if n == 0:
                    break
                copied += n
            if copied >= size:
                return
        except OSError:
            pass
        # Start over with plain reads and writes (e.g. EXDEV on old kernels, or /proc-like files).
        os.lseek(src_fd, 0, os.SEEK_SET)
        os.lseek(dst_fd, 0, os.SEEK_SET)
        os.ftruncate(dst_fd, 0)
    while chunk := os.read(src_fd, 1 << 20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst_fd, view) :]


def _copy_file(src: Path, dst: Path) -> None:
    """Copy contents, mode and times (``shutil.copy2`` semantics) into a new inode at *dst*."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    src_fd = os.open(src, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        size = os.fstat(src_fd).st_size
        dst_fd = os.open(dst, flags, 0o600)
        try:
            if not (size >= REFLINK_MIN_SIZE and _reflink(src_fd, dst_fd)):
                _copy_bytes(src_fd, dst_fd, size)
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)
    shutil.copystat(src, dst)


def _check_dest(repo_real: str, dest: Path) -> None:
    dest_real = os.path.realpath(dest)
    if _is_within(dest_real, repo_real):
        raise WorkspaceError(
            f"the scratch copy {dest} would be inside the repository {repo_real}; "
            "choose a folder outside it"
        )
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise WorkspaceError(f"{dest} exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()):
        raise WorkspaceError(f"{dest} is not empty; the scratch copy needs an empty folder")


def _normalize_relative(rel: str) -> str:
    pure = PurePosixPath(rel.replace(os.sep, "/"))
    if pure.is_absolute() or not pure.parts or ".." in pure.parts:
        raise WorkspaceError(
            f"replacement path {rel!r} must be a relative path inside the repository"
        )
    return "/".join(part for part in pure.parts if part != ".")


def create_scratch_copy(
    repo_root: Path,
    dest: Path,
    *,
    replace: Mapping[str, Path] | None = None,
    shipped: ShippedTree | None = None,
) -> ScratchCopy:
    """Copy the repository at *repo_root* into *dest* (absent or empty, outside the repository).

    Skips :data:`SKIPPED_NAMES`. Symlinks that resolve inside the repository are recreated as
    relative symlinks; symlinks leading outside it (and sockets, FIFOs, devices) are not copied
    and a note says so. *replace* maps repo-relative paths to files copied there instead (for
    example modified weights); their parent folders are created when needed. With *shipped*
    (a git checkout), only what it ships is copied: what a fresh clone would hold.
    """
    repo_real = os.path.realpath(repo_root)
    if not os.path.isdir(repo_real):
        raise WorkspaceError(f"repository {repo_root} is not a folder")
    dest = Path(dest)
    _check_dest(repo_real, dest)
    dest.mkdir(parents=True, exist_ok=True)
    dest_root = Path(os.path.abspath(dest))
    notes: list[str] = []

    stack = [""]
    while stack:
        rel_dir = stack.pop()
        src_dir = os.path.join(repo_real, rel_dir) if rel_dir else repo_real
        with os.scandir(src_dir) as entries:
            listing = sorted(entries, key=lambda e: e.name)
        for entry in listing:
            if entry.name in SKIPPED_NAMES:
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if shipped is not None and not shipped.ships(rel):
                continue  # untracked or ignored: not part of the release
            target = dest_root / rel
            if entry.is_symlink():
                _copy_symlink(entry.path, rel, repo_real, dest_root, notes)
            elif entry.is_dir(follow_symlinks=False):
                target.mkdir()
                stack.append(rel)
            elif entry.is_file(follow_symlinks=False):
                _copy_file(Path(entry.path), target)
            else:
                notes.append(f"skipped {rel}: not a regular file, folder or symlink")

    for rel, source in (replace or {}).items():
        _put_replacement(_normalize_relative(rel), Path(source), dest_root)
    return ScratchCopy(root=dest_root, notes=tuple(notes))


def _copy_symlink(path: str, rel: str, repo_real: str, dest_root: Path, notes: list[str]) -> None:
    link_text = os.readlink(path)
    resolved = os.path.realpath(path)
    if not _is_within(resolved, repo_real):
        notes.append(
            f"skipped symlink {rel} -> {link_text}: it leads outside the repository "
            f"(to {resolved}); a copy must not follow it"
        )
        return
    target_rel = os.path.relpath(resolved, repo_real)
    link_location = dest_root / rel
    new_target = os.path.relpath(dest_root / target_rel, link_location.parent)
    if any(part in SKIPPED_NAMES for part in Path(target_rel).parts):
        notes.append(f"symlink {rel} -> {link_text} points into a folder that is not copied")
    os.symlink(new_target, link_location)


def _put_replacement(rel: str, source: Path, dest_root: Path) -> None:
    if not source.is_file():
        raise WorkspaceError(f"replacement for {rel} is not a file: {source}")
    target = dest_root / rel
    parent_real = os.path.realpath(target.parent)
    if not _is_within(parent_real, os.path.realpath(dest_root)):
        raise WorkspaceError(f"replacement path {rel} leads outside the scratch copy")
    if target.is_dir() and not target.is_symlink():
        raise WorkspaceError(f"cannot replace {rel}: it is a folder in the repository")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    _copy_file(source, target)


# --------------------------------------------------------------------------------------------
# Snapshots


@dataclass(frozen=True)
class Entry:
    """What a snapshot records for one path: stat data only, no content reads."""

    kind: str  # "file", "symlink" or "dir"
    size: int
    mtime_ns: int
    mode: int
    link: str | None = None
    inode: int = 0
    ctime_ns: int = 0


def _walk(root: Path, skip: frozenset[str]) -> Iterator[tuple[str, os.DirEntry[str]]]:
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(root / rel_dir if rel_dir else root) as entries:
                listing = list(entries)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in listing:
            if entry.name in skip:
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            yield rel, entry
            if entry.is_dir(follow_symlinks=False):
                stack.append(rel)


@dataclass(frozen=True)
class TreeSnapshot:
    """The stat data of every file, symlink and folder under a root."""

    root: Path
    entries: Mapping[str, Entry] = field(default_factory=dict)

    @classmethod
    def take(cls, root: Path, *, skip: Iterable[str] = (".git",)) -> TreeSnapshot:
        skipped = frozenset(skip)
        entries: dict[str, Entry] = {}
        for rel, dir_entry in _walk(Path(root), skipped):
            try:
                info = dir_entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(info.st_mode):
                link: str | None = None
                with contextlib.suppress(OSError):
                    link = os.readlink(dir_entry.path)
                entries[rel] = Entry(
                    "symlink", 0, info.st_mtime_ns, stat.S_IMODE(info.st_mode), link, info.st_ino
                )
            elif stat.S_ISDIR(info.st_mode):
                entries[rel] = Entry("dir", 0, 0, stat.S_IMODE(info.st_mode))
            else:
                kind = "file" if stat.S_ISREG(info.st_mode) else "special"
                entries[rel] = Entry(
                    kind,
                    info.st_size,
                    info.st_mtime_ns,
                    stat.S_IMODE(info.st_mode),
                    None,
                    info.st_ino,
                    info.st_ctime_ns,
                )
        return cls(root=Path(root), entries=entries)

    def diff(self, after: TreeSnapshot) -> list[str]:
        return diff(self, after)


def _describe_change(old: Entry, new: Entry) -> str | None:
    if old.kind != new.kind:
        return f"{old.kind} → {new.kind}"
    details: list[str] = []
    if old.size != new.size:
        details.append(f"size {old.size} → {new.size}")
    if old.link != new.link:
        details.append(f"link target {old.link} → {new.link}")
    if old.mode != new.mode:
        details.append(f"mode {old.mode:#o} → {new.mode:#o}")
    if old.kind == "dir":
        return ", ".join(details) or None
    if old.inode != new.inode:
        details.append("replaced by a new file")
    if old.mtime_ns != new.mtime_ns:
        details.append("modification time changed")
    if not details and old.ctime_ns != new.ctime_ns:
        details.append("rewritten: status change time changed")
    return ", ".join(details) or None


def diff(before: TreeSnapshot, after: TreeSnapshot) -> list[str]:
    """Human lines for every difference: ``modified: a (size 1 → 0)``, ``added: b``, ``removed: c``.

    Folders are shown with a trailing ``/``; sorted by path.
    """
    lines: list[str] = []
    for rel in sorted(before.entries.keys() | after.entries.keys()):
        old = before.entries.get(rel)
        new = after.entries.get(rel)
        if old is None and new is not None:
            lines.append(f"added: {_shown(rel, new)}")
        elif new is None and old is not None:
            lines.append(f"removed: {_shown(rel, old)}")
        elif old is not None and new is not None:
            change = _describe_change(old, new)
            if change is not None:
                lines.append(f"modified: {_shown(rel, new)} ({change})")
    return lines


def _shown(rel: str, entry: Entry) -> str:
    return rel + "/" if entry.kind == "dir" else rel
