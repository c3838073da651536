"""The example GitHub workflow (examples/github-actions/corresponding-source.yml) is valid and
does what its comments say. Validated offline against the GitHub workflow JSON Schema committed
in tests/fixtures/github-workflow-schema/ (see its README for where it comes from)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs installed (as in init.py)
import pytest
import yaml

ROOT = Path(__file__).parents[1]
WORKFLOW = ROOT / "examples" / "github-actions" / "corresponding-source.yml"
SCHEMAS = Path(__file__).parent / "fixtures" / "github-workflow-schema"
REPOSITORY = "https://github.com/pytest-corrsource/pytest-corrsource"


def load_workflow(text: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    # YAML 1.1 reads the key `on` as True; GitHub reads it as the string "on".
    if True in data:
        data["on"] = data.pop(True)
    assert isinstance(data, dict)
    return data


def schema_errors(data: dict[str, Any]) -> list[str]:
    errors = []
    for name in ("github-workflow.json", "require-timeout.json"):
        schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
        validator = jsonschema.Draft7Validator(schema)
        errors += [f"{name}: {e.json_path}: {e.message}" for e in validator.iter_errors(data)]
    return errors


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return load_workflow(WORKFLOW.read_text(encoding="utf-8"))


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = workflow["jobs"]["verify"]["steps"]
    return result


def test_the_workflow_matches_the_github_workflow_schema(workflow: dict[str, Any]) -> None:
    assert schema_errors(workflow) == []


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda w: w["jobs"]["verify"].pop("timeout-minutes"), "require-timeout.json"),
        (lambda w: w["jobs"]["verify"].update({"runs-on": None, "timout": 5}), "timout"),
        (lambda w: steps(w)[0].update({"uses": 3}), "uses"),
    ],
    ids=["no timeout", "misspelt key", "wrong type"],
)
def test_the_schema_catches_broken_workflows(breakage: Any, expected: str) -> None:
    broken = load_workflow(WORKFLOW.read_text(encoding="utf-8"))
    breakage(broken)
    errors = schema_errors(broken)
    assert errors
    assert any(expected in e for e in errors), errors


def test_the_job_has_a_timeout(workflow: dict[str, Any]) -> None:
    assert 0 < workflow["jobs"]["verify"]["timeout-minutes"] <= 360


def test_environments_are_cached_by_the_dependency_files(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["verify"]
    caches = [s for s in steps(workflow) if s.get("uses", "").startswith("actions/cache@")]
    # One cache: the isolated environments. The weights-digest cache keyed on inode and mtime
    # could never hit on a fresh checkout, and is gone.
    [cache] = caches
    assert cache["with"]["path"] == job["env"]["CORRSOURCE_CACHE_DIR"]
    key = cache["with"]["key"]
    hashed = re.fullmatch(r".*\$\{\{ hashFiles\((.*)\) \}\}", key)
    assert hashed, key
    files = [f.strip().strip("'") for f in hashed.group(1).split(",")]
    assert "requirements*.txt" in files
    assert "corresponding-source.yaml" in files  # the install commands are part of the key
    assert "${{ runner.os }}" in key
    assert cache["with"]["restore-keys"].strip() == key[: key.index("${{ hashFiles")]
    assert not any(".pytest_cache" in str(s.get("with", {}).get("path", "")) for s in caches)


def test_bubblewrap_is_installed_before_the_check(workflow: dict[str, Any]) -> None:
    runs = [s.get("run", "") for s in steps(workflow)]
    install = next(i for i, r in enumerate(runs) if "apt-get install -y bubblewrap" in r)
    check = next(i for i, r in enumerate(runs) if "pytest --corresponding-source" in r)
    assert install < check
    assert "kernel.apparmor_restrict_unprivileged_userns=0" in runs[install]


def test_what_it_installs_is_pinned(workflow: dict[str, Any]) -> None:
    [install] = [s["run"] for s in steps(workflow) if "pip install" in s.get("run", "")]
    assert f'"pytest-corrsource @ git+{REPOSITORY}@v' in install
    from pytest_corrsource import __version__

    assert f"@v{__version__}" in install
    for step in steps(workflow):
        if "uses" in step:
            assert re.fullmatch(r"[\w-]+/[\w-]+@v\d+", step["uses"]), step["uses"]
