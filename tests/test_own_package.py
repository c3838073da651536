"""A repository that installs itself (`pip install -e .`, `pip install .`): its code is part of
the environment's key, and an editable install points at a copy that every step can see
(issue 14: stale `mingpt` code passed CS602; `-e .` pointed into a deleted scratch copy)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import MINIMAL_MANIFEST, PlannedChecks, RepoFactory

from pytest_corrsource.results import CheckResult
from pytest_corrsource.sandbox.steps import installs_repository


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


PACKAGE = """\
version: 1
name: tiny
licenses: {distribution: MIT}
weights:
  - path: weights/model.safetensors
    sha256: {sha}
install:
  requirements: [pyproject.toml]
  commands: [python -m pip install -e .]
run:
  command: python -c "import sys; sys.path.pop(0); import mypkg; print('value', mypkg.VALUE)"
  expect: {stdout: "value VALUE"}
"""
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


def cs402(root: Path) -> CheckResult:
    checks = PlannedChecks(root)
    result = None
    for planned in checks.plan:
        if planned.spec.id in ("CS101", "CS201", "CS202", "CS402"):
            result = checks.execute(planned)
            if planned.spec.id == "CS202":
                assert result.outcome == "passed", result.message
    assert result is not None
    assert result.id == "CS402"
    return result


@pytest.mark.e2e
def test_an_editable_install_runs_the_current_code(make_repo: RepoFactory) -> None:
    assert MINIMAL_MANIFEST  # same weights as every test repository
    root = make_repo(
        PACKAGE.replace('VALUE"', '1"'),
        {"pyproject.toml": PYPROJECT, "mypkg/__init__.py": "VALUE = 1\n"},
    )
    first = cs402(root)
    assert first.outcome == "passed", first.message
    # Change the package's code: the cached environment must not run the old code.
    (root / "mypkg" / "__init__.py").write_text("VALUE = 2\n")
    manifest = root / "corresponding-source.yaml"
    manifest.write_text(manifest.read_text().replace("value 1", "value 2"))
    second = cs402(root)
    assert second.outcome == "passed", second.message
