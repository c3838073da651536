"""The words every layer shares: the levels a repository can meet and the outcomes of a check.

Stage: none (a leaf every stage imports). ``Literal`` types, so mypy catches a misspelt level
or outcome where it is written, not in a report nobody reads.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Level = Literal["open-weights", "corresponding-source", "open-source-ai"]
LEVELS: Final[tuple[Level, ...]] = get_args(Level)
DEFAULT_LEVEL: Final[Level] = "corresponding-source"

# "waived": a required check that could not run here and that the user waived explicitly; the
# level then reads "met, with waivers". "skipped" with ``data["blocked_by"]``: a prerequisite
# did not pass, so the check did not run (the prerequisite's own result carries the failure).
Outcome = Literal["passed", "failed", "skipped", "not-required", "waived"]
OUTCOMES: Final[tuple[Outcome, ...]] = get_args(Outcome)


def level_rank(level: str | None) -> int:
    """Order of levels; None (required by no level) sorts after all of them."""
    return LEVELS.index(level) if level in LEVELS else len(LEVELS)


def as_level(text: str) -> Level:
    """``text`` as a level, or ValueError naming the levels."""
    for level in LEVELS:
        if text == level:
            return level
    raise ValueError(f"`{text}` is not a level (one of {', '.join(LEVELS)})")
