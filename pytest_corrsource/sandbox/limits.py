"""Per-step resource limits: processes, memory, file size, wall time.

Mechanisms, and what each bounds where (kept honest in :meth:`Limits.describe`):

* **processes** — ``RLIMIT_NPROC`` set inside the sandbox with ``prlimit``. The kernel counts
  it per user *and user namespace* (Linux >= 5.14), so inside bubblewrap's user namespace it
  counts the step's own processes and threads. It is never enforced for uid 0 (the kernel
  exempts root), so when the checker runs as root a pids cgroup (``pids.max``, cgroup v2 or the
  v1 ``pids`` hierarchy) bounds the step instead, when the cgroup filesystem is writable. Where
  neither applies (root without a writable cgroup) the count is not bounded and the isolation
  report says so.
* **memory** — ``RLIMIT_DATA`` per process (private writable memory: heap and anonymous maps;
  unlike ``RLIMIT_AS`` it does not count address space merely reserved, as CUDA and JAX do).
* **file size** — ``RLIMIT_FSIZE``: a write past it fails (``SIGXFSZ``).
* **wall time** — the step's timeout; the whole sandbox is killed when it passes.

Plain library code: it knows nothing of pytest or of the manifest.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "PidsCgroup",
    "exceeded_limit",
    "format_bytes",
    "parse_size",
    "prlimit_prefix",
]

_GIB = 1 << 30
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str | int) -> int:
    """``"8GiB"``, ``"512M"``, ``"1.5G"``, ``1048576`` -> bytes (binary units). ValueError else."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text <= 0:
            raise ValueError(f"{text} is not a positive size")
        return text
    match = _SIZE.match(str(text))
    if match is None:
        raise ValueError(f"{text!r} is not a size such as 512MiB or 8GiB")
    unit = (match.group(2) or "").upper().rstrip("B").rstrip("I")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"{text!r} is not a positive size")
    return size


def format_bytes(size: int) -> str:
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def physical_memory() -> int:
    """This machine's RAM in bytes (16 GiB where it cannot be read)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 16 * _GIB


@dataclass(frozen=True)
class Limits:
    """Resource limits of one step. ``wall_time`` None: the step's own ``timeout``.

    Defaults are generous for real models (threads of BLAS and data loaders count as
    processes; a checkpoint can be tens of GiB) and still stop a bomb from taking the host:
    4096 processes and threads, the machine's RAM per process, 64 GiB per file.
    """

    processes: int = 4096
    memory: int = field(default_factory=physical_memory)
    file_size: int = 64 * _GIB
    wall_time: float | None = None

    def timeout(self, step_timeout: float) -> float:
        """The wall time a step gets: its own timeout, capped by ``limits.wall-time``."""
        return step_timeout if self.wall_time is None else min(step_timeout, self.wall_time)

    def as_dict(self) -> dict[str, object]:
        return {
            "processes": self.processes,
            "memory": self.memory,
            "file-size": self.file_size,
            "wall-time": self.wall_time,
        }

    @classmethod
    def from_manifest(cls, data: Mapping[str, object] | None) -> Limits:
        """``limits:`` of the manifest (already schema-checked) over the defaults."""
        defaults = cls()
        if not data:
            return defaults
        processes = data.get("processes", defaults.processes)
        memory = data.get("memory", defaults.memory)
        file_size = data.get("file-size", defaults.file_size)
        wall = data.get("wall-time", defaults.wall_time)
        if not isinstance(processes, int) or isinstance(processes, bool) or processes < 1:
            raise ValueError(f"limits.processes: {processes!r} is not a positive integer")
        if wall is not None and (not isinstance(wall, (int, float)) or wall <= 0):
            raise ValueError(f"limits.wall-time: {wall!r} is not a positive number of seconds")
        return cls(
            processes=processes,
            memory=parse_size(memory),  # type: ignore[arg-type]
            file_size=parse_size(file_size),  # type: ignore[arg-type]
            wall_time=None if wall is None else float(wall),
        )


#: The defaults (see :class:`Limits`).
DEFAULT_LIMITS = Limits()


def prlimit_prefix(limits: Limits) -> list[str]:
    """``prlimit`` arguments applying *limits* to the command that follows (empty if missing)."""
    prlimit = shutil.which("prlimit", path="/usr/bin:/bin:/usr/sbin:/sbin")
    if prlimit is None:
        return []
    return [
        prlimit,
        f"--nproc={limits.processes}",
        f"--data={limits.memory}",
        f"--fsize={limits.file_size}",
        "--",
    ]


# --------------------------------------------------------------------------------------------
# pids cgroup (bounds the process count where RLIMIT_NPROC does not: uid 0)


def _cgroup_v2_pids() -> Path | None:
    """The cgroup v2 directory of this process, if its ``pids`` controller can be delegated."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            for mount in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
                here = mount / line[3:].lstrip("/")
                controllers = here / "cgroup.subtree_control"
                with contextlib.suppress(OSError):
                    if "pids" in controllers.read_text().split() and os.access(here, os.W_OK):
                        return here
    return None


def _cgroup_v1_pids() -> Path | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3 and "pids" in parts[1].split(","):
            here = Path("/sys/fs/cgroup/pids") / parts[2].lstrip("/")
            if (here / "cgroup.procs").exists() and os.access(here, os.W_OK):
                return here
    return None


class PidsCgroup:
    """A fresh pids cgroup for one step; ``join_prefix`` moves the step's first process in."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, max_pids: int) -> PidsCgroup | None:
        """A new child cgroup with ``pids.max``; None where none can be created here."""
        parent = _cgroup_v2_pids() or _cgroup_v1_pids()
        if parent is None:
            return None
        path = parent / f"corrsource-{uuid.uuid4().hex[:12]}"
        try:
            path.mkdir()
            (path / "pids.max").write_text(str(max_pids))
        except OSError:
            with contextlib.suppress(OSError):
                path.rmdir()
            return None
        return cls(path)

    def join_prefix(self) -> list[str]:
        """A ``sh`` prefix that enters the cgroup, then ``exec``s the rest of the command line.

        Entering before the exec (not after ``Popen`` returns) leaves no window in which a
        process of the step could fork outside the cgroup.
        """
        return ["/bin/sh", "-c", 'echo 0 > "$0" && exec "$@"', str(self.path / "cgroup.procs")]

    def hit_max(self) -> bool:
        """Whether a fork was refused because ``pids.max`` was reached."""
        try:
            text = (self.path / "pids.events").read_text()
        except OSError:
            return False
        match = re.search(r"^max (\d+)", text, re.MULTILINE)
        return match is not None and int(match.group(1)) > 0

    def remove(self, *, patience: float = 5.0, at_exit: bool = False) -> None:
        """Kill whatever is left in the cgroup and remove it.

        Thousands of killed processes (a bounded fork bomb) can take a while to exit on a busy
        machine; whatever is still busy after *patience* seconds is retried at exit.
        """
        deadline = time.monotonic() + patience
        procs = self.path / "cgroup.procs"
        while True:
            try:
                pids = [int(p) for p in procs.read_text().split()]
            except OSError:
                pids = []
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
        if not at_exit:
            atexit.register(self.remove, patience=10.0, at_exit=True)


def exceeded_limit(
    limits: Limits, *, returncode: int | None, stderr: str, pids_max_hit: bool
) -> str | None:
    """Which limit a step ran into, named for the failure message (`` `memory` (1 GiB per
    process)``), or None."""
    processes = f"`processes` ({limits.processes} processes and threads)"
    file_size = f"`file-size` ({format_bytes(limits.file_size)} per file)"
    if pids_max_hit:
        return processes
    if returncode in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
        return file_size
    if returncode == 0:
        return None
    # Without a cgroup the kernel only refuses: the step's own error output says which limit.
    tail = stderr[-4000:]
    if re.search(r"MemoryError|Cannot allocate memory|std::bad_alloc|out of memory", tail):
        return f"`memory` ({format_bytes(limits.memory)} per process)"
    if re.search(r"Resource temporarily unavailable|Cannot fork|BlockingIOError", tail):
        return processes
    if re.search(r"File too large", tail):
        return file_size
    return None
