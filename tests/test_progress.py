"""The progress line of long steps (issue 9, "a silent 26 s at install::environment")."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import RUNNABLE_FILES, RUNNABLE_MANIFEST, RepoFactory

from pytest_corrsource import progress
from pytest_corrsource.progress import LOG_INTERVAL, TerminalProgress


class FakeTerminal:
    def __init__(self, *, tty: bool) -> None:
        self.isatty = tty
        self.events: list[tuple[str, str]] = []

    def ensure_newline(self) -> None:
        self.events.append(("newline", ""))

    def write_line(self, text: str) -> None:
        self.events.append(("line", text))

    def rewrite(self, text: str, **markup: Any) -> None:
        self.events.append(("rewrite", text))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_log_gets_a_line_per_interval_and_the_total() -> None:
    tr, clock = FakeTerminal(tty=False), Clock()
    sink = TerminalProgress(tr, clean=lambda s: s.replace("\x1b", "\\x1b"), clock=clock)
    sink("install", 1.0, "Collecting numpy", done=False)  # too early to show anything
    assert tr.events == []
    for second in range(3, 70):
        clock.now = float(second)
        sink("install", float(second), f"line {second} \x1b[31m", done=False)
    sink("install", 70.0, "", done=True)
    lines = [text for kind, text in tr.events if kind == "line"]
    assert lines == [
        "corrsource: install: 3 s | line 3 \\x1b[31m",
        f"corrsource: install: {3 + int(LOG_INTERVAL)} s | line {3 + int(LOG_INTERVAL)} \\x1b[31m",
        f"corrsource: install: {3 + 2 * int(LOG_INTERVAL)} s | line "
        f"{3 + 2 * int(LOG_INTERVAL)} \\x1b[31m",
        "corrsource: install: finished in 70 s",
    ]
    assert tr.events[0] == ("newline", "")


def test_a_terminal_line_is_rewritten_in_place() -> None:
    tr, clock = FakeTerminal(tty=True), Clock()
    sink = TerminalProgress(tr, clean=str, clock=clock)
    for tenth in range(30, 50):
        clock.now = tenth / 10
        sink("run", tenth / 10, "step", done=False)
    sink("run", 5.0, "", done=True)
    rewrites = [text for kind, text in tr.events if kind == "rewrite"]
    assert rewrites[0] == "corrsource: run: 3 s | step"
    assert rewrites[-1] == "corrsource: run: finished in 5 s"
    assert 3 <= len(rewrites) <= 6  # at most two updates a second
    assert tr.events[-1] == ("line", "")


def test_a_short_step_shows_nothing() -> None:
    tr = FakeTerminal(tty=False)
    sink = TerminalProgress(tr, clean=str)
    sink("run", 0.5, "x", done=False)
    sink("run", 0.6, "", done=True)
    assert tr.events == []


def test_report_without_a_sink_does_nothing_and_with_one_calls_it() -> None:
    progress.report("run", 10.0, "x")  # no sink installed: nothing happens
    seen: list[tuple[str, float, str, bool]] = []
    progress.install(
        lambda label, elapsed, last, *, done: seen.append((label, elapsed, last, done))
    )
    try:
        progress.report("run", 10.0, "x")
        progress.report("run", 11.0, done=True)
    finally:
        progress.uninstall()
    progress.report("run", 12.0, "y")
    assert seen == [("run", 10.0, "x", False), ("run", 11.0, "", True)]


SLOW_RUN = """
import sys, time
print("loading weights \\x1b]52;c;ZXZpbA==\\x07", flush=True)
time.sleep(3)
print("model output: 0123abcd")
"""


@pytest.mark.e2e
def test_a_slow_step_shows_its_progress_in_the_log(
    pytester: pytest.Pytester, make_repo: RepoFactory
) -> None:

    root = make_repo(RUNNABLE_MANIFEST, {**RUNNABLE_FILES, "run.py": SLOW_RUN})
    args = ("-p", "no:randomly", "--corresponding-source", str(root), "-k", "released")
    result = pytester.runpytest(*args)
    # The figures are whatever the machine took: only the shape of the lines is asserted. The
    # step's output reaches the terminal sanitized (an OSC 52 clipboard write, shown escaped).
    result.stdout.re_match_lines(
        [
            r"corrsource: run: \d+ s \| loading weights \\x1b\]52;c;ZXZpbA==\\x07$",
            r"corrsource: run: finished in \d+ s$",
        ]
    )
    quiet = pytester.runpytest(*args, "-q")
    assert "corrsource: run:" not in quiet.stdout.str()
