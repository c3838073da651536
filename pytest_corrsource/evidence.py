"""Evidence that a step produced what it claims: digests of its declared outputs before and after.

Stage: shared by every step that declares outputs (generate, modify, training, preprocessing,
evaluation, ``run.expect.files``). A step proves nothing by pointing ``produces:`` at a file that
was already there: the released weights, a file committed under ``{repo}``, or a copy placed by
an earlier step. Each declared output is digested (size + streamed sha256) before the command
and again after; an output that existed before with the same content was not produced by the
step, whatever its exit code says.

A directory output is digested as the sorted list of its files' relative paths and digests, so
a step that "produces" a folder must create or change at least one file in it. Symbolic links
are followed for files (a link to unchanged content is unchanged content) and never for the
walk inside a directory (a link loop must not hang the check).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_corrsource.hashing import sha256_file

# A directory output's first files (in sorted order) are digested by content; any beyond are
# compared by size and modification time only: a step's outputs are a few files, not a dataset,
# and a hostile folder of a million files must not be read a million times.
MAX_HASHED_FILES = 10_000


@dataclass(frozen=True)
class OutputDigest:
    """What one declared output was: a file's size and sha256, or a directory's tree digest."""

    kind: str  # "file" or "directory"
    size: int  # bytes of the file, or of all files in the directory
    sha256: str


def digest_output(path: Path) -> OutputDigest | None:
    """The digest of ``path``, or None when nothing (readable) is there."""
    try:
        if path.is_dir():
            return _digest_directory(path)
        if path.is_file():
            return OutputDigest("file", path.stat().st_size, sha256_file(path))
    except OSError:
        return None
    return None


def _digest_directory(root: Path) -> OutputDigest:
    files: list[tuple[str, Path]] = []
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs.sort()
        for name in names:
            path = Path(folder) / name
            files.append((path.relative_to(root).as_posix(), path))
    tree = hashlib.sha256()
    total = 0
    for index, (rel, path) in enumerate(sorted(files)):
        try:
            stat = path.stat()
            size = stat.st_size
            digest = sha256_file(path) if index < MAX_HASHED_FILES else f"mtime {stat.st_mtime_ns}"
        except OSError:  # a dangling link, a socket: present, with no content
            size, digest = 0, "-"
        total += size
        tree.update(f"{rel}\0{size}\0{digest}\n".encode("utf-8", "surrogateescape"))
    return OutputDigest("directory", total, tree.hexdigest())


def record(outputs: Mapping[str, Path]) -> dict[str, OutputDigest | None]:
    """Digest every declared output before a step runs (None: absent)."""
    return {declared: digest_output(path) for declared, path in outputs.items()}


def not_produced(
    outputs: Mapping[str, Path], before: Mapping[str, OutputDigest | None]
) -> dict[str, str]:
    """Declared outputs the step did not produce -> why.

    Unchanged content is not evidence; nor is a link: a step that links its output to the
    released weights (``ln -s {weights} {outdir}/model.safetensors``, or a hard link) wrote
    nothing, even though the path is new.
    """
    stale: dict[str, str] = {}
    for declared, path in outputs.items():
        if path.is_symlink():
            stale[declared] = f"`{declared}` is a symbolic link (to {os.readlink(path)})"
            continue
        earlier = before.get(declared)
        if earlier is not None and digest_output(path) == earlier:
            stale[declared] = f"`{declared}` existed before the step with the same content"
            continue
        try:
            links = path.stat().st_nlink if path.is_file() else 1
        except OSError:
            links = 1
        if links > 1:
            stale[declared] = f"`{declared}` is a hard link to another file ({links} names)"
    return stale


def not_produced_message(label: str, reasons: Mapping[str, str]) -> str:
    """The failure text for outputs a step did not produce."""
    return f"{label}: not produced by this step: " + "; ".join(reasons.values())
