"""The one sanitizer for untrusted text on its way to a terminal, a report file or GitHub.

Stage: Reports (also used where results are built). Untrusted text is anything a repository
controls: what its steps printed, its file names and contents, its manifest's strings. Before
it reaches the terminal, JUnit XML, the JSON/Markdown reports, annotations or the step summary
it goes through :func:`sanitize`, which

* redacts the secrets of this process, also encoded (:func:`pytest_corrsource.secrets.redact`);
* escapes control characters other than newline and tab (ESC, so no colours, OSC 52 clipboard
  writes or window titles; BEL; ``\\r``, which overwrites what a log shows; C1 controls, which
  some terminals treat as ESC sequences) and the invisible bidirectional overrides and line
  separators that make a text read differently from what it is (Trojan Source);
* stops any line from acting as a GitHub Actions workflow command: the runner executes a line
  that starts with ``::`` after leading white space (``::add-mask::``, ``::stop-commands::``,
  ``::error::``) and the legacy ``##[`` form anywhere in a line.

Escapes are written ``\\xNN`` / ``\\uNNNN``, so the text stays readable and the result is
stable: sanitizing twice changes nothing. Markdown needs more (:func:`fenced`, :func:`inline`).
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Mapping
from typing import Any

from pytest_corrsource.secrets import redact

__all__ = [
    "code",
    "escape_controls",
    "fenced",
    "inline",
    "neutralize_commands",
    "sanitize",
    "sanitize_data",
]

# C0 controls but tab and newline, DEL, C1 controls; the bidirectional embeddings, overrides
# and isolates; the implicit direction marks; line and paragraph separators (str.splitlines and
# some viewers break lines there).
_CONTROLS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
# The legacy workflow command form, honoured anywhere in a line.
_LEGACY_COMMAND = "##["


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """*text* with every control character but ``\\n`` and ``\\t`` written as an escape."""
    return _CONTROLS.sub(_escape, text)


def neutralize_commands(text: str) -> str:
    """*text* where no line can be read as a GitHub Actions workflow command.

    The colon opening a ``::command::`` line becomes ``\\x3a`` and ``##[`` becomes
    ``##\\x5b``: the text still says what the step printed, but the runner ignores it.
    """
    if "::" in text:
        text = re.sub(r"^(\s*)::", r"\1\\x3a:", text, flags=re.MULTILINE)
    return text.replace(_LEGACY_COMMAND, "##\\x5b")


def sanitize(text: str, env: Mapping[str, str] | None = None) -> str:
    """Untrusted *text* made safe for every output: redacted, controls escaped, commands inert.

    *env* holds the secrets to redact (default ``os.environ``).
    """
    return neutralize_commands(escape_controls(redact(text, os.environ if env is None else env)))


def sanitize_data(value: Any) -> Any:
    """:func:`sanitize` every string (keys too) inside JSON-like *value*."""
    if isinstance(value, str):
        return sanitize(value)
    if isinstance(value, dict):
        return {sanitize_data(k): sanitize_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [sanitize_data(v) for v in value]
    return value


_BACKTICKS = re.compile(r"`+")


def fenced(text: str, info: str = "text") -> str:
    """A CommonMark fenced code block showing untrusted *text* literally.

    The fence is longer than any backtick run inside the text, so no line of it can close the
    block (CommonMark: a closing fence is at least as long as the opening one). Inside a code
    block HTML is not interpreted, so no HTML escaping is needed (it would show ``&lt;``).
    """
    text = sanitize(text)
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text.rstrip(chr(10))}\n{fence}"


def code(text: str) -> str:
    """Untrusted *text* as one Markdown code span (one line; HTML is literal in a code span).

    Delimited by a backtick run longer than any inside the text. Not for table cells: GitHub
    splits cells at ``|`` even inside code spans; use :func:`inline` there.
    """
    text = sanitize(text).replace("\n", " ")
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


# Markdown punctuation that can start emphasis, links, images, code, tables or strikethrough.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~!#])")


def inline(text: str) -> str:
    """Untrusted *text* for running Markdown (a heading, a table cell): sanitized, HTML
    escaped, Markdown punctuation backslash-escaped, newlines as ``<br>``."""
    text = html.escape(sanitize(text), quote=True)
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return text.replace("\t", " ").replace("\n", "<br>")
