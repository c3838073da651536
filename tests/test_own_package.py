"""A repository that installs itself (`pip install -e .`, `pip install .`): its code is part of
the environment's key, and an editable install points at a copy that every step can see
(issue 14: stale `mingpt` code passed CS602; `-e .` pointed into a deleted scratch copy)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import MINIMAL_MANIFEST, PlannedChecks, RepoFactory

from pytest_corrsource.checks.api import CheckContext, Options, RunState
from pytest_corrsource.hashing import DigestCache
from pytest_corrsource.manifest import load_manifest
from pytest_corrsource.results import CheckResult
from pytest_corrsource.sandbox.environments import default_cache_dir, environment_key
from pytest_corrsource.sandbox.steps import (
    environment_spec,
    installs_repository,
    requirements_install_repository,
)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("python -m pip install -e .", True),
        ("pip install .", True),
        ("python -m pip install --no-deps {repo}", True),
        ("uv pip install ./src/pkg", True),
        ("python setup.py develop", True),
        ("python -m pip install -r requirements.txt", False),
        ("pip install numpy==2.0 torch", False),
        ("pip install -c constraints.txt numpy", False),
        ("pip install /opt/wheels/x.whl", False),
    ],
)
def test_installs_repository(command: str, expected: bool, tmp_path: Path) -> None:
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    assert installs_repository(command, tmp_path) is expected


PACKAGE = (
    MINIMAL_MANIFEST
    + """\
install:
  requirements: [pyproject.toml]
  commands: [python -m pip install -e .]
run:
  command: python -c "import sys; sys.path.pop(0); import mypkg; print('value', mypkg.VALUE)"
  expect: {stdout: "value VALUE"}
"""
)
PYPROJECT = """\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "mypkg"
version = "0.1"

[tool.setuptools]
packages = ["mypkg"]
"""


# The run drops its working directory (the scratch copy, which holds `mypkg/` too) from
# sys.path: only the installed package can answer, as for a user whose cwd is elsewhere.


def cs402(root: Path, installer: str = "auto") -> tuple[CheckResult, CheckResult]:
    """(CS202, CS402) of a fresh session on ``root``."""
    checks = PlannedChecks(root, Options(level="corresponding-source", installer=installer))
    for check_id in ("CS101", "CS201", "CS202"):
        result = checks(check_id)
        assert result.outcome == "passed", result.message
    return checks("CS202"), checks("CS402")


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (".\n", True),
        ("numpy==2.0\n-e .\n", True),
        ("--editable ./src/pkg  # ours\n", True),
        ("file:.#egg=mypkg\n", True),
        ("-e file:./src/pkg[extra]\n", True),
        ("-r more.txt\n", True),  # more.txt: -e .
        ("--requirement=more.txt\n", True),
        ("numpy\ntorch>=2\n", False),
        ("/opt/wheels/x.whl\n../elsewhere\n", False),
        ("-r loop.txt\n", False),  # includes itself: followed a bounded number of times
        ("-r ../../etc/passwd\n", False),  # outside the repository: never read
    ],
)
def test_requirements_that_install_the_repository(
    lines: str, expected: bool, tmp_path: Path
) -> None:
    root = tmp_path / "repo"
    (root / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "more.txt").write_text("numpy\n-e .\n")
    (root / "loop.txt").write_text("-r loop.txt\n")
    (root / "requirements.txt").write_text(lines)
    assert requirements_install_repository([root / "requirements.txt"], root) is expected


def test_two_repositories_never_share_an_environment(make_repo: RepoFactory) -> None:
    """Identical dependency files and commands: still two keys. An install runs the
    repository's own code and may leave anything behind; the environment is its own."""
    manifest_text = PACKAGE.replace("-e .", "-r requirements.txt").replace(
        "[pyproject.toml]", "[requirements.txt]"
    )
    keys = []
    for name in ("one", "two"):
        root = make_repo(manifest_text, {"requirements.txt": "numpy\n"}, name=name)
        manifest = load_manifest(root / "corresponding-source.yaml")
        ctx = CheckContext(manifest, "CS202", "", Options(), DigestCache(), RunState())
        spec = environment_spec(ctx)
        assert spec.source is None  # nothing of the repository is installed
        keys.append(environment_key(spec))
    assert keys[0] != keys[1]


def test_an_editable_line_in_requirements_puts_the_code_in_the_key(
    make_repo: RepoFactory,
) -> None:
    manifest_text = PACKAGE.replace("-e .", "-r requirements.txt").replace(
        "[pyproject.toml]", "[requirements.txt]"
    )
    root = make_repo(manifest_text, {"requirements.txt": "-e .\n", "mypkg/__init__.py": "A\n"})
    manifest = load_manifest(root / "corresponding-source.yaml")

    def key() -> str:
        ctx = CheckContext(manifest, "CS202", "", Options(), DigestCache(), RunState())
        spec = environment_spec(ctx)
        assert spec.source is not None
        return environment_key(spec)

    before = key()
    (root / "mypkg" / "__init__.py").write_text("B\n")
    assert key() != before  # changed code: a new environment, never the stale one


@pytest.mark.slow
@pytest.mark.parametrize(
    ("how", "installer"),
    [("command", "auto"), ("requirements", "auto"), ("plain", "auto"), ("command", "pip")],
)
def test_changed_code_gets_a_new_environment_that_keeps_the_dependencies(
    make_repo: RepoFactory, how: str, installer: str
) -> None:
    manifest_text = PACKAGE.replace('VALUE"', '1"')
    # A dependency from the session's local index: the second environment must keep it.
    pyproject = PYPROJECT.replace(
        'version = "0.1"', 'version = "0.1"\ndependencies = ["safetensors"]'
    )
    files = {"pyproject.toml": pyproject, "mypkg/__init__.py": "VALUE = 1\n"}
    if how == "requirements":  # `-e .` inside requirements.txt, as many repositories write it
        manifest_text = manifest_text.replace("-e .", "-r requirements.txt").replace(
            "[pyproject.toml]", "[requirements.txt, pyproject.toml]"
        )
        files["requirements.txt"] = "-e .\n"
    elif how == "plain":  # not editable: the same version number must not hide the new code
        manifest_text = manifest_text.replace("install -e .", "install .")
    root = make_repo(manifest_text, files)
    first_env, first = cs402(root, installer)
    assert first.outcome == "passed", first.message
    # Change the package's code: the cached environment must not run the old code.
    (root / "mypkg" / "__init__.py").write_text("VALUE = 2\n")
    manifest = root / "corresponding-source.yaml"
    manifest.write_text(manifest.read_text().replace("value 1", "value 2"))
    second_env, second = cs402(root, installer)
    assert second.outcome == "passed", second.message
    assert second_env.data["environment"] != first_env.data["environment"]
    assert "dependencies kept, the repository's own package reinstalled" in second_env.message
    # The dependency's files are the first environment's (hard links), not a new install.
    envs = default_cache_dir() / "envs"
    old_root = envs / first_env.data["environment"][:16]
    new_root = envs / second_env.data["environment"][:16]
    (old_file,) = old_root.glob("lib/python*/site-packages/safetensors/__init__.py")
    (new_file,) = new_root.glob("lib/python*/site-packages/safetensors/__init__.py")
    assert new_file.stat().st_ino == old_file.stat().st_ino
    # The first environment still runs the first code: seeding rewrote nothing of it.
    (root / "mypkg" / "__init__.py").write_text("VALUE = 1\n")
    manifest.write_text(manifest.read_text().replace("value 2", "value 1"))
    again_env, again = cs402(root, installer)
    assert again_env.data == {**first_env.data, "reused": True}
    assert again.outcome == "passed", again.message


def test_seeding_falls_back_to_an_ordinary_build_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeding only saves time: where hard links fail (another file system, a seed pruned
    meanwhile) the environment is built from nothing, never a crash of CS202."""
    import os

    from pytest_corrsource.sandbox.environments import (
        EnvironmentSpec,
        InstallOutcome,
        ensure_environment,
    )

    def install(python: Path) -> InstallOutcome:
        return InstallOutcome(True, "installed\n")

    spec = EnvironmentSpec(commands=("pip install -e .",), source="a" * 64, repository="r")
    first = ensure_environment(spec, cache_dir=tmp_path, run_install=install)
    assert first.seeded_from is None  # nothing to seed from yet

    seeded = ensure_environment(
        EnvironmentSpec(commands=spec.commands, source="b" * 64, repository="r"),
        cache_dir=tmp_path,
        run_install=install,
    )
    assert seeded.seeded_from == first.root.name
    assert seeded.python.exists()

    def no_links(source: str, target: str) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    rebuilt = ensure_environment(
        EnvironmentSpec(commands=spec.commands, source="c" * 64, repository="r"),
        cache_dir=tmp_path,
        run_install=install,
    )
    assert rebuilt.seeded_from is None
    assert rebuilt.python.exists()
    assert not rebuilt.reused


def test_a_deeply_nested_direct_url_written_by_the_install_is_skipped(tmp_path: Path) -> None:
    """The install step writes the environment, ``direct_url.json`` included: 100,000 `[`
    recursed into a RecursionError when seeding read it, a crash of CS202."""
    from pytest_corrsource.sandbox.environments import _remove_own_distributions

    site = tmp_path / "env" / "lib" / "python3.11" / "site-packages"
    dist_info = site / "hostile-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "direct_url.json").write_text("[" * 100_000 + "]" * 100_000)
    (dist_info / "RECORD").write_text("hostile-1.0.dist-info/RECORD,,\n")
    assert _remove_own_distributions(tmp_path / "env", tmp_path / "src") == []
    assert dist_info.is_dir()  # not ours: left in place
