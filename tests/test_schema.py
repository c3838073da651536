"""The shipped JSON Schema: generated from the spec, valid, met by the examples, and in
agreement with the loader."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]  # no stubs installed (as in init.py)
import pytest
import yaml

from pytest_corrsource.manifest import MANIFEST_NAME, ManifestError, load_manifest
from pytest_corrsource.schema import SCHEMA_FILE
from pytest_corrsource.schema.__main__ import render

EXAMPLES = Path(__file__).parents[1] / "examples"
SHA = "9f86d0" + "a" * 58
BASE = f"version: 1\nname: tiny\nweights:\n  - path: weights/model.safetensors\n    sha256: {SHA}\n"


@pytest.fixture(scope="module")
def schema() -> dict[str, object]:
    loaded: dict[str, object] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


def test_shipped_schema_is_the_generated_one() -> None:
    # Regenerate: python -m pytest_corrsource.schema > pytest_corrsource/schema/<that file>
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render()


def test_schema_is_valid_draft_2020_12(schema: dict[str, object]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft202012Validator


def test_module_prints_the_schema() -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "pytest_corrsource.schema"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout == render()


EXAMPLE_MANIFESTS = sorted(EXAMPLES.glob(f"*/{MANIFEST_NAME}"))


def test_examples_exist() -> None:
    assert len(EXAMPLE_MANIFESTS) >= 3


@pytest.mark.parametrize("path", EXAMPLE_MANIFESTS, ids=lambda p: p.parent.name)
def test_examples_validate(schema: dict[str, object], path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(document)
    load_manifest(path)  # and the loader agrees


# --- loader and schema agree ----------------------------------------------------------------------
# Only what JSON Schema can express is compared. Left out on purpose, because they are the
# loader's alone: rules about the file system (symlinks leading outside, `..`, absolute or empty
# paths, duplicate weights paths), YAML-level facts that yaml.safe_load erases before a schema
# sees the data (duplicate keys, tags, line numbers) or that JSON cannot represent (NaN), regex
# syntax (`expect.stdout`), and 1 vs 1.0 (one number to JSON Schema, an int and a float to YAML).

VALID = {
    "minimal": BASE,
    "no-digest": "version: 1\nname: tiny\nweights:\n  - path: w.safetensors\n",
    "flow-style": "{version: 1, name: t, weights: [{path: w}], architecture: [a.py, b.py]}\n",
    "unquoted-python": BASE + "install:\n  python: 3.11\n  commands: [make]\n",
    "numeric-name": "version: 1\nname: 2024\nweights: [{path: w}]\n",
    "boolean-text": "version: 1\nname: yes\nweights: [{path: w}]\nrun: {command: true}\n",
    "infinite-timeout": BASE + "run: {command: x, timeout: .inf}\n",
    "single-items": BASE + "architecture: model.py\ninstall:\n  requirements: requirements.txt\n"
    "  commands: pip install .\ngenerate:\n  command: python export.py\n  produces: out.bin\n",
    "run": BASE + "run:\n  command: python run.py --weights {weights}\n  timeout: 0.5\n"
    "  deterministic: false\n  expect:\n    exit-code: 3\n    stdout: 'model output: .+'\n"
    "    stderr: ''\n    files: ['{outdir}/x']\n",
    "licenses": BASE + "licenses:\n  distribution: MIT\n  code: Apache-2.0 OR MIT\n"
    "  weights: CC-BY-4.0\n  data: CC0-1.0\n  docs: CC-BY-4.0\n",
    "env": BASE + "env:\n  HF_HUB_OFFLINE: '1'\n  _X: y\n",
    "training": BASE + "training:\n  code: [train.py]\n  command: python train.py\n"
    "  produces: '{outdir}/m.safetensors'\n  reproduce: tolerance\n  tolerance: 0\n  timeout: 60\n",
    "data": BASE + "data:\n  sources:\n    - path: data/a.txt\n      size: 0\n"
    f"    - url: http://example.org/b\n      sha256: {SHA}\n      license: CC0-1.0\n"
    "  preprocessing: {command: python prep.py, code: prep.py}\n  card: DATA_CARD.md\n",
    "evaluation": BASE + "evaluation:\n  code: eval.py\n  data: [val.txt]\n  command: x\n"
    "  expect: {stdout: 'loss'}\n",
    "checkpoints-docs": BASE + "checkpoints:\n  - path: ckpt/1.safetensors\n    format: gguf\n"
    "docs:\n  model-card: README.md\n  paper: p.pdf\n  technical-report: R.md\n  results: X.md\n",
    "empty-docs": BASE + "docs:\n",
    "weights-options": "version: 1\nname: t\nweights:\n  - path: w.bin\n    format: pickle\n"
    f"    allow-unsafe: true\n    license: MIT\n    shards:\n      a.safetensors: {SHA}\n",
    "source-form": BASE + "source-form:\n  allow: [vendor/lib.so]\n",
    "merge-key": BASE + "modify: &m {command: x, timeout: 5}\nrun:\n  <<: *m\n",
}

INVALID = {
    "unknown-key": BASE + "weigths: []\n",
    "unknown-nested": BASE + "run:\n  command: x\n  expect:\n    stdot: y\n",
    "missing-version": "name: t\nweights: [{path: w}]\n",
    "missing-weights": "version: 1\nname: t\n",
    "missing-run-command": BASE + "run:\n  timeout: 3\n",
    "missing-weights-path": f"version: 1\nname: t\nweights:\n  - sha256: {SHA}\n",
    "empty-weights": "version: 1\nname: t\nweights: []\n",
    "version-2": "version: 2\nname: t\nweights: [{path: w}]\n",
    "version-string": "version: one\nname: t\nweights: [{path: w}]\n",
    "blank-name": "version: 1\nname: '  '\nweights: [{path: w}]\n",
    "name-list": "version: 1\nname: [a]\nweights: [{path: w}]\n",
    "null-name": "version: 1\nname:\nweights: [{path: w}]\n",
    "bad-sha256": "version: 1\nname: t\nweights:\n  - path: w\n    sha256: ABC\n",
    "bad-format": "version: 1\nname: t\nweights:\n  - path: w\n    format: safetensor\n",
    "allow-unsafe-string": "version: 1\nname: t\nweights:\n  - path: w\n    allow-unsafe: maybe\n",
    "weights-not-list": "version: 1\nname: t\nweights: w\n",
    "python-3.x": BASE + "install:\n  python: 3.x\n",
    "sha256-number": "version: 1\nname: t\nweights:\n  - path: w\n    sha256: 1234\n",
    "timeout-zero": BASE + "run:\n  command: x\n  timeout: 0\n",
    "timeout-string": BASE + "run:\n  command: x\n  timeout: soon\n",
    "exit-code-string": BASE + "run:\n  command: x\n  expect: {exit-code: zero}\n",
    "deterministic-string": BASE + "run:\n  command: x\n  deterministic: sometimes\n",
    "reproduce-enum": BASE + "training:\n  reproduce: exakt\n",
    "negative-tolerance": BASE + "training:\n  tolerance: -1\n",
    "source-both": BASE + "data:\n  sources:\n    - {path: a, url: 'https://x.org/a'}\n",
    "source-neither": BASE + "data:\n  sources:\n    - {license: MIT}\n",
    "url-not-http": BASE + "data:\n  sources:\n    - {url: 'ftp://x.org/a'}\n",
    "negative-size": BASE + "data:\n  sources:\n    - {path: a, size: -1}\n",
    "python-version": BASE + "install:\n  python: three\n",
    "env-key": BASE + "env:\n  1BAD: x\n",
    "env-value-list": BASE + "env:\n  A: [x]\n",
    "licenses-string": BASE + "licenses: MIT\n",
    "docs-list": BASE + "docs: [README.md]\n",
    "expect-list": BASE + "run:\n  command: x\n  expect: [0]\n",
    "top-level-list": "- version: 1\n",
    "top-level-string": "just text\n",
}


def _loader_accepts(tmp_path: Path, text: str) -> bool:
    path = tmp_path / MANIFEST_NAME
    path.write_text(text, encoding="utf-8")
    try:
        load_manifest(path)
    except ManifestError:
        return False
    return True


def _schema_accepts(schema: dict[str, object], text: str) -> bool:
    accepted: bool = jsonschema.Draft202012Validator(schema).is_valid(yaml.safe_load(text))
    return accepted


def test_agreement_sets_are_big_enough() -> None:
    assert len(VALID) >= 12
    assert len(INVALID) >= 12


@pytest.mark.parametrize("name", sorted(VALID))
def test_loader_and_schema_accept(schema: dict[str, object], tmp_path: Path, name: str) -> None:
    text = VALID[name]
    assert (_loader_accepts(tmp_path, text), _schema_accepts(schema, text)) == (True, True)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_loader_and_schema_refuse(schema: dict[str, object], tmp_path: Path, name: str) -> None:
    text = INVALID[name]
    assert (_loader_accepts(tmp_path, text), _schema_accepts(schema, text)) == (False, False)
