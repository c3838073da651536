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

from pytest_corrsource.catalogue import BUILTIN, CheckRegistry, RegistryError
from pytest_corrsource.checks.api import Options, RunState
from pytest_corrsource.hashing import CACHE_KEY, DigestCache
from pytest_corrsource.results import CheckResult
from pytest_corrsource.settings import Settings, arg_paths

if TYPE_CHECKING:
    from pytest_corrsource.report import ManifestReport

RESULT_ATTR = "corrsource_result"  # the attribute carrying a CheckResult dict on a TestReport


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def added_checks(config: pytest.Config) -> CheckRegistry:
    """The built-in checks plus those every ``pytest_corrsource_checks`` implementation adds.

    Each implementation is called on its own so an invalid spec names the plugin (or
    ``conftest.py``) it came from; a bad one is a usage error, reported before collection.
    """
    registry = BUILTIN
    hook = config.pluginmanager.hook.pytest_corrsource_checks
    for impl in reversed(hook.get_hookimpls()):  # registration order
        returned = impl.function(*(dict(config=config)[name] for name in impl.argnames))
        # A list or tuple of specs, or None; anything else is reported by ``extended``.
        specs: list[Any] = list(returned) if isinstance(returned, (list, tuple)) else [returned]
        if returned is None:
            specs = []
        try:
            registry = registry.extended(specs, source=impl.plugin_name)
        except RegistryError as exc:
            raise pytest.UsageError(str(exc)) from None
    return registry


# eq=False keeps identity hashing: pytest < 9.1 puts registered plugins in a set, and a
# dataclass with the default eq=True is unhashable (INTERNALERROR on pytest 8.x and 9.0).
@dataclass(eq=False)
class Verification:
    config: pytest.Config
    settings: Settings
    options: Options
    digests: DigestCache
    state: RunState = field(default_factory=RunState)
    results: dict[str, CheckResult] = field(default_factory=dict)  # nodeid -> result
    worker_digests: list[dict[str, Any]] = field(default_factory=list)
    reports: list[ManifestReport] = field(default_factory=list)
    # Other files' collection errors ("tests/test_all.py: ModuleNotFoundError: …"): pytest stops
    # before running anything, and the report says why the checks did not run.
    collection_errors: list[str] = field(default_factory=list)
    checks: CheckRegistry = BUILTIN  # built-in checks and those plugins added

    @classmethod
    def from_config(cls, config: pytest.Config) -> Verification:
        settings = Settings.from_config(config)
        options = Options(
            level=settings.level,
            fresh_env=settings.fresh_env,
            working_tree=settings.working_tree,
            fetch=settings.fetch,
            twice=settings.twice,
            cache_dir=settings.cache_dir,
            prehash=not is_worker(config),
            waivers=settings.waivers,
            sandbox=settings.sandbox,
            installer=settings.installer,
        )
        cache = getattr(config, "cache", None)
        digests = DigestCache.from_json(cache.get(CACHE_KEY, {}) if cache is not None else {})
        verification = cls(config, settings, options, digests, checks=added_checks(config))
        verification._add_unvisited_manifests()
        return verification

    @property
    def manifests(self) -> tuple[Path, ...]:
        return self.settings.manifests

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

            node: ManifestFile = ManifestFile.from_parent(parent, path=file_path)
            node.corrsource = self
            return node
        return None

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        where = (self.config.rootpath / report.nodeid.split("::", 1)[0]).resolve()
        if report.failed and where not in self.manifests:
            reason = str(report.longrepr).strip().splitlines()
            last = reason[-1].removeprefix("E   ").strip() if reason else "failed"
            self.collection_errors.append(f"{report.nodeid or '.'}: {last}")

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # Long steps (an environment build, a training run) show one progress line on the
        # controller's terminal; not under -q, and not on xdist workers (no terminal there).
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is None or is_worker(self.config) or self.config.get_verbosity() < 0:
            return
        from pytest_corrsource import progress
        from pytest_corrsource.report.sanitize import sanitize

        progress.install(progress.TerminalProgress(terminal, clean=sanitize))

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        from pytest_corrsource import progress

        progress.uninstall()

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

        not_run = "deselected"
        if self.collection_errors:
            not_run = "pytest stopped at collection errors: " + "; ".join(self.collection_errors)
        self.reports = build_reports(
            self.manifests,
            self.options.level,
            self.results.values(),
            self.config.rootpath,
            not_run,
            sandbox_mode=self.options.sandbox,
            checks=self.checks,
        )
        for report in self.reports:
            hook = self.config.pluginmanager.hook.pytest_corrsource_report_sections
            report.add_sections(hook(report=report))
        write_reports(self.reports, self.settings.reports)
        self._github_output()
        # Skipped required checks fail no item, yet leave the level unverified: a complete run
        # that does not meet its level must not exit 0. A partial run (-k, -m) judges nothing.
        if session.exitstatus == pytest.ExitCode.OK and any(
            r.complete and not r.passed for r in self.reports
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _github_output(self) -> None:
        if not self.settings.github_output():
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

    def __init__(self, session: Verification) -> None:
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
