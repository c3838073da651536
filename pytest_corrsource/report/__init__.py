"""Reports: the verdict of a run per manifest, and the files it is written to.

Stage: Results -> Reports. ``build_reports`` rebuilds each manifest's plan (cheap, and the
pytest-xdist controller never collects) and joins it with the results the items sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_corrsource.catalogue import BUILTIN, CheckRegistry
from pytest_corrsource.levels import (
    LevelVerdict,
    MofVerdict,
    classify_mof,
    component_status,
    judge_levels,
)
from pytest_corrsource.manifest import Manifest, ManifestError, load_manifest
from pytest_corrsource.plan import PlannedCheck, build_plan
from pytest_corrsource.report.sanitize import sanitize_data
from pytest_corrsource.results import CheckResult, refuse_unknown_waivers

if TYPE_CHECKING:
    from pytest_corrsource.settings import ReportPaths


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
    # Why planned checks without a result did not run: a -k/-m selection, or pytest stopping
    # at another file's collection error before any check ran.
    not_run: str = "deselected"
    # {backend, pid, net, mount, limits} of the sandbox the steps ran in.
    isolation: dict[str, Any] = field(default_factory=dict)
    # (title, text) added by plugins (pytest_corrsource_report_sections), sanitized.
    sections: list[tuple[str, str]] = field(default_factory=list)

    def add_sections(self, contributed: Iterable[object]) -> None:
        """Keep the ``(title, text)`` pairs each hook implementation returned, as plain text.

        What a plugin returns is checked here: anything but a list of two strings is reported
        as a section saying so, not a crash after every check ran.
        """
        from pytest_corrsource.report.sanitize import sanitize

        for sections in contributed:
            for section in sections if isinstance(sections, (list, tuple)) else [sections]:
                if (
                    isinstance(section, tuple)
                    and len(section) == 2
                    and all(isinstance(part, str) for part in section)
                ):
                    title, text = section
                    self.sections.append((sanitize(title), sanitize(text)))
                else:
                    self.sections.append(
                        (
                            "invalid report section",
                            f"a pytest_corrsource_report_sections hook returned "
                            f"{type(section).__name__}, not a (title, text) pair of strings",
                        )
                    )

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

    def verdict(self) -> LevelVerdict | None:
        """The verdict at the selected level."""
        return next((v for v in self.levels if v.level == self.level), None)

    @property
    def waivers(self) -> list[str]:
        """Waived checks behind the selected level's verdict: "CS404 (reason)"."""
        verdict = self.verdict()
        return verdict.waivers if verdict else []

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
                "message": result.message if result else f"did not run ({self.not_run})",
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
            "waivers": [
                {"id": r.id, "subject": r.subject, "reason": r.data.get("waiver", "")}
                for r in self.results.values()
                if r.outcome == "waived"
            ],
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
        if self.sections:
            out["sections"] = [{"title": t, "text": x} for t, x in self.sections]
        # Every string may come from the repository (messages, subjects, names, paths).
        sanitized: dict[str, Any] = sanitize_data(out)
        return sanitized


def build_reports(
    manifests: Sequence[Path],
    level: str,
    results: Iterable[CheckResult],
    rootpath: Path,
    not_run: str = "deselected",
    sandbox_mode: str = "auto",
    checks: CheckRegistry = BUILTIN,
) -> list[ManifestReport]:
    """One report per manifest from the results gathered; ``not_run`` says why a planned check
    has no result; ``sandbox_mode`` (``--corrsource-sandbox``) which isolation to describe."""
    results = list(results)
    reports = []
    for path in manifests:
        try:
            display = str(path.relative_to(rootpath))
        except ValueError:
            display = str(path)
        report = ManifestReport(path=path, display=display, level=level, not_run=not_run)
        try:
            report.manifest = load_manifest(path, display=display)
            refuse_unknown_waivers(report.manifest, checks)
        except ManifestError as exc:
            report.error = str(exc)
            reports.append(report)
            continue
        report.plan = build_plan(report.manifest, checks)
        for result in results:
            if Path(result.manifest).resolve() == path:
                report.results[result.key] = result
        report.levels = judge_levels(report.plan, report.results)
        report.components = component_status(report.manifest, report.plan, report.results)
        report.mof = classify_mof(report.manifest, report.results)
        report.isolation = _isolation(sandbox_mode, report.manifest)
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


def write_reports(reports: list[ManifestReport], paths: ReportPaths) -> None:
    """Write the report files asked for (JSON, Markdown, MOF record)."""
    from pytest_corrsource.report.markdown import render_markdown

    if paths.json is not None:
        paths.json.parent.mkdir(parents=True, exist_ok=True)
        paths.json.write_text(json.dumps(report_json(reports), indent=2) + "\n", encoding="utf-8")
    if paths.markdown is not None:
        paths.markdown.parent.mkdir(parents=True, exist_ok=True)
        paths.markdown.write_text(render_markdown(reports), encoding="utf-8")
    if paths.mof is not None:
        from pytest_corrsource.report.mof import write_mof

        paths.mof.parent.mkdir(parents=True, exist_ok=True)
        write_mof(str(paths.mof), reports)
