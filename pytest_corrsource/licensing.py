"""SPDX licence expressions, judged the way the MOF (Model Openness Framework) judges them.

A component licence is *open* when it is OSI-approved, FSF-libre, in the MOF tool's list of open
data licences, or OpenMDW-1.0; ``LicenseRef-`` licences and unknown ids are never open, and an
undeclared licence ("unlicensed") is never open. An open licence is *type-appropriate* for a
component when its entry in ``data/licenses.json`` lists the component's content type
(``code``, ``data`` or ``document``); open but not type-appropriate is a pass with a warning.

Expressions follow the SPDX licence-expression grammar (SPDX 2.3 Annex D): ``AND`` binds tighter
than ``OR``, ``WITH`` tighter than both, parentheses group, a ``+`` suffix means "or later".
Operators are matched case-insensitively (the grammar allows ``AND``/``and``; we also take mixed
case); known licence and exception ids are normalised to their canonical case, unknown but
well-formed ids are kept as written and reported by :func:`unknown_ids`.

Standard library only; the data file is read lazily, once.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from dataclasses import dataclass
from typing import Any, TypeAlias

from pytest_corrsource.errors import CorrsourceError

__all__ = [
    "CONTENT_TYPES",
    "And",
    "Judgement",
    "LicenseError",
    "LicenseExpr",
    "LicenseId",
    "LicenseInfo",
    "LicenseRef",
    "Or",
    "With",
    "is_open_id",
    "judge",
    "license_ids",
    "license_info",
    "normalize",
    "parse_expression",
    "render",
    "same_license",
    "unknown_ids",
]

CONTENT_TYPES = frozenset({"code", "data", "document", "parameters"})

#: Licences the MOF tool treats as open for every content type regardless of OSI/FSF status.
_MOF_OPEN_ANY = frozenset({"OpenMDW-1.0"})


def _fits(info: LicenseInfo, content_type: str) -> bool:
    """Whether ``info`` is a type-appropriate licence for ``content_type``.

    Model parameters are data to the MOF, but it also accepts open source licences for them
    (MIT, Apache-2.0 weights are common and intended): for "parameters" an open-data licence or
    an OSI-approved one fits.
    """
    if info.id in _MOF_OPEN_ANY:
        return True
    if content_type == "parameters":
        return "data" in info.types or info.osi
    return content_type in info.types


#: Maximum parenthesis nesting accepted by the parser (keeps recursion bounded).
MAX_DEPTH = 64

_IDSTRING = r"[A-Za-z0-9.\-]+"
_ID_RE = re.compile(rf"({_IDSTRING})(\+?)")
_DOCREF = rf"(?:(DocumentRef-)({_IDSTRING}):)?"
_REF_RE = re.compile(rf"{_DOCREF}(LicenseRef-)({_IDSTRING})", re.I | re.A)
_ADDREF_RE = re.compile(rf"{_DOCREF}(AdditionRef-)({_IDSTRING})", re.I | re.A)
_BAD_CHAR_RE = re.compile(r"[^A-Za-z0-9.\-+:]")
_OPERATORS = frozenset({"AND", "OR", "WITH"})
_NO_LICENCE = frozenset({"", "none", "noassertion", "other", "unknown"})

#: Deprecated GNU ids: ``X`` means ``X-only`` and ``X+`` means ``X-or-later`` (used for equality).
_GNU_BASES = frozenset(
    f"{family}-{version}"
    for family, versions in (
        ("gpl", ("1.0", "2.0", "3.0")),
        ("lgpl", ("2.0", "2.1", "3.0")),
        ("agpl", ("1.0", "3.0")),
        ("gfdl", ("1.1", "1.2", "1.3")),
    )
    for version in versions
)


class LicenseError(CorrsourceError, ValueError):
    """A licence expression that does not follow the SPDX grammar."""


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class LicenseId:
    """A licence id (``MIT``); ``or_later`` for the ``+`` suffix (``Apache-2.0+``)."""

    id: str
    or_later: bool = False


@dataclass(frozen=True)
class LicenseRef:
    """A custom licence: ``LicenseRef-x`` or ``DocumentRef-d:LicenseRef-x``."""

    ref: str


@dataclass(frozen=True)
class With:
    """``license WITH exception`` (an exception only adds permissions)."""

    license: LicenseId | LicenseRef
    exception: str


@dataclass(frozen=True)
class And:
    """Conjunction: every part applies. Always has at least two parts, none of them ``And``."""

    parts: tuple[LicenseExpr, ...]


@dataclass(frozen=True)
class Or:
    """Disjunction: the recipient may pick any part. At least two parts, none of them ``Or``."""

    parts: tuple[LicenseExpr, ...]


LicenseExpr: TypeAlias = "LicenseId | LicenseRef | With | And | Or"


@dataclass(frozen=True)
class LicenseInfo:
    """What the data file records about one licence id."""

    id: str
    name: str
    osi: bool
    fsf: bool
    open_data: bool
    types: tuple[str, ...]


@dataclass(frozen=True)
class Judgement:
    """MOF verdict on a component licence for one content type.

    ``choice`` holds the licence ids of the open way of satisfying the expression that was picked
    (empty when not open); ``type_appropriate`` is only ever true for an open expression.
    """

    open: bool
    type_appropriate: bool
    choice: tuple[str, ...]
    reason: str


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class _Data:
    licenses: dict[str, LicenseInfo]  # canonical id -> info
    lower: dict[str, str]  # lower-case id (and alias) -> canonical id
    exceptions: dict[str, str]  # lower-case exception id -> canonical
    hub_ids: dict[str, str | None]


@functools.cache
def _data() -> _Data:
    resource = importlib.resources.files("pytest_corrsource") / "data" / "licenses.json"
    raw: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    licenses = {
        key: LicenseInfo(
            id=key,
            name=str(entry["name"]),
            osi=bool(entry["osi"]),
            fsf=bool(entry["fsf"]),
            open_data=bool(entry["open_data"]),
            types=tuple(str(t) for t in entry["types"]),
        )
        for key, entry in raw["licenses"].items()
    }
    lower = {key.lower(): key for key in licenses}
    for alias, target in raw.get("aliases", {}).items():
        lower.setdefault(alias.lower(), target)
    return _Data(
        licenses=licenses,
        lower=lower,
        exceptions={str(e).lower(): str(e) for e in raw["exceptions"]},
        hub_ids={str(k): (None if v is None else str(v)) for k, v in raw["hub_ids"].items()},
    )


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class _Token:
    text: str
    column: int  # 1-based

    @property
    def op(self) -> str | None:
        upper = self.text.upper()
        return upper if upper in _OPERATORS else None


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            tokens.append(_Token(ch, i + 1))
            i += 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in "()":
                i += 1
            tokens.append(_Token(text[start:i], start + 1))
    return tokens


def _describe(token: _Token | None) -> str:
    return "end of input" if token is None else f"`{token.text}`"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.depth = 0

    @property
    def end_column(self) -> int:
        return len(self.text.rstrip()) + 1

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def column(self, token: _Token | None) -> int:
        return self.end_column if token is None else token.column

    def parse(self) -> LicenseExpr:
        if not self.tokens:
            raise LicenseError("empty licence expression")
        expr = self.parse_or(None)
        token = self.peek()
        if token is not None:
            if token.text == ")":
                raise LicenseError(f"unbalanced `)` at column {token.column}")
            raise LicenseError(
                f"unexpected `{token.text}` at column {token.column} after a complete expression"
            )
        return expr

    def parse_or(self, after: _Token | None) -> LicenseExpr:
        parts = [self.parse_and(after)]
        while (token := self.peek()) is not None and token.op == "OR":
            self.pos += 1
            parts.append(self.parse_and(token))
        return _join(Or, parts)

    def parse_and(self, after: _Token | None) -> LicenseExpr:
        parts = [self.parse_with(after)]
        while (token := self.peek()) is not None and token.op == "AND":
            self.pos += 1
            parts.append(self.parse_with(token))
        return _join(And, parts)

    def parse_with(self, after: _Token | None) -> LicenseExpr:
        expr = self.parse_primary(after)
        token = self.peek()
        if token is None or token.op != "WITH":
            return expr
        if not isinstance(expr, LicenseId | LicenseRef):
            raise LicenseError(
                f"`WITH` at column {token.column} must follow a single licence id, "
                "not a parenthesised expression"
            )
        self.pos += 1
        exc = self.peek()
        if exc is None or exc.text in ("(", ")") or exc.op is not None:
            raise LicenseError(
                f"expected an exception id after `WITH` at column {self.column(exc)}, "
                f"found {_describe(exc)}"
            )
        self.pos += 1
        return With(expr, _exception(exc))

    def parse_primary(self, after: _Token | None) -> LicenseExpr:
        token = self.peek()
        if token is None or token.op is not None or token.text == ")":
            where = f"after `{after.text}` " if after is not None else ""
            found = "" if token is None else f", found `{token.text}`"
            raise LicenseError(
                f"expected a licence id {where}at column {self.column(token)}{found}"
            )
        self.pos += 1
        if token.text == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise LicenseError(
                    f"parentheses nested deeper than {MAX_DEPTH} at column {token.column}"
                )
            inner = self.parse_or(token)
            close = self.peek()
            if close is None or close.text != ")":
                raise LicenseError(
                    f"unbalanced `(` at column {token.column}: expected `)` at column "
                    f"{self.column(close)}, found {_describe(close)}"
                )
            self.pos += 1
            self.depth -= 1
            return inner
        return _simple(token)


def _join(kind: type[And] | type[Or], parts: list[LicenseExpr]) -> LicenseExpr:
    if len(parts) == 1:
        return parts[0]
    flat: list[LicenseExpr] = []
    for part in parts:
        flat.extend(part.parts if isinstance(part, kind) else (part,))
    return kind(tuple(flat))


def _bad_word(token: _Token, what: str) -> LicenseError:
    bad = _BAD_CHAR_RE.search(token.text)
    if bad is not None:
        return LicenseError(
            f"invalid character `{bad.group()}` in `{token.text}` at column "
            f"{token.column + bad.start()}"
        )
    return LicenseError(f"malformed {what} `{token.text}` at column {token.column}")


def _simple(token: _Token) -> LicenseId | LicenseRef:
    word = token.text
    ref = _REF_RE.fullmatch(word)
    if ref is not None:
        doc = f"DocumentRef-{ref.group(2)}:" if ref.group(1) else ""
        return LicenseRef(f"{doc}LicenseRef-{ref.group(4)}")
    if _REF_RE.fullmatch(word.removesuffix("+")) is not None:
        raise LicenseError(
            f"`+` is not allowed after a LicenseRef at column {token.column + len(word) - 1}"
        )
    if _ADDREF_RE.fullmatch(word) is not None:
        raise LicenseError(
            f"`{word}` at column {token.column} is an addition, allowed only after `WITH`"
        )
    match = _ID_RE.fullmatch(word)
    if match is None:
        raise _bad_word(token, "licence id")
    ident = match.group(1)
    return LicenseId(_data().lower.get(ident.lower(), ident), bool(match.group(2)))


def _exception(token: _Token) -> str:
    word = token.text
    add = _ADDREF_RE.fullmatch(word)
    if add is not None:
        doc = f"DocumentRef-{add.group(2)}:" if add.group(1) else ""
        return f"{doc}AdditionRef-{add.group(4)}"
    if re.fullmatch(_IDSTRING, word) is None or _REF_RE.fullmatch(word) is not None:
        raise LicenseError(
            f"expected an exception id after `WITH` at column {token.column}, found `{word}`"
        )
    return _data().exceptions.get(word.lower(), word)


def parse_expression(text: str) -> LicenseExpr:
    """Parse an SPDX licence expression; raise :class:`LicenseError` naming column and token."""
    return _Parser(text).parse()


# --------------------------------------------------------------------------- rendering


def _render_simple(expr: LicenseId | LicenseRef) -> str:
    if isinstance(expr, LicenseRef):
        return expr.ref
    return f"{expr.id}+" if expr.or_later else expr.id


def render(expr: LicenseExpr) -> str:
    """Canonical text of ``expr``: single spaces, upper-case operators, minimal parentheses."""
    if isinstance(expr, LicenseId | LicenseRef):
        return _render_simple(expr)
    if isinstance(expr, With):
        return f"{_render_simple(expr.license)} WITH {expr.exception}"
    if isinstance(expr, Or):
        return " OR ".join(render(part) for part in expr.parts)
    return " AND ".join(
        f"({render(part)})" if isinstance(part, Or) else render(part) for part in expr.parts
    )


def normalize(text: str) -> str | None:
    """Canonical SPDX expression for a Hub licence id or an SPDX expression.

    Returns None for "other", "unknown", "NONE", "NOASSERTION" and blank text (no usable licence);
    raises :class:`LicenseError` for text that is neither a Hub id nor a valid expression.
    """
    stripped = text.strip()
    if stripped.lower() in _NO_LICENCE:
        return None
    hub = _data().hub_ids
    if stripped in hub:
        return hub[stripped]
    return render(parse_expression(stripped))


# --------------------------------------------------------------------------- ids


def _simples(expr: LicenseExpr) -> list[LicenseId | LicenseRef]:
    if isinstance(expr, LicenseId | LicenseRef):
        return [expr]
    if isinstance(expr, With):
        return [expr.license]
    return [simple for part in expr.parts for simple in _simples(part)]


def _exceptions(expr: LicenseExpr) -> list[str]:
    if isinstance(expr, With):
        return [expr.exception]
    if isinstance(expr, And | Or):
        return [exc for part in expr.parts for exc in _exceptions(part)]
    return []


def _simple_id(simple: LicenseId | LicenseRef) -> str:
    return simple.ref if isinstance(simple, LicenseRef) else simple.id


def license_ids(expr: LicenseExpr) -> set[str]:
    """Licence ids (without ``+``) and LicenseRefs in ``expr``; exceptions are not included."""
    return {_simple_id(simple) for simple in _simples(expr)}


def unknown_ids(expr: LicenseExpr) -> set[str]:
    """Licence and exception ids that the data file does not know (LicenseRef/AdditionRef aside)."""
    data = _data()
    unknown = {
        simple.id
        for simple in _simples(expr)
        if isinstance(simple, LicenseId) and license_info(simple.id) is None
    }
    unknown.update(
        exc
        for exc in _exceptions(expr)
        if "AdditionRef-" not in exc and exc.lower() not in data.exceptions
    )
    return unknown


def _is_ref(ident: str) -> bool:
    return ident.lower().startswith(("licenseref-", "documentref-"))


def license_info(id: str) -> LicenseInfo | None:
    """Data-file entry for ``id`` (case-insensitive; ``X+``/``X-or-later``/``X-only`` fall back
    to the base id ``X`` when they have no entry of their own)."""
    data = _data()
    ident = id.strip().removesuffix("+")
    candidates = [ident]
    for suffix in ("-or-later", "-only"):
        if ident.lower().endswith(suffix):
            base = ident[: -len(suffix)]
            candidates += [base, f"{base}-only"]
    for candidate in candidates:
        canonical = data.lower.get(candidate.lower())
        if canonical is not None:
            return data.licenses[canonical]
    return None


def is_open_id(id: str) -> bool:
    """MOF openness of one licence id: OSI-approved, FSF-libre, open-data or OpenMDW-1.0.

    LicenseRef-/DocumentRef- licences and unknown ids are never open.
    """
    if _is_ref(id):
        return False
    info = license_info(id)
    if info is None:
        return False
    return info.osi or info.fsf or info.open_data or info.id in _MOF_OPEN_ANY


# --------------------------------------------------------------------------- judging


@dataclass(frozen=True)
class _Eval:
    open: bool
    appropriate: bool
    choice: tuple[str, ...]
    why_not: str  # reason the expression is not open ("" when open)


def _why_not_open(ident: str) -> str:
    info = license_info(ident)
    if _is_ref(ident):
        named = f" ({info.name})" if info is not None else ""
        return f"{ident}{named} is a custom licence reference, which is never an open licence"
    if info is None:
        return f"{ident} is not a recognised licence id, so it cannot be judged open"
    return (
        f"{ident} ({info.name}) is not an open licence: not OSI-approved, not FSF-libre "
        "and not an open-data licence"
    )


def _evaluate(expr: LicenseExpr, content_type: str) -> _Eval:
    if isinstance(expr, With):
        return _evaluate(expr.license, content_type)
    if isinstance(expr, LicenseId | LicenseRef):
        ident = _simple_id(expr)
        if not is_open_id(ident):
            return _Eval(False, False, (), _why_not_open(ident))
        info = license_info(ident)
        appropriate = info is not None and _fits(info, content_type)
        return _Eval(True, appropriate, (ident,), "")
    results = [_evaluate(part, content_type) for part in expr.parts]
    if isinstance(expr, And):
        failed = next((r for r in results if not r.open), None)
        if failed is not None:
            return _Eval(False, False, (), failed.why_not)
        choice = tuple(dict.fromkeys(i for r in results for i in r.choice))
        return _Eval(True, all(r.appropriate for r in results), choice, "")
    best = max(results, key=lambda r: (r.open, r.appropriate))  # first of the best wins
    if best.open:
        return best
    return _Eval(
        False, False, (), "no alternative is open: " + "; ".join(r.why_not for r in results)
    )


def judge(expr: LicenseExpr | None, content_type: str) -> Judgement:
    """MOF verdict for a component of ``content_type`` ("code", "data" or "document").

    OR is open when some branch is (a type-appropriate open branch is preferred), AND when every
    part is, ``X WITH e`` when ``X`` is. ``None`` (no licence declared) is never open.
    """
    if content_type not in CONTENT_TYPES:
        raise ValueError(
            f"content type must be one of {sorted(CONTENT_TYPES)}, not {content_type!r}"
        )
    if expr is None:
        return Judgement(False, False, (), "unlicensed: no licence declared")
    result = _evaluate(expr, content_type)
    if not result.open:
        return Judgement(False, False, (), result.why_not)
    via = " AND ".join(result.choice)
    if result.appropriate:
        reason = f"open via {via}, type-appropriate for {content_type}"
    else:
        misfits = [
            ident
            for ident in result.choice
            if (info := license_info(ident)) is None or not _fits(info, content_type)
        ]
        reason = (
            f"open via {via}, but {', '.join(misfits)} is not a type-appropriate licence "
            f"for {content_type}"
        )
    return Judgement(True, result.appropriate, result.choice, reason)


# --------------------------------------------------------------------------- equality


def _canonical_id(simple: LicenseId | LicenseRef) -> tuple[str, bool]:
    if isinstance(simple, LicenseRef):
        return (simple.ref.lower(), False)
    ident, later = simple.id.lower(), simple.or_later
    base = ident.removesuffix("-only")
    if base in _GNU_BASES and not ident.endswith("-or-later"):
        return (f"{base}-or-later" if later else f"{base}-only", False)
    if later and ident.removesuffix("-or-later") in _GNU_BASES:
        return (ident, False)
    return (ident, later)


def _key(expr: LicenseExpr) -> tuple[object, ...]:
    if isinstance(expr, LicenseId | LicenseRef):
        return ("id", *_canonical_id(expr))
    if isinstance(expr, With):
        return ("with", _canonical_id(expr.license), expr.exception.lower())
    return (type(expr).__name__, frozenset(_key(part) for part in expr.parts))


def same_license(a: str, b: str) -> bool:
    """Whether two licence strings (Hub ids or SPDX expressions) denote the same licence terms.

    Ids compare case-insensitively, AND/OR operands in any order, deprecated GNU ids equal their
    ``-only``/``-or-later`` forms. False when either side has no licence (None after
    :func:`normalize`) or is not a valid expression.
    """
    try:
        left, right = normalize(a), normalize(b)
    except LicenseError:
        return False
    if left is None or right is None:
        return False
    return _key(parse_expression(left)) == _key(parse_expression(right))
