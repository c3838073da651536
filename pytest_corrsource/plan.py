"""From a manifest to the list of checks that apply, in a deterministic order.

Stage: Manifest -> Plan. Pure: no I/O. pytest-xdist needs every worker to collect the same
items in the same order, and the controller rebuilds the same plan to judge the levels, so
everything here depends only on the manifest and the level.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_corrsource.catalogue import BY_ID, CHECKS, COMPONENTS, CheckSpec, level_rank
from pytest_corrsource.manifest import Manifest


@dataclass(frozen=True)
class PlannedCheck:
    """One pytest item to be: a check on one subject, or a component the manifest lacks."""

    spec: CheckSpec
    component: str  # usually spec.component; "checkpoints" for weights checks on checkpoints
    subject: str
    line: int
    required_by: str | None  # the lowest level requiring it; None: informational
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


def _component_checks(component: str) -> list[CheckSpec]:
    return [c for c in CHECKS if c.component == component]


def _license_kinds(manifest: Manifest) -> list[tuple[str, str | None]]:
    """The kinds of component present, with the level from which each is required."""
    kinds: list[tuple[str, str | None]] = [("weights", "open-weights")]
    has_code = bool(manifest.architecture or manifest.run or manifest.training or manifest.install)
    if has_code:
        kinds.append(("code", "corresponding-source"))
    if manifest.data is not None:
        kinds.append(("data", "corresponding-source"))
    return kinds


def build_plan(manifest: Manifest) -> list[PlannedCheck]:
    """Every check that applies to ``manifest``, in report order."""
    plan: list[PlannedCheck] = []

    def add(
        spec_id: str,
        subject: str,
        line: int,
        component: str | None = None,
        required_by: str | bool | None = True,
    ) -> None:
        spec = BY_ID[spec_id]
        level = spec.level if required_by is True else required_by
        assert level is None or isinstance(level, str)
        plan.append(PlannedCheck(spec, component or spec.component, subject, line, level))

    def undeclared(component: str, required_by: str | None) -> None:
        first = _component_checks(component)[0]
        plan.append(
            PlannedCheck(first, component, "", manifest.line_of("version"), required_by, True)
        )

    # Before every component: a manifest with TODOs left is a draft, which meets no level.
    add("CS001", "", manifest.line_of("version"))
    for component, required_by in COMPONENTS:
        if component == "weights":
            for entry in manifest.weights:
                for check_id in ("CS101", "CS102", "CS103", "CS104", "CS105"):
                    add(check_id, entry.path, entry.line)
        elif component == "checkpoints":
            for entry in manifest.checkpoints:
                for check_id in ("CS101", "CS102", "CS103", "CS104", "CS105"):
                    add(check_id, entry.path, entry.line, "checkpoints", None)
        elif component == "licenses":
            line = manifest.licenses.line or manifest.line_of("version")
            for kind, level in _license_kinds(manifest):
                add("CS901", kind, manifest.licenses.lines.get(kind, line), required_by=level)
            if manifest.declares("licenses"):
                for kind, _level in _license_kinds(manifest):
                    add("CS902", kind, manifest.licenses.lines.get(kind, line))
        elif component == "install":
            if manifest.install is None:
                undeclared(component, required_by)
            else:
                for check_id in ("CS201", "CS202"):
                    add(check_id, "", manifest.line_of("install"))
        elif component == "generate":
            for index, step in enumerate(manifest.generate):
                add("CS301", str(index), step.line)
        elif component == "run":
            if manifest.run is None:
                undeclared(component, required_by)
            else:
                for check_id in ("CS401", "CS402", "CS403", "CS404"):
                    add(check_id, "", manifest.line_of("run"))
        elif component == "source":
            add("CS501", "", manifest.line_of("source-form") or manifest.line_of("version"))
            if manifest.architecture:
                add("CS502", "", manifest.architecture[0].line)
            else:
                plan.append(
                    PlannedCheck(
                        BY_ID["CS502"],
                        "source",
                        "",
                        manifest.line_of("version"),
                        BY_ID["CS502"].level,
                        True,
                    )
                )
        elif component == "modify":
            if manifest.modify is not None:
                add("CS405", "", manifest.line_of("modify"))
        elif component == "training":
            if manifest.training is None:
                undeclared(component, required_by)
            else:
                for check_id in ("CS601", "CS602", "CS603"):
                    add(check_id, "", manifest.line_of("training"))
        elif component == "data":
            if manifest.data is None:
                undeclared(component, required_by)
            else:
                for source in manifest.data.sources:
                    add("CS701", source.path or source.url or "", source.line)
                if not manifest.data.sources:
                    add("CS701", "", manifest.data.line)
                add(
                    "CS702",
                    "",
                    manifest.data.card.line if manifest.data.card else manifest.data.line,
                )
                pre = manifest.data.preprocessing
                add("CS703", "", pre.line if pre else manifest.data.line)
        elif component == "evaluation":
            if manifest.evaluation is None:
                undeclared(component, required_by)
            else:
                add("CS801", "", manifest.line_of("evaluation"))
        elif component == "docs":
            line = (
                manifest.line_of("docs")
                if manifest.declares("docs")
                else manifest.line_of("version")
            )
            add("CS903", "", line)
    return plan


def component_label(component: str) -> str:
    """The manifest section a component is declared by, for messages about its absence."""
    return "`architecture`" if component == "source" else f"`{component}`"
