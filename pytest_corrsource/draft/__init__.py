"""``corrsource init``: draft a repository's ``corresponding-source.yaml``.

The data flow: :mod:`~.discover` lists the repository (:mod:`~.files`), finds its weights
(:mod:`~.weights`), install, model code, licences, data and docs; :mod:`~.commands` finds the
command sections (README lines read by :mod:`~.sources`, DVC stages and MLflow entry points
imported by :mod:`~.pipelines`); the result is a :class:`~.findings.Draft`, which
:mod:`~.render` writes as commented YAML and :mod:`~.write` checks and writes (the entry point
``cli.py`` calls).
"""

from __future__ import annotations

from pytest_corrsource.draft.discover import build_draft
from pytest_corrsource.draft.findings import Draft, DraftSource, DraftStep, DraftWeights
from pytest_corrsource.draft.render import render
from pytest_corrsource.draft.write import InitError, run_init

__all__ = [
    "Draft",
    "DraftSource",
    "DraftStep",
    "DraftWeights",
    "InitError",
    "build_draft",
    "render",
    "run_init",
]
