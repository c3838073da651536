"""Which openness levels a repository meets, and its Model Openness Framework class.

Stage: Results -> verdict. Pure functions over the plan, the results and the manifest.
A level is met only when every check it requires ran and passed: a skipped or deselected
required check leaves the level unverified, never silently met.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pytest_corrsource.catalogue import COMPONENTS
from pytest_corrsource.manifest import Manifest
from pytest_corrsource.plan import PlannedCheck
from pytest_corrsource.results import CheckResult
from pytest_corrsource.vocabulary import LEVELS


@dataclass
class LevelVerdict:
    level: str
    met: bool
    blockers: list[str] = field(default_factory=list)  # why not met, one line per check
    # Required checks that could not run here and were waived: "CS404 (reason)", one per id.
    waivers: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """ "met", "met, with waivers: CS404 (reason)" or "not met"."""
        if not self.met:
            return "not met"
        if self.waivers:
            return "met, with waivers: " + ", ".join(self.waivers)
        return "met"


def judge_levels(plan: list[PlannedCheck], results: dict[str, CheckResult]) -> list[LevelVerdict]:
    """One verdict per level, cumulative: a level is met when all checks it requires passed."""
    verdicts = []
    for level in LEVELS:
        blockers = []
        waivers: list[str] = []
        for planned in plan:
            if not planned.required_at(level):
                continue
            result = results.get(planned.key)
            label = f"{planned.spec.id} {planned.component}::{planned.name}"
            if result is None:
                blockers.append(f"{label}: did not run")
            elif planned.undeclared:
                blockers.append(f"{label}: {planned.component} not declared")
            elif result.outcome == "waived":
                reason = str(result.data.get("waiver") or "no reason given")
                waiver = f"{planned.spec.id} ({reason})"
                if waiver not in waivers:
                    waivers.append(waiver)
            elif result.outcome == "skipped":
                blockers.append(f"{label}: skipped ({result.message.splitlines()[0]})")
            elif result.outcome != "passed":
                blockers.append(f"{label}: failed")
        verdicts.append(LevelVerdict(level, not blockers, blockers, waivers))
    return verdicts


def component_status(
    manifest: Manifest, plan: list[PlannedCheck], results: dict[str, CheckResult]
) -> list[tuple[str, str]]:
    """(component, status) with status one of: verified, failed, present, not declared."""
    rows = []
    builtin = [component for component, _required_by in COMPONENTS]
    added = [p.component for p in plan if p.component not in builtin and p.component != "manifest"]
    for component in [*builtin, *dict.fromkeys(added)]:  # plugins' components after ours
        checks = [p for p in plan if p.component == component]
        declared = _declared(manifest, component) if component in builtin else True
        if not declared:
            rows.append((component, "not declared"))
            continue
        outcomes = [results[p.key].outcome if p.key in results else "not run" for p in checks]
        if any(o in ("failed", "not-required") for o in outcomes):
            rows.append((component, "failed"))
        elif outcomes and all(o == "passed" for o in outcomes):
            rows.append((component, "verified"))
        else:
            rows.append((component, "present"))
    return rows


def _declared(manifest: Manifest, component: str) -> bool:
    if component == "source":
        return bool(manifest.architecture)
    if component == "licenses":
        return manifest.declares("licenses")
    if component == "docs":
        return manifest.declares("docs") or (manifest.root / "README.md").is_file()
    return manifest.declares(component)


# --- Model Openness Framework -----------------------------------------------------------------
# Components per class, cumulative (class III < II < I), as the MOF 1.0 and its reference tool
# (the Model Openness Tool) define them; the names are the tool's exact component names.

MOF_CLASSES: dict[str, tuple[str, ...]] = {
    "III": (
        "Model architecture",
        "Model parameters (Final)",
        "Technical report",
        "Evaluation results",
        "Model card",
        "Data card",
    ),
    "II": ("Training code", "Inference code", "Evaluation code", "Evaluation data"),
    "I": (
        "Research paper",
        "Datasets",
        "Data preprocessing code",
        "Model parameters (Intermediate)",
    ),
}
# The licence kind that governs each component.
MOF_KIND = {
    "Model architecture": "code",
    "Model parameters (Final)": "weights",
    "Technical report": "docs",
    "Evaluation results": "docs",
    "Model card": "docs",
    "Data card": "docs",
    "Training code": "code",
    "Inference code": "code",
    "Evaluation code": "code",
    "Evaluation data": "data",
    "Research paper": "docs",
    "Datasets": "data",
    "Data preprocessing code": "code",
    "Model parameters (Intermediate)": "weights",
}


@dataclass
class MofVerdict:
    mof_class: str  # "I", "II", "III" or "unclassified"
    included: dict[str, bool]  # component -> present, verified and openly licensed
    progress: dict[str, int]  # class -> percent of its cumulative components included
    reasons: dict[str, str]  # component -> why it is not included


def _passed(results: dict[str, CheckResult], *ids: str) -> bool:
    """All results with these ids passed, and at least one ran."""
    found = [r for r in results.values() if r.id in ids and not r.undeclared]
    return bool(found) and all(r.outcome == "passed" for r in found)


def _exists(root: Path, path: str | None) -> bool:
    return bool(path) and (root / str(path)).is_file()


def _card_mentions(root: Path, manifest: Manifest, *words: str) -> bool:
    """The model card has a heading naming one of ``words`` (MOF lets the card carry results
    or data information in place of a separate document)."""
    from pytest_corrsource.safe_io import MAX_DOCUMENT_BYTES, read_text_bounded

    docs = manifest.docs
    card = root / (docs.model_card.path if docs and docs.model_card else "README.md")
    try:
        text = read_text_bounded(card, MAX_DOCUMENT_BYTES)  # a FIFO must not hang the report
    except OSError:
        return False
    headings = [line.lower() for line in text.splitlines() if line.startswith("#")]
    return any(word in h for h in headings for word in words)


def classify_mof(manifest: Manifest, results: dict[str, CheckResult]) -> MofVerdict:
    """The MOF class from the components present, verified by their checks, openly licensed."""
    from pytest_corrsource.checks.licenses import (
        CONTENT_TYPE,
        declared_refs,
        ref_problems,
        resolve_licenses,
    )
    from pytest_corrsource.licensing import LicenseError, judge, parse_expression

    root = manifest.root
    docs = manifest.docs
    paper = _exists(root, docs.paper.path if docs and docs.paper else None)
    data = manifest.data
    evaluation = manifest.evaluation
    present: dict[str, tuple[bool, str]] = {
        "Model architecture": (_passed(results, "CS502"), "architecture not verified (CS502)"),
        "Model parameters (Final)": (
            _passed(results, "CS101", "CS102", "CS103", "CS104", "CS105")
            and all(r.outcome == "passed" for r in results.values() if r.component == "weights"),
            "weights checks did not all pass",
        ),
        "Technical report": (
            _exists(root, docs.technical_report.path if docs and docs.technical_report else None)
            or paper,
            "no `docs.technical-report` (or paper)",
        ),
        "Evaluation results": (
            _exists(root, docs.results.path if docs and docs.results else None)
            or _card_mentions(root, manifest, "result", "evaluation"),
            "no `docs.results` and no results section in the model card",
        ),
        "Model card": (_passed(results, "CS903"), "model card not verified (CS903)"),
        "Data card": (
            (data is not None and data.card is not None and _exists(root, data.card.path))
            or _card_mentions(root, manifest, "data"),
            "no data card",
        ),
        "Training code": (_passed(results, "CS601"), "training code not verified (CS601)"),
        "Inference code": (_passed(results, "CS401"), "inference code not verified (CS401)"),
        "Evaluation code": (
            evaluation is not None and bool(evaluation.code) and _passed(results, "CS801"),
            "evaluation code not verified (CS801)",
        ),
        "Evaluation data": (
            evaluation is not None
            and bool(evaluation.data)
            and all(_exists(root, d.path) for d in evaluation.data),
            "no evaluation data",
        ),
        "Research paper": (paper, "no `docs.paper`"),
        "Datasets": (
            data is not None and bool(data.sources) and _passed(results, "CS701"),
            "datasets not verified (CS701)",
        ),
        "Data preprocessing code": (
            data is not None
            and data.preprocessing is not None
            and bool(data.preprocessing.code)
            and _passed(results, "CS703"),
            "preprocessing code not verified (CS703)",
        ),
        "Model parameters (Intermediate)": (
            bool(manifest.checkpoints)
            and all(
                r.outcome == "passed" for r in results.values() if r.component == "checkpoints"
            ),
            "no verified `checkpoints`",
        ),
    }
    included: dict[str, bool] = {}
    reasons: dict[str, str] = {}
    for component, (ok, reason) in present.items():
        if not ok:
            included[component], reasons[component] = False, reason
            continue
        kind = MOF_KIND[component]
        open_all = True
        for part in resolve_licenses(manifest, kind):
            try:
                expr = parse_expression(part.expression) if part.expression else None
            except LicenseError:
                expr = None
            verdict = judge(expr, CONTENT_TYPE[kind], declared_refs(manifest))
            missing = ref_problems(manifest, expr) if expr is not None and verdict.open else []
            if missing:  # a LicenseRef declared open counts only with its text (as in CS902)
                open_all = False
                reasons[component] = f"licence not open: {missing[0]}"
            elif not verdict.open:
                open_all = False
                reasons[component] = f"licence not open: {verdict.reason}"
        included[component] = open_all
    progress: dict[str, int] = {}
    cumulative: list[str] = []
    for cls in ("III", "II", "I"):
        cumulative += MOF_CLASSES[cls]
        done = sum(included[c] for c in cumulative)
        progress[cls] = round(100 * done / len(cumulative))
    mof_class = "unclassified"
    for cls in ("III", "II", "I"):
        if progress[cls] == 100:
            mof_class = cls
        else:
            break
    return MofVerdict(mof_class, included, progress, reasons)
