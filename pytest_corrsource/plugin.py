"""pytest entry point: options, ini keys, markers and fixtures. Nothing else.

Installed but not enabled, this module is all of pytest-corrsource that runs: it imports only
the standard library and pytest, registers the markers (so ``--strict-markers`` suites keep
working) and returns. With ``--corresponding-source`` it registers
(``verification.py``: one :class:`Verification` per enabled run), which holds every other hook.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # types only: pytest start-up imports none of these
    from pytest_corrsource.fixtures import Corrsource, IsolatedEnvironment, RunOutput, Weights

LEVEL_CHOICES = ("open-weights", "corresponding-source", "open-source-ai")
SESSION_PLUGIN_NAME = "corrsource-session"

MARKERS = (
    "corresponding_source: a Corresponding Source check; manifest checks carry it, and a test "
    "of yours may too (select them with -m corresponding_source)",
    "requires_weights(path): the model_weights fixture reads this declared weights file; a "
    "missing or invalid file fails the test with the weights error",
    "training_code: the test needs the manifest's training code; skipped when none is "
    "declared, failed instead when --corrsource-level open-source-ai requires it",
    "training_data: the test needs the manifest's training data; skipped when none is "
    "declared, failed instead when --corrsource-level open-source-ai requires it",
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_corrsource import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("corrsource", "Corresponding Source checks (pytest-corrsource)")
    group.addoption(
        "--corresponding-source",
        action="store_true",
        dest="corrsource",
        default=False,
        help="verify the repository's corresponding-source.yaml (collects one item per check)",
    )
    group.addoption(
        "--corrsource-explain",
        metavar="ID",
        dest="corrsource_explain",
        default=None,
        help="explain one check (those conftest.py files and plugins add too) and exit; "
        "`corrsource explain ID` runs this for added checks",
    )
    group.addoption(
        "--corrsource-manifest",
        metavar="PATH",
        dest="corrsource_manifest",
        default=None,
        help="the manifest to verify (default: corresponding-source.yaml in the given "
        "directory or the rootdir); ini: corrsource_manifest",
    )
    group.addoption(
        "--corrsource-sandbox",
        dest="corrsource_sandbox",
        default=None,
        choices=("auto", "bwrap", "none"),
        help="how the repository's commands are confined: auto (bubblewrap if it works, else "
        "partial isolation), bwrap (bubblewrap or a usage error), none (no sandbox, said in "
        "every report); env: CORRSOURCE_SANDBOX; ini: corrsource_sandbox",
    )
    group.addoption(
        "--corrsource-installer",
        dest="corrsource_installer",
        default=None,
        choices=("auto", "uv", "pip"),
        help="what builds the isolated environments: auto (uv when installed, else pip), uv "
        "(a usage error without it) or pip; the manifest's pip commands keep their meaning "
        "either way; env: CORRSOURCE_INSTALLER; ini: corrsource_installer",
    )
    group.addoption(
        "--corrsource-level",
        dest="corrsource_level",
        default=None,
        choices=LEVEL_CHOICES,
        help="the openness level that must be met (default: corresponding-source); "
        "env: CORRSOURCE_LEVEL; ini: corrsource_level",
    )
    group.addoption(
        "--corrsource-report",
        metavar="PATH",
        dest="corrsource_report",
        default=None,
        help="write the JSON report to PATH (and Markdown to PATH.md); ini: corrsource_report",
    )
    group.addoption(
        "--corrsource-report-md",
        metavar="PATH",
        dest="corrsource_report_md",
        default=None,
        help="write the Markdown report to PATH",
    )
    group.addoption(
        "--corrsource-mof",
        metavar="PATH",
        dest="corrsource_mof",
        default=None,
        help="write a Model Openness Framework record (YAML, Model Openness Tool format)",
    )
    group.addoption(
        "--corrsource-junit-properties",
        action="store_true",
        dest="corrsource_junit_properties",
        default=None,
        help="add check id, component and level as <properties> in --junitxml output (breaks "
        "strict xunit2 validators, hence off by default); ini: corrsource_junit_properties",
    )
    group.addoption(
        "--corrsource-fresh-env",
        action="store_true",
        dest="corrsource_fresh_env",
        default=False,
        help="rebuild the isolated environment even when a cached one matches",
    )
    group.addoption(
        "--corrsource-working-tree",
        action="store_true",
        dest="corrsource_working_tree",
        default=False,
        help="run the steps on a copy of the whole working tree; by default a git checkout "
        "is copied as it ships (tracked files plus the weights and data the manifest declares)",
    )
    group.addoption(
        "--corrsource-fetch",
        action="store_true",
        dest="corrsource_fetch",
        default=False,
        help="download remote data sources (to the cache, never the checkout) and verify them",
    )
    group.addoption(
        "--corrsource-twice",
        action="store_true",
        dest="corrsource_twice",
        default=False,
        help="run the training command twice and report whether training is deterministic",
    )
    group.addoption(
        "--corrsource-cache-dir",
        metavar="DIR",
        dest="corrsource_cache_dir",
        default=None,
        help="where isolated environments are cached (default: CORRSOURCE_CACHE_DIR, else "
        "~/.cache/pytest-corrsource)",
    )
    group.addoption(
        "--corrsource-annotations",
        dest="corrsource_annotations",
        default="auto",
        choices=("auto", "on", "off"),
        help="GitHub Actions annotations and step summary: auto (when GITHUB_ACTIONS=true), "
        "on or off",
    )
    group.addoption(
        "--corrsource-waive",
        metavar="CSxxx[=REASON]",
        dest="corrsource_waive",
        action="append",
        default=[],
        help="accept that a required check cannot run on this machine (repeatable); the level "
        "then reads 'met, with waivers: CSxxx (REASON)'. A check that ran and failed stays "
        "failed. ini: corrsource_waive (one per line)",
    )
    parser.addini("corrsource_manifest", "path of the manifest (relative to the ini file)")
    parser.addini("corrsource_level", "the openness level that must be met")
    parser.addini("corrsource_sandbox", "auto, bwrap or none (see --corrsource-sandbox)")
    parser.addini("corrsource_installer", "auto, uv or pip (see --corrsource-installer)")
    parser.addini("corrsource_report", "path of the JSON report")
    parser.addini(
        "corrsource_waive",
        "checks waived because they cannot run here, one CSxxx[=reason] per line",
        type="linelist",
        default=[],
    )
    parser.addini(
        "corrsource_junit_properties",
        "add check id, component and level as JUnit XML properties",
        type="bool",
        default=False,
    )


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    check_id = config.getoption("corrsource_explain", None)
    if not check_id:
        return None
    # `corrsource explain X101`: conftest.py files and plugins are loaded by now, so checks
    # they add are explained like built-in ones.
    from pytest_corrsource.cli import explain_in_project
    from pytest_corrsource.verification import added_checks

    return explain_in_project(added_checks(config), check_id)


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    if not config.getoption("corrsource", False):
        _warn_ignored_options(config)
        return
    from pytest_corrsource.verification import Verification

    verification = Verification.from_config(config)
    config.pluginmanager.register(verification, SESSION_PLUGIN_NAME)
    if config.pluginmanager.hasplugin("xdist"):
        from pytest_corrsource.verification import XdistHooks

        config.pluginmanager.register(XdistHooks(verification), "corrsource-xdist")


def _warn_ignored_options(config: pytest.Config) -> None:
    """``--corrsource-*`` on the command line without ``--corresponding-source`` does nothing:
    say so rather than let a user believe a level was checked. Ini keys and environment
    variables stay silent: a project configures them once and enables the checks in CI only."""
    given = [
        option
        for option in config.invocation_params.args
        if isinstance(option, str) and option.startswith("--corrsource-")
    ]
    if given:
        names = ", ".join(sorted({option.split("=", 1)[0] for option in given}))
        config.issue_config_time_warning(
            pytest.PytestConfigWarning(
                f"{names} ignored: pytest-corrsource runs only with --corresponding-source"
            ),
            stacklevel=2,
        )


# --- fixtures for existing test suites ---------------------------------------------------------
# Defined here so they exist with or without the flag; the work happens in ``fixtures.py``,
# imported only when a test asks for one of them.


@pytest.fixture(scope="session")
def corrsource(request: pytest.FixtureRequest) -> Corrsource:
    """The parsed manifest and repository root (a ``pytest_corrsource.fixtures.Corrsource``)."""
    from pytest_corrsource import fixtures

    session = request.config.pluginmanager.get_plugin(SESSION_PLUGIN_NAME)
    return fixtures.corrsource_for(request.config, session)


@pytest.fixture
def model_weights(request: pytest.FixtureRequest, corrsource: Corrsource) -> Weights:
    """Lazy, read-only mapping of tensor name -> numpy array for the declared weights."""
    from pytest_corrsource import fixtures

    return fixtures.model_weights_for(request, corrsource)


@pytest.fixture(scope="session")
def corrsource_env(corrsource: Corrsource) -> IsolatedEnvironment:
    """The isolated environment built from the manifest's ``install`` section."""
    from pytest_corrsource import fixtures

    return fixtures.environment_for(corrsource)


@pytest.fixture
def run_model(
    corrsource: Corrsource,
    corrsource_env: IsolatedEnvironment,
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., RunOutput]:
    """Callable running the declared ``run`` command; returns exit code, output and files."""
    from pytest_corrsource import fixtures

    return fixtures.run_model_for(corrsource, corrsource_env, tmp_path_factory)


@pytest.fixture(scope="session")
def modified_weights(corrsource: Corrsource, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path to a perturbed copy of the first declared weights (same schema, other values)."""
    from pytest_corrsource import fixtures

    return fixtures.modified_weights_for(corrsource, tmp_path_factory)


@pytest.fixture(scope="session")
def regenerated_weights(corrsource: Corrsource) -> Path:
    """Path to the weights the declared (smoke-sized) training command writes."""
    from pytest_corrsource import fixtures

    return fixtures.regenerated_weights_for(corrsource)


def pytest_runtest_setup(item: pytest.Item) -> None:
    # The training markers only mean something to tests of the user's; cheap when absent.
    if item.get_closest_marker("training_code") or item.get_closest_marker("training_data"):
        from pytest_corrsource import fixtures

        session = item.config.pluginmanager.get_plugin(SESSION_PLUGIN_NAME)
        fixtures.apply_training_markers(item, session)
