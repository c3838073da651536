"""conda environment files (``environment.yml``, ``conda.yaml``) as a dependency specification.

An ``install.requirements`` entry that is a conda environment file describes the environment:
its ``dependencies`` (conda packages, one of them usually ``python``) and their ``pip:``
section. With ``micromamba``, ``mamba`` or ``conda`` on this machine the environment is made
from the file by that tool. Without one, the environment is a venv of the interpreter the file
pins (looked up like ``install.python``), its ``pip:`` section is installed with pip, and a
warning names the conda packages that were not installed: a repository is not failed for the
tools of this machine, and the report says what was left out.

Read as plain YAML (:mod:`pytest_corrsource.plain_yaml`, nesting bounded) from at most
:data:`MAX_CONDA_FILE_BYTES`, at most :data:`MAX_ENTRIES` dependencies; anything else is a
:class:`CondaFileError`.

Plain library code: it knows nothing of pytest or of the manifest.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_corrsource.errors import CorrsourceError
from pytest_corrsource.plain_yaml import load_plain_yaml
from pytest_corrsource.safe_io import read_bounded

__all__ = [
    "CONDA_FILE_NAMES",
    "CondaFile",
    "CondaFileError",
    "conda_command_kind",
    "conda_tool",
    "is_conda_file",
    "python_request",
    "python_satisfies",
    "read_conda_file",
]

#: Names that are conda environment files whatever they hold.
CONDA_FILE_NAMES = frozenset(
    {"environment.yml", "environment.yaml", "conda.yaml", "conda.yml", "env.yml", "env.yaml"}
)
MAX_CONDA_FILE_BYTES = 1 << 20
MAX_ENTRIES = 10_000
#: The tools that make an environment from a conda file, best first.
CONDA_TOOLS = ("micromamba", "mamba", "conda")
# `python=3.10`, `python==3.10.*`, `python 3.10`, `python=3.10.12=h1234_0`, `python>=3.9,<3.12`.
_PYTHON_SPEC = re.compile(r"^python(?:\s*(?P<op>==|=|>=|<=|>|<|!=|~=)?\s*(?P<rest>.*))?$")
_VERSION = re.compile(r"^\d+(?:\.\d+){0,2}$")


class CondaFileError(CorrsourceError, ValueError):
    """The conda environment file cannot be read as one."""


@dataclass(frozen=True)
class CondaFile:
    """What a conda environment file asks for."""

    path: Path
    conda_packages: tuple[str, ...]  # every dependency but python and pip itself
    pip: tuple[str, ...]  # the `pip:` section, as pip requirement lines
    python: str | None  # the python dependency as written ("python=3.10"), if any

    @property
    def python_version(self) -> str | None:
        """The version the python entry pins (``"3.10"`` for ``python=3.10.*``), or None when it
        pins none or a range (then any interpreter satisfying :attr:`python` will do)."""
        if self.python is None:
            return None
        match = _PYTHON_SPEC.match(self.python.strip())
        if match is None:
            return None
        op, rest = match.group("op"), (match.group("rest") or "").strip()
        if op not in (None, "=", "=="):
            return None
        version = rest.split("=", 1)[0].removesuffix(".*").strip()
        return version if _VERSION.match(version) else None


def _load(path: Path) -> object:
    try:
        data = read_bounded(path, MAX_CONDA_FILE_BYTES)
    except OSError as exc:
        raise CondaFileError(f"{path.name}: {exc}") from None
    try:  # with the manifest's nesting limit: deep nesting recursed into a RecursionError
        return load_plain_yaml(data)
    except ValueError as exc:
        raise CondaFileError(f"{path.name} is not valid YAML: {exc}") from None


def is_conda_file(path: Path) -> bool:
    """Whether *path* is a conda environment file: one of :data:`CONDA_FILE_NAMES`, or a YAML
    file whose top level has ``dependencies``."""
    if path.name.lower() in CONDA_FILE_NAMES:
        return True
    if path.suffix.lower() not in (".yml", ".yaml") or not path.is_file():
        return False
    try:
        document = _load(path)
    except CondaFileError:
        return False
    return isinstance(document, dict) and "dependencies" in document


def read_conda_file(path: Path) -> CondaFile:
    """The dependencies of the conda environment file at *path*; CondaFileError if it is not
    one (bad YAML, too large, entries that are not strings, too many of them)."""
    document = _load(path)
    if not isinstance(document, dict):
        raise CondaFileError(f"{path.name} is not a mapping with `dependencies:`")
    entries = document.get("dependencies") or []
    if not isinstance(entries, list):
        raise CondaFileError(f"{path.name}: `dependencies` is not a list")
    conda: list[str] = []
    pip: list[str] = []
    python: str | None = None
    count = 0
    for entry in entries:
        count += 1
        if isinstance(entry, dict):
            section = entry.get("pip")
            if set(entry) != {"pip"} or not isinstance(section, list):
                raise CondaFileError(f"{path.name}: a dependency is a mapping other than `pip:`")
            for line in section:
                count += 1
                if not isinstance(line, str):
                    raise CondaFileError(f"{path.name}: a `pip:` entry is not a string")
                pip.append(line.strip())
        elif isinstance(entry, str | int | float):
            text = str(entry).strip()
            name = re.split(r"[\s=<>!~]", text.split("::")[-1], maxsplit=1)[0].lower()
            if name == "python":
                python = text.split("::")[-1]
            elif name != "pip":
                conda.append(text)
        else:
            raise CondaFileError(f"{path.name}: a dependency is not a string")
        if count > MAX_ENTRIES:
            raise CondaFileError(f"{path.name}: more than {MAX_ENTRIES} dependencies")
    return CondaFile(path=path, conda_packages=tuple(conda), pip=tuple(pip), python=python)


def python_satisfies(spec: str, version: str) -> bool:
    """Whether the interpreter *version* (``"3.11.7"``) satisfies the conda dependency *spec*
    (``"python>=3.9,<3.12"``, ``"python=3.11"``)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    match = _PYTHON_SPEC.match(spec.strip())
    if match is None:
        return False
    op, rest = match.group("op"), (match.group("rest") or "").strip()
    if not rest:
        return True
    if op in (None, "="):  # conda's `=3.10` and `3.10` mean 3.10.*
        pinned = rest.split("=", 1)[0].removesuffix(".*")
        return version == pinned or version.startswith(pinned + ".")
    try:
        return SpecifierSet(op + rest).contains(version, prereleases=True)
    except InvalidSpecifier:
        return False


def python_request(conda: CondaFile) -> str | None:
    """The Python version to build a venv with for *conda*'s python entry: the version it pins,
    or for a range the newest ``python3.N`` here (the running interpreter first) that satisfies
    it; None when the file names no python. Raises :class:`CondaFileError` when a range is
    satisfied by no interpreter here."""
    if conda.python is None:
        return None
    pinned = conda.python_version
    match = _PYTHON_SPEC.match(conda.python.strip())
    if pinned is not None or match is None or not (match.group("rest") or "").strip():
        return pinned  # a pin, or a bare `python`: the running interpreter
    from pytest_corrsource.sandbox.environments import find_interpreter, interpreter_info

    versions = [f"{sys.version_info.major}.{sys.version_info.minor}"]
    versions += [f"3.{minor}" for minor in range(20, 5, -1)]
    for version in dict.fromkeys(versions):
        interpreter = find_interpreter(version) if shutil.which(f"python{version}") or (
            version == versions[0]) else None  # fmt: skip
        info = interpreter_info(interpreter) if interpreter is not None else None
        if info is not None and python_satisfies(conda.python, info.version):
            return version
    raise CondaFileError(
        f"{conda.path.name} asks for `{conda.python}`, and no Python here satisfies it"
    )


def conda_tool() -> Path | None:
    """micromamba, mamba or conda on PATH (in that order), or None."""
    for name in CONDA_TOOLS:
        found = shutil.which(name)
        if found is not None:
            return Path(found)
    return None


def conda_command_kind(command: str) -> str | None:
    """For an install command run by a conda tool: ``"create"`` (it makes or updates the
    environment from a file: done by the environment builder), ``"activate"`` (activating is
    what putting the environment first on PATH does) or ``"other"``; None for any other
    command."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not words:
        return None
    if words[0] in ("source", ".") and len(words) > 1 and Path(words[1]).name == "activate":
        return "activate"
    if Path(words[0]).name not in CONDA_TOOLS:
        return None
    verbs = [w for w in words[1:] if not w.startswith("-")]
    if verbs[:1] in (["activate"], ["deactivate"]):
        return "activate"
    if verbs[:2] in (["env", "create"], ["env", "update"]) or (
        verbs[:1] in (["create"], ["update"], ["install"])
        and any(w in ("-f", "--file") or w.startswith("--file=") for w in words)
    ):
        return "create"
    return "other"


def pip_requirement_lines(conda: CondaFile) -> Sequence[str]:
    """The ``pip:`` section as the lines of a requirements file."""
    return [line for line in conda.pip if line and not line.startswith("#")]
