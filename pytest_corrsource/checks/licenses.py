"""CS901 licences declared, CS902 licences open, CS903 model card.

Licence resolution follows the Model Openness Tool: a component's own licence, else the
licence for its kind (code / weights / data / docs), else the distribution licence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_corrsource.checks import CheckContext, CheckFailed, CheckFunction, Finding
from pytest_corrsource.manifest import Manifest
from pytest_corrsource.safe_io import MAX_DOCUMENT_BYTES, read_text_bounded, regular_file_problem

# Files that carry licence texts, as REUSE and common practice name them.
LICENSE_FILE_PREFIXES = ("license", "licence", "copying", "notice")

# The MOF content type of each kind of component (weights are data in the MOF).
CONTENT_TYPE = {"code": "code", "weights": "data", "data": "data", "docs": "document"}


@dataclass(frozen=True)
class Resolved:
    """The licence of one part of a kind, and where it came from."""

    part: str  # "weights/model.safetensors", "code", "data/corpus.txt"
    expression: str | None
    source: str  # "component", "licenses.weights", "licenses.distribution", or "none"


def resolve_licenses(manifest: Manifest, kind: str) -> list[Resolved]:
    """Each part of ``kind`` with its licence (component > kind > distribution)."""
    lic = manifest.licenses
    by_kind = {"code": lic.code, "weights": lic.weights, "data": lic.data, "docs": lic.docs}[kind]
    fallback, source = (
        (by_kind, f"licenses.{kind}") if by_kind else (lic.distribution, "licenses.distribution")
    )
    if fallback is None:
        source = "none"
    if kind == "weights":
        return [
            Resolved(e.path, e.license, "component")
            if e.license
            else Resolved(e.path, fallback, source)
            for e in manifest.weights
        ]
    if kind == "data" and manifest.data is not None and manifest.data.sources:
        return [
            Resolved(s.path or s.url or "", s.license, "component")
            if s.license
            else Resolved(s.path or s.url or "", fallback, source)
            for s in manifest.data.sources
        ]
    return [Resolved(kind, fallback, source)]


def license_files(root: Path) -> list[str]:
    names = []
    for child in sorted(root.iterdir()):
        lower = child.name.lower()
        if child.is_file() and lower.startswith(LICENSE_FILE_PREFIXES):
            names.append(child.name)
        elif child.is_dir() and lower == "licenses":
            names += [f"{child.name}/{f.name}" for f in sorted(child.iterdir()) if f.is_file()]
    return names


def check_declared(ctx: CheckContext) -> Finding:
    """CS901: every part of this kind resolves to a valid licence expression; a licence file
    exists."""
    from pytest_corrsource.licensing import LicenseError, parse_expression, unknown_ids

    kind = ctx.subject
    problems: list[str] = []
    warnings: list[str] = []
    resolved = resolve_licenses(ctx.manifest, kind)
    for part in resolved:
        if part.expression is None:
            problems.append(
                f"{part.part} has no licence (no component licence, no `licenses.{kind}`, no "
                "`licenses.distribution`): unlicensed is never open"
            )
            continue
        try:
            expr = parse_expression(part.expression)
        except LicenseError as exc:
            problems.append(
                f"{part.part}: `{part.expression}` ({part.source}) is not a valid "
                f"SPDX expression: {exc}"
            )
            continue
        unknown = sorted(unknown_ids(expr))
        if unknown:
            warnings.append(f"{part.part}: {', '.join(unknown)} not on the SPDX licence list")
    files = license_files(ctx.root)
    if not files:
        problems.append(
            "no licence file (LICENSE, LICENCE, COPYING or LICENSES/) in the repository"
        )
    if problems:
        raise CheckFailed(
            "; ".join(problems),
            fix=f"declare `licenses.{kind}` or `licenses.distribution` with an SPDX expression "
            "and commit the licence text (LICENSE)",
        )
    expressions = sorted({p.expression for p in resolved if p.expression})
    return Finding(
        message=f"{kind}: {', '.join(expressions)} ({', '.join(files)})",
        warnings=warnings,
        data={"licenses": expressions, "files": files},
    )


def check_open(ctx: CheckContext) -> Finding:
    """CS902: every licence of this kind is open; warn when not type-appropriate."""
    from pytest_corrsource.licensing import LicenseError, judge, parse_expression

    kind = ctx.subject
    content_type = CONTENT_TYPE[kind]
    closed: list[str] = []
    warnings: list[str] = []
    for part in resolve_licenses(ctx.manifest, kind):
        try:
            expr = parse_expression(part.expression) if part.expression else None
        except LicenseError as exc:
            closed.append(f"{part.part}: `{part.expression}` is not a valid expression ({exc})")
            continue
        verdict = judge(expr, content_type)
        if not verdict.open:
            closed.append(f"{part.part}: {verdict.reason}")
        elif not verdict.type_appropriate:
            warnings.append(
                f"{part.part}: {part.expression} is open but not a typical licence for "
                f"{content_type} (the MOF asks for a type-appropriate open licence)"
            )
    if closed:
        raise CheckFailed("; ".join(closed))
    return Finding(warnings=warnings)


def _front_matter(text: str) -> dict[str, object] | None:
    """The YAML front matter of a Hugging Face style model card, or None when absent."""
    import yaml

    if not text.startswith("---"):
        return None
    end = text.find("\n---", 3)
    if end == -1:
        return None
    try:
        data = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        raise CheckFailed("the model card's front matter is not valid YAML") from None
    return data if isinstance(data, dict) else None


def check_model_card(ctx: CheckContext) -> Finding:
    """CS903: the model card exists; its front-matter licence agrees with the manifest."""
    from pytest_corrsource.licensing import normalize, same_license

    docs = ctx.manifest.docs
    declared = docs.model_card.path if docs and docs.model_card else None
    card_path = ctx.root / (declared or "README.md")
    special = regular_file_problem(card_path)
    if special is not None:
        raise CheckFailed(f"the model card {card_path.name} is {special}, not a regular file")
    if not card_path.is_file():
        where = f"`docs.model-card: {declared}`" if declared else "README.md (not declared)"
        raise CheckFailed(f"no model card: {where} does not exist")
    try:
        # utf-8-sig: a byte-order mark must not hide the front matter's opening `---`.
        text = read_text_bounded(card_path, MAX_DOCUMENT_BYTES, encoding="utf-8-sig")
    except OSError as exc:
        raise CheckFailed(f"the model card cannot be read: {exc.strerror}") from None
    front = _front_matter(text)
    name = card_path.name
    if front is None or front.get("license") in (None, "", []):  # `license:` left empty
        return Finding(
            message=f"{name} exists",
            warnings=[f"{name} has no front-matter `license:` to compare with the manifest"],
        )
    card_license = front["license"]
    if isinstance(card_license, list):
        card_license = " OR ".join(str(x) for x in card_license)
    card_license = str(card_license)
    weights = resolve_licenses(ctx.manifest, "weights")
    manifest_license = weights[0].expression if weights else None
    if card_license.lower() in ("other", "unknown"):
        label = front.get("license_name") or card_license
        return Finding(
            warnings=[f"{name} says `license: {card_license}` ({label}); compare by hand"]
        )
    if manifest_license is None:
        raise CheckFailed(
            f"{name} declares `license: {card_license}` but the manifest declares no licence "
            "for the weights",
            fix=f"declare `licenses.weights: {normalize(card_license) or card_license}`",
        )
    if not same_license(card_license, manifest_license):
        raise CheckFailed(
            f"{name} front matter says `license: {card_license}` "
            f"({normalize(card_license) or 'not an SPDX licence'}) but the manifest's weights "
            f"licence is {manifest_license}",
            fix="make the model card's `license:` and the manifest agree",
        )
    return Finding(message=f"{name}: license {card_license} agrees with {manifest_license}")


CHECKS: dict[str, CheckFunction] = {
    "CS901": check_declared,
    "CS902": check_open,
    "CS903": check_model_card,
}
