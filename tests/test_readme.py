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
    assert command in ci  # a line of its own, exactly as the README gives it
    # ... run in the venv .ci/run installs from the project's own files, before the floor run
    assert ci.index('.venv/bin/python -m pip install --quiet -e ".[test]"') < ci.index(command)
    assert ci.index(command) < next(i for i, line in enumerate(ci) if "floor" in line)


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


def test_reference_notes_and_defaults_name_real_keys_and_true_defaults(tmp_path: Path) -> None:
    from pytest_corrsource.manifest import load_manifest
    from pytest_corrsource.schema.reference import DEFAULTS, NOTES, markdown_reference

    reference = markdown_reference()
    for path in [*NOTES, *DEFAULTS]:
        assert f"| `{path}` |" in reference, path
    (tmp_path / "w.safetensors").write_bytes(b"")
    (tmp_path / "corresponding-source.yaml").write_text(
        "version: 1\nname: x\nweights: [{path: w.safetensors}]\n"
        "install: {commands: [x]}\ngenerate: [{command: x}]\nrun: {command: x}\n"
        "modify: {command: x}\ntraining: {command: x}\n"
        "data: {preprocessing: {command: x}}\nevaluation: {command: x}\n"
    )
    m = load_manifest(tmp_path / "corresponding-source.yaml")
    assert m.install is not None
    assert m.run is not None
    assert m.modify is not None
    assert m.training is not None
    assert m.data is not None
    assert m.data.preprocessing is not None
    assert m.evaluation is not None
    loaded = {
        "install.timeout": m.install.timeout,
        "generate[].timeout": m.generate[0].timeout,
        "run.timeout": m.run.timeout,
        "run.deterministic": m.run.deterministic,
        "modify.timeout": m.modify.timeout,
        "training.reproduce": m.training.reproduce,
        "training.timeout": m.training.timeout,
        "data.preprocessing.timeout": m.data.preprocessing.timeout,
        "evaluation.timeout": m.evaluation.timeout,
    }
    assert loaded == DEFAULTS
