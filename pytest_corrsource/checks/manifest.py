"""CS001 the manifest is complete: no ``TODO`` left from a draft (``corrsource init``).

A TODO is a comment that starts with ``TODO`` (``# TODO: check the arguments``) or a value that
starts with it (``path: TODO-weights.safetensors``), as ``corrsource init`` writes them. A
comment that merely mentions the word (``# review every TODO``) is not one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pytest_corrsource.checks.api import CheckContext, CheckFailed, Finding
from pytest_corrsource.manifest import MAX_MANIFEST_BYTES

# A YAML comment starts at a `#` at the start of a line or after whitespace.
_COMMENT = re.compile(r"(?:^|\s)#(.*)$")
_COMMENT_TODO = re.compile(r"^\s*TODO\b")
# A value (after `key:`, `- `, `[`, `{`, `,` or a quote) that starts with TODO.
_VALUE_TODO = re.compile(r"""(?:^|[\s:\[{,"'-])TODO\b""")
#: How many TODOs the failure message quotes (the count is always exact).
MAX_QUOTED = 20


@dataclass(frozen=True)
class Todo:
    line: int  # 1-based
    text: str  # the comment or the line, stripped


def find_todos(text: str) -> list[Todo]:
    """Every TODO left in a manifest's text, in line order."""
    found: list[Todo] = []
    for number, line in enumerate(text.splitlines(), start=1):
        comment = _COMMENT.search(line)
        content = line[: comment.start()] if comment else line
        if comment and _COMMENT_TODO.match(comment.group(1)):
            found.append(Todo(number, "#" + comment.group(1).rstrip()))
        elif _VALUE_TODO.search(content):
            found.append(Todo(number, content.strip()))
    return found


def check_complete(ctx: CheckContext) -> Finding:
    """CS001: the manifest has no TODO left."""
    path = ctx.manifest.path
    try:
        with path.open("rb") as handle:  # the loader refused anything larger already
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise CheckFailed(f"cannot read {path.name}: {exc.strerror or exc}") from None
    todos = find_todos(raw[:MAX_MANIFEST_BYTES].decode("utf-8", errors="replace"))
    if not todos:
        return Finding(f"{path.name} has no TODO left")
    quoted = [f"line {t.line}: {t.text}" for t in todos[:MAX_QUOTED]]
    if len(todos) > MAX_QUOTED:
        quoted.append(f"… and {len(todos) - MAX_QUOTED} more")
    raise CheckFailed(
        f"{path.name} still has {len(todos)} TODO{'' if len(todos) == 1 else 's'}:\n"
        + "\n".join("    " + q for q in quoted)
    )
