"""The README is the user's entry point: keep its generated parts and commands true."""

from __future__ import annotations

from pathlib import Path

from pytest_corrsource.catalogue import CHECKS, markdown_table

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_check_table_is_generated_from_the_catalogue() -> None:
    assert markdown_table() in README
    for spec in CHECKS:
        assert f"| {spec.id} |" in README


def test_ci_runs_the_readme_test_command() -> None:
    command = "python -m pytest -n 2"
    assert f'pip install -e ".[test]" && {command}' in README
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert ci[-1] == command


def test_manifest_reference_is_generated_from_the_spec() -> None:
    from pytest_corrsource.schema.reference import markdown_reference
    from pytest_corrsource.schema.spec import MANIFEST_SPEC

    shipped = (ROOT / "docs" / "manifest.md").read_text(encoding="utf-8")
    assert shipped == markdown_reference(), (
        "regenerate: python -m pytest_corrsource.schema.reference > docs/manifest.md"
    )
    for key in MANIFEST_SPEC.fields:
        assert f"| `{key}` |" in shipped
    assert "| `data.sources[].url` |" in shipped
