"""CS901 licences declared, CS902 licences open, CS903 model card.

Licence resolution follows the Model Openness Tool: a component's own licence, else the
licence for its kind (code / weights / data / docs), else the distribution licence.

A ``LicenseRef-`` licence is not on the SPDX list, so nothing but the manifest can say what it
is: ``licenses.refs`` names its text (which must be a file in the repository) and whether it is
open, and the report says "declared open by the manifest", never OSI-approved.

A licence declared for the data (or the weights) is that part's licence, not the repository's:
its text is looked for beside the part and under REUSE's ``LICENSES/``, and the root LICENSE,
which holds the code's licence, is not reported as its text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from pytest_corrsource.checks.api import CheckContext, CheckFailed, Finding
from pytest_corrsource.manifest import LicenseRefEntry, Manifest
from pytest_corrsource.safe_io import read_head, regular_file_problem

if TYPE_CHECKING:
    from pytest_corrsource.licensing import LicenseExpr, RefDeclaration

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


def declared_refs(manifest: Manifest) -> dict[str, RefDeclaration]:
    """The manifest's ``licenses.refs`` as :func:`pytest_corrsource.licensing.judge` takes them."""
    from pytest_corrsource.licensing import RefDeclaration

    return {
        ref: RefDeclaration(entry.open, tuple(CONTENT_TYPE[k] for k in entry.kinds))
        for ref, entry in manifest.licenses.refs.items()
    }


def _ref_entry(manifest: Manifest, ref: str) -> LicenseRefEntry | None:
    # LicenseRef ids match case-insensitively, as in the expressions.
    return {k.lower(): v for k, v in manifest.licenses.refs.items()}.get(ref.lower())


def ref_problems(manifest: Manifest, expr: LicenseExpr) -> list[str]:
    """Why the LicenseRefs in ``expr`` do not name known terms: undeclared (and not a model
    licence the data file knows), or declared with a text that is not a file in the repository.
    """
    from pytest_corrsource.licensing import how_to_declare, license_ids, license_info

    problems: list[str] = []
    where = manifest.path.name
    for ident in sorted(license_ids(expr)):
        if not ident.lower().startswith(("licenseref-", "documentref-")):
            continue
        entry = _ref_entry(manifest, ident)
        if entry is None:
            if license_info(ident) is None:
                problems.append(f"{ident} is not declared: {how_to_declare(ident)}")
            continue
        text = _ref_text_problem(manifest.root, entry.text.path)
        if text is not None:
            problems.append(
                f"the text of {ident}, `{entry.text.path}` ({where}:{entry.text.line}), {text}"
            )
    return problems


def _ref_text_problem(root: Path, declared: str) -> str | None:
    """Why a declared licence text is not a licence text in the repository, or None."""
    path = root / PurePosixPath(declared)
    # Checked at load time too; the repository may have changed since (a symlink swapped in).
    resolved = Path(os.path.realpath(path))
    if resolved != root and root not in resolved.parents:
        return f"resolves to {resolved}, outside the repository (a symlink?)"
    special = regular_file_problem(path)
    if special is not None:
        return f"is {special}, not a regular file"
    if not path.is_file():
        return "does not exist"
    if path.stat().st_size == 0:
        return "is empty"
    return None


def _specific(manifest: Manifest, kind: str, part: Resolved) -> bool:
    """Whether ``part`` has a licence of its own, not the repository's (whose text is LICENSE):
    declared for the component or for a kind other than code, and other than the
    repository-wide (distribution or code) licence."""
    from pytest_corrsource.licensing import same_license

    if part.expression is None or kind == "code":
        return False
    if part.source not in ("component", f"licenses.{kind}"):
        return False
    # With no repository-wide licence declared, the root LICENSE may well be this one.
    general = [e for e in (manifest.licenses.distribution, manifest.licenses.code) if e]
    return bool(general) and not any(same_license(part.expression, e) for e in general)


def _part_texts(root: Path, kind: str, part: Resolved, files: list[str]) -> list[str]:
    """The licence files that hold the text of a part's own licence: REUSE's
    ``LICENSES/<id>.txt``, a licence file beside the part or in a folder above it
    (``data/LICENSE`` for ``data/corpus.txt``), or a root licence file named for the kind or
    the id (``LICENSE-weights``, ``LICENSE.CC-BY-4.0``)."""
    from pytest_corrsource.licensing import LicenseError, license_ids, parse_expression

    try:
        ids = license_ids(parse_expression(part.expression or ""))
    except LicenseError:
        ids = set()
    lowered = {i.lower() for i in ids}
    texts = [
        f
        for f in files
        if (
            f.lower().startswith("licenses/")
            and f.split("/", 1)[1].lower().rsplit(".", 1)[0] in lowered
        )
        or ("/" not in f and any(w in f.lower() for w in (*_KIND_WORDS[kind], *lowered)))
    ]
    folder = PurePosixPath(part.part).parent
    while str(folder) not in (".", ""):  # a kind-level part ("data") has no folder
        directory = root / folder
        if directory.is_dir() and directory.resolve().is_relative_to(root):
            texts += [
                f"{folder}/{child.name}"
                for child in sorted(directory.iterdir())
                if child.is_file() and child.name.lower().startswith(LICENSE_FILE_PREFIXES)
            ]
        folder = folder.parent
    return list(dict.fromkeys(texts))


def _ref_texts(manifest: Manifest, expression: str) -> list[str]:
    """The declared texts of the LicenseRefs in ``expression``."""
    from pytest_corrsource.licensing import LicenseError, license_ids, parse_expression

    try:
        ids = license_ids(parse_expression(expression))
    except LicenseError:
        return []
    return [e.text.path for i in sorted(ids) if (e := _ref_entry(manifest, i)) is not None]


#: Words in a licence file's name that say which kind of component it licenses.
_KIND_WORDS = {
    "code": ("code",),
    "weights": ("weights", "model"),
    "data": ("data",),
    "docs": ("docs",),
}


def _general_texts(kind: str, part: Resolved, files: list[str]) -> list[str]:
    """The licence files that hold a repository-wide licence: the root ones, except those named
    for another kind (``LICENSE-weights`` is not the code's), and REUSE's texts of its ids;
    every licence file when none of these is found."""
    from pytest_corrsource.licensing import LicenseError, license_ids, parse_expression

    try:
        ids = {i.lower() for i in license_ids(parse_expression(part.expression or ""))}
    except LicenseError:
        ids = set()
    others = [w for k, words in _KIND_WORDS.items() if k != kind for w in words]
    found = [
        f
        for f in files
        if ("/" not in f and not any(w in f.lower() for w in others))
        or f.split("/", 1)[-1].lower().rsplit(".", 1)[0] in ids
    ]
    return found or files


def _describe_parts(
    manifest: Manifest, kind: str, resolved: list[Resolved], files: list[str]
) -> tuple[str, list[str], dict[str, list[str]]]:
    """The CS901 message, its warnings about parts whose own licence has no text, and the
    licence files attributed to each expression."""
    texts: dict[str, list[str]] = {}
    warnings: list[str] = []
    for part in resolved:
        if part.expression is None:
            continue
        if _specific(manifest, kind, part):
            own = _part_texts(manifest.root, kind, part, files)
            if not own:
                others = f"; {', '.join(files)} is the repository's licence" if files else ""
                warnings.append(
                    f"{part.part}: no licence text of its own for {part.expression} "
                    f"({part.source}): none beside it and no LICENSES/<id>.txt{others}"
                )
        else:
            own = _general_texts(kind, part, files)
        own = list(dict.fromkeys(own + _ref_texts(manifest, part.expression)))
        texts.setdefault(part.expression, [])
        texts[part.expression] += [t for t in own if t not in texts[part.expression]]
    shown = ", ".join(
        f"{expression} ({', '.join(found) or 'no licence text'})"
        for expression, found in sorted(texts.items())
    )
    return f"{kind}: {shown}", warnings, texts


def check_declared(ctx: CheckContext) -> Finding:
    """CS901: every part of this kind resolves to a valid licence expression; a licence file
    exists; every LicenseRef is declared with its text.

    For the weights (required from `open-weights`) a missing licence text is a warning when
    every licence is a known SPDX id: the id names the terms. For code and data (required from
    `corresponding-source`) the text is required (GPLv3 §4, Apache-2.0 §4(a)). A LicenseRef
    names no terms at all without its text, at every level.
    """
    from pytest_corrsource.licensing import LicenseError, parse_expression, suggest, unknown_ids

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
        problems += [f"{part.part}: {p}" for p in ref_problems(ctx.manifest, expr)]
        unknown = sorted(unknown_ids(expr))
        if unknown:
            named = ", ".join(
                f"{u} (did you mean {guess}?)" if (guess := suggest(u)) and guess != u else u
                for u in unknown
            )
            warnings.append(f"{part.part}: {named} not on the SPDX licence list")
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
            "and commit the licence text (LICENSE); declare each LicenseRef under "
            "`licenses.refs` with its text",
        )
    message, text_warnings, texts = _describe_parts(ctx.manifest, kind, resolved, files)
    expressions = sorted({p.expression for p in resolved if p.expression})
    return Finding(
        message=message,
        warnings=warnings + (text_warnings if files else []),
        data={"licenses": expressions, "files": files, "texts": texts},
    )


def check_open(ctx: CheckContext) -> Finding:
    """CS902: every licence of this kind is open; warn when not type-appropriate. A LicenseRef
    is open only as the manifest declares it, with its text in the repository."""
    from pytest_corrsource.licensing import LicenseError, judge, parse_expression

    kind = ctx.subject
    content_type = CONTENT_TYPE[kind]
    refs = declared_refs(ctx.manifest)
    closed: list[str] = []
    warnings: list[str] = []
    verdicts: dict[str, str] = {}
    for part in resolve_licenses(ctx.manifest, kind):
        try:
            expr = parse_expression(part.expression) if part.expression else None
        except LicenseError as exc:
            closed.append(f"{part.part}: `{part.expression}` is not a valid expression ({exc})")
            continue
        verdict = judge(expr, content_type, refs)
        if not verdict.open:
            closed.append(f"{part.part}: {verdict.reason}")
            continue
        chosen = [r for r in verdict.choice if r.lower().startswith("licenseref-")]
        missing = ref_problems(ctx.manifest, expr) if expr is not None and chosen else []
        if missing:
            closed += [f"{part.part}: {m}" for m in missing]
            continue
        if not verdict.type_appropriate:
            warnings.append(
                f"{part.part}: {part.expression} is open but not a typical licence for "
                f"{content_type} (the MOF asks for a type-appropriate open licence)"
            )
        verdicts.setdefault(f"{part.expression} ({part.source})", verdict.reason)
    if closed:
        raise CheckFailed("; ".join(closed))
    return Finding(
        message=f"{kind}: " + "; ".join(f"{k}: {v}" for k, v in verdicts.items()),
        warnings=warnings,
    )


def _front_matter(text: str) -> dict[str, object] | None:
    """The YAML front matter of a Hugging Face style model card, or None when absent. Read
    with the manifest's nesting limit: 10,000 `[` ended in a RecursionError (a crash of the
    check) in PyYAML's recursive composer."""
    from pytest_corrsource.plain_yaml import load_plain_yaml

    if not text.startswith("---"):
        return None
    end = text.find("\n---", 3)
    if end == -1:
        return None
    try:
        data = load_plain_yaml(text[3:end])
    except ValueError as exc:
        raise CheckFailed(f"the model card's front matter is not valid YAML ({exc})") from None
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
