"""The terminal summary: components, levels met, MOF class, warnings.

Stage: Reports. Printed by the controller only (never by pytest-xdist workers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_corrsource.report.sanitize import sanitize

if TYPE_CHECKING:
    from pytest_corrsource.report import ManifestReport


def write_summary(reports: list[ManifestReport], tr: Any) -> None:
    for report in reports:
        title = sanitize(f"corresponding source: {report.name or report.display}")
        tr.write_sep("=", title, bold=True)
        if report.error:
            tr.write_line(sanitize(f"manifest error: {report.error}"), red=True)
            continue
        if getattr(tr, "verbosity", 0) >= 0:  # -q keeps levels, warnings and the verdict
            width = max(len(c) for c, _ in report.components)
            for component, status in report.components:
                markup = {"verified": {"green": True}, "failed": {"red": True}}.get(status, {})
                tr.write_line(sanitize(f"  {component:<{width}}  {status}"), **markup)
        if report.isolation:
            full = report.isolation.get("backend") == "bwrap"
            tr.write_line(sanitize(f"isolation: {report.isolation['summary']}"), yellow=not full)
        marks = "  ".join(f"{v.level}: {v.describe()}" for v in report.levels)
        tr.write_line(sanitize(f"levels: {marks}"))
        if report.mof:
            progress = ", ".join(f"{c} {p}%" for c, p in report.mof.progress.items())
            tr.write_line(f"Model Openness Framework class: {report.mof.mof_class} ({progress})")
        for planned in report.plan:
            result = report.results.get(planned.key)
            for warning in result.warnings if result else []:
                text = (
                    f"warning: {planned.spec.id} {planned.subject or planned.component}: {warning}"
                )
                tr.write_line(sanitize(text), yellow=True)
        for title, text in report.sections:  # added by plugins (sanitized when added)
            tr.write_line(sanitize(f"{title}:"), bold=True)
            for line in text.splitlines():
                tr.write_line(sanitize(f"  {line}"))
        if not report.complete:
            missing = sum(1 for p in report.plan if p.key not in report.results)
            tr.write_line(
                f"verdict: not judged — a partial run ({missing} check(s) did not run)",
                yellow=True,
            )
            if report.not_run != "deselected":
                tr.write_line(sanitize(f"  the checks did not run: {report.not_run}"), yellow=True)
                tr.write_line(
                    "  verify the manifest alone with `corrsource check` (or pass the manifest "
                    "file as the only argument), or add --continue-on-collection-errors",
                    yellow=True,
                )
            continue
        if report.passed:
            waived = f", with waivers: {', '.join(report.waivers)}" if report.waivers else ""
            text = sanitize(f"verdict: level {report.level} met{waived}")
            tr.write_line(text, green=True, bold=True)
        else:
            tr.write_line(f"verdict: level {report.level} NOT met", red=True, bold=True)
            for blocker in report.blockers():
                tr.write_line(sanitize(f"  - {blocker}"))
