"""Every run-wide setting, resolved once: command line > environment > ini file > default.

Stage: glue (pytest configuration in, plain values out). The enabled plugin, the fixtures and
the report writers read a :class:`Settings`; nothing else calls ``config.getoption``. A bad
value is a usage error that names where it came from (the pytest-timeout pattern).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_corrsource.manifest import MANIFEST_NAME
from pytest_corrsource.vocabulary import DEFAULT_LEVEL, LEVELS, Level, as_level

__all__ = [
    "LEVEL_ENV",
    "ReportPaths",
    "Settings",
    "arg_paths",
    "resolve_level",
    "resolve_manifests",
]

LEVEL_ENV = "CORRSOURCE_LEVEL"


@dataclass(frozen=True)
class ReportPaths:
    """Where the report files go (absolute), or None for a report not asked for."""

    json: Path | None = None
    markdown: Path | None = None
    mof: Path | None = None


@dataclass(frozen=True)
class Settings:
    level: Level
    manifests: tuple[Path, ...]
    reports: ReportPaths
    junit_properties: bool
    annotations: str  # "auto" | "on" | "off"
    fresh_env: bool
    working_tree: bool
    fetch: bool
    twice: bool
    cache_dir: Path | None
    waivers: tuple[tuple[str, str], ...] = ()  # (check id, reason), command line over ini
    sandbox: str = "auto"  # --corrsource-sandbox: auto | bwrap | none
    installer: str = "auto"  # --corrsource-installer: auto | uv | pip

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        level = resolve_level(config)
        manifests = resolve_manifests(config)
        _require_manifests(config, manifests)
        cache_dir = config.getoption("corrsource_cache_dir")
        cli_junit = config.getoption("corrsource_junit_properties")
        return cls(
            level=level,
            manifests=tuple(manifests),
            reports=_report_paths(config),
            junit_properties=bool(
                cli_junit if cli_junit is not None else config.getini("corrsource_junit_properties")
            ),
            annotations=str(config.getoption("corrsource_annotations")),
            fresh_env=bool(config.getoption("corrsource_fresh_env")),
            working_tree=bool(config.getoption("corrsource_working_tree")),
            fetch=bool(config.getoption("corrsource_fetch")),
            twice=bool(config.getoption("corrsource_twice")),
            cache_dir=Path(cache_dir).resolve() if cache_dir else None,
            waivers=resolve_waivers(config),
            sandbox=resolve_sandbox(config),
            installer=resolve_installer(config),
        )

    def github_output(self, environ: os._Environ[str] | dict[str, str] | None = None) -> bool:
        """Whether to write GitHub annotations and the step summary."""
        env = os.environ if environ is None else environ
        return self.annotations == "on" or (
            self.annotations == "auto" and env.get("GITHUB_ACTIONS") == "true"
        )


def _choice(
    config: pytest.Config, option: str, env: str, what: str, choices: tuple[str, ...], default: str
) -> str:
    """Command line > environment variable ``env`` > ini key ``option`` > ``default``; a value
    outside ``choices`` is a usage error naming where it came from (argparse checks the CLI)."""
    cli = config.getoption(option, None)
    if cli:
        return str(cli)
    for source, value in (
        (f"environment variable {env}", os.environ.get(env)),
        (f"ini option {option}", str(config.getini(option) or "")),
    ):
        if value:
            value = value.strip()
            if value not in choices:
                raise pytest.UsageError(
                    f"{source}: unknown {what} `{value}` (choose from {', '.join(choices)})"
                )
            return value
    return default


def resolve_level(config: pytest.Config) -> Level:
    """Command line > environment (CORRSOURCE_LEVEL) > ini > default."""
    return as_level(_choice(config, "corrsource_level", LEVEL_ENV, "level", LEVELS, DEFAULT_LEVEL))


def resolve_sandbox(config: pytest.Config) -> str:
    """--corrsource-sandbox > environment (CORRSOURCE_SANDBOX) > ini > ``auto``, as for the level.

    ``bwrap`` with no working bubblewrap is a usage error (exit 4): it is asked for by people
    who need the guarantee.
    """
    from pytest_corrsource.sandbox.backends import MODES, SandboxUnavailable, select_backend

    mode = _choice(config, "corrsource_sandbox", "CORRSOURCE_SANDBOX", "sandbox", MODES, "auto")
    if mode == "bwrap":
        try:
            select_backend(mode)
        except SandboxUnavailable as exc:
            raise pytest.UsageError(str(exc)) from None
    return mode


def resolve_installer(config: pytest.Config) -> str:
    """--corrsource-installer > environment (CORRSOURCE_INSTALLER) > ini > ``auto``.

    ``uv`` with no uv installed is a usage error (exit 4), as ``--corrsource-sandbox=bwrap``.
    """
    from pytest_corrsource.sandbox.installers import (
        INSTALLERS,
        InstallerUnavailable,
        select_installer,
    )

    mode = _choice(
        config, "corrsource_installer", "CORRSOURCE_INSTALLER", "installer", INSTALLERS, "auto"
    )
    if mode == "uv":
        try:
            select_installer(mode)
        except InstallerUnavailable as exc:
            raise pytest.UsageError(str(exc)) from None
    return mode


def resolve_waivers(config: pytest.Config) -> tuple[tuple[str, str], ...]:
    """``--corrsource-waive`` values over ini ``corrsource_waive`` lines; a bad one is a usage
    error naming it."""
    from pytest_corrsource.results import parse_waiver

    waivers: dict[str, str] = {}
    for source, values in (
        ("ini option corrsource_waive", config.getini("corrsource_waive") or []),
        ("--corrsource-waive", config.getoption("corrsource_waive") or []),
    ):
        for value in values:
            try:
                check_id, reason = parse_waiver(str(value))
            except ValueError as exc:
                raise pytest.UsageError(f"{source}: {exc}") from None
            waivers[check_id] = reason
    return tuple(sorted(waivers.items()))


def arg_paths(config: pytest.Config) -> list[Path]:
    """The paths named by pytest's positional arguments (node ids cut at ``::``)."""
    base = config.invocation_params.dir
    paths = []
    for arg in config.args:
        part = str(arg).split("::", 1)[0]
        if part and not part.startswith("-"):
            paths.append((base / part).resolve())
    return paths


def resolve_manifests(config: pytest.Config) -> list[Path]:
    """The manifests this run verifies, absolute, in a stable order (not checked to exist).

    ``--corrsource-manifest`` > ini ``corrsource_manifest`` > every argument that is a manifest
    or a directory holding one > the rootdir's manifest.
    """
    cli = config.getoption("corrsource_manifest")
    if cli:
        return [(config.invocation_params.dir / cli).resolve()]
    ini = str(config.getini("corrsource_manifest") or "")
    if ini:
        base = config.inipath.parent if config.inipath else config.rootpath
        return [(base / ini).resolve()]
    found: list[Path] = []
    for path in arg_paths(config):
        candidate = path / MANIFEST_NAME if path.is_dir() else path
        if candidate.name == MANIFEST_NAME and candidate.is_file() and candidate not in found:
            found.append(candidate)
    if not found:
        found.append((config.rootpath / MANIFEST_NAME).resolve())
    return found


def _require_manifests(config: pytest.Config, manifests: list[Path]) -> None:
    """A missing manifest is a usage error naming where it was looked for and what to do."""
    for manifest in manifests:
        if manifest.is_file():
            continue
        if config.getoption("corrsource_manifest"):
            message = f"--corrsource-manifest: no manifest at {manifest}; check the path"
        elif config.getini("corrsource_manifest"):
            message = f"ini option corrsource_manifest: no manifest at {manifest}; check the path"
        else:
            message = (
                f"--corresponding-source: no manifest at {manifest}; draft one with "
                f"`corrsource init {manifest.parent}`, or pass --corrsource-manifest PATH"
            )
        raise pytest.UsageError(message)


def _report_paths(config: pytest.Config) -> ReportPaths:
    base = config.invocation_params.dir
    json_path = config.getoption("corrsource_report") or str(
        config.getini("corrsource_report") or ""
    )
    md_path = config.getoption("corrsource_report_md")
    mof_path = config.getoption("corrsource_mof")
    json_file = base / json_path if json_path else None
    markdown = base / md_path if md_path else None
    if json_file is not None and markdown is None:
        markdown = Path(str(json_file) + ".md")
    return ReportPaths(json=json_file, markdown=markdown, mof=base / mof_path if mof_path else None)
