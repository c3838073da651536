"""The Model Openness Framework record (``--corrsource-mof``) and opt-in JUnit properties."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs installed (as in init.py)
import pytest
import yaml
from conftest import MINIMAL_MANIFEST, RepoFactory

from pytest_corrsource.levels import MOF_CLASSES
from pytest_corrsource.report.mof import DESCRIPTIONS

COMPONENT_NAMES = [name for names in MOF_CLASSES.values() for name in names] + [
    "Sample model outputs",
    "Supporting libraries and tools",
    "Model metadata",
]
_LICENSE = {
    "type": "object",
    "properties": {"name": {"type": ["string", "null"]}, "path": {"type": ["string", "null"]}},
}
# The rules of the Model Openness Tool's schema/mof_schema.json, as its documentation states them.
MOT_SCHEMA = {
    "type": "object",
    "required": ["framework", "release"],
    "properties": {
        "framework": {
            "type": "object",
            "required": ["name", "version", "date"],
            "properties": {
                "name": {"enum": ["Model Openness Framework"]},
                "version": {"type": "string"},
                "date": {"type": "string", "format": "date"},
            },
        },
        "release": {
            "type": "object",
            "required": ["name", "license", "producer", "components"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "version": {"type": "string"},
                "date": {"type": "string", "format": "date"},
                "type": {
                    "enum": [
                        "",
                        "language",
                        "vision",
                        "image",
                        "audio",
                        "video",
                        "3d",
                        "code",
                        "multimodal",
                        "other",
                    ]
                },
                "architecture": {
                    "enum": [
                        "",
                        "transformer",
                        "transformer decoder",
                        "transformer encoder-decoder",
                        "decoder",
                        "encoder",
                        "diffusion",
                        "RNN",
                        "CNN",
                        "LSTM",
                        "NeRF",
                        "hybrid",
                        "undisclosed",
                        "other",
                    ]
                },
                "producer": {"type": "string"},
                "contact": {"type": "string"},
                "license": {
                    "type": "object",
                    "properties": {
                        k: _LICENSE for k in ("distribution", "code", "data", "document")
                    },
                },
                "components": {
                    "type": "array",
                    "maxItems": 17,
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"enum": COMPONENT_NAMES},
                            "description": {"type": "string"},
                            "license": {"type": "string"},
                            "license_path": {"type": "string"},
                            "component_path": {"type": "string"},
                        },
                    },
                },
            },
        },
    },
}
EXAMPLES = Path(__file__).parents[1] / "examples"


def run_mof(pytester: pytest.Pytester, repo: Path, *args: str) -> list[dict[str, Any]]:
    out = pytester.path / "mof.yml"
    pytester.runpytest("--corresponding-source", str(repo), "--corrsource-mof", str(out), *args)
    records = list(yaml.safe_load_all(out.read_text()))
    checker = jsonschema.Draft202012Validator(
        MOT_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for record in records:
        checker.validate(record)
    return records


def test_weights_only_example_record(pytester: pytest.Pytester) -> None:
    (record,) = run_mof(pytester, EXAMPLES / "weights-only", "--corrsource-level", "open-weights")
    release = record["release"]
    assert release["name"] == "tinychar-weights-only"
    names = [c["name"] for c in release["components"]]
    assert names == ["Model parameters (Final)", "Model card"]
    weights = release["components"][0]
    assert weights == {
        "name": "Model parameters (Final)",
        "description": DESCRIPTIONS["Model parameters (Final)"],
        "license": "Apache-2.0",
        "license_path": "LICENSE",
        "component_path": "weights/model.safetensors",
    }
    assert release["license"]["distribution"] == {"name": "Apache-2.0", "path": "LICENSE"}


@pytest.mark.e2e
def test_tinychar_example_record_lists_only_verified_components(pytester: pytest.Pytester) -> None:
    (record,) = run_mof(
        pytester, EXAMPLES / "tinychar", "--corrsource-level", "open-source-ai", "-p", "no:randomly"
    )
    names = {c["name"] for c in record["release"]["components"]}
    assert names == set(COMPONENT_NAMES[:14]) - {"Research paper"}
    weights = next(c for c in record["release"]["components"] if c["name"].endswith("(Final)"))
    assert weights["license"] == "CC-BY-4.0"
    assert weights["license_path"] == "LICENSE-weights"


def test_unverified_components_are_left_out(
    pytester: pytest.Pytester, make_repo: RepoFactory
) -> None:
    # A wrong digest fails CS104: the final parameters are then not a verified component.
    repo = make_repo(MINIMAL_MANIFEST.replace("{sha}", "0" * 64), {"LICENSE": "MIT License\n"})
    (record,) = run_mof(pytester, repo, "--corrsource-level", "open-weights")
    assert "Model parameters (Final)" not in {c["name"] for c in record["release"]["components"]}


@pytest.mark.parametrize("enabled", [False, True])
def test_junit_properties_are_opt_in(
    pytester: pytest.Pytester, make_repo: RepoFactory, enabled: bool
) -> None:
    repo = make_repo(MINIMAL_MANIFEST, {"LICENSE": "MIT License\n"})
    xml = pytester.path / "junit.xml"
    flag = ["--corrsource-junit-properties"] if enabled else []
    args = ["--corresponding-source", str(repo), "--corrsource-level", "open-weights",
            f"--junitxml={xml}", *flag]  # fmt: skip
    pytester.runpytest(*args)
    text = xml.read_text()
    if enabled:
        assert '<property name="corrsource.check" value="CS104" />' in text
        assert '<property name="corrsource.level" value="open-weights" />' in text
    else:
        assert "<properties>" not in text


def test_junit_properties_from_ini(pytester: pytest.Pytester, make_repo: RepoFactory) -> None:
    repo = make_repo(MINIMAL_MANIFEST, {"LICENSE": "MIT License\n"})
    # The ini file of the rootdir, which is the repository here.
    (repo / "pytest.ini").write_text("[pytest]\ncorrsource_junit_properties = true\n")
    xml = pytester.path / "junit.xml"
    pytester.runpytest("--corresponding-source", str(repo), f"--junitxml={xml}")
    assert '<property name="corrsource.component" value="weights" />' in xml.read_text()


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["tivoized", "ignores-weights", "needs-network"])
def test_variant_example_records(pytester: pytest.Pytester, name: str) -> None:
    (record,) = run_mof(pytester, EXAMPLES / name, "-p", "no:randomly")
    names = {c["name"] for c in record["release"]["components"]}
    # Each variant's run ships (CS401) and its architecture is verified; its weights pass.
    assert {"Model architecture", "Model parameters (Final)", "Inference code"} <= names
    assert "Training code" not in names
