"""A Model Openness Framework record of the repository, as the Model Openness Tool reads it.

Stage: Reports. ``--corrsource-mof PATH`` writes the YAML the Model Openness Tool's
``mof_schema.json`` describes (framework / release / licence / components), listing only the
components that are present, verified by their checks and openly licensed.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from pytest_corrsource.levels import MOF_KIND

if TYPE_CHECKING:
    from pytest_corrsource.manifest import Manifest
    from pytest_corrsource.report import ManifestReport

FRAMEWORK = {"name": "Model Openness Framework", "version": "1.0", "date": "2024-12-15"}

# The Model Openness Tool's component descriptions (its component table).
DESCRIPTIONS = {
    "Model architecture": "Well commented code for the model's architecture",
    "Model parameters (Final)": "Trained model parameters, weights and biases",
    "Technical report": "Technical report detailing capabilities and usage instructions for the "
    "model",
    "Evaluation results": "The results from evaluating the model",
    "Model card": "Model details including performance metrics, intended use, and limitations",
    "Data card": "Documentation for datasets including source, characteristics, and "
    "preprocessing details",
    "Training code": "Code used for training the model",
    "Inference code": "Code used for running the model to make predictions",
    "Evaluation code": "Code used for evaluating the model",
    "Evaluation data": "Data used for evaluating the model",
    "Research paper": "Research paper detailing the development and capabilities of the model",
    "Datasets": "Training, validation and testing datasets used for the model",
    "Data preprocessing code": "Code for data cleansing, normalization, and augmentation",
    "Model parameters (Intermediate)": "Trained model parameters, weights and biases "
    "(intermediate checkpoints)",
}
# The MOT's licence kinds: our "docs" is its "document"; weights are data.
_MOT_KIND = {"code": "code", "weights": "data", "data": "data", "docs": "document"}


def _component_path(manifest: Manifest, component: str) -> str:
    """Where the component lives in the repository (the first path that stands for it)."""
    docs, data, evaluation, training = (
        manifest.docs, manifest.data, manifest.evaluation, manifest.training,
    )  # fmt: skip
    report_doc = (docs.technical_report or docs.paper) if docs else None
    candidates: dict[str, str | None] = {
        "Model architecture": manifest.architecture[0].path if manifest.architecture else None,
        "Model parameters (Final)": manifest.weights[0].path,
        "Technical report": report_doc.path if report_doc else None,
        "Evaluation results": docs.results.path if docs and docs.results else None,
        "Model card": docs.model_card.path if docs and docs.model_card else "README.md",
        "Data card": data.card.path if data and data.card else None,
        "Training code": training.code[0].path if training and training.code else None,
        "Inference code": None,
        "Evaluation code": evaluation.code[0].path if evaluation and evaluation.code else None,
        "Evaluation data": evaluation.data[0].path if evaluation and evaluation.data else None,
        "Research paper": docs.paper.path if docs and docs.paper else None,
        "Datasets": (data.sources[0].path or data.sources[0].url)
        if data and data.sources
        else None,
        "Data preprocessing code": data.preprocessing.code[0].path
        if data and data.preprocessing and data.preprocessing.code
        else None,
        "Model parameters (Intermediate)": manifest.checkpoints[0].path
        if manifest.checkpoints
        else None,
    }
    return candidates.get(component) or ""


def mof_record(report: ManifestReport) -> dict[str, Any]:
    """The MOF YAML record for one manifest's report."""
    from pytest_corrsource.checks.licenses import license_files, resolve_licenses

    manifest = report.manifest
    assert manifest is not None
    assert report.mof is not None
    files = license_files(manifest.root)

    def license_path(kind: str) -> str | None:
        """The licence file for a kind: one named after it (LICENSE-weights), else the first."""
        words = {"weights": ("weight", "model"), "data": ("data",), "docs": ("doc",)}
        named = [f for f in files if any(w in f.lower() for w in words.get(kind, ()))]
        chosen = named or files
        return chosen[0] if chosen else None

    def licence_of(kind: str) -> str | None:
        parts = resolve_licenses(manifest, kind)
        return parts[0].expression if parts else None

    licenses: dict[str, Any] = {
        "distribution": {"name": manifest.licenses.distribution, "path": license_path("code")},
    }
    for kind in ("code", "data"):
        declared = getattr(manifest.licenses, kind)
        if declared:
            licenses[_MOT_KIND[kind]] = {"name": declared, "path": license_path(kind)}
    if manifest.licenses.docs:
        licenses["document"] = {"name": manifest.licenses.docs, "path": license_path("docs")}
    components = []
    for name, included in report.mof.included.items():
        if not included:
            continue
        entry: dict[str, Any] = {"name": name, "description": DESCRIPTIONS[name]}
        licence = licence_of(MOF_KIND[name])
        if licence:
            entry["license"] = licence
        path_of_licence = license_path(MOF_KIND[name])
        if path_of_licence:
            entry["license_path"] = path_of_licence
        path = _component_path(manifest, name)
        if path:
            entry["component_path"] = path
        components.append(entry)
    return {
        "framework": dict(FRAMEWORK),
        "release": {
            "name": manifest.name,
            "version": "",
            "date": datetime.date.today().isoformat(),
            "type": "",
            "architecture": "",
            "producer": "",
            "contact": "",
            "license": licenses,
            "components": components,
        },
    }


def write_mof(path: str, reports: list[ManifestReport]) -> None:
    """Write the record (one YAML document per manifest that loaded)."""
    import yaml

    from pytest_corrsource.report.sanitize import sanitize_data

    # Names, paths and licence strings come from the manifest: untrusted.
    records = [
        sanitize_data(mof_record(r))
        for r in reports
        if r.manifest is not None and r.mof is not None
    ]
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump_all(records, f, sort_keys=False, allow_unicode=True)
