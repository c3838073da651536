"""What a check function receives and returns: the interface built-in checks and checks
added by other plugins (``pytest_corrsource_checks``) share.

Stage: Plan -> check functions -> Results. A check takes a :class:`CheckContext` and either
returns a :class:`Finding` (passed, perhaps with warnings) or None (a plain pass), or raises
:class:`CheckFailed` / :class:`CheckSkipped`. Checks never import pytest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_corrsource.errors import CorrsourceError
from pytest_corrsource.vocabulary import DEFAULT_LEVEL, Level

if TYPE_CHECKING:
    from pytest_corrsource.hashing import DigestCache
    from pytest_corrsource.manifest import Manifest


class CheckFailed(CorrsourceError):
    """The requirement is not met. ``message`` says what was found; ``fix`` how to fix it."""

    def __init__(self, message: str, *, fix: str | None = None, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.details = details  # e.g. the tail of a command's output


class CheckSkipped(CorrsourceError):
    """The check cannot run on this repository (e.g. no floating-point tensors to perturb); says
    why. Skipped is a verdict only for a check the selected level does not require: a required
    check that is skipped is failed "could not be verified" unless waived (``results.py``)."""


class CheckUnverifiable(CheckSkipped):
    """The check cannot run on this machine (no sandbox, no network namespaces, no such Python).

    A required check that raises it is failed "could not be verified on this machine: <reason>"
    unless the user waives it (``--corrsource-waive CS404=reason`` or manifest ``waive:``).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Finding:
    """A passed check, with what is worth reporting about it."""

    message: str = ""
    warnings: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # JSON-able extras for the report


@dataclass(frozen=True)
class Options:
    """Run-wide settings the checks read (resolved from the command line / ini / env)."""

    level: Level = DEFAULT_LEVEL
    fresh_env: bool = False
    # Copy the whole working tree into scratch copies, not only what git tracks (and the
    # files the manifest declares): --corrsource-working-tree.
    working_tree: bool = False
    fetch: bool = False
    twice: bool = False
    cache_dir: Path | None = None  # environments and downloads; None: the default user cache
    scratch_dir: Path | None = None  # where scratch copies go; None: a temporary folder
    # Hash all declared weights in parallel threads at the first digest check. Off on
    # pytest-xdist workers, where the processes already share the work out.
    prehash: bool = True
    # Waivers given on the command line / ini / environment: check id -> reason (may be "").
    # The manifest's `waive:` adds to them; the command line wins on the reason.
    waivers: tuple[tuple[str, str], ...] = ()
    # --corrsource-sandbox: "auto" (best that works), "bwrap" (required) or "none".
    sandbox: str = "auto"
    # --corrsource-installer: "auto" (uv when installed), "uv" (required) or "pip".
    installer: str = "auto"


class RunState:
    """Per-process memo of expensive shared work (environments, runs), keyed by strings.

    Under pytest-xdist each worker has its own; work may then be done once per worker,
    never twice in one process.
    """

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def once(self, key: str, compute: Callable[[], Any]) -> Any:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._values:
                try:
                    self._values[key] = ("ok", compute())
                except BaseException as exc:  # remembered so dependants fail the same way
                    self._values[key] = ("error", exc)
            kind, value = self._values[key]
        if kind == "error":
            raise value
        return value


@dataclass
class CheckContext:
    manifest: Manifest
    check_id: str
    subject: str
    options: Options
    digests: DigestCache
    state: RunState
    component: str = ""  # the plan's component, e.g. "checkpoints" for weights checks on them

    @property
    def root(self) -> Path:
        return self.manifest.root


CheckFunction = Callable[[CheckContext], "Finding | None"]
