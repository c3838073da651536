"""End to end: the bundled examples, run as a user runs them.

These install numpy and safetensors into a real isolated environment (from the session's local
index of the test venv's own wheels, see conftest.py: once per session, the examples share one
install spec) and run the models' own scripts, so they are marked ``e2e``; CI runs them. What
each example must give is recorded once, in examples/expected.json.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"

README = EXAMPLES / "README.md"
TABLE_START = "<!-- generated from expected.json -->\n"
TABLE_END = "<!-- end of generated table -->\n"


def run_example(
    name: str, tmp_path: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--corresponding-source", str(EXAMPLES / name),
         "-p", "no:randomly", "-p", "no:cacheprovider", "--corrsource-report", str(report), *args],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},  # custom-check's conftest.py
    )  # fmt: skip
    assert report.is_file(), proc.stdout + proc.stderr
    return proc, json.loads(report.read_text())


def outcomes(report: dict[str, Any]) -> dict[str, str]:
    return {
        f"{c['id']}[{c['subject']}]" if c["subject"] else c["id"]: c["outcome"]
        for c in report["checks"]
    }


def failed(report: dict[str, Any]) -> list[str]:
    return sorted(c["id"] for c in report["checks"] if c["outcome"] == "failed")


def load_expected() -> dict[str, dict[str, Any]]:
    data = json.loads((EXAMPLES / "expected.json").read_text(encoding="utf-8"))
    return {name: entry for name, entry in data.items() if not name.startswith("$")}


EXPECTED = load_expected()


def expected_table(expected: dict[str, dict[str, Any]]) -> str:
    """The README's table of expected outcomes, generated from examples/expected.json."""
    rows = [
        "| example | checked at level | levels met | failing checks |",
        "|---|---|---|---|",
    ]
    for name, entry in expected.items():
        met = ", ".join(f"`{level}`" for level in entry["levels_met"]) or "none"
        failing = ", ".join(entry["failed"]) or "none"
        rows.append(f"| `{name}/` | `{entry['level']}` | {met} | {failing} |")
    return "\n".join(rows) + "\n"


def test_readme_table_is_generated_from_expected_json() -> None:
    text = README.read_text(encoding="utf-8")
    generated = text[text.index(TABLE_START) + len(TABLE_START) : text.index(TABLE_END)]
    table = expected_table(EXPECTED)
    assert generated == table, f"regenerate examples/README.md's table:\n{table}"
    assert sorted(EXPECTED) == sorted(
        p.name for p in EXAMPLES.iterdir() if (p / "corresponding-source.yaml").is_file()
    )


def test_readme_names_check_ids_only_in_the_generated_table() -> None:
    # Prose that names checks drifts from the real run (it claimed weights-only fails CS202 and
    # CS402-CS404); the ids come from expected.json only.
    text = README.read_text(encoding="utf-8")
    prose = text[: text.index(TABLE_START)] + text[text.index(TABLE_END) :]
    assert re.findall(r"CS\d{3}", prose) == []


@pytest.mark.e2e
@pytest.mark.parametrize("name", list(EXPECTED))
def test_example_outcome_is_the_expected_one(tmp_path: Path, name: str) -> None:
    """A real run of each example gives exactly the outcome examples/expected.json records."""
    expected = EXPECTED[name]
    proc, report = run_example(name, tmp_path, "--corrsource-level", expected["level"])
    assert report["level"] == expected["level"]
    assert report["levels_met"] == expected["levels_met"], proc.stdout[-3000:]
    assert failed(report) == expected["failed"], proc.stdout[-3000:]
    assert proc.returncode == (1 if expected["failed"] else 0), proc.stdout[-3000:]
    for check, text in expected["messages"].items():
        message = next(c["message"] for c in report["checks"] if c["id"] == check)
        assert text in message
    verdict = "met" if expected["level"] in expected["levels_met"] else "NOT met"
    assert f"verdict: level {expected['level']} {verdict}" in proc.stdout


@pytest.mark.e2e
def test_tinychar_passes_every_check(tmp_path: Path) -> None:
    _proc, report = run_example("tinychar", tmp_path, "--corrsource-level", "open-source-ai")
    assert report["passed"] is True
    assert report["mof_class"] == "II"
    assert set(outcomes(report).values()) == {"passed"}
    evaluation = next(c for c in report["checks"] if c["id"] == "CS801")
    assert evaluation["data"]["metric"].startswith("loss: ")


@pytest.mark.e2e
def test_weights_only_meets_open_weights(tmp_path: Path) -> None:
    proc, report = run_example("weights-only", tmp_path, "--corrsource-level", "open-weights")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert report["levels_met"] == ["open-weights"]


@pytest.mark.e2e
def test_example_test_module_uses_the_fixtures(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(EXAMPLES / "tinychar" / "tests"), "-p", "no:randomly",
         "-p", "no:cacheprovider", "-q"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "6 passed" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(EXAMPLES / "tinychar" / "tests"), "-p", "no:randomly",
         "-p", "no:cacheprovider", "-q", "-k", "training"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    assert "2 passed" in proc.stdout


@pytest.mark.slow
def test_custom_check_fails_without_the_evaluation_table(tmp_path: Path) -> None:
    """The example's added check can fail: the same repository without its table."""
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES / "custom-check", repo)
    card = repo / "README.md"
    text = card.read_text(encoding="utf-8")
    card.write_text(text[: text.index("| metric")] + text[text.index("**Expected") :])
    out = tmp_path / "out"
    out.mkdir()
    report = out / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--corresponding-source", str(repo), "-p", "no:randomly",
         "-p", "no:cacheprovider", "--corrsource-level", "open-weights",
         "--corrsource-report", str(report)],
        capture_output=True, text=True, timeout=900, cwd=out,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    data = json.loads(report.read_text())
    assert failed(data) == ["XORG101"], proc.stdout[-3000:]
    message = next(c["message"] for c in data["checks"] if c["id"] == "XORG101")
    assert "the model card has no evaluation table (README.md)" in message
    assert data["levels_met"] == []
    assert proc.returncode == 1
    assert "XORG101 evaluation table: failed" in proc.stdout  # the added report section
    assert data["sections"] == [
        {"title": "house rules", "text": "XORG101 evaluation table: failed"}
    ]


def test_custom_check_is_explained_in_its_folder() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_corrsource", "explain", "XORG101"],
        capture_output=True, text=True, timeout=120, cwd=EXAMPLES / "custom-check",
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("XORG101 docs::evaluation-table\n")
    assert "Required at levels: open-weights, corresponding-source, open-source-ai" in proc.stdout
