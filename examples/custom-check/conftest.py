"""A house rule as a pytest-corrsource check: the model card reports evaluation results.

pytest loads this file before collecting (it sits beside the manifest given on the command
line), so the check joins the run: planned, run, levelled, waivable, reported and explained
(`corrsource explain XORG101`) like the built-in ones.
"""

from __future__ import annotations

import re

import pytest

from pytest_corrsource import CheckContext, CheckFailed, CheckSpec, Finding, ManifestReport

# A Markdown table whose header row has a "metric" column, then its |---| separator.
EVAL_TABLE = re.compile(r"^\|[^\n]*\bmetric\b[^\n]*\|\n\|[ :|-]+\|$", re.IGNORECASE | re.MULTILINE)


def check_evaluation_table(ctx: CheckContext) -> Finding:
    card = ctx.manifest.docs.model_card if ctx.manifest.docs else None
    if card is None:
        raise CheckFailed("the manifest declares no model card", fix="declare `docs.model-card`")
    text = (ctx.root / card.path).read_text(encoding="utf-8", errors="replace")[:1_000_000]
    match = EVAL_TABLE.search(text)
    if match is None:
        raise CheckFailed(
            f"the model card has no evaluation table ({card.path})",
            fix="add a Markdown table with a `metric` column to the model card",
        )
    rows = text[match.end() :].lstrip("\n").split("\n\n", 1)[0].count("\n") + 1
    return Finding(f"{card.path} reports {rows} evaluation result(s)", data={"rows": rows})


EVALUATION_TABLE = CheckSpec(
    id="XORG101",
    component="docs",
    check="evaluation-table",
    title="the model card reports evaluation results in a table with a `metric` column",
    level="open-weights",
    clause="house rule: no model is released without its evaluation results",
    fix="add a Markdown table with a `metric` column to the model card",
    why="Users compare models by their evaluation results; the organisation requires them in "
    "the model card of every release, in a table a reader and a script can both find.",
    snippet="docs:\n  model-card: README.md\n",
    after=("CS903",),
    run=check_evaluation_table,
)


def pytest_corrsource_checks(config: pytest.Config) -> list[CheckSpec]:
    return [EVALUATION_TABLE]


def pytest_corrsource_report_sections(report: ManifestReport) -> list[tuple[str, str]]:
    result = next((r for r in report.results.values() if r.id == "XORG101"), None)
    if result is None:
        return []
    return [("house rules", f"XORG101 evaluation table: {result.outcome}")]
