"""The manifest's shape (``spec.py``) and its JSON Schema (``corresponding-source.schema.json``)."""

from __future__ import annotations

from pathlib import Path

from pytest_corrsource import __version__

SCHEMA_FILE = Path(__file__).with_name("corresponding-source.schema.json")
#: Where the schema of this version is published (its ``$id``): the file in the repository at
#: the release tag, so an editor fetches the schema of the version that drafted the manifest.
#: Offline, ``corrsource schema`` prints the same text.
REPOSITORY = "https://github.com/pytest-corrsource/pytest-corrsource"
SCHEMA_URL = (
    "https://raw.githubusercontent.com/pytest-corrsource/pytest-corrsource/"
    f"v{__version__}/pytest_corrsource/schema/{SCHEMA_FILE.name}"
)
