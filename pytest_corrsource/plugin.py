"""pytest entry point (placeholder while the spine is being written)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "corresponding_source: a Corresponding Source check")
