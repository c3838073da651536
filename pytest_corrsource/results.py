"""Run one planned check and turn what happened into a result record.

Stage: check functions -> Results. No pytest here: the pytest item only maps ``outcome`` onto
pass / fail / skip / xfail. A result is a JSON-able dict-like record because it travels from
pytest-xdist workers to the controller inside the test report.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pytest_corrsource.catalogue import BUILTIN, BY_ID, CUSTOM_ID, CheckRegistry
from pytest_corrsource.checks.api import (
    CheckContext,
    CheckFailed,
    CheckSkipped,
    CheckUnverifiable,
    Finding,
)
from pytest_corrsource.manifest import Manifest, ManifestError
from pytest_corrsource.plan import PlannedCheck, build_plan, component_label
from pytest_corrsource.vocabulary import Outcome

_BLOCKING = ("failed", "not-required", "skipped")
_WAIVER = re.compile(r"(CS[0-9]{3}|X[A-Z]{0,8}[0-9]{3})(?:=(.*))?", re.DOTALL)


@dataclass
class CheckResult:
    id: str
    component: str
    subject: str
    outcome: Outcome
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


def parse_waiver(text: str) -> tuple[str, str]:
    """``CS404`` or ``CS404=reason`` -> (id, reason). Raises ValueError for anything else."""
    match = _WAIVER.fullmatch(text.strip())
    # An added check's id (X…) is known only once plugins are loaded: accepted by its shape.
    if match is None or not (match.group(1) in BY_ID or CUSTOM_ID.fullmatch(match.group(1))):
        raise ValueError(
            f"`{text}` is not a waiver: write a known check id, optionally with a reason "
            "(CS404 or CS404=no network namespaces on this runner)"
        )
    return match.group(1), (match.group(2) or "").strip()


def refuse_unknown_waivers(manifest: Manifest, checks: CheckRegistry) -> None:
    """A ``waive:`` key naming no check of this run is a manifest error (file:line), not a
    waiver silently unused: checks added by plugins are known only once they are loaded."""
    for check_id in manifest.waive:
        if check_id not in checks:
            raise ManifestError(
                manifest.display or manifest.path.name,
                manifest.waive_lines.get(check_id, 0),
                1,
                f"`{check_id}` is not a check id (see `corrsource checks`)",
                f"waive.{check_id}",
            )


def waivers_for(ctx: CheckContext) -> dict[str, str]:
    """The waivers in force: the manifest's ``waive:``, then the command line's (which win)."""
    return {**ctx.manifest.waive, **dict(ctx.options.waivers)}


def _short(result: CheckResult) -> str:
    """One line saying why ``result`` did not pass, for "blocked by" messages."""
    if "blocked_by" in result.data:
        return str(result.data.get("blocked_reason", ""))
    lines = result.message.splitlines()
    found = next((line for line in lines if line.startswith("  found: ")), None)
    text = found.removeprefix("  found: ") if found else (lines[0] if lines else result.outcome)
    text = text.removeprefix("not required at level ")
    return text if len(text) <= 160 else text[:157] + "..."


def _plan(ctx: CheckContext, checks: CheckRegistry) -> list[PlannedCheck]:
    plan: list[PlannedCheck] = ctx.state.once(
        f"plan:{ctx.manifest.path}", lambda: build_plan(ctx.manifest, checks)
    )
    return plan


def prerequisites(planned: PlannedCheck, plan: list[PlannedCheck]) -> list[PlannedCheck]:
    """The planned checks ``planned`` waits for (``CheckSpec.after``), in order."""
    found: list[PlannedCheck] = []
    for check_id in planned.spec.after:
        candidates = [p for p in plan if p.spec.id == check_id and not p.undeclared]
        same = [
            p
            for p in candidates
            if p.component == planned.component and p.subject == planned.subject
        ]
        found += same or [p for p in candidates if p.component == p.spec.component]
    return found


def run_planned(
    planned: PlannedCheck, ctx: CheckContext, level: str, checks: CheckRegistry = BUILTIN
) -> CheckResult:
    """Run ``planned`` at ``level``; never raises for a check's own failures.

    Memoised per process in ``ctx.state``: a check run as another's prerequisite is not run a
    second time for its own item (under pytest-xdist each worker runs what it needs).
    """
    key = f"result:{ctx.manifest.path}:{planned.key}:{level}"
    result: CheckResult = ctx.state.once(key, lambda: _run(planned, ctx, level, checks))
    return result


def _blocker(
    planned: PlannedCheck, ctx: CheckContext, level: str, checks: CheckRegistry
) -> CheckResult | None:
    """The first prerequisite that did not pass (its result), or None."""
    for pre in prerequisites(planned, _plan(ctx, checks)):
        pre_ctx = dataclasses.replace(
            ctx, check_id=pre.spec.id, subject=pre.subject, component=pre.component
        )
        result = run_planned(pre, pre_ctx, level, checks)
        if result.outcome != "passed":
            return result
    return None


def _run(
    planned: PlannedCheck, ctx: CheckContext, level: str, checks: CheckRegistry
) -> CheckResult:
    required = planned.required_at(level)
    start = time.perf_counter()
    warnings: list[str] = []
    data: dict[str, Any] = {}
    waivers = waivers_for(ctx)
    waiver = waivers.get(planned.spec.id)
    blocker = None if planned.undeclared else _blocker(planned, ctx, level, checks)
    outcome: Outcome
    if blocker is not None and blocker.outcome in _BLOCKING:
        root = blocker.data.get("blocked_by", blocker.id)
        reason = _short(blocker)
        outcome, message = "skipped", f"blocked by {root} ({reason})"
        data = {"blocked_by": root, "blocked_reason": reason}
    elif planned.undeclared:
        section = component_label(planned.component)
        if required:
            found = f"the manifest declares no {section}, which level `{level}` requires"
            fix = f"declare {section} in the manifest (see the pytest-corrsource README)"
            outcome, message = "failed", failure_text(planned, found, fix)
        else:
            outcome = "skipped"
            message = f"{section} is not declared (optional at level `{level}`)"
    else:
        try:
            if blocker is not None:  # waived: this check cannot run here either
                raise CheckUnverifiable(f"it needs {blocker.id}, which was waived")
            finding = planned.spec.implementation()(ctx) or Finding()
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
            if waiver is not None:
                warnings.append(
                    f"the waiver for {planned.spec.id} does not apply: the check ran and failed "
                    "(a waiver only covers a check that cannot run on this machine)"
                )
        except CheckSkipped as exc:
            outcome, message = _unverified(planned, exc, required, waiver)
            if outcome == "waived":
                data = {"waiver": waiver}
        else:
            outcome, message = "passed", finding.message
            warnings, data = list(finding.warnings), dict(finding.data)
            if waiver is not None:
                warnings.append(f"unused waiver for {planned.spec.id}: the check passed")
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


def _unverified(
    planned: PlannedCheck, exc: CheckSkipped, required: bool, waiver: str | None
) -> tuple[Outcome, str]:
    """(outcome, message) for a check that could not run.

    Not required: skipped. Required: failed "could not be verified", unless waived; a skipped
    required check must never leave "exit 1 with nothing failed", nor pass silently.
    """
    if not required:
        return "skipped", str(exc)
    where = " on this machine" if isinstance(exc, CheckUnverifiable) else ""
    found = f"could not be verified{where}: {exc}"
    if waiver is not None:
        because = f" ({waiver})" if waiver else ""
        return "waived", f"waived{because}: {found}"
    fix = (
        f"run the checks where this is possible, or waive it explicitly: "
        f"--corrsource-waive {planned.spec.id}=<reason> (or `waive: {{{planned.spec.id}: "
        '<reason>}` in the manifest); the level then reads "met, with waivers"'
    )
    return "failed", failure_text(planned, found, fix)
