"""The base of every error pytest-corrsource raises on purpose.

Stage: none (imported by every stage; standard library only, nothing else). Catch
:class:`CorrsourceError` to handle any of them; each keeps the built-in base it always had
(``ValueError``, ``OSError``, ``RuntimeError`` …), so existing ``except`` clauses still match.
"""

from __future__ import annotations

__all__ = ["CorrsourceError"]


class CorrsourceError(Exception):
    """An error of pytest-corrsource: a bad manifest, a file it refuses, a sandbox it cannot
    build, a check that failed or could not run."""
