"""The enabled plugin: finds the manifests, collects them, gathers results, writes reports.

Stage: glue between pytest and the plain stages (manifest, plan, checks, results, reports).
Registered only with ``--corresponding-source``. Under pytest-xdist the workers collect and
run the checks; results reach the controller inside the test reports, and digests computed
on a worker are sent back in ``workeroutput`` so only the controller writes pytest's cache.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_corrsource.catalogue import DEFAULT_LEVEL, LEVELS
from pytest_corrsource.checks import Options, RunState
from pytest_corrsource.hashing import CACHE_KEY, DigestCache
from pytest_corrsource.manifest import MANIFEST_NAME
from pytest_corrsource.results import CheckResult

if TYPE_CHECKING:
    from pytest_corrsource.report import ManifestReport

LEVEL_ENV = "CORRSOURCE_LEVEL"
RESULT_ATTR = "corrsource_result"  # the attribute carrying a CheckResult dict on a TestReport


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def resolve_level(config: pytest.Config) -> str:
    """Command line > environment (CORRSOURCE_LEVEL) > ini > default; a bad value names its
    source."""
    cli = config.getoption("corrsource_level")
    if cli:
        return str(cli)  # argparse already checked the choices
    for source, value in (
        (f"environment variable {LEVEL_ENV}", os.environ.get(LEVEL_ENV)),
        ("ini option corrsource_level", str(config.getini("corrsource_level") or "")),
    ):
        if value:
            value = value.strip()
            if value not in LEVELS:
                choices = ", ".join(LEVELS)
                raise pytest.UsageError(
                    f"{source}: unknown level `{value}` (choose from {choices})"
                )
            return value
    return DEFAULT_LEVEL


def resolve_sandbox(config: pytest.Config) -> str:
    """--corrsource-sandbox > environment (CORRSOURCE_SANDBOX) > ini > ``auto``, as for the level.

    ``bwrap`` with no working bubblewrap is a usage error (exit 4): it is asked for by people
    who need the guarantee.
    """
    from pytest_corrsource.sandbox.backends import MODES, SandboxUnavailable, select_backend

    mode = "auto"
    cli = config.getoption("corrsource_sandbox", None)
    if cli:
        mode = str(cli)
    else:
        for source, value in (
            ("environment variable CORRSOURCE_SANDBOX", os.environ.get("CORRSOURCE_SANDBOX")),
            ("ini option corrsource_sandbox", str(config.getini("corrsource_sandbox") or "")),
        ):
            if value:
                value = value.strip()
                if value not in MODES:
                    choices = ", ".join(MODES)
                    raise pytest.UsageError(
                        f"{source}: unknown sandbox `{value}` (choose from {choices})"
                    )
                mode = value
                break
    if mode == "bwrap":
        try:
            select_backend(mode)
        except SandboxUnavailable as exc:
            raise pytest.UsageError(str(exc)) from None
    return mode


def arg_paths(config: pytest.Config) -> list[Path]:
    base = config.invocation_params.dir
    paths = []
    for arg in config.args:
        part = str(arg).split("::", 1)[0]
        if part and not part.startswith("-"):
            paths.append((base / part).resolve())
    return paths


def resolve_manifests(config: pytest.Config) -> list[Path]:
    """The manifests this run verifies, absolute, in a stable order.

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


@dataclass(eq=False)  # a pluggy plugin: hashed by identity (conftest.py hook subsets)
class CorrSourceSession:
    config: pytest.Config
    options: Options
    manifests: list[Path]
    digests: DigestCache
    state: RunState = field(default_factory=RunState)
    results: dict[str, CheckResult] = field(default_factory=dict)  # nodeid -> result
    worker_digests: list[dict[str, Any]] = field(default_factory=list)
    reports: list[ManifestReport] = field(default_factory=list)
    junit_properties: bool = False

    @classmethod
    def from_config(cls, config: pytest.Config) -> CorrSourceSession:
        level = resolve_level(config)
        manifests = resolve_manifests(config)
        for manifest in manifests:
            if not manifest.is_file():
                raise pytest.UsageError(
                    f"--corresponding-source: no manifest at {manifest}; write one (see the "
                    f"pytest-corrsource README) or pass --corrsource-manifest PATH"
                )
        cache_dir = config.getoption("corrsource_cache_dir")
        options = Options(
            level=level,
            fresh_env=bool(config.getoption("corrsource_fresh_env")),
            fetch=bool(config.getoption("corrsource_fetch")),
            twice=bool(config.getoption("corrsource_twice")),
            cache_dir=Path(cache_dir).resolve() if cache_dir else None,
            prehash=not is_worker(config),
            sandbox=resolve_sandbox(config),
        )
        cache = getattr(config, "cache", None)
        digests = DigestCache.from_json(cache.get(CACHE_KEY, {}) if cache is not None else {})
        session = cls(config, options, manifests, digests)
        cli_junit = config.getoption("corrsource_junit_properties")
        session.junit_properties = bool(
            cli_junit if cli_junit is not None else config.getini("corrsource_junit_properties")
        )
        session._add_unvisited_manifests()
        return session

    def _add_unvisited_manifests(self) -> None:
        """Make pytest collect a manifest that its arguments (e.g. ``testpaths``) do not reach."""
        args = arg_paths(self.config)
        for manifest in self.manifests:
            reached = any(manifest == a or a in manifest.parents for a in args)
            if not reached:
                self.config.args.append(str(manifest))

    # --- collection ---------------------------------------------------------------------------

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> pytest.File | None:
        if file_path.resolve() in self.manifests:
            from pytest_corrsource.collect import ManifestFile

            return ManifestFile.from_parent(parent, path=file_path)
        return None

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        names = ", ".join(_relative(m, config.rootpath) for m in self.manifests)
        return [f"corrsource: {names} (level {self.options.level})"]

    # --- results ------------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        result = getattr(item, "corrsource_result", None)
        if result is not None and report.when == "call":
            setattr(report, RESULT_ATTR, result.to_json())
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, RESULT_ATTR, None)
        if data is not None and not is_worker(self.config):
            self.results[report.nodeid] = CheckResult.from_json(data)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if is_worker(self.config):
            # xdist sends workeroutput after this hook: only what this worker hashed.
            self.config.workeroutput["corrsource"] = {  # type: ignore[attr-defined]
                "digests": self.digests.new_entries()
            }
            return
        for entries in self.worker_digests:
            self.digests.merge(entries)
        cache = getattr(self.config, "cache", None)
        # merge() does not count as new entries: under xdist the workers did all the hashing.
        if cache is not None and (self.digests.new_entries() or any(self.worker_digests)):
            cache.set(CACHE_KEY, self.digests.to_json())
        if self.config.option.collectonly:
            return  # nothing ran: no verdict, no report files, no annotations
        from pytest_corrsource.report import build_reports, write_reports

        self.reports = build_reports(self)
        write_reports(self, self.reports)
        self._github_output()
        # Skipped required checks fail no item, yet leave the level unverified: a complete run
        # that does not meet its level must not exit 0. A partial run (-k, -m) judges nothing.
        if session.exitstatus == pytest.ExitCode.OK and any(
            r.complete and not r.passed for r in self.reports
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _github_output(self) -> None:
        mode = self.config.getoption("corrsource_annotations")
        if mode == "off" or (mode == "auto" and os.environ.get("GITHUB_ACTIONS") != "true"):
            return
        from pytest_corrsource.report.github import append_step_summary, workflow_commands
        from pytest_corrsource.report.markdown import render_markdown

        lines = workflow_commands(self.reports, os.environ.get("GITHUB_WORKSPACE"))
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write_line("")  # end pytest's progress line: a command must start a line
        for line in lines:
            # A workflow command must start its line: no colour codes before it.
            if terminal is not None:
                terminal.write_line(line)
            else:
                sys.stderr.write(line + "\n")
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            append_step_summary(summary, render_markdown(self.reports))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if is_worker(self.config) or not self.reports:
            return
        from pytest_corrsource.report.terminal import write_summary

        write_summary(self.reports, terminalreporter)


class XdistHooks:
    """Controller-side pytest-xdist hooks, registered only when xdist is active."""

    def __init__(self, session: CorrSourceSession) -> None:
        self.session = session

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", {}) or {}
        digests = output.get("corrsource", {}).get("digests")
        if isinstance(digests, dict):
            self.session.worker_digests.append(digests)


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)
