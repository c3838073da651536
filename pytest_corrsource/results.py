"""Run one planned check and turn what happened into a result record.

Stage: check functions -> Results. No pytest here: the pytest item only maps ``outcome`` onto
pass / fail / skip / xfail. A result is a JSON-able dict-like record because it travels from
pytest-xdist workers to the controller inside the test report.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pytest_corrsource.checks import CheckContext, CheckFailed, CheckSkipped, implemented, run_check
from pytest_corrsource.plan import PlannedCheck, component_label

OUTCOMES = ("passed", "failed", "skipped", "not-required")


@dataclass
class CheckResult:
    id: str
    component: str
    subject: str
    outcome: str  # one of OUTCOMES
    message: str  # "" when passed without remarks; the full failure text when failed
    line: int
    seconds: float
    manifest: str = ""  # path of the manifest, as the session knows it
    key: str = ""  # PlannedCheck.key
    required_by: str | None = None
    undeclared: bool = False
    warnings: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckResult:
        return cls(**data)


def failure_text(planned: PlannedCheck, found: str, fix: str | None, details: str = "") -> str:
    """The failure message: what is required, what was found, which clause, how to fix."""
    spec = planned.spec
    lines = [
        f"{spec.id} {planned.component}::{planned.name}: {spec.title}",
        f"  found: {found}",
        f"  requirement: {spec.clause}",
        f"  fix: {fix or spec.fix}",
    ]
    lines.append(f"  more: corrsource explain {spec.id}")
    if details:
        lines.append(details.rstrip())
    return "\n".join(lines)


def execute(planned: PlannedCheck, ctx: CheckContext, level: str) -> CheckResult:
    """Run ``planned`` at ``level``; never raises for a check's own failures."""
    required = planned.required_at(level)
    start = time.perf_counter()
    warnings: list[str] = []
    data: dict[str, Any] = {}
    if planned.undeclared:
        section = component_label(planned.component)
        if required:
            found = f"the manifest declares no {section}, which level `{level}` requires"
            fix = f"declare {section} in the manifest (see the pytest-corrsource README)"
            outcome, message = "failed", failure_text(planned, found, fix)
        else:
            outcome = "skipped"
            message = f"{section} is not declared (optional at level `{level}`)"
    elif not implemented(planned.spec.id):
        outcome = "skipped"
        message = f"{planned.spec.id} is not implemented in this version of pytest-corrsource"
    else:
        try:
            finding = run_check(ctx)
        except CheckFailed as exc:
            text = failure_text(planned, exc.message, exc.fix, exc.details)
            if required:
                outcome, message = "failed", text
            else:
                when = (
                    f"required from level `{planned.required_by}`"
                    if planned.required_by
                    else "informational at every level"
                )
                outcome = "not-required"
                message = f"not required at level `{level}` ({when}):\n{text}"
        except CheckSkipped as exc:
            outcome, message = "skipped", str(exc)
        else:
            outcome, message = "passed", finding.message
            warnings, data = list(finding.warnings), dict(finding.data)
    from pytest_corrsource.report.sanitize import sanitize

    # The message travels to the terminal and JUnit (repr_failure, skip and xfail reasons)
    # and to every report: it may quote what a step printed, so it is sanitized here, once.
    return CheckResult(
        id=planned.spec.id,
        component=planned.component,
        subject=planned.subject,
        outcome=outcome,
        message=sanitize(message),
        line=planned.line,
        seconds=round(time.perf_counter() - start, 3),
        manifest=str(ctx.manifest.path),
        key=planned.key,
        required_by=planned.required_by,
        undeclared=planned.undeclared,
        warnings=[sanitize(w) for w in warnings],
        data=data,
    )
