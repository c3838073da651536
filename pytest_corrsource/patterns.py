"""Regular expressions from the manifest (``expect.stdout`` / ``expect.stderr``), run with a
time bound.

Stage: below the checks and the manifest schema. The manifest is untrusted like the rest of the
repository, and so is the output its pattern is matched against: a pattern such as ``(a+)+$``
on a long output backtracks for longer than the universe exists. Python's ``re`` cannot be
interrupted; the ``regex`` package can (``timeout=``), and it is the engine that both validates
(:func:`compile_error`, used by the schema) and matches (:func:`search`), so a pattern means
the same thing in both places.
"""

from __future__ import annotations

import functools

import regex

from pytest_corrsource.errors import CorrsourceError

__all__ = ["MATCH_TIMEOUT_SECONDS", "PatternTimeout", "compile_error", "search"]

#: How long one manifest pattern may run over one output. The output is already bounded by the
#: runner, so any sane pattern finishes in milliseconds.
MATCH_TIMEOUT_SECONDS = 2.0


class PatternTimeout(CorrsourceError):
    """A manifest pattern did not finish within :data:`MATCH_TIMEOUT_SECONDS`."""

    def __init__(self, pattern: str, length: int, seconds: float) -> None:
        super().__init__(
            f"the pattern /{pattern}/ did not finish within {seconds:g} s on {length} characters "
            "(catastrophic backtracking)"
        )
        self.pattern = pattern
        self.seconds = seconds


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str) -> regex.Pattern[str]:
    return regex.compile(pattern)


def compile_error(pattern: str) -> str | None:
    """Why *pattern* is not a valid expression, or ``None`` if it is."""
    try:
        _compiled(pattern)
    except (regex.error, ValueError, OverflowError, RecursionError) as exc:
        return str(exc) or type(exc).__name__
    return None


def search(pattern: str, text: str, *, timeout: float | None = None) -> regex.Match[str] | None:
    """``regex.search`` of *pattern* in *text* (a match object or ``None``), or
    :class:`PatternTimeout` when it runs longer than *timeout* (default
    :data:`MATCH_TIMEOUT_SECONDS`)."""
    seconds = MATCH_TIMEOUT_SECONDS if timeout is None else timeout
    try:
        return _compiled(pattern).search(text, timeout=seconds)
    except TimeoutError:
        raise PatternTimeout(pattern, len(text), seconds) from None
