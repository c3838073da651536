"""The checker's own reads: FIFOs, devices and huge files in a hostile repository are failed
checks, never a blocked ``open`` or an endless read; manifest regexes and nesting are bounded."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from conftest import MINIMAL_MANIFEST, RUN_SCRIPT, PlannedChecks, RepoFactory
from test_checks_execution import failure, runnable

from pytest_corrsource import patterns
from pytest_corrsource.formats import FormatError
from pytest_corrsource.formats.detect import detect_format
from pytest_corrsource.hashing import hash_files, sha256_file
from pytest_corrsource.manifest import ManifestError, load_manifest
from pytest_corrsource.safe_io import (
    FileTooLarge,
    NotRegularFile,
    open_regular,
    read_bounded,
    read_head,
    regular_file_problem,
    same_content,
)

T = TypeVar("T")

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs need a POSIX system")


def returns(call: Callable[[], T]) -> T:
    """Run *call* in a thread so that a regression (a blocking open) fails this test instead of
    hanging the suite. The bound is a deadlock guard, not a timing assertion."""
    values: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            values.append(call())
        except BaseException as exc:  # handed back to the test
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the call blocked"
    if errors:
        raise errors[0]
    return values[0]


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


# ------------------------------------------------------------------------------ safe_io


def test_a_fifo_is_refused_without_blocking(fifo: Path) -> None:
    with pytest.raises(NotRegularFile, match=r"pipe is a FIFO \(named pipe\), not a regular"):
        returns(lambda: open_regular(fifo))
    assert regular_file_problem(fifo) == "a FIFO (named pipe)"


def test_a_symlink_to_a_device_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "model.safetensors"
    link.symlink_to("/dev/zero")
    with pytest.raises(NotRegularFile, match="a character device"):
        returns(lambda: read_head(link, 10))
    with pytest.raises(NotRegularFile):
        returns(lambda: sha256_file(link))


def test_a_socket_and_a_directory_are_refused(tmp_path: Path) -> None:
    import socket

    sock_path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(sock_path))
        with pytest.raises(NotRegularFile, match="a socket"):
            open_regular(sock_path)
    with pytest.raises(NotRegularFile, match="a directory"):
        open_regular(tmp_path)


def test_regular_files_read_as_before(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    with open_regular(path) as handle:
        assert handle.read() == b"0123456789"
    assert read_head(path, 4) == b"0123"
    assert read_bounded(path, 10) == b"0123456789"
    assert regular_file_problem(path) is None
    assert regular_file_problem(tmp_path / "missing") is None  # missing: the caller's business


def test_a_huge_sparse_file_is_not_loaded(tmp_path: Path) -> None:
    sparse = tmp_path / "README.md"
    with open(sparse, "wb") as f:
        f.truncate(64 << 30)  # 64 GiB of nothing, no disk used
    with pytest.raises(FileTooLarge, match=r"is 68719476736 bytes; files of this kind are read"):
        read_bounded(sparse, 1 << 20)
    assert read_head(sparse, 8) == b"\0" * 8


def test_same_content_streams(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    a.write_bytes(b"x" * (3 << 20))
    b.write_bytes(b"x" * (3 << 20))
    c.write_bytes(b"x" * (3 << 20 - 1) + b"y")
    assert same_content(a, b)
    assert not same_content(a, c)


def test_hashing_and_format_detection_refuse_a_fifo(fifo: Path) -> None:
    with pytest.raises(NotRegularFile):
        returns(lambda: hash_files([fifo]))
    with pytest.raises(FormatError, match="FIFO"):
        returns(lambda: detect_format(fifo))


# ------------------------------------------------------------------- checks, end to end


def _fifo_in(root: Path, rel: str) -> None:
    target = root / rel
    if target.exists():
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(target)


def test_a_fifo_as_weights_fails_the_weights_checks(make_repo: RepoFactory) -> None:
    root = make_repo(MINIMAL_MANIFEST, {"LICENSE": "MIT\n", "README.md": "# tiny\n"})
    _fifo_in(root, "weights/model.safetensors")
    checks = PlannedChecks(root)
    present = returns(lambda: checks("CS101", "weights/model.safetensors"))
    assert present.outcome == "failed", present.message
    assert "weights/model.safetensors is a FIFO (named pipe), not a regular file" in present.message
    for check_id in ("CS103", "CS104"):  # never opened: blocked by the root failure
        result = returns(functools.partial(checks, check_id, "weights/model.safetensors"))
        assert result.outcome == "skipped", (check_id, result.message)
        assert result.message.startswith("blocked by CS101 (weights/model.safetensors is a FIFO")


def test_a_fifo_as_model_card_fails_cs903(make_repo: RepoFactory) -> None:
    root = make_repo(MINIMAL_MANIFEST, {"LICENSE": "MIT\n"})
    _fifo_in(root, "README.md")
    result = returns(lambda: PlannedChecks(root)("CS903"))
    assert result.outcome in ("failed", "not-required")
    assert "the model card README.md is a FIFO (named pipe), not a regular file" in result.message


def test_a_fifo_and_a_device_link_in_the_repository_fail_cs501(make_repo: RepoFactory) -> None:
    root = make_repo(MINIMAL_MANIFEST + "architecture: [model.py]\n", {"model.py": "x = 1\n"})
    _fifo_in(root, "tools/pipe.py")
    (root / "zero.bin").symlink_to("/dev/zero")
    message = failure(returns(lambda: PlannedChecks(root)("CS501")))
    assert "tools/pipe.py: a FIFO (named pipe), not a regular file" in message
    assert "zero.bin: a character device, not a regular file" in message


def test_a_fifo_as_architecture_fails_cs502(make_repo: RepoFactory) -> None:
    root = make_repo(MINIMAL_MANIFEST + "architecture: [model.py]\n")
    _fifo_in(root, "model.py")
    message = failure(returns(lambda: PlannedChecks(root)("CS502")))
    assert "model.py (line 7) is a FIFO (named pipe), not a regular file" in message


@pytest.mark.e2e
def test_a_fifo_as_expected_file_fails_cs402(make_repo: RepoFactory) -> None:
    root = runnable(
        make_repo,
        replace={"  expect:\n": "  expect:\n    files: [out.bin]\n"},
        files={"run.py": RUN_SCRIPT + "import os\nos.mkfifo('out.bin')\n"},
    )
    message = failure(returns(lambda: PlannedChecks(root)("CS402")))
    assert (
        "the run on the released weights: `run.expect.files` must be regular files: "
        "out.bin is a FIFO (named pipe)" in message
    )


@pytest.mark.e2e
def test_a_regular_expected_file_passes_cs402(make_repo: RepoFactory) -> None:
    root = runnable(
        make_repo,
        replace={"  expect:\n": "  expect:\n    files: [out.bin]\n"},
        files={"run.py": RUN_SCRIPT + "open('out.bin', 'wb').write(b'ok')\n"},
    )
    result = PlannedChecks(root)("CS402")
    assert result.outcome == "passed", result.message


# ---------------------------------------------------------------------------- regexes


CATASTROPHIC = "(a+)+$"


def test_a_catastrophic_pattern_times_out() -> None:
    with pytest.raises(patterns.PatternTimeout, match=r"did not finish within 0\.05 s on 5001"):
        patterns.search(CATASTROPHIC, "a" * 5000 + "!", timeout=0.05)
    assert patterns.search(CATASTROPHIC, "aaa") is not None  # same pattern, ordinary input
    assert patterns.search(r"model output: [0-9a-f]+", "model output: 12ab") is not None


def test_invalid_patterns_are_reported_by_the_matching_engine() -> None:
    assert patterns.compile_error("([a-") is not None
    assert patterns.compile_error(r"model output: [0-9a-f]+") is None


@pytest.mark.e2e
def test_a_catastrophic_expect_pattern_fails_cs402_with_the_reason(
    make_repo: RepoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(patterns, "MATCH_TIMEOUT_SECONDS", 0.05)
    root = runnable(
        make_repo,
        replace={'"model output: [0-9a-f]+"': f'"{CATASTROPHIC}"'},
        files={"run.py": "print('a' * 20000 + '!')\n"},
    )
    message = failure(PlannedChecks(root)("CS402"))
    assert "`run.expect.stdout` could not be judged: the pattern /(a+)+$/ did not finish" in message
    assert "(catastrophic backtracking)" in message
    assert "fix: simplify the pattern (no nested repetition such as `(a+)+`)" in message


# ---------------------------------------------------------------------------- nesting


@pytest.mark.parametrize("opening", ["[", "{a: ", "- "])
def test_a_deeply_nested_manifest_is_one_clean_error(tmp_path: Path, opening: str) -> None:
    path = tmp_path / "corresponding-source.yaml"
    path.write_text(f"version: 1\nname: t\nweights:\n  {opening * 10000}x\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert str(info.value).startswith("corresponding-source.yaml:4:")
    assert str(info.value).endswith("lists and mappings are nested more than 64 levels deep")


@pytest.mark.e2e
def test_a_deeply_nested_manifest_is_a_collection_error(pytester: pytest.Pytester) -> None:
    (pytester.path / "corresponding-source.yaml").write_text(
        "version: 1\nname: t\nweights: " + "[" * 10000 + "\n"
    )
    result = pytester.runpytest_subprocess("--corresponding-source", "-p", "no:randomly")
    result.stdout.fnmatch_lines(["*corresponding-source.yaml:3:*nested more than 64 levels deep*"])
    assert "RecursionError" not in result.stdout.str() + result.stderr.str()


def test_a_tracked_symlink_to_a_device_fails_cs501_in_a_git_checkout(
    make_repo: RepoFactory,
) -> None:
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = make_repo(MINIMAL_MANIFEST + "architecture: [model.py]\n", {"model.py": "x = 1\n"})
    (root / "zero.bin").symlink_to("/dev/zero")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
    message = failure(returns(lambda: PlannedChecks(root)("CS501")))
    assert "zero.bin: a character device, not a regular file" in message
