"""What ships is what git tracks (issue 14, "Verify what ships, not the working tree")."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import PlannedChecks, RepoFactory

from pytest_corrsource.results import CheckResult
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


def _cs402(root: Path, *, working_tree: bool = False) -> CheckResult:
    from pytest_corrsource.checks.api import Options

    checks = PlannedChecks(root, Options(working_tree=working_tree))
    for planned in checks.plan:  # CS402 after its prerequisites, as a session runs
        result = checks.run_planned(planned)
        if planned.spec.id == "CS402":
            return result
    raise AssertionError("no CS402 planned")


@pytest.mark.e2e
def test_an_ignored_file_the_run_needs_fails_as_on_a_fresh_clone(make_repo: RepoFactory) -> None:
    # nanoGPT's gitignored meta.pkl made the run pass in the checkout and fail on a clone.
    from conftest import RUN_SCRIPT, RUNNABLE_FILES, RUNNABLE_MANIFEST

    needs_meta = "open('data/meta.txt').read()\n" + RUN_SCRIPT
    root = make_repo(RUNNABLE_MANIFEST, {**RUNNABLE_FILES, "run.py": needs_meta})
    (root / "data").mkdir()
    (root / "data" / "meta.txt").write_text("vocabulary\n")
    (root / ".gitignore").write_text("data/meta.txt\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "release")
    tree = shipped_tree(root)
    assert tree is not None
    assert "data/meta.txt" not in tree.files

    shipped = _cs402(root)
    assert shipped.outcome == "failed"
    message = shipped.message
    assert "No such file or directory: 'data/meta.txt'" in message
    # the fix says what the copy lacked (an ignored folder is named as a folder)
    assert "left out as untracked or ignored: data/ (--corrsource-working-tree copies" in message

    as_is = _cs402(root, working_tree=True)
    assert as_is.outcome == "passed", as_is.message


@pytest.mark.e2e
def test_declared_weights_ship_even_when_git_ignores_them(make_repo: RepoFactory) -> None:
    # DVC (and other channels) keep weights out of git on purpose: declared, they ship.
    from conftest import RUNNABLE_FILES, RUNNABLE_MANIFEST

    root = make_repo(RUNNABLE_MANIFEST, RUNNABLE_FILES)
    (root / ".gitignore").write_text("weights/\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "release")
    result = _cs402(root)
    assert result.outcome == "passed", result.message
