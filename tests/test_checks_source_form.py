"""CS501 (preferred form) and CS502 (architecture) as plain functions over real repositories:
each check passes and fails, and its failure text names the file (and line) it found.

Nothing here runs a command; the git test needs only ``git init`` (skipped without git).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import MINIMAL_MANIFEST, PlannedChecks, RepoFactory

from pytest_corrsource.checks.api import Options
from pytest_corrsource.results import CheckResult
from pytest_corrsource.vocabulary import Level

LEVEL: Level = "open-source-ai"
ELF = b"\x7fELF" + bytes(60)
MODEL_PY = "import math\n\n\ndef forward(x):\n    return math.tanh(x)\n"


def check(root: Path, check_id: str) -> CheckResult:
    """Run one planned source check of the repository at ``root`` as the plugin would."""
    return PlannedChecks(root, Options(level=LEVEL))(check_id)


def passed(result: CheckResult) -> CheckResult:
    assert result.outcome == "passed", result.message
    return result


def failure(result: CheckResult) -> str:
    assert result.outcome == "failed", f"{result.outcome}: {result.message}"
    assert result.message.startswith(result.id)
    return result.message


def source_repo(
    make_repo: RepoFactory, files: dict[str, str | bytes], extra: str = "", name: str = "repo"
) -> Path:
    """The minimal repository plus ``model.py`` (declared architecture) and ``files``."""
    manifest = MINIMAL_MANIFEST + "architecture: [model.py]\n" + extra
    return make_repo(manifest, {"model.py": MODEL_PY, **files}, name=name)


# --------------------------------------------------------------------------- CS501 preferred form


def test_cs501_passes_a_clean_repository(make_repo: RepoFactory) -> None:
    root = source_repo(make_repo, {"README.md": "# tiny\n", "tools/convert.py": "print(1)\n"})
    result = passed(check(root, "CS501"))
    assert "files scanned" in result.message
    assert result.warnings == []


def test_cs501_fails_compiled_python_without_its_source(make_repo: RepoFactory) -> None:
    root = source_repo(make_repo, {"pkg/module.pyc": b"\x6f\x0d\x0d\x0a" + bytes(12)})
    message = failure(check(root, "CS501"))
    assert "1 file(s) not in their preferred form" in message
    assert "pkg/module.pyc: compiled Python without its source (pkg/module.py)" in message


def test_cs501_accepts_a_pycache_file_next_to_its_source(make_repo: RepoFactory) -> None:
    root = source_repo(
        make_repo,
        {"x.py": "X = 1\n", "__pycache__/x.cpython-311.pyc": b"\x6f\x0d\x0d\x0a" + bytes(12)},
    )
    passed(check(root, "CS501"))


def test_cs501_fails_a_pycache_file_whose_source_is_gone(make_repo: RepoFactory) -> None:
    root = source_repo(make_repo, {"lib/__pycache__/gone.cpython-311.pyc": bytes(16)})
    message = failure(check(root, "CS501"))
    assert "lib/__pycache__/gone.cpython-311.pyc: compiled Python without its source" in message
    assert "(lib/gone.py)" in message


def test_cs501_fails_a_native_binary_without_a_build_recipe(make_repo: RepoFactory) -> None:
    root = source_repo(make_repo, {"bin/fastops.so": ELF})
    message = failure(check(root, "CS501"))
    assert "bin/fastops.so: an ELF executable or library with no build recipe" in message


def test_cs501_accepts_a_native_binary_with_a_build_recipe(make_repo: RepoFactory) -> None:
    root = source_repo(
        make_repo,
        {
            "bin/fastops.so": ELF,
            "csrc/fastops.c": "int add(int a, int b) { return a + b; }\n",
            "Makefile": "bin/fastops.so: csrc/fastops.c\n\tcc -shared -o $@ $<\n",
        },
    )
    passed(check(root, "CS501"))


def test_cs501_fails_minified_javascript_without_its_source(make_repo: RepoFactory) -> None:
    root = source_repo(make_repo, {"web/app.min.js": "function a(){return 1}\n"})
    message = failure(check(root, "CS501"))
    assert "web/app.min.js: minified JavaScript without its source" in message


def test_cs501_accepts_minified_javascript_next_to_its_source(make_repo: RepoFactory) -> None:
    root = source_repo(
        make_repo,
        {
            "web/app.min.js": "function a(){return 1}\n",
            "web/app.js": "function answer() {\n  return 1;\n}\n",
        },
    )
    passed(check(root, "CS501"))


def test_cs501_fails_javascript_that_is_minified_in_place(make_repo: RepoFactory) -> None:
    one_line = "var a=1;" * 400  # 3200 characters on a single line
    root = source_repo(make_repo, {"web/bundle.js": one_line})
    assert "web/bundle.js: minified JavaScript" in failure(check(root, "CS501"))


def test_cs501_fails_exec_of_a_base64_blob_naming_file_and_line(make_repo: RepoFactory) -> None:
    code = 'import base64\n\n\nexec(base64.b64decode("cHJpbnQoMSk="))\n'
    root = source_repo(make_repo, {"tools/loader.py": code})
    message = failure(check(root, "CS501"))
    assert "tools/loader.py:4: exec() of b64decode(...): obfuscated code" in message


def test_cs501_fails_eval_of_a_decompressed_blob(make_repo: RepoFactory) -> None:
    code = 'import zlib\nvalue = eval(zlib.decompress(b"x\\x9c3\\x04\\x00\\x002\\x002"))\n'
    root = source_repo(make_repo, {"packed.py": code})
    assert "packed.py:2: eval() of decompress(...)" in failure(check(root, "CS501"))


def test_cs501_fails_marshal_loads_of_a_decoded_blob(make_repo: RepoFactory) -> None:
    code = "import base64, marshal\nexec(marshal.loads(base64.b64decode('AAAA')))\n"
    root = source_repo(make_repo, {"m.py": code})
    assert "m.py:2: exec() of b64decode(...)" in failure(check(root, "CS501"))


def test_cs501_accepts_plain_exec_and_eval(make_repo: RepoFactory) -> None:
    code = "namespace = {}\nexec('x = 1', namespace)\nprint(eval('1 + 1'))\n"
    root = source_repo(make_repo, {"plain.py": code})
    passed(check(root, "CS501"))


def test_cs501_allow_list_turns_a_finding_into_a_warning(make_repo: RepoFactory) -> None:
    code = 'import base64\nexec(base64.b64decode("cHJpbnQoMSk="))\n'
    root = source_repo(
        make_repo, {"vendor/blob.py": code}, extra="source-form:\n  allow: [vendor/blob.py]\n"
    )
    result = passed(check(root, "CS501"))
    assert len(result.warnings) == 1
    assert "accepted by `source-form.allow`" in result.warnings[0]
    assert "vendor/blob.py:2: exec() of b64decode(...)" in result.warnings[0]


def test_cs501_allow_list_accepts_globs_and_leaves_other_findings(
    make_repo: RepoFactory,
) -> None:
    root = source_repo(
        make_repo,
        {"vendor/a.pyc": bytes(16), "vendor/b.pyc": bytes(16), "other.pyc": bytes(16)},
        extra="source-form:\n  allow: ['vendor/*.pyc']\n",
    )
    message = failure(check(root, "CS501"))
    assert "1 file(s) not in their preferred form: other.pyc" in message
    assert "vendor/" not in message


def test_cs501_in_a_git_checkout_ignores_gitignored_files(make_repo: RepoFactory) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = source_repo(
        make_repo, {".gitignore": "build/\n", "build/x.pyc": bytes(16), "src/y.py": "Y = 2\n"}
    )
    subprocess.run(["git", "init", "-q", str(root)], check=True, capture_output=True)
    passed(check(root, "CS501"))
    # The same file outside the ignored folder is judged (untracked files count).
    (root / "leftover.pyc").write_bytes(bytes(16))
    message = failure(check(root, "CS501"))
    assert "leftover.pyc" in message
    assert "build/x.pyc" not in message


def test_cs501_in_a_hostile_git_checkout_runs_none_of_its_commands(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """The repository's .git/config names a command for core.fsmonitor, which `git ls-files`
    runs: listing the files for CS501 ran it, outside any sandbox."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = source_repo(make_repo, {"src/y.py": "Y = 2\n"})
    subprocess.run(["git", "init", "-q", str(root)], check=True, capture_output=True)
    canary = tmp_path / "fsmonitor-ran"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\ntouch {canary}\n")
    hook.chmod(0o755)
    subprocess.run(["git", "-C", str(root), "config", "core.fsmonitor", str(hook)], check=True)
    (root / "leftover.pyc").write_bytes(bytes(16))  # untracked: git's listing was used
    assert "leftover.pyc" in failure(check(root, "CS501"))
    assert not canary.exists()


def test_cs501_walk_without_git_judges_build_outputs(make_repo: RepoFactory) -> None:
    root = source_repo(make_repo, {".gitignore": "build/\n", "build/x.pyc": bytes(16)})
    assert "build/x.pyc" in failure(check(root, "CS501"))


def test_cs501_does_not_scan_weights_or_data_files(make_repo: RepoFactory) -> None:
    extra = (
        "checkpoints:\n  - path: ckpt/step-1.bin\n"
        "data:\n  sources:\n    - path: data/corpus.bin\n"
        "evaluation:\n  data: [data/val.pyc]\n"
    )
    files: dict[str, str | bytes] = {
        "ckpt/step-1.bin": ELF,
        "data/corpus.bin": ELF,
        "data/val.pyc": bytes(16),
    }
    root = source_repo(make_repo, files, extra=extra)
    passed(check(root, "CS501"))
    # The same bytes at an undeclared path are judged.
    control = source_repo(make_repo, {"data/other.bin": ELF}, name="control")
    assert "data/other.bin: an ELF executable" in failure(check(control, "CS501"))


# --------------------------------------------------------------------------- CS502 architecture


def test_cs502_passes_when_the_architecture_exists(make_repo: RepoFactory) -> None:
    root = source_repo(make_repo, {})
    assert passed(check(root, "CS502")).message == "model.py"


def test_cs502_fails_when_a_file_does_not_exist(make_repo: RepoFactory) -> None:
    root = make_repo(MINIMAL_MANIFEST + "architecture: [model.py, layers.py]\n", {"model.py": ""})
    message = failure(check(root, "CS502"))
    assert "layers.py (line 7) does not exist" in message
    assert "model.py (line" not in message


def test_cs502_fails_a_binary_file(make_repo: RepoFactory) -> None:
    root = make_repo(MINIMAL_MANIFEST + "architecture: [model.bin]\n", {"model.bin": ELF})
    assert "model.bin is binary, not source" in failure(check(root, "CS502"))


def test_cs502_fails_python_with_a_syntax_error(make_repo: RepoFactory) -> None:
    root = make_repo(
        MINIMAL_MANIFEST + "architecture: [model.py]\n",
        {"model.py": "import math\n\ndef forward(x:\n    return x\n"},
    )
    message = failure(check(root, "CS502"))
    assert "model.py:3: not valid Python" in message


@pytest.mark.parametrize(
    "source", ["x = " + "1+" * 100_000 + "1\n", "x = " + "-" * 100_000 + "1\n"]
)
def test_cs502_fails_python_nested_too_deeply_to_parse(make_repo: RepoFactory, source: str) -> None:
    """Python's parser gives up on these (RecursionError, MemoryError), which escaped the check:
    CPython could not compile the file either."""
    root = make_repo(MINIMAL_MANIFEST + "architecture: [model.py]\n", {"model.py": source})
    assert "model.py: not valid Python (nested too deeply to parse)" in failure(
        check(root, "CS502")
    )


def test_cs502_fails_when_no_architecture_is_declared(make_repo: RepoFactory) -> None:
    root = make_repo(MINIMAL_MANIFEST)
    assert "the manifest declares no `architecture`" in failure(check(root, "CS502"))


def test_cs501_fails_a_windows_executable_but_not_text_starting_with_mz(
    make_repo: RepoFactory,
) -> None:
    pe = bytearray(128)
    pe[0:2] = b"MZ"
    pe[0x3C:0x40] = (64).to_bytes(4, "little")
    pe[64:68] = b"PE\0\0"
    root = source_repo(make_repo, {"tool.exe": bytes(pe), "notes.txt": "MZ is a postcode" * 10})
    message = failure(check(root, "CS501"))
    assert "tool.exe: a Windows (PE) executable or DLL with no build recipe" in message
    assert "notes.txt" not in message
