"""Issue 12 §4: a check whose prerequisite failed is "skipped: blocked by CSxxx", not failed.

One missing weights file used to yield 11 failures and 2 errors; now it is one failure (CS101)
plus whatever fails for its own reasons. Prerequisites are declared per check
(``CheckSpec.after``) and evaluated by ``results.run_planned`` itself, memoised per process, so the
cascade holds under pytest-xdist where a check and its prerequisite run in different workers.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from conftest import RepoFactory
from test_checks_training_data import (
    EVALUATION,
    FULL_CARD,
    MODIFY,
    PREPROCESSING,
    TRAINING,
    Checks,
    runnable,
)

from pytest_corrsource.catalogue import BY_ID, CHECKS
from pytest_corrsource.levels import judge_levels

GENERATE = textwrap.dedent(
    """\
    generate:
      - command: python train.py --out {outdir}/export.safetensors
        produces: ["{outdir}/export.safetensors"]
        timeout: 60
    """
)
CARD = "  card: DATA_CARD.md\n"


def tinychar_like(make_repo: RepoFactory, name: str = "repo") -> Path:
    """Every component tinychar declares (generate, run, modify, training, data, evaluation,
    docs), stdlib-only so the isolated environment needs nothing from PyPI."""
    sections = GENERATE + MODIFY + TRAINING + PREPROCESSING + CARD + EVALUATION
    return runnable(make_repo, sections, files={"DATA_CARD.md": FULL_CARD}, name=name)


def test_the_catalogue_prerequisites_exist_and_have_no_cycle() -> None:
    for spec in CHECKS:
        for check_id in spec.after:
            assert check_id in BY_ID, (spec.id, check_id)
    # Depth-first: a cycle would make a check wait for itself.
    done: set[str] = set()

    def visit(check_id: str, path: tuple[str, ...]) -> None:
        assert check_id not in path, (*path, check_id)
        if check_id in done:
            return
        for pre in BY_ID[check_id].after:
            visit(pre, (*path, check_id))
        done.add(check_id)

    for spec in CHECKS:
        visit(spec.id, ())


@pytest.mark.e2e
def test_the_complete_repository_passes_everything(make_repo: RepoFactory) -> None:
    """The control for the test below: nothing fails while the weights are there."""
    checks = Checks(tinychar_like(make_repo))
    results = checks.run_all()
    assert {r.id: r.message for r in results.values() if r.outcome != "passed"} == {}


@pytest.mark.e2e
def test_one_missing_weights_file_is_one_failure_and_the_rest_blocked(
    make_repo: RepoFactory,
) -> None:
    root = tinychar_like(make_repo)
    (root / "weights" / "model.safetensors").unlink()
    checks = Checks(root)
    results = checks.run_all()
    outcomes = {r.id: r.outcome for r in results.values()}
    failed = sorted(i for i, o in outcomes.items() if o in ("failed", "not-required"))
    blocked = sorted(i for i, r in ((r.id, r) for r in results.values()) if "blocked_by" in r.data)
    assert failed == ["CS101"]
    assert blocked == [
        "CS102", "CS103", "CS104", "CS105", "CS301", "CS402", "CS403", "CS404", "CS405",
        "CS603", "CS801",
    ]  # fmt: skip
    for key, result in results.items():
        if result.id in blocked:
            assert result.outcome == "skipped"
            assert result.message == ("blocked by CS101 (weights/model.safetensors: not found)"), (
                key
            )
    # What does not need the released weights still runs and passes on its own.
    passed = sorted(i for i, o in outcomes.items() if o == "passed")
    assert passed == [
        "CS001", "CS201", "CS202", "CS401", "CS501", "CS502", "CS601", "CS602", "CS701",
        "CS702", "CS703", "CS901", "CS902", "CS903",
    ]  # fmt: skip
    verdicts = judge_levels(checks.plan, results)
    assert [v.met for v in verdicts] == [False, False, False]
    assert "CS101 weights::present[weights/model.safetensors]: failed" in verdicts[0].blockers


@pytest.mark.e2e
def test_cs403_and_cs404_after_a_failed_released_run_are_blocked_by_cs402(
    make_repo: RepoFactory,
) -> None:
    root = tinychar_like(make_repo)
    (root / "run.py").write_text("import sys\nsys.exit('cannot load the model')\n")
    checks = Checks(root)
    assert checks("CS402").outcome == "failed"
    for check_id in ("CS403", "CS404"):
        result = checks(check_id)
        assert (result.outcome, result.data["blocked_by"]) == ("skipped", "CS402")
        assert result.message == (
            "blocked by CS402 (the run on the released weights exited with 1, expected 0)"
        )


@pytest.mark.e2e
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_the_cascade_holds_under_pytest_xdist(
    pytester: pytest.Pytester, make_repo: RepoFactory, workers: list[str]
) -> None:
    """Items of one manifest run in different workers: each evaluates the prerequisites it
    needs, so the outcome is the same as in one process, and the exit code is 1."""
    root = tinychar_like(make_repo, name="source")
    (root / "weights" / "model.safetensors").unlink()
    # A subfolder: pytester writes the subprocess's stdout and stderr files into its own path,
    # which the checks would (rightly) see as a step changing the checkout.
    shutil.copytree(root, pytester.path / "repo")
    report = pytester.path / "report.json"
    args = ["repo", "-p", "no:randomly", "--corresponding-source"]
    args += ["--corrsource-level=open-source-ai"]
    args += [f"--corrsource-report={report}", "-p", "no:hypothesispytest", *workers]
    result = pytester.runpytest_subprocess(*args, timeout=300)
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 1, result.stdout.str()
    assert "error" not in outcomes
    assert "errors" not in outcomes
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    checks = json.loads(report.read_text())["checks"]
    blocked = sorted(c["id"] for c in checks if c["message"].startswith("blocked by CS101"))
    assert blocked == [
        "CS102", "CS103", "CS104", "CS105", "CS301", "CS402", "CS403", "CS404", "CS405",
        "CS603", "CS801",
    ]  # fmt: skip
    assert [c["id"] for c in checks if c["outcome"] == "failed"] == ["CS101"]
