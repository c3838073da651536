"""--corrsource-sandbox (option, env, ini) and the isolation block of every report (pytester)."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from conftest import MINIMAL_MANIFEST, RepoFactory, require_bwrap

from pytest_corrsource.sandbox import backends
from pytest_corrsource.sandbox.backends import Backend
from pytest_corrsource.sandbox.installers import INSTALLERS

ARGS = ("-p", "no:randomly", "--corresponding-source", "--corrsource-level=open-weights")


@pytest.fixture
def repo(pytester: pytest.Pytester, make_repo: RepoFactory) -> None:
    source = make_repo(MINIMAL_MANIFEST, {"LICENSE": "MIT License\n"})
    shutil.copytree(source, pytester.path, dirs_exist_ok=True)


def no_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine as one where no bubblewrap works (AppArmor-restricted user namespaces)."""
    found = (
        Backend("unshare", "/usr/bin/unshare", "unshare --net", ("system bwrap: denied",)),
        Backend("none", notes=("system bwrap: denied",)),
    )
    monkeypatch.setattr(backends, "probe_backends", lambda path=None, use_wheel=True: found)


def test_sandbox_bwrap_without_bubblewrap_is_a_usage_error(
    pytester: pytest.Pytester, repo: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_bwrap(monkeypatch)
    result = pytester.runpytest(*ARGS, "--corrsource-sandbox=bwrap")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --corrsource-sandbox=bwrap: no bubblewrap can run here: system bwrap: denied"]
    )


def test_sandbox_mode_from_the_environment_and_a_bad_value(
    pytester: pytest.Pytester, repo: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORRSOURCE_SANDBOX", "docker")
    result = pytester.runpytest(*ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: environment variable CORRSOURCE_SANDBOX: unknown sandbox `docker`*"]
    )
    no_bwrap(monkeypatch)
    monkeypatch.setenv("CORRSOURCE_SANDBOX", "bwrap")
    assert pytester.runpytest(*ARGS).ret == pytest.ExitCode.USAGE_ERROR
    # The command line wins over the environment.
    assert pytester.runpytest(*ARGS, "--corrsource-sandbox=auto").ret == 0


def test_sandbox_none_is_stated_in_every_report(
    pytester: pytest.Pytester, repo: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\ncorrsource_sandbox = none\n")
    result = pytester.runpytest(*ARGS, "--corrsource-report=r.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["isolation: NO sandbox (--corrsource-sandbox=none*"])
    report = json.loads((pytester.path / "r.json").read_text())
    isolation = report["isolation"]
    assert isolation["backend"] == "none"
    assert isolation["pid"] == "shared with the host"
    assert isolation["net"] == "not cut: CS404 cannot run"
    assert isolation["limits"]["applied"] is False
    markdown = (pytester.path / "r.json.md").read_text()
    assert "Isolation: NO sandbox (--corrsource-sandbox=none" in markdown


@pytest.mark.e2e
def test_the_bubblewrap_isolation_in_the_reports(pytester: pytest.Pytester, repo: None) -> None:
    best = require_bwrap()
    result = pytester.runpytest(*ARGS, "--corrsource-report=r.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"isolation: bubblewrap ({best.origin}): own pid, mount*"])
    isolation = json.loads((pytester.path / "r.json").read_text())["isolation"]
    assert set(isolation) >= {"backend", "pid", "net", "mount", "limits"}
    assert isolation["backend"] == "bwrap"
    assert isolation["pid"] == "own pid namespace"
    assert isolation["limits"]["processes"] == 4096
    assert isolation["limits"]["applied"] is True
    markdown = (pytester.path / "r.json.md").read_text()
    assert f"Isolation: bubblewrap ({best.origin})" in markdown


@pytest.mark.e2e
def test_nothing_a_run_starts_outlives_the_pytest_session(make_repo: RepoFactory) -> None:
    """The whole session in a subprocess: a double-forked, setsid, empty-environment daemon
    that would write into the checkout after the session is gone, and never writes. (With
    ``--corrsource-sandbox=none`` the same daemon does write: checked by hand, 2026-12-01.)"""
    import subprocess
    import sys
    import textwrap
    import time
    import uuid
    from pathlib import Path

    from conftest import RUNNABLE_FILES, RUNNABLE_MANIFEST

    require_bwrap()
    marker = f"corrsource-daemon-{uuid.uuid4().hex}"
    root = make_repo(RUNNABLE_MANIFEST, {**RUNNABLE_FILES})
    late = root / "late.txt"
    daemon = f"import time; time.sleep(3); open({str(late)!r}, 'w').write('late')  # {marker}"
    script = f"""
        import os, sys
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execve(sys.executable, [sys.executable, "-c", {daemon!r}], {{}})
            os._exit(0)
        os.wait()
        print("model output: 00")
    """
    (root / "run.py").write_text(textwrap.dedent(script))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--corresponding-source", str(root), "-p", "no:randomly",
         "-p", "no:cacheprovider", "-q", "-k", "released"],
        capture_output=True, text=True, timeout=300, cwd=root, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:]

    def alive() -> list[str]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(entry.name)
            except OSError:
                pass
        return found

    assert alive() == []
    time.sleep(4)  # past the daemon's write
    assert alive() == []
    assert not late.exists()


@pytest.mark.parametrize(
    ("option", "modes"),
    [("--corrsource-sandbox", backends.MODES), ("--corrsource-installer", INSTALLERS)],
)
def test_the_option_choices_are_the_modes_the_code_knows(
    pytester: pytest.Pytester, option: str, modes: tuple[str, ...]
) -> None:
    """plugin.py spells the choices out (importing the sandbox at start-up would cost every
    pytest session): they must stay the modes the sandbox and installer code accept."""
    result = pytester.runpytest(f"{option}=bogus")
    assert result.ret == 4
    error = "\n".join(result.errlines)
    listed = re.search(r"invalid choice: '?bogus'? \(choose from (.*)\)", error)
    assert listed is not None, error
    assert tuple(choice.strip(" '") for choice in listed.group(1).split(",")) == modes
