"""A Git LFS file's pointer, as git's index holds it, is a declared digest for the real
content once pulled (CS104). git-lfs is never run: the work tree's "pulled" file is written by
the test, and the pointer is what `git add` stored before (as the clean filter would)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import RepoFactory
from test_checks_weights import check

from pytest_corrsource.tracking import declared_digest, lfs_oid

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

MANIFEST = (
    "version: 1\nname: tiny\nlicenses: {distribution: MIT}\n"
    "weights:\n  - path: weights/model.safetensors\n"
)
WEIGHTS = "weights/model.safetensors"


def git(root: Path, *args: str) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(root),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    subprocess.run(["git", "-C", str(root), *args], env=env, check=True, capture_output=True)


def pointer_text(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def lfs_repo(
    root: Path, rel: str = WEIGHTS, oid: str | None = None, attributes: bool = True
) -> str:
    """A git repository whose index holds an LFS pointer for ``rel`` (the file's real sha256,
    or ``oid``) while the work tree holds the real file. Returns the real sha256."""
    real = (root / rel).read_bytes()
    digest = hashlib.sha256(real).hexdigest()
    git(root, "init", "-q")
    if attributes:
        (root / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    (root / rel).write_bytes(pointer_text(oid or digest, len(real)))
    git(root, "add", "-A")
    (root / rel).write_bytes(real)  # what `git lfs pull` leaves in the work tree
    return digest


def test_the_index_pointer_gives_the_oid(make_repo: RepoFactory) -> None:
    root = make_repo(MANIFEST)
    digest = lfs_repo(root)
    assert lfs_oid(root, WEIGHTS) == digest
    declared, why = declared_digest(root, WEIGHTS)
    assert declared is not None
    assert (declared.algorithm, declared.value, why) == ("sha256", digest, "")


def test_cs104_passes_when_the_pulled_file_matches_its_pointer(make_repo: RepoFactory) -> None:
    root = make_repo(MANIFEST)
    digest = lfs_repo(root)
    result = check(root, "CS104", WEIGHTS)
    assert result.outcome == "passed"
    assert result.message.endswith(
        f"sha256 {digest} matches the Git LFS pointer's sha256 (in git's index)"
    )
    assert result.warnings == []


def test_cs104_fails_when_the_file_is_not_what_the_pointer_names(make_repo: RepoFactory) -> None:
    root = make_repo(MANIFEST)
    digest = lfs_repo(root, oid="e" * 64)
    result = check(root, "CS104", WEIGHTS)
    assert result.outcome == "failed"
    assert (
        f"{WEIGHTS} has sha256 {digest}; the Git LFS pointer's sha256 (in git's index) is "
        f"{'e' * 64} (the manifest declares no sha256)" in result.message
    )
    assert f"git checkout -- {WEIGHTS}" in result.message


def test_without_filter_lfs_there_is_no_declared_digest(make_repo: RepoFactory) -> None:
    root = make_repo(MANIFEST)
    lfs_repo(root, attributes=False)
    assert lfs_oid(root, WEIGHTS) is None
    result = check(root, "CS104", WEIGHTS)
    assert result.outcome == "passed"
    assert result.warnings[0].startswith(f"no sha256 declared for {WEIGHTS}")


def test_content_committed_without_a_pointer_is_not_read_as_one(make_repo: RepoFactory) -> None:
    root = make_repo(MANIFEST)
    git(root, "init", "-q")
    (root / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    git(root, "add", "-A")  # no git-lfs: the real bytes go into the index
    assert lfs_oid(root, WEIGHTS) is None


def test_a_manifest_in_a_subfolder_of_the_repository(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    root = make_repo(MANIFEST)
    real = (root / WEIGHTS).read_bytes()
    top = tmp_path / "monorepo"
    top.mkdir()
    shutil.move(root, top / "model")
    root = top / "model"
    git(top, "init", "-q")
    (top / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    digest = hashlib.sha256(real).hexdigest()
    (root / WEIGHTS).write_bytes(pointer_text(digest, len(real)))
    git(top, "add", "-A")
    (root / WEIGHTS).write_bytes(real)
    assert lfs_oid(root, WEIGHTS) == digest


def test_a_hostile_repository_config_runs_nothing(make_repo: RepoFactory, tmp_path: Path) -> None:
    # The repository's own .git/config names commands git would run for a filter or an
    # fsmonitor; reading the pointer must run none of them.
    root = make_repo(MANIFEST)
    digest = lfs_repo(root)
    marker = tmp_path / "pwned"
    with (root / ".git" / "config").open("a") as config:
        config.write(
            f'[filter "lfs"]\n\tsmudge = touch {marker}\n\tclean = touch {marker}\n'
            f"\trequired = true\n[core]\n\tfsmonitor = touch {marker}\n"
        )
    assert lfs_oid(root, WEIGHTS) == digest
    assert check(root, "CS104", WEIGHTS).outcome == "passed"
    assert not marker.exists()


def test_a_file_outside_git_has_no_lfs_digest(make_repo: RepoFactory) -> None:
    root = make_repo(MANIFEST)
    assert lfs_oid(root, WEIGHTS) is None


def test_cs701_says_what_to_pull_for_an_lfs_data_source(make_repo: RepoFactory) -> None:
    pointer = pointer_text("c" * 64, 9).decode()
    manifest = MANIFEST + "data:\n  sources:\n    - path: data/names.txt\n"
    root = make_repo(manifest, {"data/names.txt": pointer})
    result = check(root, "CS701", "data/names.txt", component="data", level="open-source-ai")
    assert result.outcome == "failed"
    assert (
        "data/names.txt (line 8) is a pointer file; it is tracked by git-lfs, not fetched yet: "
        "run `git lfs pull --include data/names.txt`" in result.message
    )
    (root / "data" / "names.txt").write_text("emma\nolivia\n")
    assert (
        check(root, "CS701", "data/names.txt", component="data", level="open-source-ai").outcome
        == "passed"
    )
