"""CS901 licences declared, CS902 licences open, CS903 model card.

Licence resolution follows the Model Openness Tool: a component's own licence, else the
licence for its kind (code / weights / data / docs), else the distribution licence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_corrsource.checks.api import CheckContext, CheckFailed, Finding
from pytest_corrsource.manifest import Manifest
from pytest_corrsource.safe_io import read_head, regular_file_problem

# Files that carry licence texts, as REUSE and common practice name them.
LICENSE_FILE_PREFIXES = ("license", "licence", "copying", "notice")

# The MOF content type of each kind of component. Weights are data in the MOF, which also
# accepts open source licences for them: "parameters" (see licensing.judge).
CONTENT_TYPE = {"code": "code", "weights": "parameters", "data": "data", "docs": "document"}


# Only the start of a model card is read for its front matter: a card is text, and a hostile
# multi-gigabyte README.md must not be loaded to find three lines of YAML.
MAX_FRONT_MATTER_BYTES = 256 * 1024

# Why the licence text itself is required from `corresponding-source` up.
TEXT_CLAUSE = (
    "GPLv3 §4 and Apache-2.0 §4(a) oblige giving recipients a copy of the licence with the work"
)


@dataclass(frozen=True)
class Resolved:
    """The licence of one part of a kind, and where it came from."""

    part: str  # "weights/model.safetensors", "code", "data/corpus.txt"
    expression: str | None
    source: str  # "component", "licenses.weights", "licenses.distribution", "model card
    # README.md" (a Hugging Face card's front matter, when the manifest declares none), "none"


def card_path(manifest: Manifest) -> tuple[Path, str | None]:
    """The model card (declared, else README.md) and the declared path, if any."""
    docs = manifest.docs
    declared = docs.model_card.path if docs and docs.model_card else None
    return manifest.root / (declared or "README.md"), declared


def card_front_matter(manifest: Manifest) -> dict[str, object] | None:
    """The model card's front matter; None when it has none. Raises CheckFailed when the
    front matter is not valid YAML, OSError when the card cannot be read."""
    path, _declared = card_path(manifest)
    head = read_head(path, MAX_FRONT_MATTER_BYTES)  # a FIFO or a device is refused, not read
    # utf-8-sig: a byte-order mark must not hide the front matter's opening `---`.
    return _front_matter(head.decode("utf-8-sig", errors="replace"))


def card_license(manifest: Manifest) -> str | None:
    """The SPDX expression of the model card's `license:` (a Hub id or an expression), or None
    when the card has no usable one (absent, "other", unreadable, not a licence)."""
    from pytest_corrsource.licensing import LicenseError, normalize

    try:
        front = card_front_matter(manifest)
    except (OSError, CheckFailed):
        return None
    value = front.get("license") if front else None
    if isinstance(value, list):
        value = " OR ".join(str(x) for x in value)
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return normalize(value)
    except LicenseError:
        return None


def resolve_licenses(manifest: Manifest, kind: str) -> list[Resolved]:
    """Each part of ``kind`` with its licence (component > kind > distribution > the model
    card's front matter: a Hugging Face repository declares its licence there)."""
    lic = manifest.licenses
    by_kind = {"code": lic.code, "weights": lic.weights, "data": lic.data, "docs": lic.docs}[kind]
    fallback, source = (
        (by_kind, f"licenses.{kind}") if by_kind else (lic.distribution, "licenses.distribution")
    )
    if fallback is None:
        fallback = card_license(manifest)
        source = f"model card {card_path(manifest)[0].name}" if fallback else "none"
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
    exists.

    For the weights (required from `open-weights`) a missing licence text is a warning when
    every licence is a known SPDX id: the id names the terms. For code and data (required from
    `corresponding-source`) the text is required (GPLv3 §4, Apache-2.0 §4(a)).
    """
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
    no_file = "no licence file (LICENSE, LICENCE, COPYING or LICENSES/) in the repository"
    if not files and kind == "weights" and not problems and not warnings:
        warnings.append(
            f"licence text missing: {no_file}; required from `corresponding-source` ({TEXT_CLAUSE})"
        )
    elif not files:
        problems.append(no_file + (f" ({TEXT_CLAUSE})" if kind != "weights" else ""))
    if problems:
        raise CheckFailed(
            "; ".join(problems),
            fix=f"declare `licenses.{kind}` or `licenses.distribution` with an SPDX expression "
            "and commit the licence text (LICENSE)",
        )
    expressions = sorted({p.expression for p in resolved if p.expression})
    return Finding(
        message=f"{kind}: {', '.join(expressions)} ({', '.join(files) or 'no licence text'})",
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


def _spdx(text: str) -> str | None:
    from pytest_corrsource.licensing import LicenseError, normalize

    try:
        return normalize(text)
    except LicenseError:
        return None


def check_model_card(ctx: CheckContext) -> Finding:
    """CS903: the model card exists; its front-matter licence agrees with the manifest."""
    from pytest_corrsource.licensing import same_license

    path, declared = card_path(ctx.manifest)
    special = regular_file_problem(path)
    if special is not None:
        raise CheckFailed(f"the model card {path.name} is {special}, not a regular file")
    if not path.is_file():
        where = f"`docs.model-card: {declared}`" if declared else "README.md (not declared)"
        raise CheckFailed(f"no model card: {where} does not exist")
    try:
        front = card_front_matter(ctx.manifest)
    except OSError as exc:
        raise CheckFailed(f"the model card cannot be read: {exc.strerror}") from None
    name = path.name
    if front is None or front.get("license") in (None, "", []):  # `license:` left empty
        return Finding(
            message=f"{name} exists",
            warnings=[f"{name} has no front-matter `license:` to compare with the manifest"],
        )
    card_value = front["license"]
    if isinstance(card_value, list):
        card_value = " OR ".join(str(x) for x in card_value)
    card_text = str(card_value)
    if card_text.lower() in ("other", "unknown"):
        label = front.get("license_name") or card_text
        return Finding(warnings=[f"{name} says `license: {card_text}` ({label}); compare by hand"])
    # The card speaks for the repository: it agrees when it names the distribution licence or
    # the weights licence (a card often states the weights' terms, the manifest both).
    weights = [p for p in resolve_licenses(ctx.manifest, "weights") if p.expression]
    candidates: dict[str, str] = {}
    if ctx.manifest.licenses.distribution:
        candidates[ctx.manifest.licenses.distribution] = "distribution"
    for part in weights:
        candidates.setdefault(str(part.expression), "weights")
    if not candidates:
        raise CheckFailed(
            f"{name} declares `license: {card_text}` but the manifest declares no licence "
            "for the weights",
            fix=f"declare `licenses.weights: {_spdx(card_text) or card_text}`",
        )
    for expression, what in candidates.items():
        if same_license(card_text, expression):
            source = next((p.source for p in weights if p.expression == expression), "")
            origin = " (taken from the model card)" if source.startswith("model card") else ""
            return Finding(
                message=f"{name}: license {card_text} agrees with the {what} licence "
                f"{expression}{origin}"
            )
    listed = " nor ".join(f"the {what} licence {e}" for e, what in candidates.items())
    raise CheckFailed(
        f"{name} front matter says `license: {card_text}` "
        f"({_spdx(card_text) or 'not an SPDX licence'}), which is neither {listed}"
        if len(candidates) > 1
        else f"{name} front matter says `license: {card_text}` "
        f"({_spdx(card_text) or 'not an SPDX licence'}) but the manifest's "
        f"{next(iter(candidates.values()))} licence is {next(iter(candidates))}",
        fix="make the model card's `license:` and the manifest agree",
    )
