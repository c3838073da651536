"""One updating line for long steps: which step, how long so far, the last line it printed.

Stage: glue between the sandbox (which knows a step is running) and pytest's terminal (which
the sandbox must not know). The enabled plugin installs a sink for the session; the sandbox
calls :func:`report` while a command runs. Without a sink (library use, xdist workers, ``-q``)
reporting costs one ``None`` check.

On a terminal the line is rewritten in place; in a log (CI) a line is printed only every
``LOG_INTERVAL`` seconds so a 20-minute install leaves a few lines, not thousands.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

__all__ = [
    "LOG_INTERVAL",
    "TerminalProgress",
    "install",
    "report",
    "step",
    "tick",
    "uninstall",
]

LOG_INTERVAL = 30.0  # seconds between progress lines when the output is not a terminal
_SHOW_AFTER = 2.0  # a step that ends sooner shows nothing
_TTY_INTERVAL = 0.5


class ProgressSink(Protocol):
    def __call__(self, label: str, elapsed: float, last_line: str, *, done: bool) -> None: ...


_sink: ProgressSink | None = None
_current: str | None = None  # the label of the step running now (steps run one at a time)
_next_tick = 0.0
_TICK_INTERVAL = 0.25


def install(sink: ProgressSink) -> None:
    global _sink
    _sink = sink


def uninstall() -> None:
    global _sink
    _sink = None


def report(label: str, elapsed: float, last_line: str = "", *, done: bool = False) -> None:
    """Tell the session's sink, if any, that step ``label`` has run for ``elapsed`` seconds."""
    if _sink is not None:
        _sink(label, elapsed, last_line, done=done)


@contextlib.contextmanager
def step(label: str) -> Iterator[None]:
    """Mark the step ``label`` as running: :func:`tick` reports under this label, and its end
    is reported when the block exits."""
    global _current
    started = time.monotonic()
    _current = label
    try:
        yield
    finally:
        _current = None
        report(label, time.monotonic() - started, done=True)


def tick(elapsed: float, last_line: Callable[[], str]) -> None:
    """Called by the process supervisor while a command runs; cheap when nobody listens, and
    ``last_line`` (the step's newest output line) is computed at most four times a second."""
    global _next_tick
    if _sink is None or _current is None:
        return
    now = time.monotonic()
    if now < _next_tick:
        return
    _next_tick = now + _TICK_INTERVAL
    _sink(_current, elapsed, last_line(), done=False)


class TerminalProgress:
    """A sink writing to pytest's terminal reporter (``tr``); ``clean`` makes untrusted text
    (a step's output) safe to print."""

    def __init__(
        self,
        tr: Any,
        clean: Callable[[str], str],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tr = tr
        self.clean = clean
        self.clock = clock
        self.tty = bool(getattr(tr, "isatty", False))
        self._last_write = -1e9
        self._shown = False  # an updating line is on screen and must be cleared

    def __call__(self, label: str, elapsed: float, last_line: str, *, done: bool) -> None:
        if done:
            if self._shown:  # leave one line saying how long it took, where progress was shown
                self._show(f"corrsource: {label}: finished in {elapsed:.0f} s", final=True)
            self._shown = False
            self._last_write = -1e9
            return
        now = self.clock()
        if elapsed < _SHOW_AFTER:
            return
        if now - self._last_write < (_TTY_INTERVAL if self.tty else LOG_INTERVAL):
            return
        self._last_write = now
        text = f"corrsource: {label}: {elapsed:.0f} s"
        shown = self.clean(last_line.strip())
        if shown:
            text += f" | {shown}"
        self._show(text, final=False)

    def _show(self, text: str, *, final: bool) -> None:
        if not self._shown:
            self.tr.ensure_newline()  # never on pytest's line of dots
        self._shown = True
        if not self.tty:
            self.tr.write_line(text)
            return
        width = int(getattr(getattr(self.tr, "_tw", None), "fullwidth", 80) or 80)
        self.tr.rewrite(text[: width - 1], erase=True)
        if final:
            self.tr.write_line("")
