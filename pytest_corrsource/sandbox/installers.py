"""Which installer builds an environment (uv or pip), and how pip's commands run under uv.

Decision (issue 14): the manifest's install commands stay exactly as written (``pip install -r
requirements.txt``, ``python -m pip install -e .``). With uv selected, a command that is a pip
*install* whose every option means the same to ``uv pip install`` is run as ``uv pip install
--python <environment> <the same arguments>``; anything else (another pip subcommand, an option
uv reads differently or not at all, pip called from inside a script) runs with the real pip,
which every environment keeps (the interpreter's bundled pip, see ``environments``). No shim
is put on PATH: ``python -m pip`` would bypass a ``bin/pip`` shim, and a fake ``pip`` module
would break scripts that use pip.

uv is told the settings pip would have used and nothing else: pip's global configuration files
and ``PIP_*`` variables are mapped to ``UV_*`` variables, uv's own configuration files are off
(``UV_NO_CONFIG``: a repository's ``uv.toml`` or ``[tool.uv]`` must not change what pip's
command means), and ``UV_INDEX_STRATEGY=unsafe-best-match`` is pip's way of choosing among
several indexes. Files are copied from the cache into the environment (``UV_LINK_MODE=copy``),
never hard-linked: a hard link would make a cache file and an environment file one file.

Plain library code: it knows nothing of pytest or of the manifest.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from pytest_corrsource.errors import CorrsourceError
from pytest_corrsource.safe_io import read_head

__all__ = [
    "INSTALLERS",
    "InstallerUnavailable",
    "RequirementFilesUnreadable",
    "find_uv",
    "pip_settings",
    "requirement_lines",
    "select_installer",
    "uv_argv",
    "uv_environment",
]

#: ``--corrsource-installer`` values: ``auto`` takes uv when it is installed.
INSTALLERS = ("auto", "uv", "pip")

# Options of `pip install` that `uv pip install` takes with the same meaning, with whether they
# take a value. An option outside this table keeps the command with pip.
_SAME_MEANING: dict[str, bool] = {
    "-r": True, "--requirement": True, "-c": True, "--constraint": True,
    "-e": True, "--editable": True, "-i": True, "--index-url": True,
    "--extra-index-url": True, "-f": True, "--find-links": True, "--only-binary": True,
    "--no-binary": True, "--trusted-host": True,
    "--no-deps": False, "-U": False, "--upgrade": False, "--no-index": False, "--pre": False,
    "--no-build-isolation": False, "--require-hashes": False, "--no-cache-dir": False,
    "--force-reinstall": False, "-q": False, "--quiet": False, "-v": False, "--verbose": False,
    "--disable-pip-version-check": False,
}  # fmt: skip
# Options a requirements file may carry that uv reads as pip does (`--hash` follows a
# requirement on its line).
_FILE_OPTIONS = frozenset(
    {"-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-i", "--index-url",
     "--extra-index-url", "-f", "--find-links", "--no-index", "--only-binary", "--no-binary",
     "--pre", "--trusted-host", "--require-hashes", "--hash"}
)  # fmt: skip
_PYTHON = re.compile(r"python(?:\d+(?:\.\d+)?)?(?:\.exe)?")
_PIP = re.compile(r"pip(?:\d+(?:\.\d+)?)?(?:\.exe)?")
_MAX_REQUIREMENT_FILES = 32
_MAX_REQUIREMENT_BYTES = 1 << 20

#: pip's global configuration files (a step's $HOME is empty, so no user file applies).
GLOBAL_PIP_CONFIGS = ("/etc/pip.conf", "/etc/xdg/pip/pip.conf")
# pip setting -> uv variable (values are space-separated lists for both unless noted).
_PIP_TO_UV = {
    "index-url": "UV_INDEX_URL",
    "extra-index-url": "UV_EXTRA_INDEX_URL",
    "find-links": "UV_FIND_LINKS",
    "constraint": "UV_CONSTRAINT",
    "trusted-host": "UV_INSECURE_HOST",
    "cert": "SSL_CERT_FILE",
    "no-index": "UV_NO_INDEX",  # a yes/no setting
}


class InstallerUnavailable(CorrsourceError, RuntimeError):
    """``--corrsource-installer=uv`` was asked for and no uv is installed."""


def find_uv() -> Path | None:
    """The uv executable: on PATH, else the binary of the ``uv`` Python package, else None."""
    found = shutil.which("uv")
    if found is not None:
        # The real path: install steps run it in the sandbox, which shows that file only.
        return Path(os.path.realpath(found))
    try:
        import uv  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    try:
        binary = Path(str(uv.find_uv_bin()))
    except (FileNotFoundError, OSError):
        return None
    return Path(os.path.realpath(binary)) if binary.is_file() else None


def select_installer(mode: str) -> tuple[str, Path | None]:
    """``("uv", path)`` or ``("pip", None)`` for ``--corrsource-installer`` *mode*.

    Raises :class:`InstallerUnavailable` for ``uv`` when uv is not installed, ValueError for an
    unknown mode.
    """
    if mode not in INSTALLERS:
        raise ValueError(f"unknown installer {mode!r} (choose from {', '.join(INSTALLERS)})")
    if mode == "pip":
        return "pip", None
    uv = find_uv()
    if uv is not None:
        return "uv", uv
    if mode == "uv":
        raise InstallerUnavailable(
            "--corrsource-installer=uv: no uv found on PATH or as the `uv` Python package "
            "(pip install uv, or pytest-corrsource[fast])"
        )
    return "pip", None


# --------------------------------------------------------------------------- commands


def _pip_arguments(argv: Sequence[str], bin_dir: Path) -> list[str] | None:
    """The arguments after ``install`` when *argv* is the environment's ``pip install …`` or
    ``python -m pip install …`` (nothing between pip and ``install``), else None. A program
    named by a path outside the environment (``./pip``, ``/usr/bin/python3``) is not it."""
    words = list(argv)
    if not words:
        return None
    if ("/" in words[0] or os.sep in words[0]) and Path(words[0]).parent != bin_dir:
        return None
    program = Path(words[0]).name
    if _PIP.fullmatch(program):
        rest = words[1:]
    elif _PYTHON.fullmatch(program) and words[1:3] == ["-m", "pip"]:
        rest = words[3:]
    else:
        return None
    if not rest or rest[0] != "install":
        return None
    return rest[1:]


def _options_mean_the_same(arguments: Sequence[str], cwd: Path) -> bool:
    """Whether every option of *arguments* and of the requirement files they name is read by
    uv as pip reads it."""
    files: list[Path] = []
    expect_value = False
    previous = ""
    for word in arguments:
        if expect_value:
            if previous in ("-r", "--requirement", "-c", "--constraint"):
                files.append(cwd / word)
            expect_value = False
            continue
        if not word.startswith("-") or word == "-":
            continue
        name, has_value, value = word.partition("=")
        if name not in _SAME_MEANING:
            return False
        if _SAME_MEANING[name] and not has_value:
            expect_value, previous = True, name
        elif name in ("-r", "--requirement", "-c", "--constraint"):
            files.append(cwd / value)
    return not expect_value and _files_mean_the_same(files)


class RequirementFilesUnreadable(ValueError):
    """Requirement files this module will not read through: too many, too large, or a line
    that is not shell words."""


_INCLUDES = ("-r", "--requirement", "-c", "--constraint")


def requirement_lines(
    files: Sequence[Path], *, inside: Path | None = None
) -> Iterator[tuple[Path, list[str]]]:
    """Each non-comment line of the requirement files as shell words, with its file, following
    `-r`/`-c` includes (relative to the including file; only to files under *inside* when
    given). Missing files are skipped (pip and uv both fail on them, the same way); bounded
    by :data:`_MAX_REQUIREMENT_FILES` files of :data:`_MAX_REQUIREMENT_BYTES`, beyond which,
    or on a line that is not shell words, :class:`RequirementFilesUnreadable` is raised."""
    pending = list(files)
    seen: set[Path] = set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        if len(seen) > _MAX_REQUIREMENT_FILES:
            raise RequirementFilesUnreadable(f"more than {_MAX_REQUIREMENT_FILES} files")
        try:
            data = read_head(path, _MAX_REQUIREMENT_BYTES + 1)
        except OSError:
            continue
        if len(data) > _MAX_REQUIREMENT_BYTES:
            raise RequirementFilesUnreadable(f"{path.name} is over {_MAX_REQUIREMENT_BYTES} bytes")
        for line in data.decode("utf-8", "replace").splitlines():
            line = line.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            try:
                words = shlex.split(line)
            except ValueError:
                raise RequirementFilesUnreadable(f"{path.name}: {line!r}") from None
            yield path, words
            for i, word in enumerate(words):
                name, _, value = word.partition("=")
                target = value or (words[i + 1] if i + 1 < len(words) else "")
                if name not in _INCLUDES or not target:
                    continue
                include = path.parent / target
                if inside is None or inside in include.resolve().parents:
                    pending.append(include)


def _files_mean_the_same(files: list[Path]) -> bool:
    try:
        for _path, words in requirement_lines(files):
            for word in words:
                if word.startswith("-") and word.partition("=")[0] not in _FILE_OPTIONS:
                    return False
    except RequirementFilesUnreadable:
        return False
    return True


def uv_argv(argv: Sequence[str], *, uv: Path, python: Path, cwd: Path) -> list[str] | None:
    """``uv pip install --python <python> <arguments>`` for a pip install command whose options
    all mean the same to uv, else None (the command then runs with pip as written)."""
    arguments = _pip_arguments(argv, python.parent)
    if arguments is None or not _options_mean_the_same(arguments, cwd):
        return None
    return [str(uv), "pip", "install", "--python", str(python), *arguments]


# --------------------------------------------------------------------------- settings


def pip_settings(
    env: Mapping[str, str], config_files: Sequence[str | Path] = GLOBAL_PIP_CONFIGS
) -> dict[str, str]:
    """pip's effective index, find-links, constraint, trusted-host and cert settings for an
    install step: the ``[global]`` then ``[install]`` sections of its global configuration
    files, then ``PIP_*`` variables of *env* (pip's own order of precedence)."""
    settings: dict[str, str] = {}
    for file in config_files:
        parser = configparser.RawConfigParser()
        try:
            parser.read(file, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError, OSError):
            continue
        for section in ("global", "install"):
            if parser.has_section(section):
                for key in _PIP_TO_UV:
                    if parser.has_option(section, key):
                        settings[key] = " ".join(parser.get(section, key).split())
    for key in _PIP_TO_UV:
        value = env.get("PIP_" + key.upper().replace("-", "_"))
        if value:
            settings[key] = " ".join(value.split())
    return settings


def uv_environment(
    env: Mapping[str, str],
    *,
    cache: Path,
    config_files: Sequence[str | Path] = GLOBAL_PIP_CONFIGS,
) -> dict[str, str]:
    """The variables that make ``uv pip install`` in an install step use what pip would: pip's
    settings as ``UV_*`` variables, no uv configuration file, pip's index strategy, *cache* as
    its cache, copies (not links) from the cache, no interpreter downloads."""
    extra = {
        "UV_CACHE_DIR": str(cache),
        "UV_NO_CONFIG": "1",
        "UV_INDEX_STRATEGY": "unsafe-best-match",
        "UV_LINK_MODE": "copy",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
    }
    for key, value in pip_settings(env, config_files).items():
        name = _PIP_TO_UV[key]
        if name == "UV_FIND_LINKS":
            value = ",".join(value.split())  # uv's variable is comma-separated
        elif name == "UV_NO_INDEX":
            if value.lower() not in ("1", "true", "yes", "on"):
                continue
            value = "1"
        extra[name] = value
    return extra


def pip_config_files(config_files: Sequence[str | Path] = GLOBAL_PIP_CONFIGS) -> list[Path]:
    """The global pip configuration files that exist (pip reads them inside the sandbox too)."""
    return [Path(f) for f in config_files if os.path.isfile(f)]
