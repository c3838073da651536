"""What each check is planned on: the subjects a manifest gives a check (a weights file, a
licence kind, a generate step …), or that the section the check needs is not declared.

Stage: Manifest -> Plan. Pure functions of the manifest, one per shape of subject; a
:class:`~pytest_corrsource.catalogue.CheckSpec` names the one it uses in ``subjects=``, so the
plan iterates the specs and nothing else lists which check applies to what.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from pytest_corrsource.vocabulary import Level

if TYPE_CHECKING:
    from pytest_corrsource.manifest import Manifest

#: ``required_by`` of a :class:`Subject` that takes the check's own level.
SPEC_LEVEL: Final = "spec-level"
SpecLevel = Literal["spec-level"]


@dataclass(frozen=True)
class Subject:
    """One thing a check is planned on."""

    name: str  # in the node id's brackets; "" for a check on the whole section
    line: int  # where the manifest declares it (for failure locations)
    component: str = ""  # "" = the spec's own; "checkpoints" for weights checks on checkpoints
    # The lowest level that requires the check on this subject: the spec's own level unless a
    # subject says otherwise (CS901 on data is required from corresponding-source; checks on
    # checkpoints are informational).
    required_by: Level | SpecLevel | None = SPEC_LEVEL


class Undeclared:
    """The manifest lacks the section the check needs: one "not declared" item per component."""


UNDECLARED: Final = Undeclared()

SubjectRule = Callable[["Manifest"], "Sequence[Subject] | Undeclared"]
LicenceKind = Literal["weights", "code", "data"]


def the_manifest(manifest: Manifest) -> list[Subject]:
    return [Subject("", manifest.line_of("version"))]


def weights_files(manifest: Manifest) -> list[Subject]:
    """Every declared weights file, then every checkpoint (informational on checkpoints)."""
    return [Subject(entry.path, entry.line) for entry in manifest.weights] + [
        Subject(entry.path, entry.line, "checkpoints", None) for entry in manifest.checkpoints
    ]


def _licence_kinds(manifest: Manifest) -> list[tuple[LicenceKind, Level]]:
    """The kinds of component present, with the level from which each needs a licence."""
    kinds: list[tuple[LicenceKind, Level]] = [("weights", "open-weights")]
    if manifest.architecture or manifest.run or manifest.training or manifest.install:
        kinds.append(("code", "corresponding-source"))
    if manifest.data is not None:
        kinds.append(("data", "corresponding-source"))
    return kinds


def _licence_line(manifest: Manifest, kind: str) -> int:
    line = manifest.licenses.line or manifest.line_of("version")
    return manifest.licenses.lines.get(kind, line)


def licence_kinds(manifest: Manifest) -> list[Subject]:
    return [
        Subject(kind, _licence_line(manifest, kind), required_by=level)
        for kind, level in _licence_kinds(manifest)
    ]


def declared_licence_kinds(manifest: Manifest) -> list[Subject]:
    """Only licences the manifest declares are judged for openness."""
    if not manifest.declares("licenses"):
        return []
    return [Subject(kind, _licence_line(manifest, kind)) for kind, _ in _licence_kinds(manifest)]


def install_section(manifest: Manifest) -> Sequence[Subject] | Undeclared:
    if manifest.install is None:
        return UNDECLARED
    return [Subject("", manifest.line_of("install"))]


def generate_steps(manifest: Manifest) -> list[Subject]:
    return [Subject(str(index), step.line) for index, step in enumerate(manifest.generate)]


def run_section(manifest: Manifest) -> Sequence[Subject] | Undeclared:
    if manifest.run is None:
        return UNDECLARED
    return [Subject("", manifest.line_of("run"))]


def source_form(manifest: Manifest) -> list[Subject]:
    return [Subject("", manifest.line_of("source-form") or manifest.line_of("version"))]


def architecture(manifest: Manifest) -> Sequence[Subject] | Undeclared:
    if not manifest.architecture:
        return UNDECLARED
    return [Subject("", manifest.architecture[0].line)]


def modify_section(manifest: Manifest) -> list[Subject]:
    return [] if manifest.modify is None else [Subject("", manifest.line_of("modify"))]


def training_section(manifest: Manifest) -> Sequence[Subject] | Undeclared:
    if manifest.training is None:
        return UNDECLARED
    return [Subject("", manifest.line_of("training"))]


def data_sources(manifest: Manifest) -> Sequence[Subject] | Undeclared:
    if manifest.data is None:
        return UNDECLARED
    sources = [
        Subject(source.path or source.url or "", source.line) for source in manifest.data.sources
    ]
    return sources or [Subject("", manifest.data.line)]


def data_card(manifest: Manifest) -> Sequence[Subject] | Undeclared:
    if manifest.data is None:
        return UNDECLARED
    card = manifest.data.card
    return [Subject("", card.line if card else manifest.data.line)]


def data_preprocessing(manifest: Manifest) -> Sequence[Subject] | Undeclared:
    if manifest.data is None:
        return UNDECLARED
    pre = manifest.data.preprocessing
    return [Subject("", pre.line if pre else manifest.data.line)]


def evaluation_section(manifest: Manifest) -> Sequence[Subject] | Undeclared:
    if manifest.evaluation is None:
        return UNDECLARED
    return [Subject("", manifest.line_of("evaluation"))]


def docs_section(manifest: Manifest) -> list[Subject]:
    declared = manifest.declares("docs")
    return [Subject("", manifest.line_of("docs" if declared else "version"))]
