"""End to end: the bundled examples, run as a user runs them.

These install numpy and safetensors into a real isolated environment (from the package
index, once per session: the examples share one install spec) and run the models' own
scripts, so they are marked ``slow``; CI runs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"

pytestmark = pytest.mark.slow


def run_example(
    name: str, tmp_path: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict]:
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--corresponding-source", str(EXAMPLES / name),
         "-p", "no:randomly", "-p", "no:cacheprovider", "--corrsource-report", str(report), *args],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, env=dict(os.environ),
    )  # fmt: skip
    assert report.is_file(), proc.stdout + proc.stderr
    return proc, json.loads(report.read_text())


def outcomes(report: dict) -> dict[str, str]:
    return {
        f"{c['id']}[{c['subject']}]" if c["subject"] else c["id"]: c["outcome"]
        for c in report["checks"]
    }


def failed(report: dict) -> list[str]:
    return sorted(c["id"] for c in report["checks"] if c["outcome"] == "failed")


def test_tinychar_meets_open_source_ai(tmp_path: Path) -> None:
    proc, report = run_example("tinychar", tmp_path, "--corrsource-level", "open-source-ai")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert report["passed"] is True
    assert report["levels_met"] == ["open-weights", "corresponding-source", "open-source-ai"]
    assert report["mof_class"] == "II"
    assert set(outcomes(report).values()) == {"passed"}
    evaluation = next(c for c in report["checks"] if c["id"] == "CS801")
    assert evaluation["data"]["metric"].startswith("loss: ")
    assert "verdict: level open-source-ai met" in proc.stdout


def test_weights_only_meets_open_weights_only(tmp_path: Path) -> None:
    proc, report = run_example("weights-only", tmp_path, "--corrsource-level", "open-weights")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert report["levels_met"] == ["open-weights"]
    proc, report = run_example("weights-only", tmp_path)
    assert proc.returncode == 1
    assert failed(report) == ["CS201", "CS401", "CS502"]
    assert "the manifest declares no `run`, which level `corresponding-source` requires" in (
        proc.stdout
    )


@pytest.mark.parametrize(
    ("name", "check", "text"),
    [
        ("tivoized", "CS403", "the run refuses or breaks on modified weights"),
        ("ignores-weights", "CS403", "the run's output is identical with modified weights"),
        ("needs-network", "CS404", "it works with the network (CS402) but not without it"),
    ],
)
def test_variants_fail_exactly_one_check(tmp_path: Path, name: str, check: str, text: str) -> None:
    proc, report = run_example(name, tmp_path)
    assert proc.returncode == 1
    assert failed(report) == [check]
    message = next(c["message"] for c in report["checks"] if c["id"] == check)
    assert text in message
    assert report["levels_met"] == ["open-weights"]


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
