"""From a manifest to the list of checks that apply, in a deterministic order.

Stage: Manifest -> Plan. Pure: no I/O. pytest-xdist needs every worker to collect the same
items in the same order, and the controller rebuilds the same plan to judge the levels, so
everything here depends only on the manifest and the level.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_corrsource.catalogue import BUILTIN, COMPONENTS, CheckRegistry, CheckSpec
from pytest_corrsource.manifest import Manifest
from pytest_corrsource.subjects import SPEC_LEVEL, Undeclared
from pytest_corrsource.vocabulary import Level, level_rank


@dataclass(frozen=True)
class PlannedCheck:
    """One pytest item to be: a check on one subject, or a component the manifest lacks."""

    spec: CheckSpec
    component: str  # usually spec.component; "checkpoints" for weights checks on checkpoints
    subject: str
    line: int
    required_by: Level | None  # the lowest level requiring it; None: informational
    undeclared: bool = False  # the manifest lacks the component this check needs

    @property
    def name(self) -> str:
        """The item name below its component: ``hash[weights/model.safetensors]``."""
        return f"{self.spec.check}[{self.subject}]" if self.subject else self.spec.check

    @property
    def key(self) -> str:
        """Stable identity inside one manifest: ``CS104:weights/model.safetensors``."""
        return f"{self.spec.id}:{self.component}:{self.subject}"

    def required_at(self, level: str) -> bool:
        return self.required_by is not None and level_rank(self.required_by) <= level_rank(level)


def build_plan(manifest: Manifest, checks: CheckRegistry = BUILTIN) -> list[PlannedCheck]:
    """Every check of ``checks`` that applies to ``manifest``, in report order.

    Each spec's ``subjects`` rule says what it is planned on. Order: by component (the
    registry's order), then by subject in order of first appearance, then by spec: all checks
    on one weights file together, as the report reads.
    """
    components = checks.components
    planned: list[PlannedCheck] = []
    undeclared: set[str] = set()
    for spec in checks:
        found = spec.subjects(manifest)
        if isinstance(found, Undeclared):
            if spec.component not in undeclared:  # one "not declared" item per section
                undeclared.add(spec.component)
                required_by = _declared_from(spec.component, spec.level)
                line = manifest.line_of("version")
                planned.append(PlannedCheck(spec, spec.component, "", line, required_by, True))
            continue
        for subject in found:
            level = spec.level if subject.required_by == SPEC_LEVEL else subject.required_by
            component = subject.component or spec.component
            planned.append(PlannedCheck(spec, component, subject.name, subject.line, level))
    first_seen: dict[tuple[str, str], int] = {}
    for item in planned:
        first_seen.setdefault((item.component, item.subject), len(first_seen))
    rank = {spec.id: index for index, spec in enumerate(checks)}
    return sorted(
        planned,
        key=lambda p: (
            components.index(p.component) if p.component in components else len(components),
            first_seen[(p.component, p.subject)],
            rank[p.spec.id],
        ),
    )


def _declared_from(component: str, spec_level: Level | None) -> Level | None:
    """The level from which a section must be declared (a section plugins add: its check's)."""
    return dict(COMPONENTS).get(component, spec_level)


def component_label(component: str) -> str:
    """The manifest section a component is declared by, for messages about its absence."""
    return "`architecture`" if component == "source" else f"`{component}`"
