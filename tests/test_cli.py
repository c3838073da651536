"""The ``corrsource`` command: explain, checks, check (init has its own tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MINIMAL_MANIFEST, PlannedChecks, RepoFactory

from pytest_corrsource.catalogue import CHECKS, SNIPPETS, CheckSpec
from pytest_corrsource.cli import explain, levels_requiring, main


@pytest.mark.parametrize("spec", CHECKS, ids=[c.id for c in CHECKS])
def test_every_check_is_explained(spec: CheckSpec, capsys: pytest.CaptureFixture[str]) -> None:
    assert spec.why, f"{spec.id} says why it matters"
    assert main(["explain", spec.id.lower()]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{spec.id} {spec.component}::{spec.check}\n")
    assert f"What it verifies: {spec.title}." in text
    assert f"Enforces: {spec.clause}" in text
    assert " ".join(spec.why.split()[:6]) in " ".join(text.split())
    assert "How to fix a failure:" in text
    if spec.component in SNIPPETS:
        assert "In corresponding-source.yaml:" in text


def test_explain_names_the_levels() -> None:
    assert "Required at levels: corresponding-source, open-source-ai" in explain("CS403")
    assert "Required at levels: none (informational" in explain("CS903")
    assert levels_requiring(next(c for c in CHECKS if c.id == "CS101")) == [
        "open-weights",
        "corresponding-source",
        "open-source-ai",
    ]


def test_explain_unknown_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "CS999"]) == 2
    assert "unknown check `CS999`" in capsys.readouterr().err


def test_checks_lists_every_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checks"]) == 0
    out = capsys.readouterr().out
    for spec in CHECKS:
        assert f"{spec.id:<6} {spec.component}::{spec.check}" in out
    assert "CS903  docs::model-card" in out


def test_failure_messages_point_to_explain(make_repo: RepoFactory) -> None:
    from pytest_corrsource.checks.api import Options

    root = make_repo(MINIMAL_MANIFEST.replace("sha256: {sha}", "sha256: " + "0" * 64))
    result = PlannedChecks(root, Options(level="open-weights"))("CS104")
    assert result.outcome == "failed"
    assert "  more: corrsource explain CS104" in result.message


@pytest.mark.e2e
def test_check_is_pytest_with_the_flag(make_repo: RepoFactory, tmp_path: Path) -> None:
    root = make_repo(MINIMAL_MANIFEST, {"LICENSE": "MIT License\n"})
    base = [sys.executable, "-m", "pytest_corrsource", "check", str(root), "-p", "no:randomly"]
    ok = subprocess.run([*base, "--corrsource-level", "open-weights", "-q"], cwd=tmp_path,
                        capture_output=True, text=True, timeout=120)  # fmt: skip
    assert ok.returncode == 0, ok.stdout
    assert "verdict: level open-weights met" in ok.stdout
    failing = subprocess.run([*base, "-q"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    assert failing.returncode == 1
    assert "the manifest declares no `run`" in failing.stdout
    # The repository's own tests are not collected: one that cannot import stops nothing.
    (root / "test_all.py").write_text("import requests_not_installed_here\n")
    again = subprocess.run([*base, "--corrsource-level", "open-weights", "-q"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert again.returncode == 0, again.stdout
    assert "verdict: level open-weights met" in again.stdout


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_corrsource import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"corrsource {__version__} (pytest-corrsource)\n"


def test_check_help_says_extra_arguments_go_to_pytest(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "usage: corrsource check [PATH] [PYTEST ARGS ...]" in out
    assert "Every argument after PATH that corrsource does not know is passed on to pytest" in out


def test_schema_prints_the_shipped_schema(capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_corrsource.schema import SCHEMA_FILE, SCHEMA_URL

    assert main(["schema"]) == 0
    out = capsys.readouterr().out
    assert out == SCHEMA_FILE.read_text(encoding="utf-8")
    assert f'"$id": "{SCHEMA_URL}"' in out
    assert SCHEMA_URL.startswith(
        "https://raw.githubusercontent.com/pytest-corrsource/pytest-corrsource/v"
    )
    assert SCHEMA_URL.endswith("/pytest_corrsource/schema/corresponding-source.schema.json")


@pytest.mark.e2e
def test_the_console_script_runs(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pytest_corrsource", "--version"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0
    assert proc.stdout.startswith("corrsource ")
