"""The manifest's shape (``spec.py``) and its JSON Schema (``corresponding-source.schema.json``)."""

from __future__ import annotations

from pathlib import Path

SCHEMA_FILE = Path(__file__).with_name("corresponding-source.schema.json")
