"""pytest's own selection features on manifest items, on every pytest version we declare.

``.ci/run`` runs this module under the lowest pytest in ``pyproject.toml`` and the newest one
too. The checks' node ids carry a subject in brackets with a slash inside
(``weights::present[weights/model.safetensors]``); pytest 9.2 parses the ids it caches into a
structured form, and items whose live id did not match that form were silently dropped by
``--lf`` (issue 9). These tests fail if any selection feature loses a check again.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import MINIMAL_MANIFEST, RepoFactory

MANIFEST = "corresponding-source.yaml"
WEIGHTS = "weights/model.safetensors"
PRESENT = f"{MANIFEST}::weights::present[{WEIGHTS}]"
HEADER = f"{MANIFEST}::weights::header[{WEIGHTS}]"
HASH = f"{MANIFEST}::weights::hash[{WEIGHTS}]"
# Inner runs: no xdist, no random order, no hypothesis plugin start-up cost.
BASE = ("-p", "no:randomly", "-p", "no:hypothesispytest", "--corresponding-source")


@pytest.fixture
def broken_repo(pytester: pytest.Pytester, make_repo: RepoFactory) -> Path:
    """A weights-only repository whose weights file is garbage: its header (CS103) and its
    digest (CS104) checks fail."""
    source = make_repo(MINIMAL_MANIFEST, {"LICENSE": "MIT License\n"})
    for path in source.rglob("*"):
        if path.is_file():
            target = pytester.path / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    (pytester.path / WEIGHTS).write_bytes(b"not a safetensors file at all")
    return pytester.path


def failed_ids(result: pytest.RunResult) -> list[str]:
    """Node ids of the failed items, in the order of the short summary (``-rf``)."""
    found = []
    for line in result.outlines:
        match = re.match(r"FAILED (\S+)", line)
        if match:
            found.append(match.group(1))
    return found


def ran_ids(result: pytest.RunResult) -> list[str]:
    """Node ids in execution order, from ``-v`` lines."""
    found = []
    for line in result.outlines:
        match = re.match(rf"({re.escape(MANIFEST)}::\S+) (PASSED|FAILED|SKIPPED|XFAIL)", line)
        if match:
            found.append(match.group(1))
    return found


def test_the_enabled_plugin_object_is_hashable() -> None:
    # pytest < 9.1 keeps registered plugin objects in a set: an unhashable one is an
    # INTERNALERROR at start-up (seen on pytest 8.4.2 and 9.0.3).
    from pytest_corrsource.verification import Verification

    assert Verification.__hash__ is not None
    assert Verification.__hash__ is object.__hash__


def test_last_failed_reruns_every_failed_check(
    pytester: pytest.Pytester, broken_repo: Path
) -> None:
    first = pytester.runpytest(*BASE, "--corrsource-level=open-weights", "-rf")
    failed = failed_ids(first)
    assert HEADER in failed
    assert HASH in failed

    again = pytester.runpytest(*BASE, "--corrsource-level=open-weights", "-rf", "--lf")
    assert sorted(failed_ids(again)) == sorted(failed)
    again.stdout.fnmatch_lines([f"run-last-failure: rerun previous {len(failed)} failure*"])
    outcomes = again.parseoutcomes()
    assert outcomes["failed"] == len(failed)
    assert "passed" not in outcomes


def test_failed_first_runs_the_failures_first(pytester: pytest.Pytester, broken_repo: Path) -> None:
    first = pytester.runpytest(*BASE, "--corrsource-level=open-weights", "-rf")
    failed = set(failed_ids(first))
    assert failed

    again = pytester.runpytest(*BASE, "--corrsource-level=open-weights", "-v", "--ff")
    order = ran_ids(again)
    assert set(order[: len(failed)]) == failed
    assert len(order) > len(failed)  # the rest still ran, after them


def test_stepwise_resumes_at_the_failed_check(
    pytester: pytest.Pytester, broken_repo: Path, make_repo: RepoFactory
) -> None:
    first = pytester.runpytest(*BASE, "--corrsource-level=open-weights", "-v", "--sw")
    # CS001 and the weights checks before the header pass; stepwise stops at the header check
    order = ran_ids(first)
    assert order[-1] == HEADER
    assert PRESENT in order

    # Restore the weights: the next stepwise run starts at that check, not at the beginning.
    fixed = make_repo(MINIMAL_MANIFEST, name="fixed")
    (pytester.path / WEIGHTS).write_bytes((fixed / WEIGHTS).read_bytes())
    manifest = (fixed / MANIFEST).read_text()
    (pytester.path / MANIFEST).write_text(manifest)
    again = pytester.runpytest(*BASE, "--corrsource-level=open-weights", "-v", "--sw")
    order = ran_ids(again)
    assert order[0] == HEADER
    assert f"{HEADER} PASSED" in again.stdout.str()


def test_node_id_selects_one_check(pytester: pytest.Pytester, broken_repo: Path) -> None:
    result = pytester.runpytest(*BASE, "--corrsource-level=open-weights", "-v", HASH)
    assert ran_ids(result) == [HASH]
    result.assert_outcomes(failed=1)


def test_node_id_of_a_component_selects_its_checks(
    pytester: pytest.Pytester, broken_repo: Path
) -> None:
    result = pytester.runpytest(*BASE, "-v", f"{MANIFEST}::weights")
    order = ran_ids(result)
    assert order
    assert all(nodeid.startswith(f"{MANIFEST}::weights::") for nodeid in order)
    assert PRESENT in order


def test_level_choices_are_the_catalogue_levels() -> None:
    # plugin.py keeps its own copy so that pytest start-up imports nothing of ours beyond it.
    from pytest_corrsource.plugin import LEVEL_CHOICES
    from pytest_corrsource.vocabulary import LEVELS

    assert tuple(LEVEL_CHOICES) == tuple(LEVELS)
