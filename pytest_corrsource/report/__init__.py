"""Reports: the verdict of a run per manifest, and the files it is written to.

Stage: Results -> Reports. ``build_reports`` rebuilds each manifest's plan (cheap, and the
pytest-xdist controller never collects) and joins it with the results the items sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_corrsource.levels import (
    LevelVerdict,
    MofVerdict,
    classify_mof,
    component_status,
    judge_levels,
)
from pytest_corrsource.manifest import Manifest, ManifestError, load_manifest
from pytest_corrsource.plan import PlannedCheck, build_plan
from pytest_corrsource.results import CheckResult

if TYPE_CHECKING:
    from pytest_corrsource.session import CorrSourceSession


@dataclass
class ManifestReport:
    path: Path
    display: str  # relative to the rootdir
    level: str
    manifest: Manifest | None = None
    error: str | None = None  # the manifest could not be loaded
    plan: list[PlannedCheck] = field(default_factory=list)
    results: dict[str, CheckResult] = field(default_factory=dict)  # PlannedCheck.key -> result
    levels: list[LevelVerdict] = field(default_factory=list)
    components: list[tuple[str, str]] = field(default_factory=list)
    mof: MofVerdict | None = None
    # {backend, pid, net, mount, limits} of the sandbox the steps ran in.
    isolation: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.manifest.name if self.manifest else ""

    @property
    def levels_met(self) -> list[str]:
        return [v.level for v in self.levels if v.met]

    @property
    def passed(self) -> bool:
        return self.error is None and self.level in self.levels_met

    @property
    def complete(self) -> bool:
        """Every planned check produced a result (no -k/-m/deselection cut the run short)."""
        return all(p.key in self.results for p in self.plan)

    def blockers(self) -> list[str]:
        for verdict in self.levels:
            if verdict.level == self.level:
                return verdict.blockers
        return []

    def to_json(self) -> dict[str, Any]:
        checks = []
        for planned in self.plan:
            result = self.results.get(planned.key)
            entry: dict[str, Any] = {
                "id": planned.spec.id,
                "component": planned.component,
                "subject": planned.subject,
                "check": planned.name,
                "outcome": result.outcome if result else "skipped",
                "message": result.message if result else "did not run (deselected)",
                "line": planned.line,
                "seconds": result.seconds if result else 0.0,
                "required_by": planned.required_by,
            }
            if result and result.warnings:
                entry["warnings"] = result.warnings
            if result and result.data:
                entry["data"] = result.data
            checks.append(entry)
        out: dict[str, Any] = {
            "manifest": self.display,
            "name": self.name,
            "level": self.level,
            "passed": self.passed,
            "levels_met": self.levels_met,
            "mof_class": self.mof.mof_class if self.mof else "unclassified",
            "checks": checks,
        }
        if self.error:
            out["error"] = self.error
        if self.mof:
            out["mof"] = {
                "class": self.mof.mof_class,
                "progress": self.mof.progress,
                "components": {
                    name: {
                        "included": ok,
                        **({"reason": self.mof.reasons[name]} if name in self.mof.reasons else {}),
                    }
                    for name, ok in self.mof.included.items()
                },
            }
        out["components"] = dict(self.components)
        if self.isolation:
            out["isolation"] = self.isolation
        return out


def build_reports(session: CorrSourceSession) -> list[ManifestReport]:
    reports = []
    rootpath = session.config.rootpath
    for path in session.manifests:
        try:
            display = str(path.relative_to(rootpath))
        except ValueError:
            display = str(path)
        report = ManifestReport(path=path, display=display, level=session.options.level)
        try:
            report.manifest = load_manifest(path, display=display)
        except ManifestError as exc:
            report.error = str(exc)
            reports.append(report)
            continue
        report.plan = build_plan(report.manifest)
        for result in session.results.values():
            if Path(result.manifest).resolve() == path:
                report.results[result.key] = result
        report.levels = judge_levels(report.plan, report.results)
        report.components = component_status(report.manifest, report.plan, report.results)
        report.mof = classify_mof(report.manifest, report.results)
        report.isolation = _isolation(session.options.sandbox, report.manifest)
        reports.append(report)
    return reports


def _isolation(mode: str, manifest: Manifest) -> dict[str, Any]:
    from pytest_corrsource.sandbox.backends import SandboxUnavailable, select_backend
    from pytest_corrsource.sandbox.limits import Limits

    try:
        backend = select_backend(mode)
        limits = Limits.from_manifest(manifest.limits)
    except (SandboxUnavailable, ValueError) as exc:
        return {"backend": "unavailable", "summary": str(exc)}
    return {**backend.isolation(limits), "summary": backend.summary()}


def report_json(reports: list[ManifestReport]) -> dict[str, Any]:
    """The JSON report: one manifest's object, or ``{"passed", "manifests": [...]}``."""
    if len(reports) == 1:
        return reports[0].to_json()
    return {"passed": all(r.passed for r in reports), "manifests": [r.to_json() for r in reports]}


def write_reports(session: CorrSourceSession, reports: list[ManifestReport]) -> None:
    """Write the files asked for on the command line or in the ini file."""
    from pytest_corrsource.report.markdown import render_markdown

    config = session.config
    json_path = config.getoption("corrsource_report") or str(
        config.getini("corrsource_report") or ""
    )
    md_path = config.getoption("corrsource_report_md")
    base = config.invocation_params.dir
    if json_path:
        target = base / json_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(report_json(reports), indent=2) + "\n", encoding="utf-8")
        if not md_path:
            md_path = str(target) + ".md"
    if md_path:
        target = base / md_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render_markdown(reports), encoding="utf-8")
    mof_path = config.getoption("corrsource_mof")
    if mof_path:
        from pytest_corrsource.report.mof import write_mof

        target = base / mof_path
        target.parent.mkdir(parents=True, exist_ok=True)
        write_mof(str(target), reports)
