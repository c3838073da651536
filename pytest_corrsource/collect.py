"""pytest nodes for a manifest: File -> one collector per component -> one item per check.

Stage: Plan -> pytest Items. Thin adapters: naming, markers, report location and mapping a
result's outcome onto pass / fail / skip / xfail. Node ids read
``corresponding-source.yaml::weights::hash[weights/model.safetensors]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_corrsource.checks.api import CheckContext
from pytest_corrsource.manifest import Manifest, ManifestError, load_manifest
from pytest_corrsource.plan import PlannedCheck, build_plan
from pytest_corrsource.report.sanitize import sanitize
from pytest_corrsource.results import CheckResult, refuse_unknown_waivers, run_planned


class CheckFailure(Exception):
    """Raised by a failing item; carries the result whose message is the whole failure text."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.message)
        self.result = result


class ManifestFile(pytest.File):
    manifest: Manifest
    # The enabled plugin object (verification.Verification) that collected this file: it holds
    # the options, digests and run state the checks share. Set by that object, not imported.
    corrsource: Any = None

    def collect(self) -> Iterator[pytest.Collector]:
        try:
            display = str(self.path.relative_to(self.config.invocation_params.dir))
        except ValueError:
            display = str(self.path)
        try:
            self.manifest = load_manifest(self.path, display=display)
            refuse_unknown_waivers(self.manifest, self.corrsource.checks)
        except ManifestError as exc:
            raise self.CollectError(sanitize(str(exc))) from None
        by_component: dict[str, list[PlannedCheck]] = {}
        for planned in build_plan(self.manifest, self.corrsource.checks):
            by_component.setdefault(planned.component, []).append(planned)
        for component, checks in by_component.items():
            yield ComponentCollector.from_parent(self, name=component, checks=checks)


class ComponentCollector(pytest.Collector):
    def __init__(self, *, checks: list[PlannedCheck], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.checks = checks

    def collect(self) -> Iterator[pytest.Item]:
        for planned in self.checks:
            # The name (a manifest path) is printed by pytest itself: no control characters,
            # no `##[` workflow command in it. The id is given as the string pytest has always
            # built: pytest 9.2 would otherwise derive a structured id from the parent (name
            # ``present[weights/x]`` as one segment) that differs from the one it parses back
            # from its cache (name ``present``, params ``weights/x``), so ``--lf`` and ``--ff``
            # lost every check with a subject.
            name = sanitize(planned.name, env={})
            yield CheckItem.from_parent(
                self, name=name, nodeid=f"{self.nodeid}::{name}", planned=planned
            )


class CheckItem(pytest.Item):
    def __init__(self, *, planned: PlannedCheck, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.planned = planned
        self.corrsource_result: CheckResult | None = None
        self.add_marker("corresponding_source")

    @property
    def manifest(self) -> Manifest:
        parent = self.parent.parent if self.parent else None
        assert isinstance(parent, ManifestFile)
        return parent.manifest

    def runtest(self) -> None:
        parent = self.parent.parent if self.parent else None
        assert isinstance(parent, ManifestFile)
        verification = parent.corrsource
        ctx = CheckContext(
            manifest=self.manifest,
            check_id=self.planned.spec.id,
            subject=self.planned.subject,
            options=verification.options,
            digests=verification.digests,
            state=verification.state,
            component=self.planned.component,
        )
        level = verification.options.level
        result = run_planned(self.planned, ctx, level, verification.checks)
        self.corrsource_result = result
        if verification.settings.junit_properties:
            # Opt-in: testcase <properties> break strict xunit2 schema validators.
            self.user_properties += [
                ("corrsource.check", result.id),
                ("corrsource.component", result.component),
                ("corrsource.level", result.required_by or "informational"),
                ("corrsource.outcome", result.outcome),
            ]
        if result.outcome == "failed":
            raise CheckFailure(result)
        if result.outcome in ("skipped", "waived"):
            # Located at the manifest line (as a skip marker is), not at this line of ours.
            raise pytest.skip.Exception(result.message, _use_item_location=True)
        if result.outcome == "not-required":
            pytest.xfail(result.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CheckFailure):
            return str(excinfo.value)
        # Anything else is a bug of ours: show it whole rather than hide it.
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int, str]:
        # The failure header: "CS104 corresponding-source.yaml::weights::hash[…] at
        # corresponding-source.yaml:5", so the manifest line is on screen.
        where = f"{self.nodeid.split('::', 1)[0]}:{self.planned.line}"
        return self.path, self.planned.line - 1, f"{self.planned.spec.id} {self.nodeid} at {where}"
