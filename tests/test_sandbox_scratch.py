from __future__ import annotations

import hashlib
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pytest_corrsource.sandbox import scratch as workspace
from pytest_corrsource.sandbox.process import run_command, scrubbed_environment
from pytest_corrsource.sandbox.scratch import (
    REFLINK_MIN_SIZE,
    ScratchCopy,
    TreeSnapshot,
    WorkspaceError,
    create_scratch_copy,
    diff,
)

needs_symlinks = pytest.mark.skipif(
    sys.platform == "win32", reason="symlinks need privileges on Windows"
)


def content_hashes(root: Path) -> dict[str, str]:
    """Every file (including .git) by full-content sha256, symlinks by target, folders by mode."""
    result: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                result[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                result[rel] = f"dir:{path.stat().st_mode:o}"
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                result[rel] = f"{digest}:{path.stat().st_mode:o}"
    return result


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "weights").mkdir(parents=True)
    (root / "data").mkdir()
    (root / ".git" / "objects").mkdir(parents=True)
    (root / "__pycache__").mkdir()
    (root / "sub" / ".pytest_cache").mkdir(parents=True)
    (root / "weights" / "model.safetensors").write_bytes(os.urandom(4096))
    (root / "big.bin").write_bytes(os.urandom(3 * REFLINK_MIN_SIZE + 123))
    (root / "data" / "x.txt").write_text("original data\n")
    (root / "README.md").write_text("# model\n")
    (root / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "run.sh").chmod(0o755)
    (root / ".git" / "config").write_text("[core]\n")
    (root / ".git" / "objects" / "ab").write_bytes(b"blob")
    (root / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0pyc")
    (root / "sub" / ".pytest_cache" / "v").write_text("cache")
    (root / "sub" / "keep.txt").write_text("keep")
    if sys.platform != "win32":
        (root / "link_inside").symlink_to("data/x.txt")
        (root / "sub" / "abs_inside").symlink_to(root / "data" / "x.txt")
        (root / "dirlink").symlink_to("data", target_is_directory=True)
        (root / "dangling").symlink_to("missing.txt")
        (tmp_path / "outside.txt").write_text("not part of the repo")
        (root / "escape").symlink_to(tmp_path / "outside.txt")
        (root / "sub" / "escape_rel").symlink_to("../../outside.txt")
        (root / "sub" / "to_git").symlink_to("../.git/config")
    return root


MUTATE = """
    import os, pathlib
    pathlib.Path("data/x.txt").write_text("overwritten\\n")
    with open("weights/model.safetensors", "ab") as f:
        f.write(b"tail")
    os.remove("README.md")
    pathlib.Path("out.txt").write_text("new file\\n")
    if os.path.islink("link_inside"):
        with open("link_inside", "a") as f:
            f.write("written through the link\\n")
    if os.path.islink("sub/abs_inside"):
        with open("sub/abs_inside", "a") as f:
            f.write("written through the absolute link\\n")
    with open("big.bin", "r+b") as f:
        f.write(b"X" * 16)
    os.chmod("run.sh", 0o700)
"""


def test_scripts_cannot_touch_the_original(repo: Path, tmp_path: Path) -> None:
    original = content_hashes(repo)
    user_before = TreeSnapshot.take(repo)
    copy = create_scratch_copy(repo, tmp_path / "scratch")
    assert isinstance(copy, ScratchCopy)
    scratch_before = TreeSnapshot.take(copy.root)
    home = tmp_path / "home"
    home.mkdir()
    env = scrubbed_environment(path_prefix=[], home=home, tmpdir=tmp_path)
    result = run_command(
        [sys.executable, "-c", textwrap.dedent(MUTATE)], cwd=copy.root, env=env, timeout=60
    )
    assert result.returncode == 0, result.describe()

    assert content_hashes(repo) == original
    assert diff(user_before, TreeSnapshot.take(repo)) == []

    changes = diff(scratch_before, TreeSnapshot.take(copy.root))
    assert "removed: README.md" in changes
    assert "added: out.txt" in changes
    weights_line = next(c for c in changes if c.startswith("modified: weights/model.safetensors"))
    assert "(size 4096 → 4100" in weights_line
    assert any(c.startswith("modified: data/x.txt (size 14 → ") for c in changes)
    assert any(c.startswith("modified: big.bin (") for c in changes)
    if sys.platform != "win32":
        assert any(c.startswith("modified: run.sh (mode 0o755 → 0o700") for c in changes)
        text = (copy.root / "data" / "x.txt").read_text()
        assert text == (
            "overwritten\nwritten through the link\nwritten through the absolute link\n"
        )


def test_skipped_names_are_not_copied(repo: Path, tmp_path: Path) -> None:
    copy = create_scratch_copy(repo, tmp_path / "scratch")
    assert not (copy.root / ".git").exists()
    assert not (copy.root / "__pycache__").exists()
    assert not (copy.root / "sub" / ".pytest_cache").exists()
    assert (copy.root / "sub" / "keep.txt").read_text() == "keep"
    assert (copy.root / "data" / "x.txt").read_text() == "original data\n"
    assert os.access(copy.root / "run.sh", os.X_OK)
    assert (copy.root / "run.sh").stat().st_mtime_ns == (repo / "run.sh").stat().st_mtime_ns


@needs_symlinks
def test_symlinks(repo: Path, tmp_path: Path) -> None:
    copy = create_scratch_copy(repo, tmp_path / "scratch")
    root = copy.root

    assert os.readlink(root / "link_inside") == "data/x.txt"
    # An absolute link into the repository becomes relative, so it points into the copy.
    assert os.readlink(root / "sub" / "abs_inside") == "../data/x.txt"
    assert os.path.realpath(root / "sub" / "abs_inside") == os.path.realpath(
        root / "data" / "x.txt"
    )
    assert (root / "dirlink").is_symlink()
    assert os.readlink(root / "dirlink") == "data"
    assert (root / "dangling").is_symlink()
    assert os.readlink(root / "dangling") == "missing.txt"

    assert not (root / "escape").exists()
    assert not (root / "escape").is_symlink()
    assert not (root / "sub" / "escape_rel").is_symlink()
    notes = "\n".join(copy.notes)
    assert "skipped symlink escape -> " in notes
    assert "skipped symlink sub/escape_rel -> ../../outside.txt" in notes
    assert "leads outside the repository" in notes
    assert "sub/to_git" in notes  # into a folder that is not copied
    assert len(copy.notes) == 3


@needs_symlinks
def test_symlinked_repo_root_and_link_chains(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "a").mkdir(parents=True)
    (real / "a" / "f.txt").write_text("f")
    (real / "hop").symlink_to("a", target_is_directory=True)
    (real / "chain").symlink_to("hop/f.txt")
    (tmp_path / "elsewhere").mkdir()
    (real / "out_dir").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (real / "via_out").symlink_to("out_dir/../real/a/f.txt")  # lexically odd, resolves inside
    alias = tmp_path / "alias"
    alias.symlink_to(real, target_is_directory=True)

    copy = create_scratch_copy(alias, tmp_path / "scratch")
    assert (copy.root / "chain").read_text() == "f"
    assert os.path.realpath(copy.root / "chain") == os.path.realpath(copy.root / "a" / "f.txt")
    assert not (copy.root / "out_dir").is_symlink()
    assert (copy.root / "via_out").read_text() == "f"
    assert os.path.realpath(copy.root / "via_out").startswith(os.path.realpath(copy.root))


def test_replace_puts_the_replacement_in(repo: Path, tmp_path: Path) -> None:
    original = content_hashes(repo)
    modified = tmp_path / "modified.safetensors"
    modified.write_bytes(b"modified weights")
    extra = tmp_path / "extra.bin"
    extra.write_bytes(b"extra")
    replace = {"weights/model.safetensors": modified, "new/dir/extra.bin": extra}
    if sys.platform != "win32":
        replace["link_inside"] = extra
    copy = create_scratch_copy(repo, tmp_path / "scratch", replace=replace)
    assert (copy.root / "weights" / "model.safetensors").read_bytes() == b"modified weights"
    assert (copy.root / "new" / "dir" / "extra.bin").read_bytes() == b"extra"
    assert modified.stat().st_ino != (copy.root / "weights" / "model.safetensors").stat().st_ino
    if sys.platform != "win32":
        assert not (copy.root / "link_inside").is_symlink()
        assert (copy.root / "link_inside").read_bytes() == b"extra"
        assert (copy.root / "data" / "x.txt").read_text() == "original data\n"
    assert content_hashes(repo) == original


@pytest.mark.parametrize("bad", ["../escape.bin", "/abs/path", "", ".", "a/../../b"])
def test_replace_rejects_paths_outside(repo: Path, tmp_path: Path, bad: str) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"x")
    with pytest.raises(WorkspaceError, match="relative path inside the repository"):
        create_scratch_copy(repo, tmp_path / "scratch", replace={bad: source})


def test_replace_errors(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="not a file"):
        create_scratch_copy(repo, tmp_path / "s1", replace={"weights/x": tmp_path / "nope"})
    source = tmp_path / "f"
    source.write_bytes(b"x")
    with pytest.raises(WorkspaceError, match="is a folder"):
        create_scratch_copy(repo, tmp_path / "s2", replace={"data": source})


def test_destination_rules(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="inside the repository"):
        create_scratch_copy(repo, repo / "scratch")
    with pytest.raises(WorkspaceError, match="inside the repository"):
        create_scratch_copy(repo, repo)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("x")
    with pytest.raises(WorkspaceError, match="not empty"):
        create_scratch_copy(repo, busy)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(WorkspaceError, match="not a folder"):
        create_scratch_copy(repo, a_file)
    with pytest.raises(WorkspaceError, match="not a folder"):
        create_scratch_copy(tmp_path / "no-such-repo", tmp_path / "s")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert create_scratch_copy(repo, empty).root == empty.absolute()
    assert not (repo / "scratch").exists()


@pytest.mark.parametrize("path", ["reflink", "copy_file_range", "read_write"])
def test_large_files_are_copied_not_linked(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    if path != "reflink":
        monkeypatch.setattr(workspace, "_reflink", lambda src, dst: False)
    if path == "read_write":
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    copy = create_scratch_copy(repo, tmp_path / "scratch")
    for rel in ("big.bin", "weights/model.safetensors"):
        src, dst = repo / rel, copy.root / rel
        assert (
            hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()
        )
        assert (src.stat().st_dev, src.stat().st_ino) != (dst.stat().st_dev, dst.stat().st_ino)
        assert src.stat().st_nlink == 1
        assert dst.stat().st_nlink == 1
    # Writing into the copy must never show through in the original (whatever the copy method).
    before = (repo / "big.bin").read_bytes()
    with open(copy.root / "big.bin", "r+b") as handle:
        handle.write(b"Z" * 64)
    assert (repo / "big.bin").read_bytes() == before


def test_snapshot_diff_lines(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "weights").mkdir(parents=True)
    (root / "data").mkdir()
    (root / ".git").mkdir()
    (root / "weights" / "model.safetensors").write_bytes(b"w" * 1024)
    (root / "data" / "x").write_text("x")
    (root / "same.txt").write_text("same")
    (root / "touched.txt").write_text("abc")
    (root / "run.sh").write_text("echo")
    if sys.platform != "win32":
        (root / "link").symlink_to("same.txt")
    before = TreeSnapshot.take(root)
    assert "same.txt" in before.entries
    assert before.entries["weights"].kind == "dir"
    time.sleep(0.05)  # timestamps have a clock-tick granularity

    (root / "weights" / "model.safetensors").write_bytes(b"")
    (root / "data" / "x").unlink()
    (root / "out.txt").write_text("new")
    (root / "newdir").mkdir()
    (root / ".git" / "index").write_text("ignored")
    old_stat = (root / "touched.txt").stat()
    (root / "touched.txt").write_text("xyz")  # same size; then hide the mtime change
    os.utime(root / "touched.txt", ns=(old_stat.st_atime_ns, old_stat.st_mtime_ns))
    if sys.platform != "win32":
        (root / "run.sh").chmod(0o755)
        (root / "link").unlink()
        (root / "link").symlink_to("out.txt")
    after = TreeSnapshot.take(root)

    lines = diff(before, after)
    assert before.diff(after) == lines
    expected = [
        "removed: data/x",
        "added: newdir/",
        "added: out.txt",
        "modified: touched.txt (rewritten: status change time changed)",
        "modified: weights/model.safetensors (size 1024 → 0, modification time changed)",
    ]
    if sys.platform != "win32":
        link_line = next(line for line in lines if line.startswith("modified: link "))
        # (the freed inode may be reused, so "replaced by a new file" is not guaranteed)
        assert link_line.startswith("modified: link (link target same.txt → out.txt, ")
        lines_without_link = [line for line in lines if line != link_line]
        expected += ["modified: run.sh (mode 0o644 → 0o755)"]
    else:  # pragma: no cover
        lines_without_link = lines
    assert sorted(lines_without_link) == sorted(expected)
    assert lines == sorted(lines, key=lambda line: line.split(": ", 1)[1])
    assert diff(after, TreeSnapshot.take(root)) == []


def test_snapshot_skip_and_type_change(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "cache").mkdir(parents=True)
    (root / "cache" / "a").write_text("a")
    (root / "thing").write_text("file")
    before = TreeSnapshot.take(root, skip=("cache",))
    (root / "cache" / "b").write_text("b")
    (root / "thing").unlink()
    (root / "thing").mkdir()
    after = TreeSnapshot.take(root, skip=("cache",))
    assert diff(before, after) == ["modified: thing/ (file → dir)"]
