"""Hooks other plugins and ``conftest.py`` files implement to extend pytest-corrsource.

Registered by ``plugin.py`` (``pytest_addhooks``) whether or not the checks are enabled, so a
``conftest.py`` implementing them loads cleanly in any pytest run; they are called only with
``--corresponding-source``. Implement them in a ``conftest.py`` pytest loads before collecting
(the rootdir's, or one beside the manifest given on the command line) or in an installed plugin.

An added check is a :class:`~pytest_corrsource.catalogue.CheckSpec` whose ``id`` is in the range
reserved for extensions (``X``, up to eight capitals, three digits: ``X101``, ``XACME101``) and
whose ``run`` is the check function (a :data:`~pytest_corrsource.checks.api.CheckFunction`). It
is then planned (its ``subjects`` rule), run (prerequisites in ``after``, the sandboxed helpers
of :mod:`pytest_corrsource.sandbox` if it needs them), levelled (``level``), waivable, reported
and explained (``corrsource explain X101`` in the project) exactly like a built-in check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

# Every module-level name starting with ``pytest_`` is taken for a hook specification: import
# names from our modules (``from pytest_corrsource.x import Y``), never the package itself.

if TYPE_CHECKING:
    from pytest_corrsource.catalogue import CheckSpec
    from pytest_corrsource.report import ManifestReport


@pytest.hookspec
def pytest_corrsource_checks(config: pytest.Config) -> list[CheckSpec]:  # type: ignore[empty-body]
    """Return the checks this plugin adds (called once per run, before collection)."""


@pytest.hookspec
def pytest_corrsource_report_sections(  # type: ignore[empty-body]
    report: ManifestReport,
) -> list[tuple[str, str]]:
    """Return ``(title, text)`` sections to add to the report of one manifest.

    Called once per manifest after every check ran, on the process that writes the reports.
    The sections appear in the terminal summary, the Markdown report and the JSON report
    (``sections``), sanitized like every other text: plain text, never markup.
    """
