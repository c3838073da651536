"""What a repository ships: its git-tracked files, not whatever lies in the working tree.

Stage: input to the scratch copy. A gitignored ``meta.pkl`` or an untracked vocabulary in the
developer's checkout must not make a run pass that fails on a fresh clone, so in a git work tree
the scratch copy holds the tracked files (with their working-tree content) and the report names
what was left out. Outside git, or without a ``git`` program, the whole tree ships.

``git`` runs on a repository we do not trust: its ``.git/config`` may set ``core.fsmonitor`` (a
command git would run), so git runs with that switched off, no system or global configuration,
a scrubbed environment, a timeout and bounded output; ``safe.directory`` is granted on the
command line because checkouts owned by another user are normal here (CI, auditors).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pytest_corrsource.errors import CorrsourceError

__all__ = ["GitListingError", "ShippedTree", "run_git", "shipped_tree"]

_MAX_LISTING_BYTES = 64 << 20  # a listing beyond this is not a repository we can verify
_GIT_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class ShippedTree:
    """The tracked files under a repository root, and what the working tree has besides."""

    files: frozenset[str]  # root-relative POSIX paths of tracked files (and submodule dirs)
    left_out: tuple[str, ...]  # untracked or ignored paths present (folders end with "/")
    declared: frozenset[str] = field(default=frozenset())  # shipped by other channels (LFS, DVC)
    declared_folders: frozenset[str] = field(default=frozenset())  # e.g. a sharded checkpoint's

    @cached_property
    def _folders(self) -> frozenset[str]:
        folders = set()
        for path in self.files | self.declared:
            parent = posixpath.dirname(path)
            while parent and parent not in folders:
                folders.add(parent)
                parent = posixpath.dirname(parent)
        return frozenset(folders)

    def ships(self, rel: str) -> bool:
        """Whether ``rel`` (a file, or a folder holding shipped files) is part of the release."""
        rel = rel.strip("/")
        if rel in self.files or rel in self.declared or rel in self._folders:
            return True
        return rel in self.declared_folders or any(
            rel.startswith(folder + "/") for folder in self.declared_folders
        )

    def with_declared(self, paths: Iterable[str], folders: Iterable[str] = ()) -> ShippedTree:
        """The same, with files (and folders) the manifest declares — weights, shards,
        checkpoints, local data — shipped whatever git says: DVC and other channels keep them
        out of git on purpose."""
        declared = self.declared | {posixpath.normpath(p) for p in paths}
        whole = self.declared_folders | {posixpath.normpath(f) for f in folders}
        tree = ShippedTree(self.files, (), frozenset(declared), frozenset(whole))
        left_out = tuple(p for p in self.left_out if not tree.ships(p))
        return ShippedTree(self.files, left_out, tree.declared, tree.declared_folders)


class GitListingError(CorrsourceError, RuntimeError):
    """git answered, but not with a listing we can trust (it failed, timed out, or overflowed)."""


def run_git(root: Path, *args: str) -> list[str]:
    """``git -C root *args`` with the repository's own configuration made harmless (see the
    module docstring); its NUL-separated output as a list. Raises :class:`GitListingError`
    when git fails, times out or answers more than 64 MiB. Every git the checker runs on a
    repository goes through here."""
    git = shutil.which("git")
    assert git is not None
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(root),  # no user configuration either
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
    }
    argv = [
        git,
        "-c", "core.fsmonitor=false",
        "-c", "core.untrackedCache=false",
        "-c", "safe.directory=*",
        "-C", str(root),
        *args,
    ]  # fmt: skip
    try:
        done = subprocess.run(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        limit = f"{_GIT_TIMEOUT_SECONDS:.0f} s"
        raise GitListingError(f"`git {args[0]}` took longer than {limit}") from None
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        why = detail[-1] if detail else f"exit code {done.returncode}"
        raise GitListingError(f"`git {args[0]}` failed: {why}")
    if len(done.stdout) > _MAX_LISTING_BYTES:
        raise GitListingError("the file listing is larger than 64 MiB")
    return [entry for entry in done.stdout.decode("utf-8", "surrogateescape").split("\0") if entry]


def _inside_work_tree(root: Path) -> bool:
    try:
        answer = run_git(root, "rev-parse", "--is-inside-work-tree")
    except GitListingError:  # "not a git repository"
        return False
    return bool(answer) and answer[0].strip() == "true"


def shipped_tree(root: Path) -> ShippedTree | None:
    """The tracked files under ``root`` (which may be a subfolder of a git repository), or None
    when ``root`` is not in a git work tree or git is not installed.

    Raises :class:`GitListingError` when git is there but its listing cannot be had.
    """
    if shutil.which("git") is None or not _inside_work_tree(root):
        return None
    files = frozenset(run_git(root, "ls-files", "-z", "--cached"))
    others = run_git(root, "ls-files", "-z", "--others", "--directory", "--no-empty-directory")
    left_out = tuple(sorted(path for path in others if not path.startswith(".git/")))
    return ShippedTree(files=files, left_out=left_out)
