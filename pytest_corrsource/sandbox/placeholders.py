"""Expansion of ``{weights}``, ``{outdir}``, ``{repo}`` and ``{python}`` in manifest commands.

Commands are split with :func:`shlex.split` *first* and placeholders are substituted inside each
resulting token, so a substituted path that contains spaces stays a single argument and a
substituted value can never introduce shell syntax or extra arguments.

``{{`` and ``}}`` stand for literal braces. Any other ``{...}``, and any lone brace, is an error:
commands such as ``awk '{print $1}'`` must be written ``awk '{{print $1}}'``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from pytest_corrsource.errors import CorrsourceError

__all__ = [
    "KNOWN_PLACEHOLDERS",
    "PlaceholderError",
    "PlaceholderValues",
    "expand_command",
    "expand_path",
]

KNOWN_PLACEHOLDERS: tuple[str, ...] = (
    "{weights}",
    "{weights[N]}",
    "{outdir}",
    "{repo}",
    "{python}",
)

# One alternative per lexical element: escaped braces, a braced field, then lone braces.
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|\{|\}")
_WEIGHTS_INDEX = re.compile(r"weights\[([^\]]*)\]")


class PlaceholderError(CorrsourceError, ValueError):
    """A command or path template cannot be expanded."""


@dataclass(frozen=True)
class PlaceholderValues:
    """The values placeholders expand to (all paths already absolute strings)."""

    weights: tuple[str, ...]
    outdir: str | None
    repo: str
    python: str | None


def _known_list() -> str:
    return ", ".join(KNOWN_PLACEHOLDERS)


def _lookup(field: str, values: PlaceholderValues, template: str) -> str:
    if field == "weights":
        if not values.weights:
            raise PlaceholderError(f"{{weights}} used in {template!r} but no weights are declared")
        return values.weights[0]
    match = _WEIGHTS_INDEX.fullmatch(field)
    if match is not None:
        index_text = match.group(1)
        if not index_text.isascii() or not index_text.isdigit():
            raise PlaceholderError(
                f"{{{field}}} in {template!r}: the index must be a non-negative integer, "
                f"as in {{weights[0]}}"
            )
        index = int(index_text)
        count = len(values.weights)
        if index >= count:
            raise PlaceholderError(
                f"{{{field}}} in {template!r} is out of range: {count} weights "
                f"file{'' if count == 1 else 's'} declared (valid indexes: "
                + (f"0..{count - 1})" if count else "none)")
            )
        return values.weights[index]
    if field == "outdir":
        if values.outdir is None:
            raise PlaceholderError(
                f"{{outdir}} used in {template!r} but this step has no output folder"
            )
        return values.outdir
    if field == "repo":
        return values.repo
    if field == "python":
        if values.python is None:
            raise PlaceholderError(
                f"{{python}} used in {template!r} but no isolated interpreter is available"
            )
        return values.python
    raise PlaceholderError(
        f"unknown placeholder {{{field}}} in {template!r}; known placeholders: {_known_list()} "
        "(write {{ and }} for literal braces)"
    )


def _substitute(token: str, values: PlaceholderValues, template: str) -> str:
    out: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(token):
        out.append(token[pos : match.start()])
        pos = match.end()
        text = match.group(0)
        if text == "{{":
            out.append("{")
        elif text == "}}":
            out.append("}")
        elif match.group(1) is not None:
            out.append(_lookup(match.group(1), values, template))
        else:
            raise PlaceholderError(
                f"unmatched {text!r} in {template!r}; write {text}{text} for a literal brace "
                f"(known placeholders: {_known_list()})"
            )
    out.append(token[pos:])
    return "".join(out)


def expand_command(command: str, values: PlaceholderValues) -> list[str]:
    """Split *command* like a POSIX shell would, then expand placeholders in each argument."""
    try:
        tokens = shlex.split(command)
    except ValueError as exc:
        raise PlaceholderError(f"cannot split command {command!r}: {exc}") from None
    return [_substitute(token, values, command) for token in tokens]


def expand_path(template: str, values: PlaceholderValues) -> str:
    """Expand placeholders in a single path (``produces:``, ``expect.files``); no splitting."""
    return _substitute(template, values, template)
