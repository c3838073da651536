"""The draft as commented YAML text, in the key order of MANIFEST.md (comments survive, which
a YAML dumper would drop)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from pytest_corrsource.draft.findings import Draft, DraftStep, DraftWeights
from pytest_corrsource.schema import SCHEMA_URL

__all__ = ["count_todos", "render", "scalar"]

_ESCAPE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_PLAIN_REFUSED = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]|^\s|\s$")


def scalar(value: str, *, flow: bool = False) -> str:
    """``value`` as a YAML scalar for a block mapping value (or, with ``flow``, an item of a
    ``[…]`` list): plain when it reads back as the same string in that very context, else a
    JSON string (valid YAML) with the characters YAML refuses escaped."""
    import yaml

    if value and not _PLAIN_REFUSED.search(value) and not (flow and re.search(r"[,\[\]{}]", value)):
        probe = f"k: [{value}]" if flow else f"k: {value}"
        try:
            if yaml.safe_load(probe) == {"k": [value] if flow else value}:
                return value
        except yaml.YAMLError:
            pass
    text = json.dumps(value, ensure_ascii=False)
    return _ESCAPE.sub(
        lambda m: (
            f"\\u{ord(m.group()):04x}" if ord(m.group()) < 0x10000 else f"\\U{ord(m.group()):08x}"
        ),
        text,
    )


def _flow(items: list[str]) -> str:
    return "[" + ", ".join(scalar(i, flow=True) for i in items) + "]"


class _Out:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def comment(self, indent: int, text: str) -> None:
        text = " ".join(text.split())
        self.lines.append(f"{' ' * indent}# {text}")

    def notes(self, indent: int, notes: Iterable[str]) -> None:
        for note in notes:
            self.comment(indent, note)

    def key(self, indent: int, key: str, value: str | None = None, inline: str = "") -> None:
        line = f"{' ' * indent}{key}:" + (f" {value}" if value is not None else "")
        if inline:
            line += "  # " + " ".join(inline.split())
        self.lines.append(line)

    def blank(self) -> None:
        if self.lines and self.lines[-1] != "":
            self.lines.append("")


def _weights_list(out: _Out, entries: list[DraftWeights]) -> None:
    for entry in entries:
        out.notes(2, entry.notes)
        out.key(2, "- path", scalar(entry.path))
        if entry.format:
            out.key(4, "format", entry.format, entry.inline or "")
        if entry.sha256:
            out.key(4, "sha256", entry.sha256)
        if entry.shards:
            out.key(4, "shards")
            for name, digest in entry.shards.items():
                out.key(6, scalar(name), digest)


def _step(out: _Out, indent: int, step: DraftStep, *, produces_list: bool = True) -> None:
    if step.code:
        out.key(indent, "code", _flow(step.code))
    out.key(indent, "command", scalar(step.command))
    if step.produces:
        value = _flow(step.produces) if produces_list else scalar(step.produces[0])
        out.key(indent, "produces", value)


def render(draft: Draft) -> str:
    """The draft as commented YAML, in the key order of MANIFEST.md."""
    out = _Out()
    out.lines.append(f"# yaml-language-server: $schema={SCHEMA_URL}")
    out.lines.append(
        "# Draft written by corrsource init: review every TODO, then run pytest "
        "--corresponding-source"
    )
    out.comment(
        0,
        "(offline: `corrsource schema > corresponding-source.schema.json` and point the first "
        "line at that file)",
    )
    out.key(0, "version", "1")
    out.key(0, "name", scalar(draft.name), draft.name_note)

    out.blank()
    if draft.licenses:
        out.key(
            0, "licenses", None, "SPDX expressions; resolution: component > kind > distribution"
        )
        out.notes(2, draft.license_notes)
        for kind in ("distribution", "code", "weights", "data", "docs"):
            if kind in draft.licenses:
                out.key(2, kind, scalar(draft.licenses[kind]))
        if draft.license_refs:
            out.key(2, "refs", None, "licences off the SPDX list: their text and openness")
            for ref, (text, name) in draft.license_refs.items():
                out.key(4, ref)
                out.key(6, "name", scalar(name))
                out.key(6, "text", scalar(text))
                out.key(6, "open", "false", "TODO: true only if its terms are open")
    else:
        out.comment(0, "TODO: declare `licenses:` (SPDX expressions, e.g. `distribution: MIT`)")
        out.notes(0, draft.license_notes)

    out.blank()
    out.key(0, "weights")
    out.notes(2, draft.weights_notes)
    if draft.weights:
        _weights_list(out, draft.weights)
    else:
        out.key(2, "- path", "TODO-weights.safetensors")

    out.blank()
    if draft.architecture:
        out.key(0, "architecture", _flow(draft.architecture), "source files that define the model")
    else:
        out.comment(0, "architecture: []")
    out.notes(0, draft.architecture_notes)

    out.blank()
    if draft.requirements or draft.install_commands:
        out.key(0, "install")
        out.notes(2, draft.install_notes)
        if draft.requirements:
            out.key(2, "requirements", _flow(draft.requirements))
        if draft.install_commands:
            out.key(2, "commands")
            for command in draft.install_commands:
                out.lines.append(f"    - {scalar(command)}")
        if draft.install_python:
            out.key(2, "python", json.dumps(draft.install_python))
    else:
        out.notes(0, draft.install_notes)

    if not draft.generate and draft.generate_notes:
        out.blank()
        out.notes(0, draft.generate_notes)
    if draft.generate:
        out.blank()
        out.key(0, "generate", None, "turn the weights into the runnable model")
        for step in draft.generate:
            out.notes(2, step.notes)
            out.lines.append(f"  - command: {scalar(step.command)}")
            if step.code:
                out.key(4, "code", _flow(step.code))

    out.blank()
    if draft.run:
        out.key(0, "run", None, "run the model from its weights")
        out.notes(2, draft.run.notes)
        out.key(2, "command", scalar(draft.run.command))
        out.comment(
            2, "optional: timeout: 600 (seconds); expect: {stdout: <regex>} checks the output"
        )
    else:
        out.notes(0, draft.run_notes)

    if draft.modify:
        out.blank()
        out.key(0, "modify", None, "fine-tuning / editing scripts that take the weights")
        out.notes(2, draft.modify.notes)
        _step(out, 2, draft.modify)

    out.blank()
    if draft.training:
        out.key(0, "training")
        out.notes(2, draft.training.notes)
        _step(out, 2, draft.training, produces_list=False)
    else:
        out.notes(0, draft.training_notes)

    has_data = draft.sources or draft.preprocessing or draft.no_preprocessing or draft.data_card
    out.blank()
    if has_data:
        out.key(0, "data")
        out.notes(2, draft.data_notes)
        if draft.sources:
            out.key(2, "sources")
            for source in draft.sources:
                out.notes(4, source.notes)
                out.key(4, "- path", scalar(source.path))
                if source.sha256:
                    out.key(6, "sha256", source.sha256)
        if draft.preprocessing:
            out.key(2, "preprocessing")
            out.notes(4, draft.preprocessing.notes)
            _step(out, 4, draft.preprocessing)
        elif draft.no_preprocessing:
            out.notes(2, draft.no_preprocessing_notes)
            out.key(2, "no-preprocessing", scalar(draft.no_preprocessing))
        if draft.data_card:
            out.key(2, "card", scalar(draft.data_card))
        else:
            out.comment(
                2,
                "TODO: write a data card (provenance, scope, selection, labelling, "
                "processing) and declare it: `card: DATA_CARD.md`",
            )
    else:
        out.notes(0, draft.data_notes)
        out.comment(
            0,
            "TODO: declare `data:` (the training data: sources with sha256 and licence, "
            "preprocessing, a data card): required by the open-source-ai level",
        )

    if draft.evaluation:
        out.blank()
        out.key(0, "evaluation")
        out.notes(2, draft.evaluation.notes)
        if draft.evaluation.data:
            out.key(2, "data", _flow(draft.evaluation.data))
        _step(out, 2, draft.evaluation)

    if draft.checkpoints:
        out.blank()
        out.key(0, "checkpoints")
        _weights_list(out, draft.checkpoints)

    out.blank()
    if draft.docs:
        out.key(0, "docs")
        out.notes(2, draft.docs_notes)
        for key in ("model-card", "paper", "technical-report", "results"):
            if key in draft.docs:
                out.key(2, key, scalar(draft.docs[key]))
    else:
        out.notes(0, draft.docs_notes)
    while out.lines and out.lines[-1] == "":
        out.lines.pop()
    return "\n".join(out.lines) + "\n"


def count_todos(text: str) -> int:
    """The TODOs left for the user: the ones check CS001 reports (not the header's mention)."""
    from pytest_corrsource.checks.manifest import find_todos

    return len(find_todos(text))
