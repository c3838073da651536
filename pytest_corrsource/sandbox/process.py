"""Run one command of a model repository: no shell, scrubbed environment, bounded everything.

* The child runs in its own session, so its process group can be killed as a whole. Descendants
  that escape into other groups or sessions (``setsid``, double fork) are found on Linux by
  walking ``/proc/*/stat`` parent links while the command runs, and by an inherited marker
  variable (:data:`STEP_MARKER_VARIABLE`) read from ``/proc/*/environ`` when cleaning up. On a
  timeout the whole tree is stopped and then killed with ``SIGKILL``; after a normal exit any
  leftover process of the step (a daemonized grandchild) is killed too.
* Output is read through pipes keeping only the last ``max_output_bytes`` of each stream, and the
  call never hangs on a grandchild that keeps a pipe open: draining is bounded in time.
* With a :class:`Confinement` (what every manifest step gets, see :mod:`.steps`) the command runs
  in the chosen backend: in a bubblewrap sandbox (own pid, mount, ipc, uts namespaces; network
  namespace when ``network=False``) with per-step :mod:`.limits`; once bwrap's pid 1 exits the
  kernel kills everything left in the pid namespace, so nothing outlives the step. Without
  bubblewrap, ``network=False`` falls back to ``unshare --net`` (partial isolation).
* Without a confinement (the checker's own helper commands, and the tests of this module)
  ``network=False`` uses ``unshare --net``; :func:`network_isolation` says whether that works.

Everything here is plain library code: it knows nothing of pytest or of the manifest.
"""

from __future__ import annotations

import contextlib
import functools
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_corrsource import progress
from pytest_corrsource.errors import CorrsourceError
from pytest_corrsource.sandbox.backends import Backend, Mounts, bwrap_command
from pytest_corrsource.sandbox.limits import Limits, PidsCgroup, exceeded_limit
from pytest_corrsource.secrets import redact, without_credentials

__all__ = [
    "STEP_MARKER_VARIABLE",
    "CommandResult",
    "Confinement",
    "IsolationUnavailable",
    "network_isolation",
    "redact",
    "run_command",
    "scrubbed_environment",
]

#: Environment variable (with a per-call random value) given to every command so that its
#: descendants can be found in ``/proc/*/environ`` even after they were re-parented.
STEP_MARKER_VARIABLE = "PYTEST_CORRSOURCE_STEP"

_DRAIN_GRACE_SECONDS = 2.0
_READ_CHUNK = 1 << 16


class IsolationUnavailable(CorrsourceError, RuntimeError):
    """``network=False`` was requested but this platform cannot isolate the network."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Result


def _format_seconds(seconds: float) -> str:
    if seconds >= 10:
        return f"{seconds:.0f} s"
    return f"{seconds:.1f} s"


def _last_lines(text: str, max_lines: int) -> tuple[list[str], int]:
    lines = text.rstrip("\n").splitlines()
    if max_lines <= 0:
        return [], len(lines)
    return lines[-max_lines:], max(0, len(lines) - max_lines)


@dataclass(frozen=True)
class CommandResult:
    """What happened when a command ran. ``returncode`` is None when it was killed on timeout."""

    argv: tuple[str, ...]
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timeout: float | None = None
    limit_exceeded: str | None = None  # e.g. "`processes` (1024 processes and threads)"

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and self.limit_exceeded is None

    def status(self) -> str:
        """One line: how the command ended and how long it took."""
        if self.limit_exceeded is not None and not self.timed_out:
            return (
                f"exceeded the sandbox limit {self.limit_exceeded}: {self._ending()} "
                "(raise it under the manifest's `limits:` if the step needs more)"
            )
        return self._ending()

    def _ending(self) -> str:
        if self.timed_out:
            limit = self.timeout if self.timeout is not None else self.seconds
            return f"timed out after {limit:g} s; the whole process tree was killed"
        code = self.returncode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"killed by {name} (exit code {code}) after {_format_seconds(self.seconds)}"
        return f"exit code {code} after {_format_seconds(self.seconds)}"

    def describe(self, max_lines: int = 20) -> str:
        """A trimmed human summary for failure messages: status, then the ends of stderr/stdout."""
        parts = [self.status()]
        for name, text, truncated in (
            ("stderr", self.stderr, self.stderr_truncated),
            ("stdout", self.stdout, self.stdout_truncated),
        ):
            if not text.strip():
                continue
            lines, hidden = _last_lines(text, max_lines)
            header = f"--- {name}"
            if hidden or truncated:
                header += f" (last {len(lines)} lines)"
            header += " ---"
            parts.append(header)
            parts.extend(lines)
        if len(parts) == 1:
            parts.append("(no output)")
        return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# Environment


_PASSTHROUGH_EXACT = (
    "LANG",
    "LANGUAGE",
    "TZ",
    "TERM",
    "SOURCE_DATE_EPOCH",
    # Windows needs these to start Python at all.
    "SYSTEMROOT",
    "SYSTEMDRIVE",
    "WINDIR",
    "COMSPEC",
    "PATHEXT",
)

#: Package-installation configuration: passed through unless the value embeds credentials.
_PACKAGE_CONFIG = (
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_CONSTRAINT",
    "PIP_CERT",
    "PIP_TRUSTED_HOST",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_FIND_LINKS",
    "UV_CONSTRAINT",
    "UV_INSECURE_HOST",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "http_proxy",
    "https_proxy",
    "ftp_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "FTP_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
)


def package_sources(
    env: Mapping[str, str], config_files: Sequence[str | Path] = ()
) -> tuple[Path, ...]:
    """Local files and folders the package tools' settings point at — a ``file://`` index or
    ``--find-links`` wheelhouse, a constraints file, CA certificates — which an install step
    must see (read-only) inside the sandbox: those of *env*, then those of pip's configuration
    *config_files* (which pip, and uv through the settings mapped from them, read inside)."""
    from pytest_corrsource.sandbox.installers import pip_settings

    values = [env.get(name, "") for name in _PACKAGE_CONFIG]
    if config_files:
        values += pip_settings({}, config_files).values()
    found: list[Path] = []
    for value in values:
        # Lists are space-separated, and comma-separated in uv's UV_FIND_LINKS.
        for word in value.replace(",", " ").split():
            if word.startswith("file://"):
                word = urllib.parse.unquote(urllib.parse.urlsplit(word).path)
            elif not word.startswith("/"):
                continue  # a URL of a server, or a host name
            path = Path(word)
            if path.exists() and path not in found:
                found.append(path)
    return tuple(found)


def scrubbed_environment(
    *,
    path_prefix: Sequence[Path],
    home: Path,
    tmpdir: Path,
    extra: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
    warnings: list[str] | None = None,
) -> dict[str, str]:
    """Build a child environment from an allow-list; nothing else from *base* passes.

    *base* defaults to ``os.environ``. *extra* (the manifest's ``env:``) is applied last.
    Allowed variables that look secret or carry a credential are dropped (secrets.py); why
    is appended to *warnings*, for the caller's ``Finding.warnings``.
    """
    source: Mapping[str, str] = os.environ if base is None else base
    env: dict[str, str] = {}

    inherited_path = source.get("PATH", os.defpath)
    entries = [str(p) for p in path_prefix]
    entries.extend(entry for entry in inherited_path.split(os.pathsep) if entry)
    env["PATH"] = os.pathsep.join(entries)

    env["HOME"] = str(home)
    if sys.platform == "win32":
        env["USERPROFILE"] = str(home)
    for name in ("TMPDIR", "TMP", "TEMP"):
        env[name] = str(tmpdir)

    allowed = {
        name: value
        for name, value in source.items()
        if name in _PASSTHROUGH_EXACT or name.startswith("LC_") or name in _PACKAGE_CONFIG
    }
    passed, dropped = without_credentials(allowed)
    env.update(passed)
    if warnings is not None:
        warnings.extend(dropped)

    env["PYTHONHASHSEED"] = "0"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if extra:
        env.update(extra)
    return env


# --------------------------------------------------------------------------------------------
# Confinement


@dataclass(frozen=True)
class Confinement:
    """How a step is confined: the backend, what it sees of the host, and its limits."""

    backend: Backend
    mounts: Mounts = field(default_factory=Mounts)
    limits: Limits = field(default_factory=Limits)


# --------------------------------------------------------------------------------------------
# Network isolation (without a confinement)


def _unshare_prefix(unshare: str) -> list[str]:
    geteuid = getattr(os, "geteuid", None)
    if geteuid is not None and geteuid() == 0:
        return [unshare, "--net", "--"]
    return [unshare, "--net", "--map-root-user", "--"]


@functools.lru_cache(maxsize=1)
def _isolation_probe() -> tuple[bool, str, tuple[str, ...]]:
    if not sys.platform.startswith("linux"):
        return False, f"network namespaces are Linux-only (this platform is {sys.platform})", ()
    unshare = shutil.which("unshare")
    if unshare is None:
        return False, "the `unshare` program (util-linux) is not installed", ()
    prefix = _unshare_prefix(unshare)
    probe = [*prefix, sys.executable, "-c", ""]
    shown = " ".join(prefix[:-1])
    try:
        done = subprocess.run(probe, capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"`{shown} true` could not run: {exc}", ()
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        why = detail[-1] if detail else f"exit code {done.returncode}"
        return False, f"`{shown} true` failed here: {why}", ()
    return True, "", tuple(prefix)


def network_isolation() -> tuple[bool, str]:
    """Whether commands can run without network access here, and if not, why (probed once)."""
    available, reason, _ = _isolation_probe()
    return available, reason


# --------------------------------------------------------------------------------------------
# Process tree handling (Linux /proc; best effort, silently a no-op elsewhere)


@dataclass(frozen=True)
class _ProcInfo:
    ppid: int
    pgrp: int
    start: int


def _read_stat(pid: int) -> _ProcInfo | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        # fields[0] is field 3 (state) of proc(5): ppid=4, pgrp=5, starttime=22.
        return _ProcInfo(ppid=int(fields[1]), pgrp=int(fields[2]), start=int(fields[19]))
    except (IndexError, ValueError):
        return None


def _process_table() -> dict[int, _ProcInfo]:
    table: dict[int, _ProcInfo] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for name in names:
        if name.isdigit():
            info = _read_stat(int(name))
            if info is not None:
                table[int(name)] = info
    return table


def _has_marker(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            data = handle.read()
    except OSError:
        return False
    return data.startswith(marker) or (b"\0" + marker) in data


def _protected_pids() -> set[int]:
    """Ourselves and our ancestors: never signalled, whatever the scan says."""
    protected = {0, 1, os.getpid()}
    pid = os.getpid()
    for _ in range(256):
        info = _read_stat(pid)
        if info is None or info.ppid in protected:
            break
        protected.add(info.ppid)
        pid = info.ppid
    return protected


class _Tree:
    """The processes belonging to one command, remembered as (pid, start time) pairs."""

    def __init__(self, root: int, marker: bytes) -> None:
        self.root = root
        self.marker = marker
        self.known: dict[int, int] = {}
        self.enabled = os.path.isdir("/proc/self")

    def _collect(
        self, table: dict[int, _ProcInfo], *, root_alive: bool, scan_environ: bool
    ) -> dict[int, int]:
        members: dict[int, int] = {}
        for pid, start in self.known.items():
            info = table.get(pid)
            if info is not None and info.start == start:
                members[pid] = start
        root_info = table.get(self.root)
        if root_info is not None and root_alive:
            # Only while the command has not been reaped can its pid not have been reused.
            members[self.root] = root_info.start
        for pid, info in table.items():
            if info.pgrp == self.root:
                members[pid] = info.start
        if scan_environ:
            for pid, info in table.items():
                if pid not in members and _has_marker(pid, self.marker):
                    members[pid] = info.start
        # Close over parent links: children of members are members.
        children: dict[int, list[int]] = {}
        for pid, info in table.items():
            children.setdefault(info.ppid, []).append(pid)
        stack = list(members)
        while stack:
            for child in children.get(stack.pop(), ()):
                if child not in members:
                    members[child] = table[child].start
                    stack.append(child)
        return members

    def observe(self) -> None:
        """Remember the current descendants of the command (called periodically while it runs)."""
        if self.enabled:
            self.known.update(self._collect(_process_table(), root_alive=True, scan_environ=False))

    def kill(self, *, root_alive: bool) -> None:
        """Stop every process of the tree (so none can fork further), then SIGKILL them all."""
        if not self.enabled:
            with contextlib.suppress(OSError):
                os.killpg(self.root, signal.SIGKILL)
            return
        protected = _protected_pids()
        stopped: dict[int, int] = {}
        for _ in range(8):
            members = self._collect(_process_table(), root_alive=root_alive, scan_environ=True)
            fresh = {p: s for p, s in members.items() if p not in stopped and p not in protected}
            if not fresh:
                break
            for pid, start in fresh.items():
                _signal(pid, start, signal.SIGSTOP)
            stopped.update(fresh)
            self.known.update(fresh)
        with contextlib.suppress(OSError):
            os.killpg(self.root, signal.SIGKILL)
        for pid, start in stopped.items():
            _signal(pid, start, signal.SIGKILL)


def _signal(pid: int, start: int, sig: signal.Signals) -> None:
    """Signal *pid* only if it is still the process that started at *start* (race-free w/ pidfd)."""
    pidfd_open = getattr(os, "pidfd_open", None)
    send = getattr(signal, "pidfd_send_signal", None)
    fd = -1
    if pidfd_open is not None and send is not None:
        try:
            fd = pidfd_open(pid)
        except OSError:
            fd = -1
    try:
        info = _read_stat(pid)
        if info is None or info.start != start:
            return
        if fd >= 0 and send is not None:
            send(fd, sig)
        else:
            os.kill(pid, sig)
    except OSError:
        pass
    finally:
        if fd >= 0:
            os.close(fd)


# --------------------------------------------------------------------------------------------
# Output capture


def _last_line(*tails: _Tail) -> str:
    """The newest non-empty output line of a running command (for the progress line)."""
    for tail in sorted(tails, key=lambda t: t.total, reverse=True):
        lines = bytes(tail.buffer[-512:]).decode("utf-8", "replace").splitlines()
        for line in reversed(lines):
            if line.strip():
                return line
    return ""


class _Tail:
    """Keeps the last *limit* bytes of a stream; memory stays below 2 * limit."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self.buffer = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.buffer += chunk
        if len(self.buffer) > 2 * self.limit:
            self._trim()

    def _trim(self) -> None:
        excess = len(self.buffer) - self.limit
        if excess > 0:
            del self.buffer[:excess]

    @property
    def truncated(self) -> bool:
        return self.total > self.limit

    def text(self) -> str:
        self._trim()
        data = bytes(self.buffer)
        if self.truncated:
            # Do not start in the middle of a UTF-8 sequence.
            skip = 0
            while skip < min(3, len(data)) and data[skip] & 0xC0 == 0x80:
                skip += 1
            data = data[skip:]
        return data.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------------------------
# run_command


def _missing(argv0: str, cwd: Path, env: Mapping[str, str]) -> bool:
    if os.sep in argv0 or (os.altsep is not None and os.altsep in argv0):
        candidate = Path(argv0) if os.path.isabs(argv0) else cwd / argv0
        return not candidate.exists()
    return shutil.which(argv0, path=env.get("PATH", os.defpath)) is None


def _failed_start(argv: tuple[str, ...], code: int, message: str, seconds: float) -> CommandResult:
    return CommandResult(
        argv=argv, returncode=code, stdout="", stderr=message + "\n", seconds=seconds,
        timed_out=False,
    )  # fmt: skip


def run_command(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    max_output_bytes: int = 1 << 20,
    network: bool = True,
    stdin_data: bytes | None = None,
    confinement: Confinement | None = None,
) -> CommandResult:
    """Run *argv* (no shell) in *cwd* with exactly *env*; never raises for a failing command.

    A missing executable gives return code 127, one that cannot be executed 126.
    Raises :class:`IsolationUnavailable` for ``network=False`` where isolation does not work,
    and ``ValueError`` for an empty *argv*.
    """
    if confinement is not None and confinement.backend.name == "bwrap":
        return _run_in_bwrap(
            argv, cwd=cwd, env=env, timeout=timeout, max_output_bytes=max_output_bytes,
            network=network, stdin_data=stdin_data, confinement=confinement,
        )  # fmt: skip
    if confinement is not None and confinement.backend.name == "none" and not network:
        raise IsolationUnavailable(
            "no sandbox is in use (" + ("; ".join(confinement.backend.notes) or "none") + ")"
        )
    return _run(
        argv, cwd=cwd, env=env, timeout=timeout, max_output_bytes=max_output_bytes,
        network=network, stdin_data=stdin_data,
    )  # fmt: skip


def _start_problem(
    args: tuple[str, ...], cwd: Path, env: Mapping[str, str]
) -> CommandResult | None:
    """Why ``args`` cannot start (exit 127, as a shell says it), or None."""
    if not args:
        raise ValueError("run_command needs a non-empty argv")
    if not cwd.is_dir():
        return _failed_start(args, 127, f"working directory does not exist: {cwd}", 0.0)
    if _missing(args[0], cwd, env):
        return _failed_start(args, 127, f"command not found: {args[0]}", 0.0)
    return None


def _run_in_bwrap(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    max_output_bytes: int,
    network: bool,
    stdin_data: bytes | None,
    confinement: Confinement,
) -> CommandResult:
    """:func:`_run` inside bubblewrap, in a pids cgroup where one can be made (uid 0)."""
    args = tuple(str(a) for a in argv)
    unstartable = _start_problem(args, Path(cwd), env)
    if unstartable is not None:  # said of the command itself, before bwrap wraps it
        return unstartable
    bwrap = confinement.backend.executable
    assert bwrap is not None
    limits = confinement.limits
    cgroup = PidsCgroup.create(limits.processes) if os.geteuid() == 0 else None
    wrapped = bwrap_command(
        bwrap, args, cwd=Path(cwd), mounts=confinement.mounts, network=network, limits=limits
    )
    if cgroup is not None:
        wrapped = [*cgroup.join_prefix(), *wrapped]
    try:
        result = _run(
            wrapped, cwd=Path(cwd), env=env, timeout=timeout,
            max_output_bytes=max_output_bytes, network=True, stdin_data=stdin_data,
            pid_namespace=True,
        )  # fmt: skip
        hit = cgroup is not None and cgroup.hit_max()
    finally:
        if cgroup is not None:
            cgroup.remove()
    exceeded = exceeded_limit(
        limits, returncode=result.returncode, stderr=result.stderr, pids_max_hit=hit
    )
    return CommandResult(
        argv=args, returncode=result.returncode, stdout=result.stdout, stderr=result.stderr,
        seconds=result.seconds, timed_out=result.timed_out,
        stdout_truncated=result.stdout_truncated, stderr_truncated=result.stderr_truncated,
        timeout=timeout, limit_exceeded=exceeded,
    )  # fmt: skip


def _run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    max_output_bytes: int,
    network: bool,
    stdin_data: bytes | None,
    pid_namespace: bool = False,
) -> CommandResult:
    """The command with its supervision. ``pid_namespace``: *argv* is bwrap with its own pid
    namespace, whose end the kernel makes the end of every process in it: no /proc scan for
    leftovers is needed (bwrap is killed with its process group on a timeout, and its pid 1
    dies with it, ``--die-with-parent``)."""
    args = tuple(str(a) for a in argv)
    started = time.monotonic()
    unstartable = _start_problem(args, Path(cwd), env)
    if unstartable is not None:
        return unstartable

    prefix: tuple[str, ...] = ()
    if not network:
        available, reason, prefix = _isolation_probe()
        if not available:
            raise IsolationUnavailable(reason)

    child_env = dict(env)
    marker_value = uuid.uuid4().hex
    child_env[STEP_MARKER_VARIABLE] = marker_value
    posix = os.name == "posix"
    try:
        proc = subprocess.Popen(
            [*prefix, *args],
            cwd=str(cwd),
            env=child_env,
            stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            start_new_session=posix,  # its own process group, killable as a whole
        )
    except FileNotFoundError:
        return _failed_start(args, 127, f"command not found: {args[0]}", 0.0)
    except PermissionError:
        return _failed_start(args, 126, f"permission denied: {args[0]} is not executable", 0.0)
    except OSError as exc:
        return _failed_start(args, 126, f"cannot execute {args[0]}: {exc.strerror or exc}", 0.0)

    out, err = _Tail(max_output_bytes), _Tail(max_output_bytes)
    marker = f"{STEP_MARKER_VARIABLE}={marker_value}".encode()
    if posix:
        timed_out = _supervise_posix(
            proc, out, err, stdin_data, started + timeout, marker, scan=not pid_namespace
        )
    else:  # pragma: no cover - exercised on Windows only
        timed_out = _supervise_threads(proc, out, err, stdin_data, started + timeout)
    seconds = time.monotonic() - started
    return CommandResult(
        argv=args,
        returncode=None if timed_out else proc.returncode,
        stdout=out.text(),
        stderr=err.text(),
        seconds=seconds,
        timed_out=timed_out,
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
        timeout=timeout,
    )


def _supervise_posix(
    proc: subprocess.Popen[bytes],
    out: _Tail,
    err: _Tail,
    stdin_data: bytes | None,
    deadline: float,
    marker: bytes,
    *,
    scan: bool = True,
) -> bool:
    """Pump pipes and watch the child until it exits or *deadline* passes. True on timeout.

    ``scan``: find the command's descendants in /proc (not needed in a pid namespace)."""
    tree = _Tree(proc.pid, marker)
    tree.enabled = tree.enabled and scan
    selector = selectors.DefaultSelector()
    assert proc.stdout is not None
    assert proc.stderr is not None
    streams = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    for fd in streams:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ, "read")
    pending = memoryview(stdin_data or b"")
    if proc.stdin is not None:
        os.set_blocking(proc.stdin.fileno(), False)
        if pending:
            selector.register(proc.stdin.fileno(), selectors.EVENT_WRITE, "write")
        else:
            proc.stdin.close()
    exit_fd = -1
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is not None:
        try:
            exit_fd = pidfd_open(proc.pid)
            selector.register(exit_fd, selectors.EVENT_READ, "exit")
        except OSError:
            exit_fd = -1

    def pump(wait: float) -> None:
        nonlocal pending
        for key, _ in selector.select(max(0.0, wait)):
            if key.data == "read":
                try:
                    chunk = os.read(key.fd, _READ_CHUNK)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    streams[key.fd].add(chunk)
                else:
                    selector.unregister(key.fd)
            elif key.data == "write" and proc.stdin is not None:
                try:
                    written = os.write(key.fd, pending[:_READ_CHUNK])
                    pending = pending[written:]
                except BlockingIOError:
                    continue
                except OSError:  # the child closed its stdin: stop feeding it
                    pending = pending[:0]
                if not pending:
                    selector.unregister(key.fd)
                    with contextlib.suppress(OSError):
                        proc.stdin.close()
            elif key.data == "exit":
                selector.unregister(key.fd)

    timed_out = False
    interval = 0.01
    began = next_observe = time.monotonic()
    try:
        while proc.poll() is None:
            now = time.monotonic()
            progress.tick(now - began, lambda: _last_line(out, err))
            if now >= deadline:
                timed_out = True
                break
            if now >= next_observe:
                tree.observe()
                interval = min(interval * 2, 0.25)
                next_observe = now + interval
            wait = min(next_observe, deadline) - now
            if exit_fd < 0:
                wait = min(wait, 0.05)
            if selector.get_map():
                pump(wait)
            else:
                time.sleep(wait)
        # Timed out: stop and kill the whole tree. Exited: kill whatever it left behind.
        tree.kill(root_alive=timed_out)
        if timed_out:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        drain_deadline = time.monotonic() + _DRAIN_GRACE_SECONDS
        while any(key.data == "read" for key in selector.get_map().values()):
            remaining = drain_deadline - time.monotonic()
            if remaining <= 0:
                break
            pump(min(remaining, 0.1))
    finally:
        selector.close()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if exit_fd >= 0:
            os.close(exit_fd)
        if proc.returncode is None:
            with contextlib.suppress(OSError):
                proc.kill()
            proc.wait()
    return timed_out


def _supervise_threads(  # pragma: no cover - exercised on Windows only
    proc: subprocess.Popen[bytes],
    out: _Tail,
    err: _Tail,
    stdin_data: bytes | None,
    deadline: float,
) -> bool:
    """Fallback without ``select`` on pipes: daemon reader threads and a bounded join."""

    def reader(stream: object, tail: _Tail) -> None:
        read = getattr(stream, "read1", None) or getattr(stream, "read")  # noqa: B009
        with contextlib.suppress(OSError, ValueError):
            while chunk := read(_READ_CHUNK):
                tail.add(chunk)

    threads = [
        threading.Thread(target=reader, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=reader, args=(proc.stderr, err), daemon=True),
    ]
    for thread in threads:
        thread.start()
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.write(stdin_data or b"")
        with contextlib.suppress(OSError):
            proc.stdin.close()
    timed_out = False
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        proc.wait()
    for thread in threads:
        thread.join(timeout=_DRAIN_GRACE_SECONDS)
    return timed_out
