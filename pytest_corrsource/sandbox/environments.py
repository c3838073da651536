"""Isolated virtual environments, cached by the digest of what they were built from.

An environment is identified by :func:`environment_key`: a sha256 over a canonical JSON
document made of the key schema version, the *resolved* interpreter (version,
implementation, machine), the install commands (in order), the content digests of the
dependency specification files, and the extra environment variables.  Two requests with
the same key share one directory under ``<cache>/envs/<key[:16]>``.

Concurrency: builds are serialised per key with an exclusive advisory lock on
``<cache>/envs/<key[:16]>.lock`` (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on
Windows), so several pytest-xdist workers asking for the same environment build it once
and the others reuse it.  A build is published by writing ``.corrsource-complete``
*last* (write to a temporary file, then ``os.replace``); a directory without that marker
is a crashed or interrupted build and is removed and rebuilt.

Virtual environments are not relocatable, so the venv is always created in place at its
final path; it is never built elsewhere and renamed.

Installer: with uv (:mod:`.installers`) the venv is made by ``uv venv`` and given the
interpreter's bundled pip offline, otherwise by ``python -m venv``; which one built an
environment is part of its key and of its marker, so the report can say it.

Downloads (issue 14): one download/wheel cache **per repository**, under
``<cache>/downloads/<sha256 of the repository's resolved root path>[:16]``
(:func:`download_cache`), shared by every environment of that repository, mounted read-write for
the install commands only and not at all for any other step. A hostile install step can then
poison only its own repository's later builds, never another repository's. The identity is the
resolved path, not the git remote URL: a checkout's ``.git/config`` is written by whoever made
the checkout, so a remote URL would let one repository claim another's cache.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pytest_corrsource.errors import CorrsourceError
from pytest_corrsource.safe_io import read_text_bounded
from pytest_corrsource.sandbox.installers import find_uv

__all__ = [
    "KEY_SCHEMA_VERSION",
    "MARKER_NAME",
    "Environment",
    "EnvironmentBuildError",
    "EnvironmentSpec",
    "InstallOutcome",
    "InterpreterInfo",
    "InterpreterNotFoundError",
    "default_cache_dir",
    "download_cache",
    "ensure_environment",
    "environment_key",
    "environment_root",
    "find_interpreter",
    "interpreter_info",
    "repository_identity",
]

#: Bumped whenever the meaning of the key document changes.
KEY_SCHEMA_VERSION = 3
#: Name of the completion marker written last inside a finished environment.
MARKER_NAME = ".corrsource-complete"
#: How many characters of build output are kept in :attr:`Environment.install_log`.
LOG_TAIL_CHARS = 20_000
#: The conda prefix inside an environment's root when a conda tool makes the environment.
CONDA_PREFIX_NAME = "conda"
#: Timeout for creating the bare virtual environment (not for the install commands).
VENV_TIMEOUT_SECONDS = 600.0
_QUERY_TIMEOUT_SECONDS = 60.0
_VERSION_RE = re.compile(r"^\d+(?:\.\d+){0,2}$")
_QUERY_SCRIPT = (
    "import json, platform, sys; print(json.dumps({"
    "'version': platform.python_version(), "
    "'implementation': sys.implementation.name, "
    "'machine': platform.machine()}))"
)


# --------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class EnvironmentSpec:
    """What an environment is built from.

    ``python``: requested version such as ``"3.11"``; ``None`` means the interpreter that
    runs pytest (``sys.executable``).  ``commands``: install commands exactly as written in
    the manifest, run in order.  ``files``: absolute paths of dependency specifications
    whose *content* is part of the key.  ``env``: extra environment variables (part of the
    key; applying them is the caller's job).
    """

    python: str | None = None
    commands: tuple[str, ...] = ()
    files: tuple[Path, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    # sha256 of the repository's own source when the install commands install the repository
    # itself (`pip install .`, `-e .`): its code is then part of what the environment holds.
    source: str | None = None
    # "pip" or "uv" (part of the key: the two may resolve differently); ``uv`` is the
    # executable that builds it (not part of the key: any uv builds the same thing).
    installer: str = "pip"
    uv: Path | None = None
    # The conda tool that makes the environment from a conda file ("micromamba", "conda" …,
    # see :mod:`.conda`; the environment is then the prefix ``<root>/conda``), or
    # "pip-section" when no tool is here and only the file's pip section is installed.
    conda: str | None = None
    # Which repository the environment is for (:func:`repository_identity`): environments are
    # never shared between repositories, even with identical dependency files. An install runs
    # the repository's own code (setup.py, a build backend, `-e .` inside requirements.txt …)
    # and may leave anything in the environment; sharing it would let one repository's install
    # decide another's verdict, or hand it stale code that is not its own.
    repository: str = ""


@dataclass(frozen=True)
class InstallOutcome:
    """Result of the caller-provided install step; ``warnings`` are kept with the environment
    (e.g. the conda packages that were not installed) and reported when it is reused."""

    ok: bool
    log: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Environment:
    """A ready-to-use virtual environment."""

    root: Path
    python: Path
    bin_dir: Path
    key: str
    reused: bool
    install_log: str
    installer: str = "pip"
    warnings: tuple[str, ...] = ()
    # Built from a copy of this repository's environment for other code of its own (the key
    # of that environment): the dependencies were kept, the repository's package reinstalled.
    seeded_from: str | None = None


@dataclass(frozen=True)
class InterpreterInfo:
    """Identity of an interpreter as it enters the environment key."""

    version: str
    implementation: str
    machine: str


class EnvironmentBuildError(CorrsourceError):
    """Creating the venv or running the install commands failed; ``log`` has the output."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


class InterpreterNotFoundError(CorrsourceError, LookupError):
    """No interpreter matching the requested version exists on this machine.

    Callers should turn this into a skip (with ``str(exc)`` as the reason), not a failure.
    """

    def __init__(self, version: str | None) -> None:
        super().__init__(f"no Python {version} interpreter found (tried PATH, uv, sys.executable)")
        self.version = version


# --------------------------------------------------------------------------- interpreters


@functools.lru_cache(maxsize=64)
def _query_interpreter(path: str) -> InterpreterInfo | None:
    if os.path.realpath(path) == os.path.realpath(sys.executable):
        return InterpreterInfo(
            platform.python_version(), sys.implementation.name, platform.machine()
        )
    try:
        proc = subprocess.run(
            [path, "-I", "-c", _QUERY_SCRIPT],
            capture_output=True,
            text=True,
            timeout=_QUERY_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    try:
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        return InterpreterInfo(
            str(data["version"]), str(data["implementation"]), str(data["machine"])
        )
    except (ValueError, KeyError, IndexError, TypeError, RecursionError):
        return None


def interpreter_info(path: Path) -> InterpreterInfo | None:
    """Version/implementation/machine of the interpreter at ``path`` (cached), or None."""
    return _query_interpreter(str(path))


def _matches(info: InterpreterInfo | None, version: str) -> bool:
    if info is None:
        return False
    wanted = version.split(".")
    have = info.version.split(".")
    return have[: len(wanted)] == wanted


def _uv_find(version: str) -> Path | None:
    uv = find_uv()
    if uv is None:
        return None
    try:
        proc = subprocess.run(
            [str(uv), "python", "find", "--no-config", "--no-cache", version],
            capture_output=True,
            text=True,
            timeout=_QUERY_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    out = proc.stdout.strip()
    if proc.returncode != 0 or not out:
        return None
    return Path(out.splitlines()[-1].strip())


def find_interpreter(version: str | None) -> Path | None:
    """Locate an interpreter for ``version`` (``"3.11"``, ``"3"``, ``"3.11.7"``).

    ``None`` means ``sys.executable``.  Otherwise the candidates are, in order:
    ``sys.executable`` if its version matches (cheapest, and known to work with venv),
    ``python<version>`` / ``python<major.minor>`` on PATH, then ``uv python find``.  Each
    candidate's version is verified by running it.  Returns None when nothing matches.
    """
    if version is None:
        return Path(sys.executable)
    version = version.strip()
    if not _VERSION_RE.match(version):
        return None
    candidates: list[Path] = [Path(sys.executable)]
    names = [f"python{version}"]
    parts = version.split(".")
    if len(parts) == 3:
        names.append(f"python{parts[0]}.{parts[1]}")
    for name in names:
        found = shutil.which(name)
        if found is not None:
            candidates.append(Path(found))
    uv_found = _uv_find(version)
    if uv_found is not None:
        candidates.append(uv_found)
    for candidate in candidates:
        if _matches(interpreter_info(candidate), version):
            return candidate
    return None


# --------------------------------------------------------------------------- key


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _relative_names(files: tuple[Path, ...]) -> list[tuple[str, Path]]:
    """Name each file relative to the common parent directory of all files.

    This keeps the key independent of where the repository is checked out while still
    distinguishing ``requirements.txt`` from ``sub/requirements.txt``.
    """
    if not files:
        return []
    absolute = [Path(os.path.abspath(f)) for f in files]
    base = Path(os.path.commonpath([str(p.parent) for p in absolute]))
    return [(p.relative_to(base).as_posix(), p) for p in absolute]


def _key_document(spec: EnvironmentSpec, info: InterpreterInfo) -> dict[str, Any]:
    # Files are sorted: the manifest's listing order does not change what gets installed
    # (the commands do, and those are kept in order).  Duplicates collapse.
    file_entries = sorted(
        {
            (name, _file_digest(path) if path.is_file() else "missing")
            for name, path in _relative_names(spec.files)
        }
    )
    return {
        "schema": KEY_SCHEMA_VERSION,
        "python": {
            "version": info.version,
            "implementation": info.implementation,
            "machine": info.machine,
        },
        "commands": list(spec.commands),
        "files": [list(e) for e in file_entries],
        # Variables behave like a mapping: sorted by name, last value wins.
        "env": sorted(dict(spec.env).items()),
        "source": spec.source,
        "installer": spec.installer,
        "conda": spec.conda,
        "repository": spec.repository,
    }


def environment_key(spec: EnvironmentSpec) -> str:
    """sha256 (hex) of the canonical key document for ``spec``.

    Raises :class:`InterpreterNotFoundError` when the requested interpreter does not
    exist (the key depends on the resolved interpreter version).
    """
    return _keys(spec)[0]


def _keys(spec: EnvironmentSpec) -> tuple[str, str | None]:
    """The key of ``spec`` and its base key: the key without the repository's code, which
    environments differing only in that code share (None when nothing of the repository is
    installed, or for conda, whose environments are not seeded). One reading of the files."""
    interpreter = find_interpreter(spec.python)
    info = interpreter_info(interpreter) if interpreter is not None else None
    if info is None:
        raise InterpreterNotFoundError(spec.python)
    doc = _key_document(spec, info)
    base = None if spec.source is None or spec.conda is not None else {**doc, "source": None}
    return _digest(doc), None if base is None else _digest(base)


def _digest(doc: dict[str, Any]) -> str:
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- cache


def default_cache_dir() -> Path:
    """``$CORRSOURCE_CACHE_DIR``, else ``$XDG_CACHE_HOME/pytest-corrsource``, else
    ``~/.cache/pytest-corrsource``."""
    explicit = os.environ.get("CORRSOURCE_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "pytest-corrsource"
    return Path.home() / ".cache" / "pytest-corrsource"


def repository_identity(repository: Path) -> str:
    """Who a cache belongs to: a digest of the repository's resolved path. Not its git remote:
    `.git/config` is written by the repository, which could then claim another's caches."""
    return hashlib.sha256(os.fsencode(os.path.realpath(repository))).hexdigest()[:16]


def download_cache(cache_dir: Path, repository: Path) -> Path:
    """The download/wheel cache of the repository at *repository* (created): see the module
    docstring for why it is per repository and keyed by the resolved path."""
    path = Path(cache_dir) / "downloads" / repository_identity(repository)
    path.mkdir(parents=True, exist_ok=True)
    return path


def environment_root(bin_dir: Path) -> Path:
    """The folder of the environment whose executables are in *bin_dir*: the venv itself, or
    for a conda prefix (``<cache>/envs/<key>/conda/bin``) the folder around it, which also
    holds the repository's own code when the environment installs it."""
    prefix = bin_dir.parent
    if prefix.name == CONDA_PREFIX_NAME and prefix.parent.parent.name == "envs":
        return prefix.parent
    return prefix


def _venv_layout(root: Path, conda: str | None = None) -> tuple[Path, Path]:
    if conda not in (None, "pip-section"):
        # A conda prefix cannot be made in an existing folder: it is made by the install step
        # (in the sandbox, which can bind only existing folders) inside the environment's root.
        root = root / CONDA_PREFIX_NAME
    if sys.platform == "win32":
        bin_dir = root / "Scripts"
        return bin_dir, bin_dir / "python.exe"
    bin_dir = root / "bin"
    return bin_dir, bin_dir / "python"


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fh: IO[bytes] = path.open("a+b")
    try:
        if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
            import msvcrt

            while True:
                try:
                    fh.seek(0)
                    msvcrt.locking(fh.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    time.sleep(0.5)
            try:
                yield
            finally:
                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        fh.close()


def _read_marker(root: Path, key: str) -> dict[str, Any] | None:
    try:
        data = json.loads((root / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    return data


def _write_marker(
    root: Path,
    key: str,
    log: str,
    installer: str = "pip",
    warnings: tuple[str, ...] = (),
    base: str | None = None,
) -> None:
    tmp = root / f"{MARKER_NAME}.tmp-{os.getpid()}"
    payload = {
        "key": key,
        "base": base,
        "created": time.time(),
        "install_log": log,
        "installer": installer,
        "warnings": list(warnings),
    }
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(payload, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, root / MARKER_NAME)


# --------------------------------------------------------------------------- seeding
# A repository that installs itself gets a new environment whenever its code changes (the key
# holds the code's digest). Building it from nothing would download and unpack every
# dependency again (torch: minutes, gigabytes). Instead the newest complete environment of the
# same repository with the same dependency key (everything but the code) is copied, with hard
# links, the repository's own distributions are taken out of the copy, and the install commands
# run again: the dependencies are already satisfied, only the repository's package is built.
# Hard links share file contents with the seed; an install that rewrites a file in place can
# therefore change the seed, which belongs to the same repository (the key holds its identity),
# never to another.

#: How many environments are looked at for a seed (the cache is pruned by hand, so bounded).
_MAX_SEED_CANDIDATES = 500


def _find_seed(envs: Path, base: str, exclude: Path) -> Path | None:
    """The newest complete environment whose marker records ``base``."""
    found: list[tuple[float, Path]] = []
    for marker in sorted(envs.glob(f"*/{MARKER_NAME}"))[:_MAX_SEED_CANDIDATES]:
        root = marker.parent
        if root == exclude or root.is_symlink():
            continue
        try:
            data = json.loads(read_text_bounded(marker, 4 * LOG_TAIL_CHARS))
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(data, dict) and data.get("base") == base:
            found.append((float(data.get("created") or 0.0), root))
    return max(found)[1] if found else None


def _seed_from(seed: Path, root: Path) -> str:
    """Copy the environment ``seed`` to ``root`` (hard links for files), point its scripts at
    ``root``, and take the repository's own distributions out; return a log line."""

    shutil.copytree(seed, root, symlinks=True, copy_function=os.link)
    (root / MARKER_NAME).unlink(missing_ok=True)
    own = seed / "src"
    shutil.rmtree(root / "src", ignore_errors=True)
    removed = _remove_own_distributions(root, own)
    _repoint_scripts(root, seed)
    names = ", ".join(removed) or "none found"
    return f"(seeded from environment {seed.name}: dependencies kept; reinstalled: {names})\n"


def _remove_own_distributions(root: Path, own_source: Path) -> list[str]:
    """Uninstall, as pip would (by RECORD), every distribution installed from ``own_source``
    (the seed's copy of the repository). Only paths inside ``root`` are removed."""
    removed = []
    resolved_root = root.resolve()
    own_url = own_source.resolve().as_uri()
    for direct_url in root.glob("lib/python*/site-packages/*.dist-info/direct_url.json"):
        try:
            url = json.loads(read_text_bounded(direct_url, 1_000_000)).get("url", "")
        except (OSError, ValueError, AttributeError, RecursionError):  # written by the install
            continue
        if not isinstance(url, str) or not (url == own_url or url.startswith(own_url + "/")):
            continue
        dist_info = direct_url.parent
        site = dist_info.parent
        try:
            record = read_text_bounded(dist_info / "RECORD", 50_000_000)
        except (OSError, ValueError):
            record = ""
        for row in record.splitlines():
            relative = row.rsplit(",", 2)[0].strip('"')
            target = (site / relative).resolve() if relative else site
            inside = resolved_root in target.parents
            if inside and (target.is_file() or target.is_symlink()):
                target.unlink()
        shutil.rmtree(dist_info, ignore_errors=True)
        removed.append(dist_info.name.split("-", 1)[0])
    return removed


def _repoint_scripts(root: Path, seed: Path) -> None:
    """Scripts and ``.pth`` files name the seed's path: rewrite them (as new files, so the
    seed's linked copy is untouched) to name ``root``."""
    old, new = os.fsencode(seed), os.fsencode(root)
    candidates = list((root / "bin").iterdir()) if (root / "bin").is_dir() else []
    candidates += list(root.glob("lib/python*/site-packages/*.pth"))
    candidates.append(root / "pyvenv.cfg")
    for path in candidates:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 1_000_000:
            continue
        data = path.read_bytes()
        if old not in data:
            continue
        mode = path.stat().st_mode
        path.unlink()
        path.write_bytes(data.replace(old, new))
        path.chmod(mode)


def _remove_tree(root: Path) -> None:
    if root.is_symlink() or root.is_file():
        root.unlink()
    elif root.exists():
        shutil.rmtree(root)


def _tail(text: str) -> str:
    return text[-LOG_TAIL_CHARS:]


def _create_venv(interpreter: Path, root: Path) -> str:
    """Create the venv in place at ``root`` with ``python -m venv``; return its output.
    The default venv behaviour runs ensurepip (offline, bundled wheel): pip is present."""
    return _run_creation([str(interpreter), "-m", "venv", str(root)])


def _create_uv_venv(uv: Path, interpreter: Path, root: Path) -> str:
    """Create the venv in place at ``root`` with ``uv venv``, then put pip into it; return the
    output.

    pip is needed: install commands are written with pip (only those uv reads the same way run
    with uv), and a pip-less venv would silently fall through to another pip on PATH. It is
    the interpreter's own bundled wheels (what ``python -m venv`` installs through ensurepip),
    installed by uv offline: ``uv venv --seed`` would download pip from PyPI, whatever index
    pip is configured with, into the user's uv cache. No uv configuration file, no cache, no
    interpreter download: the venv is made from exactly the interpreter found for the key.
    """
    quiet = {"UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
    argv = [str(uv), "venv", "--no-config", "--no-cache", "--python", str(interpreter), str(root)]
    output = _run_creation(argv, quiet)
    _, python = _venv_layout(root)
    wheels = _bundled_wheels(python)
    if not wheels:  # a distribution that strips ensurepip's wheels: ensurepip knows where
        return output + _run_creation([str(python), "-m", "ensurepip", "--default-pip"])
    seed = [str(uv), "pip", "install", "--no-config", "--no-cache", "--no-index", "--python"]
    return output + _run_creation([*seed, str(python), *map(str, wheels)], quiet)


_BUNDLED_SCRIPT = (
    "import ensurepip, glob, os; "
    "print('\\n'.join(sorted(glob.glob(os.path.join("
    "os.path.dirname(ensurepip.__file__), '_bundled', '*.whl')))))"
)


def _bundled_wheels(python: Path) -> list[Path]:
    """The wheels ensurepip of *python* would install (pip; setuptools before Python 3.12)."""
    try:
        proc = subprocess.run(
            [str(python), "-I", "-c", _BUNDLED_SCRIPT],
            capture_output=True,
            text=True,
            timeout=_QUERY_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if proc.returncode != 0:
        return []
    return [Path(line) for line in proc.stdout.splitlines() if line.endswith(".whl")]


def _run_creation(argv: list[str], extra_env: dict[str, str] | None = None) -> str:
    env = None if extra_env is None else {**os.environ, **extra_env}
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=VENV_TIMEOUT_SECONDS,
            check=False,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise EnvironmentBuildError(f"could not create virtual environment: {exc}") from exc
    output = f"$ {' '.join(argv)}\n{proc.stdout}{proc.stderr}"
    if proc.returncode != 0:
        raise EnvironmentBuildError(
            f"creating the virtual environment failed (exit {proc.returncode})", _tail(output)
        )
    return output


def ensure_environment(
    spec: EnvironmentSpec,
    *,
    cache_dir: Path,
    fresh: bool = False,
    run_install: Callable[[Path], InstallOutcome],
) -> Environment:
    """Return the environment for ``spec``, building it under an exclusive lock if needed.

    ``run_install(python)`` runs the install commands with that environment's interpreter
    (the caller arranges PATH, scratch copy, etc.).  If it reports failure, or raises,
    the partial environment is removed; a failure raises :class:`EnvironmentBuildError`
    carrying the log.  ``fresh=True`` rebuilds even if a complete environment exists.
    Raises :class:`InterpreterNotFoundError` if the requested Python is not available.
    """
    key, base = _keys(spec)
    interpreter = find_interpreter(spec.python)
    if interpreter is None:  # pragma: no cover - environment_key already raised
        raise InterpreterNotFoundError(spec.python)
    envs = Path(cache_dir) / "envs"
    envs.mkdir(parents=True, exist_ok=True)
    short = key[:16]
    root = envs / short
    bin_dir, python = _venv_layout(root, spec.conda)

    with _exclusive_lock(envs / f"{short}.lock"):
        if not fresh:
            marker = _read_marker(root, key)
            if marker is not None and python.exists():
                warnings = marker.get("warnings")
                return Environment(
                    root=root,
                    python=python,
                    bin_dir=bin_dir,
                    key=key,
                    reused=True,
                    install_log=str(marker.get("install_log", "")),
                    installer=str(marker.get("installer", spec.installer)),
                    warnings=tuple(str(w) for w in warnings) if isinstance(warnings, list) else (),
                )
        _remove_tree(root)
        seed = None if fresh or base is None else _find_seed(envs, base, exclude=root)
        if seed is not None:
            try:
                seeded_log = _seed_from(seed, root)
            except OSError:  # no hard links on this file system, a seed pruned meanwhile …
                shutil.rmtree(root, ignore_errors=True)
                seed = None  # an ordinary build: seeding only saves time
        try:
            if spec.conda not in (None, "pip-section"):
                root.mkdir()
                venv_log = f"(the install commands make the conda environment at {python})\n"
            elif seed is not None:
                venv_log = seeded_log
            elif spec.installer == "uv" and spec.uv is not None:
                venv_log = _create_uv_venv(spec.uv, interpreter, root)
            else:
                venv_log = _create_venv(interpreter, root)
            if spec.conda in (None, "pip-section") and not python.exists():
                raise EnvironmentBuildError(
                    f"virtual environment has no interpreter at {python}", _tail(venv_log)
                )
            outcome = run_install(python)
            log = _tail(venv_log + outcome.log)
            if not outcome.ok:
                raise EnvironmentBuildError(f"install commands failed for environment {short}", log)
            if not python.exists():
                message = f"the install commands made no interpreter at {python}"
                raise EnvironmentBuildError(message, log)
            _write_marker(root, key, log, spec.installer, outcome.warnings, base)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
    return Environment(
        root=root,
        python=python,
        bin_dir=bin_dir,
        key=key,
        reused=False,
        install_log=log,
        installer=spec.installer,
        warnings=outcome.warnings,
        seeded_from=None if seed is None else seed.name,
    )
