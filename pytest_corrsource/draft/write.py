"""``corrsource init [PATH]``: draft the manifest, check that it loads and meets the JSON
Schema, and write it atomically (or print it)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
from pathlib import Path

from pytest_corrsource.draft.discover import build_draft
from pytest_corrsource.draft.findings import Draft
from pytest_corrsource.draft.render import count_todos, render
from pytest_corrsource.errors import CorrsourceError
from pytest_corrsource.manifest import MANIFEST_NAME, load_manifest
from pytest_corrsource.schema import SCHEMA_FILE

__all__ = ["InitError", "run_init", "verify"]


class InitError(CorrsourceError):
    """The draft could not be built (a bug when it is about the draft's own validity)."""


def verify(text: str, path: Path) -> None:
    """Check the draft at ``path`` (already written) with the manifest loader and the JSON
    Schema. Raises :class:`InitError`: a draft that does not load is a bug in ``init``."""
    import yaml

    from pytest_corrsource.manifest import ManifestError

    try:
        load_manifest(path, display=MANIFEST_NAME)
    except ManifestError as exc:
        raise InitError(f"bug: the draft does not load: {exc}\n--- draft ---\n{text}") from None
    try:
        import jsonschema  # type: ignore[import-untyped]
    except ImportError:  # only in the test extra; load_manifest's spec check is the same rules
        return
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    try:
        jsonschema.validate(yaml.safe_load(text), schema)
    except jsonschema.ValidationError as exc:
        raise InitError(f"bug: the draft breaks the schema: {exc.message}") from None


def _summary(draft: Draft, todos: int) -> str:
    parts: list[str] = []
    formats = sorted({w.format or "unknown" for w in draft.weights})
    n = len(draft.weights)
    parts.append(f"{n} weights file{'' if n == 1 else 's'} ({', '.join(formats) or 'none'})")
    for label, present in (
        ("install", bool(draft.install_commands)),
        ("run", draft.run is not None),
        ("training", draft.training is not None),
        ("data preprocessing", draft.preprocessing is not None),
        ("evaluation", draft.evaluation is not None),
        ("architecture", bool(draft.architecture)),
    ):
        if present:
            parts.append(label)
    if draft.sources:
        parts.append(f"{len(draft.sources)} data source{'' if len(draft.sources) == 1 else 's'}")
    if draft.licenses:
        parts.append("licence " + ", ".join(f"{k}={v}" for k, v in draft.licenses.items()))
    return f"found: {'; '.join(parts)}\n{todos} TODO{'' if todos == 1 else 's'} to review"


def run_init(path: Path, *, force: bool, stdout: bool) -> int:
    """``corrsource init``: 0 written/printed, 1 refused or failed, 130 interrupted."""
    import tempfile

    def log(text: str) -> None:
        from pytest_corrsource.report.sanitize import sanitize

        # File names and licence texts of the repository: no escape sequences to the terminal.
        sys.stderr.write(sanitize(text))
        sys.stderr.flush()

    root = Path(path)
    target = root / MANIFEST_NAME
    if not root.is_dir():
        log(f"corrsource init: {root} is not a directory\n")
        return 1
    if target.exists() and not force and not stdout:
        log(
            f"corrsource init: {target} already exists; not overwriting it "
            "(use --force to replace it, or --stdout to print the draft)\n"
        )
        return 1
    tmp: Path | None = None
    try:
        draft = build_draft(root, log)
        text = render(draft)
        todos = count_todos(text)
        if stdout:
            with tempfile.TemporaryDirectory(prefix="corrsource-init-") as scratch:
                check = Path(scratch) / MANIFEST_NAME
                check.write_text(text, encoding="utf-8")
                verify(text, check)
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            tmp = root / f".{MANIFEST_NAME}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            verify(text, tmp)
            os.replace(tmp, target)
            tmp = None
        log(f"corrsource init: {'printed the draft' if stdout else f'wrote {target}'}\n")
        log(_summary(draft, todos) + "\n")
        next_command = f"pytest --corresponding-source {shlex.quote(str(root))}"
        log(f"next: review the TODOs, then run: {next_command}\n")
        return 0
    except KeyboardInterrupt:
        log("\ninterrupted: no manifest written\n")
        return 130
    except OSError as exc:
        log(f"corrsource init: {exc}\n")
        return 1
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
