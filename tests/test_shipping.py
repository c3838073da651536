"""What ships is what git tracks (issue 14, "Verify what ships, not the working tree")."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pytest_corrsource.shipping import shipped_tree


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "data").mkdir(parents=True)
    (root / "sample.py").write_text("print('hi')\n")
    (root / "data" / "meta.pkl").write_bytes(b"\x80\x04N.")
    (root / ".gitignore").write_text("data/meta.pkl\n.venv/\n")
    (root / ".venv" / "lib").mkdir(parents=True)
    (root / ".venv" / "lib" / "x.py").write_text("")
    git(root, "init", "-q")
    git(root, "add", "sample.py", ".gitignore")
    git(root, "commit", "-qm", "init")
    (root / "notes.txt").write_text("untracked\n")
    return root


def test_tracked_files_ship_and_the_rest_is_listed(repo: Path) -> None:
    tree = shipped_tree(repo)
    assert tree is not None
    assert tree.files == {"sample.py", ".gitignore"}
    assert tree.left_out == (".venv/", "data/", "notes.txt")
    assert tree.ships("sample.py")
    assert not tree.ships("data/meta.pkl")
    assert not tree.ships("data")


def test_a_subfolder_of_a_repository_lists_its_own_files(repo: Path) -> None:
    (repo / "model").mkdir()
    (repo / "model" / "run.py").write_text("")
    git(repo, "add", "model/run.py")
    tree = shipped_tree(repo / "model")
    assert tree is not None
    assert tree.files == {"run.py"}
    assert repo.joinpath("model").is_dir()
    assert tree.ships("run.py")


def test_outside_git_everything_ships(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("")
    assert shipped_tree(tmp_path) is None


def test_a_hostile_git_config_runs_nothing(repo: Path, tmp_path: Path) -> None:
    # core.fsmonitor names a command git would run on `ls-files`: it must never run.
    canary = tmp_path / "fsmonitor-ran"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\ntouch {canary}\n")
    hook.chmod(0o755)
    git(repo, "config", "core.fsmonitor", str(hook))
    git(repo, "config", "core.untrackedCache", "true")
    tree = shipped_tree(repo)
    assert tree is not None
    assert "sample.py" in tree.files
    assert not canary.exists()
