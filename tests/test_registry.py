"""The check registry: every spec resolves, and checks other plugins add behave like ours.

Unit tests over ``catalogue`` and ``plan`` first (no pytest session), then inner pytest runs
with a ``conftest.py`` implementing the hooks of ``hookspecs.py``.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import MINIMAL_MANIFEST, RUNNABLE_FILES, RUNNABLE_MANIFEST, RepoFactory

from pytest_corrsource import CheckSpec as PublicCheckSpec
from pytest_corrsource.catalogue import (
    BUILTIN,
    BUILTIN_ID,
    CHECKS,
    COMPONENTS,
    CheckRegistry,
    CheckSpec,
    RegistryError,
)
from pytest_corrsource.checks.api import CheckContext, Finding
from pytest_corrsource.manifest import Manifest, load_manifest
from pytest_corrsource.plan import build_plan
from pytest_corrsource.subjects import UNDECLARED, Subject, Undeclared


def _pass(ctx: CheckContext) -> Finding:
    return Finding("fine")


def custom(**changes: object) -> CheckSpec:
    spec = CheckSpec(
        id="XACME101",
        component="policy",
        check="house-rule",
        title="a house rule",
        level="open-weights",
        clause="house rule",
        fix="follow the house rule",
        run=_pass,
    )
    return replace(spec, **changes)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- built-in specs


@pytest.mark.parametrize("spec", CHECKS, ids=[c.id for c in CHECKS])
def test_every_builtin_spec_resolves(spec: CheckSpec) -> None:
    function = spec.implementation()
    assert callable(function)
    assert function.__module__.startswith("pytest_corrsource.checks.")
    assert list(inspect.signature(function).parameters) == ["ctx"]
    assert BUILTIN_ID.fullmatch(spec.id)
    assert spec.component in {name for name, _ in COMPONENTS} | {"manifest"}
    assert spec.why, f"{spec.id}: explain needs why it matters"
    # A manifest fragment for every section a check verifies (CS001 is about the whole file).
    assert spec.example or spec.component == "manifest", f"{spec.id}: explain needs a snippet"
    assert all(pre in BUILTIN for pre in spec.after)


def test_builtin_ids_are_unique_and_public() -> None:
    assert len(BUILTIN.by_id) == len(CHECKS)
    assert PublicCheckSpec is CheckSpec


def test_a_spec_naming_a_missing_function_does_not_resolve() -> None:
    with pytest.raises(AttributeError):
        replace(CHECKS[0], run="weights:no_such_check").implementation()


@pytest.mark.parametrize("manifest_text", [MINIMAL_MANIFEST, RUNNABLE_MANIFEST])
def test_every_subject_rule_answers_for_real_manifests(
    make_repo: RepoFactory, manifest_text: str
) -> None:
    manifest = load_manifest(make_repo(manifest_text, RUNNABLE_FILES) / "corresponding-source.yaml")
    for spec in CHECKS:
        found = spec.subjects(manifest)
        assert isinstance(found, Undeclared) or all(isinstance(s, Subject) for s in found)


# --------------------------------------------------------------------------- adding checks


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"id": "CS950"}, "ids of added checks are X, up to eight capitals and three digits"),
        ({"id": "xacme101"}, "ids of added checks are X"),
        ({"id": "XACME1"}, "ids of added checks are X"),
        ({"level": "gold"}, "level must be one of open-weights, corresponding-source"),
        ({"run": "weights:check_present"}, "`run` must be the check function itself"),
        ({"after": ("CS999",)}, "`after` names CS999, which is not a known check"),
        ({"check": "House Rule"}, "lower-case words joined by '-'"),
        ({"component": "po/licy"}, "lower-case words joined by '-'"),
    ],
)
def test_an_invalid_added_check_is_refused(change: dict[str, object], problem: str) -> None:
    with pytest.raises(RegistryError) as info:
        BUILTIN.extended([custom(**change)], source="conftest.py")
    assert str(info.value).startswith("conftest.py: check ")
    assert problem in str(info.value)


def test_an_added_check_cannot_take_an_id_twice() -> None:
    registry = BUILTIN.extended([custom()], source="one")
    with pytest.raises(RegistryError, match="another check already has this id"):
        registry.extended([custom(title="other")], source="two")
    with pytest.raises(RegistryError, match="another check already has this id"):
        BUILTIN.extended([custom(), custom()], source="one")


def test_something_else_than_a_spec_is_refused() -> None:
    with pytest.raises(RegistryError, match="returned dict, not a CheckSpec"):
        BUILTIN.extended([{"id": "X101"}], source="p")  # type: ignore[list-item]


def _two_subjects(manifest: Manifest) -> Sequence[Subject]:
    return [Subject("b", 3), Subject("a", 2, required_by=None)]


def _undeclared(manifest: Manifest) -> Undeclared:
    return UNDECLARED


def test_added_checks_are_planned_after_the_builtin_components(make_repo: RepoFactory) -> None:
    manifest = load_manifest(make_repo(MINIMAL_MANIFEST) / "corresponding-source.yaml")
    registry = BUILTIN.extended(
        [
            custom(subjects=_two_subjects),
            custom(id="XACME102", component="weights", check="extra", after=("CS101",)),
        ],
        source="p",
    )
    plan = build_plan(manifest, registry)
    assert plan[: len(build_plan(manifest))] != build_plan(manifest)  # weights got one more
    weights = [p.spec.id for p in plan if p.component == "weights"]
    assert weights == ["CS101", "CS102", "CS103", "CS104", "CS105", "XACME102"]
    tail = [(p.spec.id, p.subject, p.required_by) for p in plan[-2:]]
    assert tail == [("XACME101", "b", "open-weights"), ("XACME101", "a", None)]
    assert [p.component for p in plan].index("policy") > [p.component for p in plan].index("docs")


def test_an_added_check_on_a_missing_section_is_one_undeclared_item(
    make_repo: RepoFactory,
) -> None:
    manifest = load_manifest(make_repo(MINIMAL_MANIFEST) / "corresponding-source.yaml")
    registry = BUILTIN.extended(
        [custom(subjects=_undeclared), custom(id="XACME102", subjects=_undeclared)], source="p"
    )
    added = [p for p in build_plan(manifest, registry) if p.component == "policy"]
    assert [(p.spec.id, p.undeclared, p.required_by) for p in added] == [
        ("XACME101", True, "open-weights")
    ]


def test_registry_is_immutable_and_ordered() -> None:
    registry = BUILTIN.extended([custom()], source="p")
    assert "XACME101" not in BUILTIN
    assert registry.components[-1] == "policy"
    assert registry.components[0] == "manifest"
    assert isinstance(registry, CheckRegistry)
    assert list(registry)[-1].id == "XACME101"


# --------------------------------------------------------------------------- inner pytest runs

CONFTEST = """
import pytest
from pytest_corrsource import CheckFailed, CheckSpec, CheckUnverifiable, Finding

def house_rule(ctx):
    card = ctx.root / "README.md"
    if not card.is_file() or "house" not in card.read_text():
        raise CheckFailed("the card does not mention the house", fix="mention the house")
    return Finding("the card mentions the house")

def needs_gpu(ctx):
    raise CheckUnverifiable("no GPU on this machine")

def pytest_corrsource_checks(config):
    return [
        CheckSpec(id="XACME101", component="policy", check="house-rule", title="house rule",
                  level="open-weights", clause="house rule", fix="mention the house",
                  run=house_rule),
        CheckSpec(id="XACME102", component="policy", check="gpu", title="runs on a GPU",
                  level=LEVEL_102, clause="house rule", fix="run it on a GPU", run=needs_gpu),
    ]

def pytest_corrsource_report_sections(report):
    return [("house \\x1b[31mrules", "::error::forged\\n##[warning]forged too")]
"""


def _write_repo(
    pytester: pytest.Pytester,
    make_repo: RepoFactory,
    card: str,
    level_102: str = "None",
    extra: str = "",
    bad_id: bool = False,
) -> None:
    """The repository in ``pytester.path`` with CONFTEST; ``bad_id``: XACME101 claims CS101."""
    import shutil

    source = make_repo(MINIMAL_MANIFEST + extra, {"LICENSE": "MIT License\n", "README.md": card})
    shutil.copytree(source, pytester.path, dirs_exist_ok=True)
    conftest = CONFTEST.replace("LEVEL_102", level_102)
    pytester.makeconftest(conftest.replace('id="XACME101"', 'id="CS101"') if bad_id else conftest)


def _run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:cacheprovider", "--corresponding-source",
        "--corrsource-level=open-weights", "--corrsource-report", str(report), *args,
        timeout=300,
    )  # fmt: skip
    data = json.loads(report.read_text()) if report.is_file() else {}
    return result, data


def _outcomes(data: dict[str, Any]) -> dict[str, str]:
    checks = data["checks"]
    assert isinstance(checks, list)
    return {c["id"]: c["outcome"] for c in checks if c["id"].startswith("X")}


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_an_added_check_passes_and_fails_like_a_builtin_one(
    pytester: pytest.Pytester, make_repo: RepoFactory, xdist: list[str]
) -> None:
    _write_repo(pytester, make_repo, "# tiny\n\nBuilt in a house.\n")
    result, data = _run(pytester, *xdist)
    assert result.ret == 0, result.stdout.str()
    assert _outcomes(data) == {"XACME101": "passed", "XACME102": "skipped"}
    result.stdout.fnmatch_lines(["  policy       present"])  # its own row (XACME102 skipped)
    assert data["levels_met"] == ["open-weights"]

    (pytester.path / "README.md").write_text("# tiny\n")
    result, data = _run(pytester, *xdist)
    assert result.ret == 1
    assert _outcomes(data)["XACME101"] == "failed"
    message = next(c["message"] for c in data["checks"] if c["id"] == "XACME101")
    assert "the card does not mention the house" in message
    assert "more: corrsource explain XACME101" in message
    assert data["levels_met"] == []


def test_an_added_required_check_that_cannot_run_is_unverified_then_waivable(
    pytester: pytest.Pytester, make_repo: RepoFactory
) -> None:
    _write_repo(pytester, make_repo, "house\n", level_102='"open-weights"')
    result, data = _run(pytester)
    assert _outcomes(data)["XACME102"] == "failed"
    message = next(c["message"] for c in data["checks"] if c["id"] == "XACME102")
    assert "could not be verified on this machine: no GPU on this machine" in message
    assert result.ret == 1

    result, data = _run(pytester, "--corrsource-waive", "XACME102=no GPU runner")
    assert _outcomes(data)["XACME102"] == "waived"
    assert result.ret == 0
    assert "met, with waivers" in result.stdout.str()


def test_a_manifest_waiver_of_an_unknown_added_check_is_a_located_error(
    pytester: pytest.Pytester, make_repo: RepoFactory
) -> None:
    _write_repo(pytester, make_repo, "house\n", extra="waive:\n  XACME999: no such check\n")
    result, _ = _run(pytester)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*corresponding-source.yaml:8:1: waive.XACME999: `XACME999` is*"])


def test_report_sections_from_a_plugin_are_sanitized(
    pytester: pytest.Pytester, make_repo: RepoFactory
) -> None:
    _write_repo(pytester, make_repo, "house\n")
    result, data = _run(pytester)
    out = result.stdout.str()
    assert "\x1b[31m" not in out
    assert not any(line.startswith(("::error::", "##[")) for line in result.outlines)
    sections = data["sections"]
    assert isinstance(sections, list)
    assert len(sections) == 1
    assert "\x1b" not in json.dumps(sections, ensure_ascii=False).replace("\\u001b", "\x1b")
    assert "forged" in sections[0]["text"]


def test_an_invalid_added_check_is_a_usage_error(
    pytester: pytest.Pytester, make_repo: RepoFactory
) -> None:
    _write_repo(pytester, make_repo, "house\n", bad_id=True)
    result, _ = _run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "check 'CS101' cannot be added: ids of added checks are X" in result.stderr.str()
    assert "Traceback" not in result.stderr.str()


def test_explain_knows_added_checks(pytester: pytest.Pytester, make_repo: RepoFactory) -> None:
    _write_repo(pytester, make_repo, "house\n")
    result = pytester.runpytest_subprocess("--corrsource-explain", "xacme101")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["XACME101 policy::house-rule", "*Enforces: house rule*"])
    result = pytester.runpytest_subprocess("--corrsource-explain", "XACME109")
    assert result.ret == 2
    assert "unknown check `XACME109`" in result.stderr.str()


def test_the_hooks_cost_nothing_without_the_flag(
    pytester: pytest.Pytester, make_repo: RepoFactory
) -> None:
    _write_repo(pytester, make_repo, "house\n", bad_id=True)
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly", "test_one.py")
    assert result.ret == 0  # the bad spec is never asked for: the plugin is not enabled
    result.assert_outcomes(passed=1)


def test_a_report_section_that_is_not_a_title_and_a_text_is_reported_as_such() -> None:
    from pytest_corrsource.report import ManifestReport

    report = ManifestReport(path=Path("m.yaml"), display="m.yaml", level="open-weights")
    report.add_sections([[("house rules", "fine\x1b[31m")], [("title only",)], "text", None])
    assert report.sections[0][0] == "house rules"
    assert "\x1b" not in report.sections[0][1]
    invalid = "a pytest_corrsource_report_sections hook returned {}, not a (title, text) pair"
    assert report.sections[1:] == [
        ("invalid report section", invalid.format("tuple") + " of strings"),
        ("invalid report section", invalid.format("str") + " of strings"),
        ("invalid report section", invalid.format("NoneType") + " of strings"),
    ]
