"""Tests for pytest_corrsource.sandbox.environments (venv caching, locking, keys)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_corrsource.sandbox import environments
from pytest_corrsource.sandbox.environments import (
    MARKER_NAME,
    Environment,
    EnvironmentBuildError,
    EnvironmentSpec,
    InstallOutcome,
    InterpreterInfo,
    InterpreterNotFoundError,
    default_cache_dir,
    ensure_environment,
    environment_key,
    find_interpreter,
)

CURRENT = f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass
class CountingInstall:
    """run_install double: proves the command runs with the env's python; counts calls."""

    ok: bool = True
    calls: list[Path] = field(default_factory=list)

    def __call__(self, python: Path) -> InstallOutcome:
        self.calls.append(python)
        proc = subprocess.run(
            [str(python), "-c", "import sys, pip; print('prefix', sys.prefix)"],
            capture_output=True,
            text=True,
            check=False,
        )
        return InstallOutcome(ok=self.ok and proc.returncode == 0, log=proc.stdout + proc.stderr)


def _spec(
    tmp: Path,
    *,
    requirement: str = "",
    python: str | None = None,
    commands: tuple[str, ...] = ("pip install -r requirements.txt",),
    env: tuple[tuple[str, str], ...] = (),
) -> EnvironmentSpec:
    req = tmp / "requirements.txt"
    if not req.exists():
        req.write_text(requirement)
    return EnvironmentSpec(python=python, commands=commands, files=(req,), env=env)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Environment, CountingInstall, Path]:
    """One real venv shared by the reuse tests (venv creation costs seconds)."""
    root = tmp_path_factory.mktemp("built")
    (root / "repo").mkdir()
    spec = _spec(root / "repo")
    install = CountingInstall()
    env = ensure_environment(spec, cache_dir=root / "cache", run_install=install)
    return env, install, root


# ------------------------------------------------------------------------------ keys


def test_key_is_stable_and_hex(tmp_path: Path) -> None:
    spec = _spec(tmp_path, requirement="numpy\n")
    key = environment_key(spec)
    assert key == environment_key(spec)
    assert len(key) == 64
    int(key, 16)


def test_key_independent_of_checkout_location(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert environment_key(_spec(tmp_path / "a", requirement="x\n")) == environment_key(
        _spec(tmp_path / "b", requirement="x\n")
    )


def test_key_changes_with_file_content(tmp_path: Path) -> None:
    spec = _spec(tmp_path, requirement="numpy==1.0\n")
    before = environment_key(spec)
    (tmp_path / "requirements.txt").write_text("numpy==2.0\n")
    assert environment_key(spec) != before


def test_key_changes_with_commands_and_their_order(tmp_path: Path) -> None:
    base = environment_key(_spec(tmp_path, commands=("a", "b")))
    assert environment_key(_spec(tmp_path, commands=("a", "c"))) != base
    assert environment_key(_spec(tmp_path, commands=("b", "a"))) != base


def test_key_changes_with_env(tmp_path: Path) -> None:
    base = environment_key(_spec(tmp_path))
    with_env = environment_key(_spec(tmp_path, env=(("PIP_NO_BINARY", ":all:"),)))
    assert with_env != base
    other = environment_key(_spec(tmp_path, env=(("PIP_NO_BINARY", "numpy"),)))
    assert other != with_env
    # env behaves like a mapping: order does not matter
    two = (("A", "1"), ("B", "2"))
    assert environment_key(_spec(tmp_path, env=two)) == environment_key(
        _spec(tmp_path, env=two[::-1])
    )


def test_key_changes_with_interpreter_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(tmp_path)
    base = environment_key(spec)

    def fake(path: Path) -> InterpreterInfo:
        return InterpreterInfo("3.99.0", sys.implementation.name, "x86_64")

    monkeypatch.setattr(environments, "interpreter_info", fake)
    assert environment_key(spec) != base


def test_file_order_does_not_change_key_but_names_do(tmp_path: Path) -> None:
    a = tmp_path / "requirements.txt"
    b = tmp_path / "requirements-dev.txt"
    a.write_text("x\n")
    b.write_text("y\n")
    k1 = environment_key(EnvironmentSpec(files=(a, b)))
    k2 = environment_key(EnvironmentSpec(files=(b, a)))
    assert k1 == k2
    # swapping contents between the two names is a different environment
    a.write_text("y\n")
    b.write_text("x\n")
    assert environment_key(EnvironmentSpec(files=(a, b))) != k1


def test_missing_file_has_its_own_key(tmp_path: Path) -> None:
    missing = tmp_path / "requirements.txt"
    k_missing = environment_key(EnvironmentSpec(files=(missing,)))
    missing.write_text("")
    assert environment_key(EnvironmentSpec(files=(missing,))) != k_missing


def test_key_for_unknown_python_raises(tmp_path: Path) -> None:
    with pytest.raises(InterpreterNotFoundError, match=r"2\.1"):
        environment_key(_spec(tmp_path, python="2.1"))


# ------------------------------------------------------------------------------ interpreters


def test_find_interpreter_none_is_sys_executable() -> None:
    assert find_interpreter(None) == Path(sys.executable)


def test_find_interpreter_current_version() -> None:
    found = find_interpreter(CURRENT)
    assert found is not None
    info = environments.interpreter_info(found)
    assert info is not None
    assert info.version.startswith(CURRENT + ".")


@pytest.mark.parametrize("version", ["2.1", "3.1", "99", "not-a-version", ""])
def test_find_interpreter_missing(version: str) -> None:
    assert find_interpreter(version) is None


# ------------------------------------------------------------------------------ cache dir


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CORRSOURCE_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("CORRSOURCE_CACHE_DIR")
    assert default_cache_dir() == tmp_path / "xdg" / "pytest-corrsource"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "pytest-corrsource"


# ------------------------------------------------------------------------------ building


@pytest.mark.e2e
def test_build_creates_venv_with_pip(built: tuple[Environment, CountingInstall, Path]) -> None:
    env, install, root = built
    assert not env.reused
    assert install.calls == [env.python]
    assert env.root == root / "cache" / "envs" / env.key[:16]
    assert env.python.exists()
    assert env.bin_dir == env.python.parent
    assert (env.root / MARKER_NAME).exists()
    marker = json.loads((env.root / MARKER_NAME).read_text())
    assert marker["key"] == env.key
    assert "prefix" in env.install_log
    out = subprocess.run(
        [str(env.python), "-c", "import sys; print(sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(out).resolve() == env.root.resolve()


@pytest.mark.e2e
def test_second_ensure_reuses(built: tuple[Environment, CountingInstall, Path]) -> None:
    env, _install, root = built
    again = CountingInstall()
    env2 = ensure_environment(_spec(root / "repo"), cache_dir=root / "cache", run_install=again)
    assert again.calls == []
    assert env2.reused
    assert env2.root == env.root
    assert env2.key == env.key
    assert env2.install_log == env.install_log


@pytest.mark.e2e
def test_fresh_rebuilds_and_partial_build_is_rebuilt(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    key = environment_key(spec)
    root = tmp_path / "cache" / "envs" / key[:16]
    # a crashed build: directory without the completion marker
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").write_text("not a python")
    (root / "junk").write_text("left over")
    install = CountingInstall()
    env = ensure_environment(spec, cache_dir=tmp_path / "cache", run_install=install)
    assert not env.reused
    assert len(install.calls) == 1
    assert not (root / "junk").exists()
    (root / "sentinel").write_text("from first build")
    env2 = ensure_environment(spec, cache_dir=tmp_path / "cache", fresh=True, run_install=install)
    assert not env2.reused
    assert len(install.calls) == 2
    assert not (root / "sentinel").exists()
    assert (root / MARKER_NAME).exists()


@pytest.mark.e2e
def test_failing_install_removes_dir_and_raises_with_log(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    root = tmp_path / "cache" / "envs" / environment_key(spec)[:16]

    def failing(python: Path) -> InstallOutcome:
        assert python.exists()
        return InstallOutcome(ok=False, log="ERROR: No matching distribution for nothing\n")

    with pytest.raises(EnvironmentBuildError, match="install commands failed") as info:
        ensure_environment(spec, cache_dir=tmp_path / "cache", run_install=failing)
    assert "No matching distribution" in info.value.log
    assert not root.exists()


def test_raising_install_removes_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(tmp_path)
    root = tmp_path / "cache" / "envs" / environment_key(spec)[:16]

    def fake_venv(interpreter: Path, where: Path) -> str:
        (where / "bin").mkdir(parents=True)
        (where / "bin" / "python").write_text("")
        return "fake venv\n"

    def boom(python: Path) -> InstallOutcome:
        raise KeyboardInterrupt

    monkeypatch.setattr(environments, "_create_venv", fake_venv)
    with pytest.raises(KeyboardInterrupt):
        ensure_environment(spec, cache_dir=tmp_path / "cache", run_install=boom)
    assert not root.exists()


def test_marker_with_other_key_is_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(tmp_path)
    key = environment_key(spec)
    root = tmp_path / "cache" / "envs" / key[:16]
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").write_text("")
    (root / MARKER_NAME).write_text(json.dumps({"key": "0" * 64}))
    built: list[Path] = []

    def fake_venv(interpreter: Path, where: Path) -> str:
        built.append(where)
        (where / "bin").mkdir(parents=True)
        (where / "bin" / "python").write_text("")
        return ""

    monkeypatch.setattr(environments, "_create_venv", fake_venv)
    env = ensure_environment(
        spec, cache_dir=tmp_path / "cache", run_install=lambda p: InstallOutcome(True, "ok")
    )
    assert built == [root]
    assert not env.reused
    assert json.loads((root / MARKER_NAME).read_text())["key"] == key


_WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from pytest_corrsource.sandbox.environments import EnvironmentSpec, InstallOutcome
    from pytest_corrsource.sandbox.environments import ensure_environment

    repo, cache, counter = map(Path, sys.argv[1:4])

    def run_install(python):
        with counter.open("a") as fh:
            fh.write("built\\n")
        time.sleep(1.0)
        return InstallOutcome(ok=True, log="slept\\n")

    spec = EnvironmentSpec(commands=("true",), files=(repo / "requirements.txt",))
    env = ensure_environment(spec, cache_dir=cache, run_install=run_install)
    print(json.dumps({"reused": env.reused, "root": str(env.root)}))
    """
)


@pytest.mark.e2e
def test_concurrent_processes_build_once(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "requirements.txt").write_text("")
    counter = tmp_path / "counter.txt"
    argv = [
        sys.executable,
        "-c",
        _WORKER,
        str(tmp_path / "repo"),
        str(tmp_path / "cache"),
        str(counter),
    ]
    env = {k: v for k, v in os.environ.items() if k != "CORRSOURCE_CACHE_DIR"}
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert counter.read_text().splitlines() == ["built"]
    assert sorted(r["reused"] for r in results) == [False, True]
    assert results[0]["root"] == results[1]["root"]


def test_unknown_python_raises_before_building(tmp_path: Path) -> None:
    called: list[Path] = []

    def run(python: Path) -> InstallOutcome:
        called.append(python)
        return InstallOutcome(True, "")

    with pytest.raises(InterpreterNotFoundError):
        ensure_environment(_spec(tmp_path, python="2.1"), cache_dir=tmp_path, run_install=run)
    assert called == []
    assert not (tmp_path / "envs").exists() or not any((tmp_path / "envs").iterdir())
