"""The Markdown report: what ``--corrsource-report-md`` writes and a GitHub step summary shows.

Stage: Reports. Pure text from :class:`ManifestReport` objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_corrsource.report.sanitize import code, fenced, inline

if TYPE_CHECKING:
    from pytest_corrsource.report import ManifestReport

_ICON = {
    "passed": "✅ passed",
    "failed": "❌ failed",
    "skipped": "⏭️ skipped",
    "not-required": "➖ not required",
    "waived": "⚠️ waived",
}


def cell(text: str) -> str:
    """Text made safe for one Markdown table cell (untrusted: see :func:`inline`)."""
    return inline(text)


def render_markdown(reports: list[ManifestReport]) -> str:
    parts = []
    for report in reports:
        parts.append(render_one(report))
    return "\n".join(parts)


def render_one(report: ManifestReport) -> str:
    verdict = "✅ PASSED" if report.passed else "❌ NOT MET"
    if report.passed and report.waivers:
        verdict += f" with waivers: {inline(', '.join(report.waivers))}"
    lines = [
        f"## Corresponding Source: {inline(report.name or report.display)}",
        "",
        f"**{verdict}** at level `{report.level}` · manifest {code(report.display)}",
        "",
    ]
    if report.error:
        lines += [fenced(report.error), ""]
        return "\n".join(lines)
    if report.isolation:
        lines += [f"Isolation: {cell(str(report.isolation['summary']))}", ""]
    lines.append("| level | met |")
    lines.append("|---|---|")
    for verdict_of in report.levels:
        met = verdict_of.describe().replace("met", "yes", 1) if verdict_of.met else "no"
        lines.append(f"| `{verdict_of.level}` | {cell(met)} |")
    lines.append("")
    if report.mof:
        progress = ", ".join(f"class {c}: {p}%" for c, p in report.mof.progress.items())
        lines += [f"Model Openness Framework class: **{report.mof.mof_class}** ({progress})", ""]
    lines += ["| component | status |", "|---|---|"]
    lines += [f"| {cell(c)} | {cell(s)} |" for c, s in report.components]
    lines += ["", "| check | subject | outcome | line | seconds |", "|---|---|---|---|---|"]
    for planned in report.plan:
        result = report.results.get(planned.key)
        outcome = _ICON.get(result.outcome, result.outcome) if result else "did not run"
        seconds = f"{result.seconds:.2f}" if result else ""
        lines.append(
            f"| {planned.spec.id} {cell(planned.component)}::{cell(planned.spec.check)} | "
            f"{cell(planned.subject)} | {outcome} | {planned.line} | {seconds} |"
        )
    for title, text in report.sections:  # added by plugins: plain text, shown as such
        lines += ["", f"### {inline(title)}", "", fenced(text)]
    failures = [
        (p, report.results[p.key])
        for p in report.plan
        if p.key in report.results and report.results[p.key].outcome == "failed"
    ]
    if failures:
        lines += ["", "### Failures", ""]
        for planned, result in failures:
            lines += [
                f"**{planned.spec.id}** {code(f'{report.display}:{planned.line}')}",
                "",
                fenced(result.message),
                "",
            ]
    return "\n".join(lines) + "\n"
