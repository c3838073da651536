"""--corrsource-installer: uv builds environments with pip's meaning, and says so (issue 14).

Environments are built from the local index of tests/conftest.py (file://) only.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import MINIMAL_MANIFEST, RUNNABLE_FILES, RepoFactory

from pytest_corrsource.checks.api import CheckContext, Options, RunState
from pytest_corrsource.hashing import DigestCache
from pytest_corrsource.manifest import load_manifest
from pytest_corrsource.plan import build_plan
from pytest_corrsource.results import CheckResult, run_planned
from pytest_corrsource.sandbox import installers
from pytest_corrsource.sandbox.installers import (
    InstallerUnavailable,
    find_uv,
    pip_settings,
    select_installer,
    uv_argv,
    uv_environment,
)
from pytest_corrsource.sandbox.steps import PipelineStep, get_environment, run_in_scratch

UV = Path("/opt/uv")
PY = Path("/env/bin/python")


def needs_uv() -> Path:
    uv = find_uv()
    if uv is None:
        pytest.skip("uv is not installed (pip install uv, or the `test` extra)")
    return uv


# --------------------------------------------------------------------------- commands


@pytest.mark.parametrize(
    "command",
    [
        "pip install -r requirements.txt",
        "python -m pip install -e .",
        "pip3 install --no-deps --upgrade numpy==2.0 torch",
        "python3.11 -m pip install -i https://example.org/simple --extra-index-url=x numpy",
        "/env/bin/pip install -q --no-cache-dir -c constraints.txt .",  # the environment's pip
    ],
)
def test_a_pip_install_with_the_same_meaning_runs_with_uv(command: str, tmp_path: Path) -> None:
    words = command.split()
    arguments = words[words.index("install") + 1 :]
    assert uv_argv(words, uv=UV, python=PY, cwd=tmp_path) == [
        str(UV), "pip", "install", "--python", str(PY), *arguments,
    ]  # fmt: skip


@pytest.mark.parametrize(
    "command",
    [
        "pip download torch",  # not an install
        "pip --no-cache-dir install numpy",  # a global option before the subcommand
        "pip install --prefer-binary numpy",  # uv has no such option
        "pip install --user numpy",  # uv reads --user differently
        "pip install --target out numpy",
        "python -c 'import pip'",
        "python -m pip list",
        "pip install -r",  # option without its value
        "conda install numpy",
        "./pip install numpy",  # the repository's own `pip` script runs as it is
        "/usr/bin/python3 -m pip install numpy",  # not the environment's interpreter
    ],
)
def test_anything_else_keeps_pip(command: str, tmp_path: Path) -> None:
    words = command.split() if "'" not in command else ["python", "-c", "import pip"]
    assert uv_argv(words, uv=UV, python=PY, cwd=tmp_path) is None


def test_options_inside_requirement_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("numpy\n-r more.txt\n")
    more = "--extra-index-url https://x/simple\ntorch --hash=sha256:ab\n"
    (tmp_path / "more.txt").write_text(more)
    argv = ["pip", "install", "-r", "requirements.txt"]
    assert uv_argv(argv, uv=UV, python=PY, cwd=tmp_path) is not None
    # An option uv does not read as pip does, two files down: the command stays with pip.
    (tmp_path / "more.txt").write_text("--prefer-binary\ntorch\n")
    assert uv_argv(argv, uv=UV, python=PY, cwd=tmp_path) is None


def test_requirement_files_that_include_each_other_end(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("-r b.txt\n")
    (tmp_path / "b.txt").write_text("-r a.txt\nnumpy\n")
    assert uv_argv(["pip", "install", "-r", "a.txt"], uv=UV, python=PY, cwd=tmp_path)


# --------------------------------------------------------------------------- settings


def test_pip_settings_come_from_its_global_files_then_the_environment(tmp_path: Path) -> None:
    etc = tmp_path / "pip.conf"
    etc.write_text(
        "[global]\nindex-url = https://mirror/simple\nfind-links = /opt/wheels\n"
        "    /srv/more\ncert = /etc/ca.pem\n[install]\ntrusted-host = mirror\n"
        "[freeze]\nindex-url = https://ignored/simple\n"
    )
    found = pip_settings({"PIP_INDEX_URL": "file:///idx/simple"}, [etc, tmp_path / "absent"])
    assert found == {
        "index-url": "file:///idx/simple",  # the variable wins over the file
        "find-links": "/opt/wheels /srv/more",
        "cert": "/etc/ca.pem",
        "trusted-host": "mirror",
    }
    uv = uv_environment({"PIP_EXTRA_INDEX_URL": "a b"}, cache=tmp_path / "c", config_files=[etc])
    assert "UV_NO_INDEX" not in uv
    assert uv["UV_INDEX_URL"] == "https://mirror/simple"
    assert uv["UV_EXTRA_INDEX_URL"] == "a b"
    assert uv["UV_FIND_LINKS"] == "/opt/wheels,/srv/more"  # uv's list is comma-separated
    assert uv["SSL_CERT_FILE"] == "/etc/ca.pem"
    assert uv["UV_INSECURE_HOST"] == "mirror"
    assert uv["UV_NO_CONFIG"] == "1"  # a repository's uv.toml does not change pip's meaning
    assert uv["UV_INDEX_STRATEGY"] == "unsafe-best-match"  # pip's choice among indexes
    assert uv["UV_LINK_MODE"] == "copy"  # never a hard link into the cache
    assert uv["UV_CACHE_DIR"] == str(tmp_path / "c")
    etc.write_text("[install]\nno-index = yes\n")
    assert uv_environment({}, cache=tmp_path, config_files=[etc])["UV_NO_INDEX"] == "1"
    etc.write_text("[install]\nno-index = false\n")
    assert "UV_NO_INDEX" not in uv_environment({}, cache=tmp_path, config_files=[etc])


def test_a_broken_pip_config_is_ignored_as_pip_would_not_start(tmp_path: Path) -> None:
    bad = tmp_path / "pip.conf"
    bad.write_bytes(b"\xff\xfe[global\nindex-url")
    assert pip_settings({}, [bad]) == {}


def test_select_installer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(installers, "find_uv", lambda: None)
    assert select_installer("auto") == ("pip", None)
    assert select_installer("pip") == ("pip", None)
    with pytest.raises(InstallerUnavailable, match="no uv found"):
        select_installer("uv")
    with pytest.raises(ValueError, match="unknown installer"):
        select_installer("poetry")
    monkeypatch.setattr(installers, "find_uv", lambda: UV)
    assert select_installer("auto") == ("uv", UV)
    assert select_installer("pip") == ("pip", None)


ARGS = ("-p", "no:randomly", "--corresponding-source", "--corrsource-level=open-weights")


@pytest.fixture
def repo(pytester: pytest.Pytester, make_repo: RepoFactory) -> None:
    import shutil

    source = make_repo(MINIMAL_MANIFEST, {"LICENSE": "MIT License\n"})
    shutil.copytree(source, pytester.path, dirs_exist_ok=True)


def test_installer_uv_without_uv_is_a_usage_error(
    pytester: pytest.Pytester, repo: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(installers, "find_uv", lambda: None)
    result = pytester.runpytest(*ARGS, "--corrsource-installer=uv")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --corrsource-installer=uv: no uv found on PATH*"])


def test_installer_from_the_environment_and_the_ini(
    pytester: pytest.Pytester, repo: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORRSOURCE_INSTALLER", "poetry")
    result = pytester.runpytest(*ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: environment variable CORRSOURCE_INSTALLER: unknown installer `poetry`*"]
    )
    assert pytester.runpytest(*ARGS, "--corrsource-installer=pip").ret == 0  # CLI wins
    monkeypatch.delenv("CORRSOURCE_INSTALLER")
    pytester.makeini("[pytest]\ncorrsource_installer = conda\n")
    result = pytester.runpytest(*ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: ini option corrsource_installer: unknown installer*"])


# --------------------------------------------------------------------------- building


def run_check(
    root: Path, check_id: str, options: Options, state: RunState | None = None
) -> tuple[CheckResult, CheckContext]:
    """Run one check (and what it needs) on the repository at *root*."""
    manifest = load_manifest(root / "corresponding-source.yaml")
    state = state or RunState()
    for planned in build_plan(manifest):
        if planned.spec.id == check_id:
            ctx = CheckContext(
                manifest, planned.spec.id, planned.subject, options, DigestCache(), state
            )
            return run_planned(planned, ctx, "corresponding-source"), ctx
    raise AssertionError(f"{check_id} is not planned")


WITH_SAFETENSORS = (
    MINIMAL_MANIFEST
    + """\
install:
  requirements: [requirements.txt]
  commands: [python -m pip install -r requirements.txt]
run:
  command: python run.py --weights {weights}
"""
)


def installed_by(env_root: Path, project: str) -> str:
    """The INSTALLER record of *project* in the environment: who really installed it."""
    (record,) = env_root.glob(f"lib/python*/site-packages/{project}-*.dist-info/INSTALLER")
    return record.read_text().strip()


@pytest.mark.slow
@pytest.mark.parametrize("chosen", ["uv", "pip"])
def test_the_installer_builds_the_environment_and_cs202_says_which(
    chosen: str, make_repo: RepoFactory, tmp_path: Path
) -> None:
    if chosen == "uv":
        needs_uv()
    files = {**RUNNABLE_FILES, "requirements.txt": "safetensors\n"}
    root = make_repo(WITH_SAFETENSORS, files)
    options = Options(installer=chosen, cache_dir=tmp_path / "cache")
    result, ctx = run_check(root, "CS202", options)
    assert result.outcome == "passed", result.message
    assert f"built with {chosen} at" in result.message
    assert result.data["installer"] == chosen
    env = get_environment(ctx)
    assert installed_by(env.root, "safetensors") == chosen
    assert ("(run as uv pip install)" in env.install_log) is (chosen == "uv")
    # The environment works for a step: the installed package imports.
    step = PipelineStep("run", "python -c 'import safetensors; print(\"ok\")'", 60)
    run = run_in_scratch(ctx, step, python=env.python, bin_dir=env.bin_dir)
    assert run.ok, run.describe()
    assert run.result.stdout.strip() == "ok"
    # pip is in the environment (for commands uv does not take), and it is the interpreter's
    # bundled pip, as with `python -m venv`: seeding did not go to an index.
    import ensurepip

    (pip,) = env.root.glob("lib/python*/site-packages/pip-*.dist-info")
    assert pip.name == f"pip-{ensurepip.version()}.dist-info"
    # Reused: the message still names the installer that built it.
    again, _ = run_check(root, "CS202", options)
    assert f"reused from the cache (built with {chosen})" in again.message


@pytest.mark.slow
def test_uv_and_pip_environments_are_not_each_others(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    needs_uv()
    files = {**RUNNABLE_FILES, "requirements.txt": "# nothing\n"}
    root = make_repo(WITH_SAFETENSORS, files)
    keys = set()
    for chosen in ("uv", "pip"):
        result, _ = run_check(root, "CS202", Options(installer=chosen, cache_dir=tmp_path / "c"))
        assert result.outcome == "passed", result.message
        keys.add(result.data["environment"])
    assert len(keys) == 2


@pytest.mark.slow
def test_a_failing_uv_install_fails_cs202_with_its_output(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    needs_uv()
    files = {**RUNNABLE_FILES, "requirements.txt": "no-such-project-corrsource==1\n"}
    root = make_repo(WITH_SAFETENSORS, files)
    result, _ = run_check(root, "CS202", Options(installer="uv", cache_dir=tmp_path / "c"))
    assert result.outcome == "failed"
    assert "the install commands failed in a fresh environment" in result.message
    assert "no-such-project-corrsource" in result.message


def test_uv_binary_is_found_from_the_python_package(monkeypatch: pytest.MonkeyPatch) -> None:
    uv = needs_uv()
    monkeypatch.setenv("PATH", os.defpath)  # not on PATH: the `uv` package's binary
    found = find_uv()
    assert found is not None
    assert found.is_file()
    assert os.access(found, os.X_OK)
    assert found.name == uv.name


def test_install_steps_see_the_folders_named_in_pips_config_files(tmp_path: Path) -> None:
    from pytest_corrsource.sandbox.process import package_sources

    wheels, more, index = tmp_path / "wheels", tmp_path / "more", tmp_path / "simple"
    for folder in (wheels, more, index):
        folder.mkdir()
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nfind-links = {wheels}\nextra-index-url = {index.as_uri()}\n")
    assert set(package_sources({}, [conf])) == {wheels, index}
    assert package_sources({}) == ()  # only when asked: the checker's own helpers read none
    # uv's find-links list is comma-separated.
    assert package_sources({"UV_FIND_LINKS": f"{wheels},{more}"}) == (wheels, more)


def test_uv_on_path_through_a_symlink_is_run_by_its_real_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sandbox shows an install step the uv file itself, not a symlink in someone's ~/bin.
    real = tmp_path / "opt" / "uv"
    real.parent.mkdir()
    real.write_text("#!/bin/sh\n")
    real.chmod(0o755)
    links = tmp_path / "bin"
    links.mkdir()
    (links / "uv").symlink_to(real)
    monkeypatch.setenv("PATH", str(links))
    assert find_uv() == real
