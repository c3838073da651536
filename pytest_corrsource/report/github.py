"""GitHub Actions: workflow-command annotations at manifest lines, and the step summary.

Stage: Reports. Written by the controller only (never by pytest-xdist workers), once per run.
GitHub shows at most 10 error and 10 warning annotations per step, so the most important come
first (required failures by level, then by check id) and a notice points to the summary.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_corrsource.report.sanitize import sanitize
from pytest_corrsource.vocabulary import LEVELS, level_rank

if TYPE_CHECKING:
    from pytest_corrsource.report import ManifestReport

MAX_PER_KIND = 10  # GitHub's limit per step for each of error and warning
SUMMARY_LIMIT = 1024 * 1024  # GitHub refuses step summaries over 1 MiB


def escape_data(text: str) -> str:
    """Escape a workflow command's message, as the Actions toolkit does."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value (file, title)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workspace_path(path: Path, workspace: str | None) -> str:
    """``path`` relative to GITHUB_WORKSPACE when inside it (GitHub resolves it from there)."""
    if workspace:
        try:
            return path.resolve().relative_to(Path(workspace).resolve()).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def message_data(text: str) -> str:
    """Untrusted *text* as a workflow command's message: sanitized, then escaped."""
    return escape_data(sanitize(text))


def message_property(text: str) -> str:
    """Untrusted *text* as a workflow command's property value: sanitized, then escaped."""
    return escape_property(sanitize(text))


def _short(message: str) -> str:
    """The lines of a failure text that matter in an annotation: found and fix."""
    keep = [
        line.strip() for line in message.splitlines() if line.strip().startswith(("found:", "fix:"))
    ]
    return "\n".join(keep) if keep else message.strip()


def workflow_commands(reports: list[ManifestReport], workspace: str | None) -> list[str]:
    """The workflow commands for these reports, capped at GitHub's limits."""
    errors: list[tuple[tuple[int, str], str]] = []
    warnings: list[tuple[tuple[int, str], str]] = []
    for report in reports:
        file = message_property(workspace_path(report.path, workspace))
        if report.error:
            errors.append(((0, ""), f"::error file={file},title=corrsource%3A manifest::"
                           f"{message_data(report.error)}"))  # fmt: skip
            continue
        for planned in report.plan:
            result = report.results.get(planned.key)
            if result is None:
                continue
            title = message_property(
                f"corrsource: {planned.spec.id} {planned.component}::{planned.name}"
            )
            where = f"file={file},line={planned.line},title={title}"
            order = (level_rank(planned.required_by), planned.spec.id)
            if result.outcome == "failed":
                errors.append((order, f"::error {where}::{message_data(_short(result.message))}"))
            elif result.outcome in ("not-required", "waived"):  # a waiver is never silent
                text = _short(result.message)
                warnings.append((order, f"::warning {where}::{message_data(text)}"))
            for warning in result.warnings:
                # Warnings of passed checks come after failures beyond the level.
                warnings.append(((len(LEVELS) + 1, planned.spec.id),
                                 f"::warning {where}::{message_data(warning)}"))  # fmt: skip
    errors.sort(key=lambda e: e[0])
    warnings.sort(key=lambda w: w[0])
    lines = [line for _, line in errors[:MAX_PER_KIND]] + [
        line for _, line in warnings[:MAX_PER_KIND]
    ]
    dropped = max(0, len(errors) - MAX_PER_KIND) + max(0, len(warnings) - MAX_PER_KIND)
    if dropped:
        lines.append(f"::notice title=corrsource::{dropped} more finding(s): see the step summary")
    return lines


_FENCE_OPEN = re.compile(r"^(`{3,})text$")


def _close_open_fence(markdown: str) -> str:
    """*markdown* (cut anywhere) with the code fence it was cut inside (if any) closed, so the
    note after it, and whatever a later step appends, is not swallowed by the block. A cut
    last line that starts with a backtick is dropped: it could be half a fence.

    Only our own fences (``fenced``: a backtick run of 3+ then ``text``) can open one: outside
    fences untrusted text is escaped, inside them it has no backtick run as long as the fence.
    """
    lines = markdown.split("\n")
    if lines[-1].startswith("`"):
        lines.pop()
    fence: str | None = None
    for line in lines:
        if fence is None:
            match = _FENCE_OPEN.match(line)
            fence = match.group(1) if match else None
        elif line == fence:
            fence = None
    closing = f"\n{fence}" if fence else ""
    return "\n".join(lines) + closing


def append_step_summary(path: str, markdown: str) -> None:
    """Append ``markdown`` to the step summary file, cut to stay under GitHub's limit."""
    data = markdown.encode("utf-8")
    try:
        existing = os.path.getsize(path)
    except OSError:
        existing = 0
    room = SUMMARY_LIMIT - existing - 1024
    if room <= 0:
        return
    if len(data) > room:
        note = b"\n\n*(truncated: the summary exceeded GitHub's 1 MiB limit)*\n"
        cut = room - len(note)
        kept = _close_open_fence(data[:cut].decode("utf-8", "ignore"))
        if len(kept.encode("utf-8")) > cut:  # the closing fence needs room: cut earlier
            excess = len(kept.encode("utf-8")) - cut
            kept = _close_open_fence(data[: cut - 2 * excess].decode("utf-8", "ignore"))
        data = kept.encode("utf-8")[:cut] + note
    with open(path, "ab") as f:
        f.write(data)
