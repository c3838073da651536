"""CS001 manifest::complete: a manifest with TODOs left (a draft) meets no level."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MINIMAL_MANIFEST, PlannedChecks, RepoFactory

from pytest_corrsource.checks.api import Options
from pytest_corrsource.checks.manifest import MAX_QUOTED, Todo, find_todos
from pytest_corrsource.results import CheckResult

WITH_TODOS = """\
# Draft written by corrsource init: review every TODO, then run pytest --corresponding-source
version: 1
name: tiny  # TODO: the real name
licenses: {distribution: MIT}
weights:
  # TODO: check the format
  - path: weights/model.safetensors
    sha256: {sha}
docs:
  model-card: TODO-README.md
"""


def check_cs001(root: Path) -> CheckResult:
    checks = PlannedChecks(root, Options(level="open-weights"))
    planned = checks.find("CS001")
    assert planned.required_by == "open-weights"
    return checks.run_planned(planned)


def test_a_manifest_without_todo_passes(make_repo: RepoFactory) -> None:
    result = check_cs001(make_repo(MINIMAL_MANIFEST))
    assert result.outcome == "passed", result.message
    assert result.message == "corresponding-source.yaml has no TODO left"


def test_each_todo_is_named_with_its_line(make_repo: RepoFactory) -> None:
    root = make_repo(WITH_TODOS, {"README.md": "# tiny\n"})
    result = check_cs001(root)
    assert result.outcome == "failed"
    assert "corresponding-source.yaml still has 3 TODOs:\n" in result.message
    assert "    line 3: # TODO: the real name\n" in result.message
    assert "    line 6: # TODO: check the format\n" in result.message
    assert "    line 10: model-card: TODO-README.md" in result.message
    assert "line 1:" not in result.message  # the header only mentions the word
    assert "more: corrsource explain CS001" in result.message


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ("# TODO: x", True),
        ("  #TODO", True),
        ("name: TODO", True),
        ("- path: TODO-weights.safetensors", True),
        ('command: "TODO: write it"', True),
        ("architecture: [model.py, TODO]", True),
        ("# review every TODO, then run", False),
        ("name: mastodon  # a TODOS list is not a TODO marker", False),
        ("url: https://example.org/x#TODO", False),  # no whitespace before `#`: not a comment
        ("name: TODOLIST", False),
        ("name: todo", False),
    ],
)
def test_what_counts_as_a_todo(line: str, found: bool) -> None:
    assert bool(find_todos(line + "\n")) is found


def test_many_todos_are_counted_exactly_and_quoted_up_to_a_limit(make_repo: RepoFactory) -> None:
    notes = "".join(f"# TODO: note {i}\n" for i in range(MAX_QUOTED + 5))
    root = make_repo(MINIMAL_MANIFEST + notes)
    result = check_cs001(root)
    assert f"still has {MAX_QUOTED + 5} TODOs" in result.message
    assert "… and 5 more" in result.message
    assert find_todos(notes)[0] == Todo(1, "# TODO: note 0")


@pytest.mark.e2e
def test_a_draft_meets_no_level(make_repo: RepoFactory, tmp_path: Path) -> None:
    root = make_repo(WITH_TODOS, {"README.md": "# tiny\n", "LICENSE": "MIT License\n"})
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--corresponding-source", str(root), "-p", "no:randomly",
         "-p", "no:cacheprovider", "--corrsource-level", "open-weights",
         "--corrsource-report", str(report)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-3000:]
    data = json.loads(report.read_text())
    assert data["levels_met"] == []
    assert [c["id"] for c in data["checks"] if c["outcome"] == "failed"] == ["CS001"]
    assert "corresponding-source.yaml::manifest::complete" in proc.stdout
