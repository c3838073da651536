"""conda environment files (``environment.yml``) as ``install.requirements`` (issue 14).

No conda here: without one the file's ``pip:`` section and Python pin are used and a warning
names the conda packages left out; with a conda tool (a stand-in ``micromamba`` script that
records what it was asked) the tool makes the environment, in the sandbox, at the
environment's own prefix.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from conftest import MINIMAL_MANIFEST, RUNNABLE_FILES, RepoFactory
from test_installer import installed_by, run_check

from pytest_corrsource.checks.api import Options
from pytest_corrsource.sandbox import conda as conda_module
from pytest_corrsource.sandbox import steps
from pytest_corrsource.sandbox.conda import (
    MAX_CONDA_FILE_BYTES,
    MAX_ENTRIES,
    CondaFile,
    CondaFileError,
    conda_command_kind,
    is_conda_file,
    python_request,
    python_satisfies,
    read_conda_file,
)
from pytest_corrsource.sandbox.steps import get_environment

HERE = f"{sys.version_info.major}.{sys.version_info.minor}"
ENVIRONMENT = f"""\
name: tiny
channels: [conda-forge, defaults]
dependencies:
  - python={HERE}
  - numpy=1.26
  - conda-forge::libstdcxx-ng
  - pip
  - pip:
    - safetensors
"""


def write(tmp_path: Path, text: str, name: str = "environment.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_file_is_read_into_conda_packages_pip_lines_and_python(tmp_path: Path) -> None:
    conda = read_conda_file(write(tmp_path, ENVIRONMENT))
    assert conda.conda_packages == ("numpy=1.26", "conda-forge::libstdcxx-ng")
    assert conda.pip == ("safetensors",)
    assert conda.python == f"python={HERE}"
    assert conda.python_version == HERE


@pytest.mark.parametrize(
    ("entry", "version"),
    [
        ("python=3.10", "3.10"),
        ("python==3.10.*", "3.10"),
        ("python 3.11", "3.11"),
        ("python=3.10.12=h955ad1f_0", "3.10.12"),
        ("python>=3.9,<3.12", None),  # a range: any interpreter satisfying it
        ("python", None),
    ],
)
def test_the_python_pin(entry: str, version: str | None, tmp_path: Path) -> None:
    assert CondaFile(tmp_path, (), (), entry).python_version == version


def test_a_python_range_is_matched_against_the_interpreters_here(tmp_path: Path) -> None:
    assert python_satisfies("python>=3.9,<3.12", "3.11.7")
    assert not python_satisfies("python>=3.12", "3.11.7")
    assert python_satisfies("python=3.11", "3.11.7")
    assert not python_satisfies("python=3.1", "3.11.7")  # 3.1 is not a prefix of 3.11
    here = CondaFile(tmp_path / "environment.yml", (), (), f"python>={HERE}")
    assert python_request(here) == HERE
    nowhere = CondaFile(tmp_path / "environment.yml", (), (), "python>=3.99")
    with pytest.raises(CondaFileError, match=r"asks for `python>=3.99`, and no Python here"):
        python_request(nowhere)


@pytest.mark.parametrize(
    ("command", "kind"),
    [
        ("conda env create -f environment.yml", "create"),
        ("mamba env update --file environment.yml --prune", "create"),
        ("micromamba create -y -f environment.yml", "create"),
        ("conda activate tiny", "activate"),
        ("source activate tiny", "activate"),
        ("conda install -c pytorch pytorch", "other"),
        ("python -m pip install -e .", None),
    ],
)
def test_conda_commands(command: str, kind: str | None) -> None:
    assert conda_command_kind(command) == kind


def test_which_files_are_conda_files(tmp_path: Path) -> None:
    assert is_conda_file(tmp_path / "conda.yaml")  # by name, even before it exists
    assert is_conda_file(write(tmp_path, "dependencies: [numpy]\n", "env-cpu.yml"))
    assert not is_conda_file(write(tmp_path, "name: x\n", "other.yml"))
    assert not is_conda_file(write(tmp_path, "numpy\n", "requirements.txt"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dependencies: [numpy\n", "is not valid YAML"),
        ("- numpy\n", "is not a mapping"),
        ("dependencies: numpy\n", "`dependencies` is not a list"),
        ("dependencies: [{pip: [1]}]\n", "a `pip:` entry is not a string"),
        ("dependencies: [{channel: x}]\n", "a mapping other than `pip:`"),
        ("dependencies: [[nested]]\n", "a dependency is not a string"),
        ("dependencies: !!python/object:os.system [echo]\n", "is not valid YAML"),
    ],
)
def test_a_malformed_file_is_an_error_not_a_crash(text: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(CondaFileError, match=message):
        read_conda_file(write(tmp_path, text))


def test_hostile_files_are_bounded(tmp_path: Path) -> None:
    huge = write(tmp_path, "dependencies:\n" + "  - numpy\n" * (MAX_CONDA_FILE_BYTES // 10 + 1))
    with pytest.raises(CondaFileError, match=r"environment\.yml"):
        read_conda_file(huge)
    many = write(tmp_path, "dependencies: [" + "a," * (MAX_ENTRIES + 1) + "]\n", "many.yml")
    with pytest.raises(CondaFileError, match=f"more than {MAX_ENTRIES} dependencies"):
        read_conda_file(many)
    # Aliases do not multiply work: the pip list of a "billion laughs" is not strings.
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
    bomb = write(tmp_path, laughs + "dependencies: [{pip: *b}]\n", "bomb.yml")
    with pytest.raises(CondaFileError, match="not a string"):
        read_conda_file(bomb)
    fifo = tmp_path / "fifo.yml"
    os.mkfifo(fifo)
    with pytest.raises(CondaFileError, match=r"fifo\.yml"):
        read_conda_file(fifo)  # refused without blocking on the pipe
    # 10,000 `[` recursed into a RecursionError (a crash) in PyYAML's composer
    deep = write(tmp_path, "dependencies: " + "[" * 10_000 + "]" * 10_000 + "\n", "deep.yml")
    with pytest.raises(CondaFileError, match=r"deep\.yml is not valid YAML: nested more than 64"):
        read_conda_file(deep)


# --------------------------------------------------------------------------- building

MANIFEST = (
    MINIMAL_MANIFEST
    + """\
install:
  requirements: [environment.yml]
  commands:
    - conda env create -f environment.yml
    - conda activate tiny
run:
  command: python run.py --weights {weights}
  expect:
    stdout: "model output: [0-9a-f]+"
"""
)


@pytest.fixture
def no_conda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(steps, "conda_tool", lambda: None)


@pytest.mark.slow
def test_without_conda_the_pip_section_is_installed_and_the_rest_named(
    no_conda: None, make_repo: RepoFactory, tmp_path: Path
) -> None:
    root = make_repo(MANIFEST, {**RUNNABLE_FILES, "environment.yml": ENVIRONMENT})
    options = Options(installer="pip", cache_dir=tmp_path / "cache")
    result, ctx = run_check(root, "CS202", options)
    assert result.outcome == "passed", result.message
    (warning,) = [w for w in result.warnings if "conda" in w]
    assert warning == (
        "no conda, mamba or micromamba here: not installed were the conda packages "
        "numpy=1.26, conda-forge::libstdcxx-ng of environment.yml (only its `pip:` section "
        f"and its `python={HERE}` were used; install micromamba to build it whole)"
    )
    env = get_environment(ctx)
    assert installed_by(env.root, "safetensors") == "pip"
    assert "conda env create -f environment.yml\n(done by the environment builder" in (
        env.install_log
    )
    # The warning stays with the environment: a reuse says it again.
    again, _ = run_check(root, "CS202", options)
    assert "reused" in again.message
    assert warning in again.warnings
    run, _ = run_check(root, "CS402", options)
    assert run.outcome == "passed", run.message


@pytest.mark.slow
def test_without_conda_other_conda_commands_are_named_as_skipped(
    no_conda: None, make_repo: RepoFactory, tmp_path: Path
) -> None:
    other = "    - conda install -y -c pytorch cpuonly\n"
    text = MANIFEST.replace("    - conda activate tiny\n", other)
    plain = "name: t\ndependencies:\n  - pip:\n    - safetensors\n"
    root = make_repo(text, {**RUNNABLE_FILES, "environment.yml": plain})
    result, _ = run_check(root, "CS202", Options(installer="pip", cache_dir=tmp_path / "c"))
    assert result.outcome == "passed", result.message
    assert any(
        "not installed were the install commands conda install -y -c pytorch cpuonly" in w
        for w in result.warnings
    ), result.warnings


@pytest.mark.parametrize(
    ("pin", "message"),
    [
        ("python=2.1", "environment.yml pins `python=2.1`, which is not installed here"),
        ("python>=3.99", "environment.yml asks for `python>=3.99`, and no Python here"),
    ],
)
def test_without_conda_a_python_pin_that_is_not_here_is_unverifiable(
    pin: str, message: str, no_conda: None, make_repo: RepoFactory, tmp_path: Path
) -> None:
    text = f"dependencies:\n  - {pin}\n  - pip:\n    - safetensors\n"
    root = make_repo(MANIFEST, {**RUNNABLE_FILES, "environment.yml": text})
    result, _ = run_check(root, "CS202", Options(installer="pip", cache_dir=tmp_path / "c"))
    # A limit of this machine, not of the repository: waivable, said as such.
    assert result.outcome == "failed"
    assert f"could not be verified on this machine: {message}" in result.message


def test_a_malformed_conda_file_fails_cs202(
    no_conda: None, make_repo: RepoFactory, tmp_path: Path
) -> None:
    root = make_repo(MANIFEST, {**RUNNABLE_FILES, "environment.yml": "dependencies: [[x]]\n"})
    result, _ = run_check(root, "CS202", Options(installer="pip", cache_dir=tmp_path / "c"))
    assert result.outcome == "failed"
    assert "`install.requirements`: environment.yml: a dependency is not a string" in (
        result.message
    )


FAKE_MICROMAMBA = """#!/bin/sh
# Stands in for micromamba: `create -y -p PREFIX -f FILE` makes PREFIX with a python.
prefix=""; file=""
while [ $# -gt 0 ]; do
  case "$1" in -p) prefix="$2"; shift;; -f) file="$2"; shift;; esac
  shift
done
[ -f "$file" ] || { echo "no file $file" >&2; exit 2; }
mkdir -p "$prefix/bin" || exit 3
ln -s "{python}" "$prefix/bin/python"
echo "from $file; pkgs in $CONDA_PKGS_DIRS; args: $*" > "$prefix/made-by-micromamba"
"""


@pytest.mark.slow
def test_with_a_conda_tool_it_makes_the_environment_in_the_sandbox(
    make_repo: RepoFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    fake = tools / "micromamba"
    fake.write_text(FAKE_MICROMAMBA.replace("{python}", os.path.realpath(sys.executable)))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    assert conda_module.conda_tool() == fake
    root = make_repo(MANIFEST, {**RUNNABLE_FILES, "environment.yml": ENVIRONMENT})
    options = Options(installer="pip", cache_dir=tmp_path / "cache")
    result, ctx = run_check(root, "CS202", options)
    assert result.outcome == "passed", result.message
    assert not [w for w in result.warnings if "conda" in w]  # nothing was left out
    env = get_environment(ctx)
    prefix = env.root / "conda"  # the prefix inside the environment's folder
    assert env.python == prefix / "bin" / "python"
    made = (prefix / "made-by-micromamba").read_text()
    assert made.startswith("from ")
    assert made.split(";")[0].endswith("/environment.yml")
    assert f"{tmp_path / 'cache'}/downloads/" in made  # the repository's package cache
    assert f"{fake} create -y -p {prefix} -f" in env.install_log
    run, _ = run_check(root, "CS402", options)
    assert run.outcome == "passed", run.message
