"""What ``corrsource init`` found in a repository: the draft before it is rendered as YAML.

Each entry carries ``notes``: the comments rendered above it (where it came from, and a
``TODO`` wherever the draft had to guess).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Draft", "DraftSource", "DraftStep", "DraftWeights"]


@dataclass
class DraftWeights:
    """A weights (or checkpoint) entry of the draft."""

    path: str
    format: str | None = None
    sha256: str | None = None
    shards: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    inline: str | None = None  # comment after `format:`
    pointer: bool = False


@dataclass
class DraftStep:
    """A command section of the draft (run, training, generate …)."""

    command: str
    code: list[str] = field(default_factory=list)
    produces: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)  # evaluation data named by the command


@dataclass
class DraftSource:
    """A training-data source of the draft."""

    path: str
    sha256: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Draft:
    """Everything the draft declares, with the notes rendered next to each part."""

    root: Path
    files: set[str] = field(default_factory=set)
    name: str = ""
    name_note: str = ""
    licenses: dict[str, str] = field(default_factory=dict)
    # `licenses.refs`: LicenseRef id -> (text path, display name) for a card licence off SPDX.
    license_refs: dict[str, tuple[str, str]] = field(default_factory=dict)
    license_notes: list[str] = field(default_factory=list)
    weights: list[DraftWeights] = field(default_factory=list)
    weights_notes: list[str] = field(default_factory=list)
    mlflow_models: list[str] = field(default_factory=list)  # folders holding an MLmodel file
    checkpoints: list[DraftWeights] = field(default_factory=list)
    architecture: list[str] = field(default_factory=list)
    architecture_notes: list[str] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)
    install_commands: list[str] = field(default_factory=list)
    install_python: str | None = None
    install_notes: list[str] = field(default_factory=list)
    generate: list[DraftStep] = field(default_factory=list)
    generate_notes: list[str] = field(default_factory=list)
    run: DraftStep | None = None
    run_notes: list[str] = field(default_factory=list)
    modify: DraftStep | None = None
    training: DraftStep | None = None
    training_notes: list[str] = field(default_factory=list)
    sources: list[DraftSource] = field(default_factory=list)
    preprocessing: DraftStep | None = None
    no_preprocessing: str | None = None  # why none is needed (the training reads the sources)
    no_preprocessing_notes: list[str] = field(default_factory=list)
    data_card: str | None = None
    data_notes: list[str] = field(default_factory=list)
    evaluation: DraftStep | None = None
    docs: dict[str, str] = field(default_factory=dict)
    docs_notes: list[str] = field(default_factory=list)
