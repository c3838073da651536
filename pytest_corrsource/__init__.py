"""pytest-corrsource: verify that a model repository ships its Corresponding Source.

This module is imported when pytest loads the plugin entry point, so it must stay
import-light: standard library only. What users may import is listed in ``__all__`` and
loaded on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

#: The public names: the fixture types, what a check added by a plugin is made of (its spec,
#: what it receives and returns, what it is planned on), the report a plugin may add to, and
#: the errors. The hooks themselves are documented in ``pytest_corrsource.hookspecs``.
__all__ = [
    "CheckContext",
    "CheckFailed",
    "CheckSkipped",
    "CheckSpec",
    "CheckUnverifiable",
    "Corrsource",
    "CorrsourceError",
    "Finding",
    "FormatError",
    "ManifestError",
    "ManifestReport",
    "Subject",
    "Weights",
    "__version__",
]

_LAZY = {
    "CheckContext": "pytest_corrsource.checks.api",
    "CheckFailed": "pytest_corrsource.checks.api",
    "CheckSkipped": "pytest_corrsource.checks.api",
    "CheckUnverifiable": "pytest_corrsource.checks.api",
    "Finding": "pytest_corrsource.checks.api",
    "ManifestReport": "pytest_corrsource.report",
    "Subject": "pytest_corrsource.subjects",
    "CheckSpec": "pytest_corrsource.catalogue",
    "Corrsource": "pytest_corrsource.fixtures",
    "CorrsourceError": "pytest_corrsource.errors",
    "FormatError": "pytest_corrsource.formats",
    "ManifestError": "pytest_corrsource.manifest",
    "Weights": "pytest_corrsource.fixtures",
}


def __getattr__(name: str) -> Any:
    """``from pytest_corrsource import Corrsource`` without importing it at pytest start-up."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_corrsource' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
