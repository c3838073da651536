"""CS201–CS202, CS301 and CS401–CS404 on real, stdlib-only repositories, without pytest's plugin
machinery: each check passes and fails, and its failure text says what was found.

Every runnable repository here keeps the install spec of ``RUNNABLE_MANIFEST`` (same commands,
same requirements.txt), so the isolated environment is built once per session and reused.
Nothing downloads anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    RUN_SCRIPT,
    RUNNABLE_FILES,
    RUNNABLE_MANIFEST,
    PlannedChecks,
    RepoFactory,
    sha256,
)

from pytest_corrsource.results import CheckResult
from pytest_corrsource.sandbox.process import network_isolation
from pytest_corrsource.sandbox.steps import run_pipeline

RUN_LINE = "  command: python run.py --weights {weights}\n"


def runnable(
    make_repo: RepoFactory,
    *,
    replace: dict[str, str] | None = None,
    files: dict[str, str | bytes] | None = None,
) -> Path:
    """The conftest runnable repository, with manifest text replaced and files overridden."""
    text = RUNNABLE_MANIFEST
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    return make_repo(text, {**RUNNABLE_FILES, **(files or {})})


def tree_digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def failure(result: CheckResult) -> str:
    assert result.outcome == "failed", f"{result.outcome}: {result.message}"
    assert result.message.startswith(result.id)
    return result.message


# --------------------------------------------------------------------------- the whole path


@pytest.mark.e2e
def test_the_runnable_repository_passes_every_execution_check(make_repo: RepoFactory) -> None:
    root = runnable(make_repo)
    checks = PlannedChecks(root)
    results = {cid: checks(cid) for cid in ("CS201", "CS202", "CS401", "CS402", "CS403")}
    for result in results.values():
        assert result.outcome == "passed", result.message
    assert results["CS201"].message == "1 command(s); dependencies in requirements.txt"
    assert results["CS202"].message.startswith("environment ")
    assert results["CS401"].message == "uses run.py"
    assert results["CS402"].message.startswith("the run on the released weights: exit code 0")
    assert results["CS403"].message == (
        "ran on modified weights/model.safetensors; the output changed"
    )
    released = run_pipeline(checks.context("CS402"), "released").step("run")
    assert released is not None
    assert released.result.stdout.startswith("model output: ")


# ------------------------------------------------------------------------------------ CS201


def test_cs201_fails_when_the_requirements_file_is_missing(make_repo: RepoFactory) -> None:
    root = runnable(make_repo)
    (root / "requirements.txt").unlink()
    message = failure(PlannedChecks(root)("CS201"))
    assert "found: missing from the repository: requirements.txt" in message


def test_cs201_fails_without_install_commands(make_repo: RepoFactory) -> None:
    root = runnable(
        make_repo,
        replace={"  commands:\n    - python -c \"print('installed')\"\n": "  commands: []\n"},
    )
    message = failure(PlannedChecks(root)("CS201"))
    assert "found: `install.commands` is empty: nothing says how to install" in message


def test_cs201_fails_without_requirements(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, replace={"  requirements: [requirements.txt]\n": ""})
    message = failure(PlannedChecks(root)("CS201"))
    assert "`install.requirements` names no dependency specification" in message


# ------------------------------------------------------------------------------------ CS202


@pytest.mark.e2e
def test_cs202_fails_when_an_install_command_fails(make_repo: RepoFactory) -> None:
    root = runnable(
        make_repo,
        replace={"print('installed')": "import sys; sys.exit('boom')"},
    )
    checks = PlannedChecks(root)
    message = failure(checks("CS202"))
    assert "found: the install commands failed in a fresh environment" in message
    assert "boom" in message
    # Everything that needs the environment is blocked by CS202, not failed a second time.
    cs402 = checks("CS402")
    assert cs402.outcome == "skipped"
    assert cs402.message.startswith("blocked by CS202 (the install commands failed")


def test_cs202_skips_when_the_requested_python_is_not_installed(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, replace={"install:\n": 'install:\n  python: "2.1"\n'})
    # A required check that cannot run on this machine fails, saying so (never a silent skip).
    message = failure(PlannedChecks(root)("CS202"))
    assert (
        "found: could not be verified on this machine: install.python asks for Python 2.1, "
        "which is not installed here"
    ) in message


# ------------------------------------------------------------------------------------ CS301

WRITE_ONE_BYTE = "python -c \"import sys; open(sys.argv[1], 'wb').write(b'x')\""


def with_generate(command: str, produces: str = '["{outdir}/x.bin"]') -> dict[str, str]:
    step = f"generate:\n  - command: {json.dumps(command)}\n    produces: {produces}\n"
    return {"run:\n": step + "    timeout: 60\nrun:\n"}


@pytest.mark.e2e
def test_cs301_passes_when_the_step_writes_its_outputs(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, replace=with_generate(f"{WRITE_ONE_BYTE} {{outdir}}/x.bin"))
    checks = PlannedChecks(root)
    result = checks("CS301", "0")
    assert result.outcome == "passed", result.message
    assert result.message.startswith("generate[0]: exit code 0")
    assert result.message.endswith("wrote {outdir}/x.bin")
    assert checks("CS402").outcome == "passed"


@pytest.mark.e2e
def test_cs301_fails_when_the_step_writes_nothing(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, replace=with_generate('python -c "pass"'))
    checks = PlannedChecks(root)
    message = failure(checks("CS301", "0"))
    assert "found: generate[0] exited 0 but did not write {outdir}/x.bin" in message
    # The run depends on it: blocked by the broken step instead of failing again.
    cs402 = checks("CS402")
    assert (cs402.outcome, cs402.message.split(" (")[0]) == ("skipped", "blocked by CS301")


@pytest.mark.e2e
def test_cs301_fails_when_the_step_fails(make_repo: RepoFactory) -> None:
    command = "python -c \"import sys; sys.exit('no converter')\""
    root = runnable(make_repo, replace=with_generate(command))
    message = failure(PlannedChecks(root)("CS301", "0"))
    assert "found: generate[0] failed: exit code 1" in message
    assert "no converter" in message


# ------------------------------------------------------------------------------------ CS401


def test_cs401_fails_naming_a_missing_script(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, replace={"python run.py": "python missing.py"})
    message = failure(PlannedChecks(root)("CS401"))
    assert "found: `run.command` names missing.py, not in the repository" in message


def test_cs401_notes_an_installed_module(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, replace={RUN_LINE: "  command: python -m http.server --help\n"})
    result = PlannedChecks(root)("CS401")
    assert result.outcome == "passed"
    assert result.message == "names no repository files"
    assert result.warnings == ["`-m http.server` is not in the repository (an installed module)"]


def test_cs401_checks_a_module_of_the_repository(make_repo: RepoFactory) -> None:
    root = runnable(
        make_repo, replace={"python run.py": "python -m tiny.gen"}, files={"tiny/__init__.py": ""}
    )
    message = failure(PlannedChecks(root)("CS401"))
    assert "names module tiny.gen, not in the repository" in message


# ------------------------------------------------------------------------------------ CS402


@pytest.mark.e2e
def test_cs402_fails_quoting_the_stdout_regex(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, replace={'"model output: [0-9a-f]+"': '"^answer: 42$"'})
    message = failure(PlannedChecks(root)("CS402"))
    assert "stdout does not match `run.expect.stdout` /^answer: 42$/" in message
    assert "--- stdout ---\nmodel output: " in message


@pytest.mark.e2e
def test_cs402_fails_on_an_unexpected_exit_code(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, replace={"  expect:\n": "  expect:\n    exit-code: 3\n"})
    message = failure(PlannedChecks(root)("CS402"))
    assert "found: the run on the released weights exited with 0, expected 3" in message


@pytest.mark.e2e
def test_cs402_fails_when_the_run_fails(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, files={"run.py": "import sys\nsys.exit('cannot load the model')\n"})
    checks = PlannedChecks(root)
    message = failure(checks("CS402"))
    assert "exited with 1, expected 0" in message
    assert "cannot load the model" in message
    # The comparisons built on the released run say why they cannot conclude.
    cs403 = checks("CS403")
    assert cs403.outcome == "skipped"
    assert cs403.message == (
        "blocked by CS402 (the run on the released weights exited with 1, expected 0)"
    )


def gone(pid: int) -> bool:
    """The process no longer exists, or only as a zombie waiting for an init that may never
    reap it (some container inits do not): either way nothing of it runs any more."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2 :].startswith("Z")


def processes_with(marker: str) -> list[int]:
    """Pids of live (non-zombie) processes whose command line contains *marker*."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and not gone(int(entry.name)):
            with contextlib.suppress(OSError):
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


def wait_no_process_with(marker: str, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while pids := processes_with(marker):
        if time.monotonic() > deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
            pytest.fail(f"processes {pids} started by the run are still alive")
        time.sleep(0.05)


def daemonizing_run(marker: str, then: str) -> str:
    """A run script that starts a grandchild in its own session (with *marker* in its command
    line), which signals it started and sleeps for a minute; the script then does ``then``.
    (The sandbox hides the test's folders from the run: the grandchild is found in /proc.)"""
    return textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        code = "import os, time; open('started.tmp', 'w').close(); os.rename('started.tmp', "
        code += "'started'); time.sleep(60) # {marker}"
        subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
        while not os.path.exists("started"):
            time.sleep(0.01)
        {then}
        """
    )


@pytest.mark.e2e
def test_cs402_times_out_and_kills_the_whole_process_tree(make_repo: RepoFactory) -> None:
    marker = f"corrsource-test-{uuid.uuid4().hex}"
    root = runnable(
        make_repo,
        replace={"  timeout: 60\n": "  timeout: 1\n"},
        files={"run.py": daemonizing_run(marker, "time.sleep(30)")},
    )
    message = failure(PlannedChecks(root)("CS402"))
    assert "found: the run on the released weights timed out after 1 s" in message
    assert "the whole process tree was killed" in message
    wait_no_process_with(marker)


@pytest.mark.e2e
def test_a_run_leaves_no_daemon_behind(make_repo: RepoFactory) -> None:
    marker = f"corrsource-test-{uuid.uuid4().hex}"
    root = runnable(
        make_repo,
        replace={'"model output: [0-9a-f]+"': '"daemon started"'},
        files={"run.py": daemonizing_run(marker, "print('daemon started')")},
    )
    result = PlannedChecks(root)("CS402")
    assert result.outcome == "passed", result.message
    wait_no_process_with(marker)


# ------------------------------------------------------------------------------------ CS403

TIVOIZED = textwrap.dedent(
    """
    import hashlib, sys
    ALLOWED = "{digest}"
    weights = sys.argv[sys.argv.index("--weights") + 1]
    if hashlib.sha256(open(weights, "rb").read()).hexdigest() != ALLOWED:
        sys.exit("these weights are not signed by the vendor")
    print("model output: 0123abcd")
    """
)

IGNORES_WEIGHTS = RUN_SCRIPT.replace(
    'with open(args.weights, "rb")', 'with open("assets/other.safetensors", "rb")'
)


@pytest.mark.e2e
def test_cs403_fails_a_run_that_refuses_modified_weights(make_repo: RepoFactory) -> None:
    root = runnable(make_repo)
    digest = sha256(root / "weights" / "model.safetensors")
    (root / "run.py").write_text(TIVOIZED.format(digest=digest))
    checks = PlannedChecks(root)
    assert checks("CS402").outcome == "passed"
    message = failure(checks("CS403"))
    assert "found: the run on modified weights exited with 1, expected 0" in message
    assert "refuses or breaks on modified weights (tivoization?)" in message
    assert "not signed by the vendor" in message


@pytest.mark.e2e
def test_cs403_fails_a_run_that_ignores_the_declared_weights(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, files={"run.py": IGNORES_WEIGHTS})
    (root / "assets").mkdir()
    (root / "assets" / "other.safetensors").write_bytes(
        (root / "weights" / "model.safetensors").read_bytes()
    )
    checks = PlannedChecks(root)
    assert checks("CS402").outcome == "passed"
    message = failure(checks("CS403"))
    assert "found: the run's output is identical with modified weights" in message
    assert "`run.deterministic: false`" in message


@pytest.mark.e2e
def test_cs403_non_deterministic_run_need_not_change_output(make_repo: RepoFactory) -> None:
    root = runnable(
        make_repo,
        replace={"  timeout: 60\n": "  timeout: 60\n  deterministic: false\n"},
        files={"run.py": IGNORES_WEIGHTS},
    )
    (root / "assets").mkdir()
    (root / "assets" / "other.safetensors").write_bytes(
        (root / "weights" / "model.safetensors").read_bytes()
    )
    result = PlannedChecks(root)("CS403")
    assert result.outcome == "passed", result.message


# ------------------------------------------------------------------------------------ CS404

NEEDS_SERVER = RUN_SCRIPT.replace(
    "args = parser.parse_args()",
    'parser.add_argument("--port", type=int, required=True)\n'
    "args = parser.parse_args()\n"
    'import socket; socket.create_connection(("127.0.0.1", args.port), timeout=5).close()',
)


@pytest.fixture
def local_server() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections (the kernel completes them)."""
    server = socket.create_server(("127.0.0.1", 0), backlog=16)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


@pytest.mark.e2e
def test_cs404_passes_the_plain_stdlib_run(make_repo: RepoFactory) -> None:
    available, reason = network_isolation()
    if not available:
        pytest.skip(f"no network isolation here: {reason}")
    result = PlannedChecks(runnable(make_repo))("CS404")
    assert result.outcome == "passed", result.message
    assert result.message == (
        "ran in a bubblewrap sandbox with its own network namespace (loopback only)"
    )


@pytest.mark.e2e
def test_cs404_fails_a_run_that_needs_the_network(
    make_repo: RepoFactory, local_server: int
) -> None:
    available, reason = network_isolation()
    if not available:
        pytest.skip(f"no network isolation here: {reason}")
    root = runnable(
        make_repo,
        replace={"{weights}\n": f"{{weights}} --port {local_server}\n"},
        files={"run.py": NEEDS_SERVER},
    )
    checks = PlannedChecks(root)
    assert checks("CS402").outcome == "passed"
    message = failure(checks("CS404"))
    assert "found: the run without network exited with 1, expected 0" in message
    assert "it works with the network (CS402) but not without it" in message


# --------------------------------------------------------------------- isolation of the user


VANDAL = RUN_SCRIPT + textwrap.dedent(
    """
    open(args.weights, "ab").write(b"garbage")
    open("run.py", "w").write("raise SystemExit('overwritten')\\n")
    open("new-file.txt", "w").write("left behind\\n")
    """
)


@pytest.mark.e2e
def test_a_run_writing_into_its_tree_leaves_the_users_repository_intact(
    make_repo: RepoFactory,
) -> None:
    root = runnable(make_repo, files={"run.py": VANDAL})
    before = tree_digests(root)
    checks = PlannedChecks(root)
    for check_id in ("CS402", "CS403"):
        result = checks(check_id)
        assert result.outcome == "passed", result.message
    assert tree_digests(root) == before


@pytest.mark.e2e
def test_credentials_do_not_reach_the_run(
    make_repo: RepoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    canaries = {
        "AWS_SECRET_ACCESS_KEY": "canary-aws-wJalrXUtnFEMIK7MDENG",
        "GITHUB_TOKEN": "canary-ghp-16C7e42F292c6912E7710c8",
        "HF_TOKEN": "canary-hf-aBcDeFgHiJkLmNoPqRsTuV",
    }
    for name, value in canaries.items():
        monkeypatch.setenv(name, value)
    script = "import os\nfor name in sorted(os.environ):\n    print(name, os.environ[name])\n"
    root = runnable(
        make_repo,
        replace={'"model output: [0-9a-f]+"': '"PATH"'},
        files={"run.py": script},
    )
    checks = PlannedChecks(root)
    assert checks("CS402").outcome == "passed"
    run = run_pipeline(checks.context("CS402"), "released").step("run")
    assert run is not None
    stdout = run.result.stdout
    assert "PATH" in stdout  # the script did print its environment
    for name, value in canaries.items():
        assert name not in stdout
        assert value not in stdout


@pytest.mark.e2e
@pytest.mark.parametrize("creates", [True, False], ids=["creates", "forgets"])
def test_an_expected_non_zero_exit_code_is_a_successful_run(
    make_repo: RepoFactory, creates: bool
) -> None:
    end = "open('done.txt', 'w').close()\n" if creates else ""
    root = runnable(
        make_repo,
        replace={"  expect:\n": "  expect:\n    exit-code: 3\n    files: [done.txt]\n"},
        files={"run.py": RUN_SCRIPT + end + "sys.exit(3)\n"},
    )
    checks = PlannedChecks(root)
    if creates:
        for check_id in ("CS402", "CS403"):
            result = checks(check_id)
            assert result.outcome == "passed", result.message
    else:
        message = failure(checks("CS402"))
        assert "found: the run on the released weights did not create done.txt" in message
        assert checks("CS403").message.startswith("blocked by CS402 (the run on the released")


def test_cs401_checks_files_named_through_the_repo_placeholder(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, replace={"python run.py": "python {repo}/run.py"})
    checks = PlannedChecks(root)
    assert checks("CS401").message == "uses run.py"
    (root / "run.py").unlink()
    message = failure(PlannedChecks(root)("CS401"))
    assert "found: `run.command` names run.py, not in the repository" in message


SHARDED_RUN = textwrap.dedent(
    """
    import argparse, hashlib, json, os, struct
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", required=True)
    args = parser.parse_args()
    index = json.load(open(args.weights))
    digest = hashlib.sha256()
    for shard in sorted(set(index["weight_map"].values())):
        with open(os.path.join(os.path.dirname(args.weights), shard), "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
            data = f.read()
        for name, info in sorted(header.items()):
            if name != "__metadata__" and info["dtype"].startswith("F"):
                begin, end = info["data_offsets"]
                digest.update(data[begin:end])
    print("model output:", digest.hexdigest()[:16])
    """
)


@pytest.mark.e2e
def test_cs403_modifies_every_shard_of_a_sharded_checkpoint(make_repo: RepoFactory) -> None:
    import numpy as np
    import numpy.typing as npt
    from safetensors.numpy import save_file

    root = runnable(
        make_repo,
        replace={
            "  - path: weights/model.safetensors\n    sha256: {sha}\n": (
                "  - path: weights/model.safetensors.index.json\n"
            )
        },
        files={"run.py": SHARDED_RUN},
    )
    (root / "weights" / "model.safetensors").unlink()
    weight_map: dict[str, str] = {}
    total = 0
    for seed in (1, 2):
        name = f"model-0000{seed}-of-00002.safetensors"
        rng = np.random.default_rng(seed)
        tensors: dict[str, npt.NDArray[Any]] = {
            f"s{seed}.weight": rng.standard_normal((4, 3)).astype(np.float32),
            f"s{seed}.ids": np.arange(4, dtype=np.int64),
        }
        save_file(tensors, str(root / "weights" / name))
        weight_map.update(dict.fromkeys(tensors, name))
        total += sum(t.nbytes for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (root / "weights" / "model.safetensors.index.json").write_text(json.dumps(index))
    before = tree_digests(root)

    checks = PlannedChecks(root)
    assert checks("CS103", "weights/model.safetensors.index.json").outcome == "passed"
    assert checks("CS402").outcome == "passed"
    result = checks("CS403")
    assert result.outcome == "passed", result.message
    assert "weights/model-00001-of-00002.safetensors" in result.message
    assert "weights/model-00002-of-00002.safetensors" in result.message
    assert tree_digests(root) == before


@pytest.mark.e2e
def test_cs202_needs_the_declared_system_programs(make_repo: RepoFactory) -> None:
    # llama2.c builds run.c with cc and make: a machine without them cannot verify the
    # repository, which is not the repository's failure ("could not be verified", waivable).
    root = runnable(
        make_repo,
        replace={"  commands:\n": "  system: [sh, no-such-compiler-xyz]\n  commands:\n"},
    )
    result = PlannedChecks(root)("CS202")
    assert result.outcome == "failed"
    assert (
        "found: could not be verified on this machine: `install.system` needs "
        "no-such-compiler-xyz, not installed here (install it with the system's package manager)"
    ) in result.message
    manifest = root / "corresponding-source.yaml"
    manifest.write_text(manifest.read_text().replace(", no-such-compiler-xyz]", "]"))
    assert PlannedChecks(root)("CS202").outcome == "passed"
