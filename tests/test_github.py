"""GitHub Actions output: workflow commands byte for byte, limits, the step summary."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import MINIMAL_MANIFEST, RepoFactory

from pytest_corrsource.report.github import (
    MAX_PER_KIND,
    SUMMARY_LIMIT,
    append_step_summary,
    escape_data,
    escape_property,
    workspace_path,
)


def test_escaping_follows_the_actions_toolkit() -> None:
    assert escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


def test_workspace_relative_paths(tmp_path: Path) -> None:
    inside = tmp_path / "repo" / "corresponding-source.yaml"
    inside.parent.mkdir()
    inside.touch()
    assert workspace_path(inside, str(tmp_path)) == "repo/corresponding-source.yaml"
    assert workspace_path(inside, "/somewhere/else") == inside.as_posix()
    assert workspace_path(inside, None) == inside.as_posix()


def test_step_summary_is_appended_and_capped(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    append_step_summary(str(summary), "## ours\n")
    assert summary.read_text() == "earlier step\n## ours\n"
    append_step_summary(str(summary), "x" * (2 * SUMMARY_LIMIT))
    text = summary.read_text()
    assert len(text.encode()) < SUMMARY_LIMIT
    assert text.endswith("*(truncated: the summary exceeded GitHub's 1 MiB limit)*\n")


def _run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str
) -> pytest.RunResult:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(pytester.path))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "summary.md"))
    return pytester.runpytest_subprocess("--corresponding-source", "-p", "no:randomly", *args)


@pytest.mark.e2e
@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_annotations_at_manifest_lines(
    pytester: pytest.Pytester,
    make_repo: RepoFactory,
    monkeypatch: pytest.MonkeyPatch,
    xdist: list[str],
) -> None:
    repo = make_repo(MINIMAL_MANIFEST, {"LICENSE": "MIT\n", "README.md": "# tiny\n"})
    for path in repo.iterdir():
        path.rename(pytester.path / path.name)
    result = _run(pytester, monkeypatch, *xdist)
    errors = [line for line in result.outlines if line.startswith("::error ")]
    # install, run and architecture are missing at the default level: one error each, and
    # under xdist the controller alone writes them (no duplicates).
    assert len(errors) == 3
    assert len(set(errors)) == 3
    assert errors[0] == (
        "::error file=corresponding-source.yaml,line=1,"
        "title=corrsource%3A CS201 install%3A%3Adeclared::"
        "found: the manifest declares no `install`, which level `corresponding-source` requires"
        "%0Afix: declare `install` in the manifest (see the pytest-corrsource README)"
    )
    warnings = [line for line in result.outlines if line.startswith("::warning ")]
    assert any("CS903 docs%3A%3Amodel-card" in w for w in warnings)
    summary = (pytester.path / "summary.md").read_text()
    assert "## Corresponding Source: tiny" in summary
    assert "**❌ NOT MET** at level `corresponding-source`" in summary


@pytest.mark.e2e
def test_annotations_are_capped(
    pytester: pytest.Pytester, make_repo: RepoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One error each (CS101): their other checks are blocked by it, not failed again.
    entries = "".join(f"  - path: missing/{i}.safetensors\n" for i in range(MAX_PER_KIND + 2))
    repo = make_repo(MINIMAL_MANIFEST + entries, {"LICENSE": "MIT\n"})
    for path in repo.iterdir():
        path.rename(pytester.path / path.name)
    result = _run(pytester, monkeypatch, "--corrsource-level", "open-weights")
    errors = [line for line in result.outlines if line.startswith("::error ")]
    assert len(errors) == MAX_PER_KIND
    assert "::notice title=corrsource::" in result.stdout.str()


def test_no_annotations_outside_actions(
    pytester: pytest.Pytester, make_repo: RepoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(MINIMAL_MANIFEST, {"LICENSE": "MIT\n"})
    for path in repo.iterdir():
        path.rename(pytester.path / path.name)
    result = pytester.runpytest("--corresponding-source")
    assert not [line for line in result.outlines if line.startswith("::")]
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = pytester.runpytest("--corresponding-source", "--corrsource-annotations", "off")
    assert not [line for line in result.outlines if line.startswith("::")]


def test_example_workflow_is_valid_yaml_with_the_steps_users_need() -> None:
    import yaml

    workflow = (
        Path(__file__).parents[1] / "examples" / "github-actions" / "corresponding-source.yml"
    )
    data = yaml.safe_load(workflow.read_text())
    steps = data["jobs"]["verify"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/checkout") for u in uses)
    assert next(s for s in steps if s.get("uses", "").startswith("actions/checkout"))["with"]["lfs"]
    assert any(u.startswith("actions/setup-python") for u in uses)
    assert any("pytest --corresponding-source" in s.get("run", "") for s in steps)
    cache_paths = [
        s["with"]["path"] for s in steps if s.get("uses", "").startswith("actions/cache")
    ]
    assert "~/.cache/pytest-corrsource" in cache_paths


def test_a_truncated_summary_closes_the_fence_it_was_cut_in(tmp_path: Path) -> None:
    from markdown_it import MarkdownIt

    from pytest_corrsource.report.sanitize import fenced

    summary = tmp_path / "summary.md"
    hostile = "\n".join(["``` `````` # not a heading"] * (SUMMARY_LIMIT // 20))
    append_step_summary(str(summary), "## ours\n\n" + fenced(hostile) + "\n\n## after\n")
    text = summary.read_text()
    assert len(text.encode()) < SUMMARY_LIMIT
    assert text.endswith("*(truncated: the summary exceeded GitHub's 1 MiB limit)*\n")
    tokens = MarkdownIt("commonmark").parse(text + "\n# next step\n")
    headings = [t.map for t in tokens if t.type == "heading_open"]
    # "## ours", then the next step's heading: the fence was closed before the note.
    assert len(headings) == 2
    paragraphs = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "paragraph_open"]
    assert any("truncated" in p for p in paragraphs)


def test_annotations_carry_no_injected_commands_or_controls() -> None:
    from pytest_corrsource.report.github import message_data, message_property

    data = message_data("found: x\n::add-mask::s3cret\x1b]0;t\x07 ##[set-output name=a]b")
    assert data == ("found: x%0A\\x3a:add-mask::s3cret\\x1b]0;t\\x07 ##\\x5bset-output name=a]b")
    assert message_property("weights/a,b::c\u202e.bin") == "weights/a%2Cb%3A%3Ac\\u202e.bin"
