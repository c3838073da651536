"""Issue 12 §4: a required check that cannot run here is failed "could not be verified on this
machine", unless waived explicitly; then the level reads "met, with waivers: CS404 (reason)" in
every report. Never a silent pass, never "exit 1 with nothing failed".

The machine's lack of network namespaces is simulated: the sandbox falls back to its
``unshare`` backend, and ``network_isolation`` (what CS404 asks that backend) says no.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import MINIMAL_MANIFEST, RUNNABLE_FILES, RUNNABLE_MANIFEST, PlannedChecks, RepoFactory

from pytest_corrsource.catalogue import BUILTIN
from pytest_corrsource.checks.api import Options
from pytest_corrsource.levels import judge_levels
from pytest_corrsource.manifest import ManifestError, load_manifest
from pytest_corrsource.plan import build_plan
from pytest_corrsource.results import CheckResult, parse_waiver, refuse_unknown_waivers
from pytest_corrsource.sandbox import process, steps
from pytest_corrsource.sandbox.backends import Backend
from pytest_corrsource.vocabulary import Level

LEVEL: Level = "corresponding-source"
NO_NAMESPACES = "user namespaces are disabled (simulated)"
REASON = "CI runner without user namespaces"
WAIVE_CS404 = f"waive:\n  CS404: {REASON}\n"


@pytest.fixture
def no_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(steps, "select_backend", lambda mode: Backend("unshare"))
    monkeypatch.setattr(process, "network_isolation", lambda: (False, NO_NAMESPACES))


def run_all(
    root: Path, level: Level = LEVEL, waivers: tuple[tuple[str, str], ...] = ()
) -> dict[str, CheckResult]:
    return PlannedChecks(root, Options(level=level, waivers=waivers)).run_all()


def by_id(results: dict[str, CheckResult]) -> dict[str, CheckResult]:
    return {r.id: r for r in results.values()}


def verdict(root: Path, results: dict[str, CheckResult], level: Level = LEVEL) -> str:
    plan = build_plan(load_manifest(root / "corresponding-source.yaml"))
    return next(v for v in judge_levels(plan, results) if v.level == level).describe()


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("CS404", ("CS404", "")), ("CS404=no netns here", ("CS404", "no netns here"))],
)
def test_parse_waiver(text: str, parsed: tuple[str, str]) -> None:
    assert parse_waiver(text) == parsed


@pytest.mark.parametrize("text", ["CS999", "cs404", "404", "CS404reason", ""])
def test_parse_waiver_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="is not a waiver"):
        parse_waiver(text)


def test_the_manifest_refuses_a_waiver_of_an_unknown_check(make_repo: RepoFactory) -> None:
    root = make_repo(MINIMAL_MANIFEST + "waive:\n  CS999: because\n")
    manifest = load_manifest(root / "corresponding-source.yaml")
    with pytest.raises(ManifestError) as info:
        refuse_unknown_waivers(manifest, BUILTIN)
    assert (info.value.line, info.value.keypath) == (8, "waive.CS999")
    assert "`CS999` is not a check id" in info.value.message


def test_the_manifest_refuses_a_waiver_key_that_is_no_id(make_repo: RepoFactory) -> None:
    root = make_repo(MINIMAL_MANIFEST + "waive:\n  offline: because\n")
    with pytest.raises(ManifestError, match="invalid key `offline`"):
        load_manifest(root / "corresponding-source.yaml")


# --------------------------------------------------------------------------- results, levels


@pytest.mark.e2e
@pytest.mark.usefixtures("no_namespaces")
def test_a_required_check_that_cannot_run_here_fails_saying_so(make_repo: RepoFactory) -> None:
    root = make_repo(RUNNABLE_MANIFEST, RUNNABLE_FILES)
    results = run_all(root)
    cs404 = by_id(results)["CS404"]
    assert cs404.outcome == "failed"
    assert (
        "  found: could not be verified on this machine: the network cannot be cut on this "
        f"platform: {NO_NAMESPACES}"
    ) in cs404.message
    assert "--corrsource-waive CS404=<reason>" in cs404.message
    assert verdict(root, results) == "not met"


@pytest.mark.e2e
@pytest.mark.usefixtures("no_namespaces")
def test_a_check_that_cannot_run_here_is_only_skipped_where_no_level_requires_it(
    make_repo: RepoFactory,
) -> None:
    root = make_repo(RUNNABLE_MANIFEST, RUNNABLE_FILES)
    cs404 = by_id(run_all(root, level="open-weights"))["CS404"]
    assert (cs404.outcome, cs404.message) == (
        "skipped",
        f"the network cannot be cut on this platform: {NO_NAMESPACES}",
    )


@pytest.mark.e2e
@pytest.mark.usefixtures("no_namespaces")
@pytest.mark.parametrize("where", ["manifest", "command line"])
def test_a_waived_check_meets_the_level_with_waivers(make_repo: RepoFactory, where: str) -> None:
    manifest = RUNNABLE_MANIFEST + (WAIVE_CS404 if where == "manifest" else "")
    root = make_repo(manifest, RUNNABLE_FILES)
    waivers = (("CS404", REASON),) if where == "command line" else ()
    results = run_all(root, waivers=waivers)
    cs404 = by_id(results)["CS404"]
    assert cs404.outcome == "waived"
    assert cs404.message == (
        f"waived ({REASON}): could not be verified on this machine: the network cannot be cut "
        f"on this platform: {NO_NAMESPACES}"
    )
    assert verdict(root, results) == f"met, with waivers: CS404 ({REASON})"
    assert [r.id for r in results.values() if r.outcome in ("failed", "waived")] == ["CS404"]


@pytest.mark.e2e
def test_a_required_check_skipped_for_this_repository_fails_too(make_repo: RepoFactory) -> None:
    """CheckSkipped (the repository gives the check nothing to work on) is treated like
    CheckUnverifiable for a required check: "could not be verified", waivable, never silent."""
    import numpy as np
    from safetensors.numpy import save_file

    root = make_repo(RUNNABLE_MANIFEST, RUNNABLE_FILES)
    save_file({"ids": np.arange(4, dtype=np.int64)}, str(root / "weights" / "model.safetensors"))
    results = run_all(root)
    cs403 = by_id(results)["CS403"]
    assert cs403.outcome == "failed"
    assert (
        "  found: could not be verified: weights/model.safetensors has no floating-point "
        "tensors to modify (1 integer/bool tensors)"
    ) in cs403.message
    waived = by_id(run_all(root, waivers=(("CS403", "integer-only model"),)))["CS403"]
    assert waived.outcome == "waived"


def test_an_unused_waiver_is_reported(make_repo: RepoFactory) -> None:
    root = make_repo(MINIMAL_MANIFEST + "waive:\n  CS104: we never hash\n", {"LICENSE": "MIT"})
    cs104 = by_id(run_all(root, level="open-weights"))["CS104"]
    assert cs104.outcome == "passed"
    assert cs104.warnings == ["unused waiver for CS104: the check passed"]


def test_a_waiver_never_covers_a_check_that_ran_and_failed(make_repo: RepoFactory) -> None:
    manifest = MINIMAL_MANIFEST.replace("{sha}", "0" * 64) + "waive:\n  CS104: please\n"
    root = make_repo(manifest, {"LICENSE": "MIT"})
    results = run_all(root, level="open-weights")
    cs104 = by_id(results)["CS104"]
    assert cs104.outcome == "failed"
    assert cs104.warnings == [
        "the waiver for CS104 does not apply: the check ran and failed (a waiver only covers a "
        "check that cannot run on this machine)"
    ]
    assert verdict(root, results, "open-weights") == "not met"


@pytest.mark.e2e
@pytest.mark.usefixtures("no_namespaces")
def test_the_command_line_reason_wins_over_the_manifest(make_repo: RepoFactory) -> None:
    root = make_repo(RUNNABLE_MANIFEST + WAIVE_CS404, RUNNABLE_FILES)
    results = run_all(root, waivers=(("CS404", "ours"),))
    assert verdict(root, results) == "met, with waivers: CS404 (ours)"


# --------------------------------------------------------------------------- the plugin


@pytest.fixture
def plugin_repo(pytester: pytest.Pytester, make_repo: RepoFactory) -> Path:
    source = make_repo(RUNNABLE_MANIFEST, RUNNABLE_FILES, name="source")
    shutil.copytree(source, pytester.path / "repo")
    return pytester.path / "repo"


def inner(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    report = str(pytester.path / "report.json")
    return pytester.runpytest(
        "repo", "-p", "no:randomly", "--corresponding-source", f"--corrsource-report={report}",
        *args,
    )  # fmt: skip


@pytest.mark.e2e
@pytest.mark.usefixtures("no_namespaces", "plugin_repo")
def test_without_a_waiver_the_run_fails_on_that_check(pytester: pytest.Pytester) -> None:
    result = inner(pytester)
    assert result.parseoutcomes()["failed"] == 1
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["  - CS404 run::offline: failed"])


@pytest.mark.e2e
@pytest.mark.usefixtures("no_namespaces", "plugin_repo")
def test_with_a_waiver_every_report_says_met_with_waivers(pytester: pytest.Pytester) -> None:
    result = inner(pytester, f"--corrsource-waive=CS404={REASON}", "-rs")
    assert "failed" not in result.parseoutcomes()
    assert result.ret == pytest.ExitCode.OK
    waived = f"met, with waivers: CS404 ({REASON})"
    result.stdout.fnmatch_lines(
        [
            f"levels: open-weights: met  corresponding-source: {waived}  open-source-ai: not met",
            f"verdict: level corresponding-source {waived}",
            f"SKIPPED [[]1] repo/corresponding-source.yaml:12: waived ({REASON}): could not be "
            "verified on this machine*",
        ],
        consecutive=False,
    )
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["passed"] is True
    assert report["waivers"] == [{"id": "CS404", "subject": "", "reason": REASON}]
    assert next(c for c in report["checks"] if c["id"] == "CS404")["outcome"] == "waived"
    markdown = (pytester.path / "report.json.md").read_text()
    assert f"**✅ PASSED with waivers: CS404 ({REASON})** at level `corresponding-source`" in (
        markdown
    )
    assert f"| `corresponding-source` | yes, with waivers: CS404 ({REASON}) |" in markdown
    assert "| CS404 run::offline |  | ⚠️ waived |" in markdown


@pytest.mark.e2e
@pytest.mark.usefixtures("no_namespaces", "plugin_repo")
def test_a_waiver_is_a_github_warning_annotation(pytester: pytest.Pytester) -> None:
    result = inner(pytester, f"--corrsource-waive=CS404={REASON}", "--corrsource-annotations=on")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [f"::warning file=*,line=12,title=corrsource%3A CS404 run%3A%3Aoffline::waived ({REASON})*"]
    )


@pytest.mark.e2e
@pytest.mark.usefixtures("no_namespaces", "plugin_repo")
def test_waivers_from_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makeini(f"[pytest]\ncorrsource_waive =\n    CS404={REASON}\n")
    result = inner(pytester)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["verdict: level corresponding-source met, with waivers: *"])


@pytest.mark.usefixtures("plugin_repo")
def test_a_bad_waiver_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = inner(pytester, "--corrsource-waive=CS4O4")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--corrsource-waive: `CS4O4` is not a waiver*"])
