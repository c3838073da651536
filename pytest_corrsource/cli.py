"""The ``corrsource`` command (also ``python -m pytest_corrsource``).

corrsource init [PATH] [--force] [--stdout]   draft corresponding-source.yaml for a repository
corrsource check [PATH] [PYTEST ARGS...]      pytest --corresponding-source PATH ...
corrsource checks                             list every check and the levels requiring it
corrsource explain CSxxx                      what a check verifies, why, how to fix it
corrsource schema                             print the manifest's JSON Schema (for editors)
corrsource --version
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from pytest_corrsource import __version__
from pytest_corrsource.catalogue import (
    BUILTIN,
    BY_ID,
    CHECKS,
    CUSTOM_ID,
    CheckRegistry,
    CheckSpec,
)
from pytest_corrsource.vocabulary import LEVELS, level_rank


def levels_requiring(spec: CheckSpec) -> list[str]:
    """The levels at which ``spec`` must pass (cumulative from its own level)."""
    if spec.level is None:
        return []
    return [level for level in LEVELS if level_rank(level) >= level_rank(spec.level)]


def explain(check_id: str, checks: CheckRegistry = BUILTIN) -> str:
    """The rule documentation of one check, like a linter's."""
    spec = checks[check_id]
    required = ", ".join(levels_requiring(spec)) or "none (informational: reported, never required)"
    snippet = spec.example
    parts = [
        f"{spec.id} {spec.component}::{spec.check}",
        "",
        f"What it verifies: {spec.title}.",
        "",
        "Why it matters:",
        textwrap.indent(textwrap.fill(spec.explanation, 88), "  "),
        f"  Enforces: {spec.clause}",
        "",
        f"Required at levels: {required}",
        "",
        "How to fix a failure:",
        textwrap.indent(textwrap.fill(spec.fix, 88), "  "),
    ]
    if snippet:
        parts += ["", "In corresponding-source.yaml:", textwrap.indent(snippet.strip("\n"), "  ")]
    return "\n".join(parts) + "\n"


def explain_in_project(checks: CheckRegistry, check_id: str) -> int:
    """``pytest --corrsource-explain ID``: explain a check, added ones included."""
    check_id = check_id.upper()
    if check_id not in checks:
        known = ", ".join(spec.id for spec in checks)
        sys.stderr.write(f"corrsource: unknown check `{check_id}` (known here: {known})\n")
        return 2
    sys.stdout.write(explain(check_id, checks))
    return 0


def checks_table() -> str:
    width = max(len(f"{c.component}::{c.check}") for c in CHECKS)
    lines = [f"{'id':<6} {'check':<{width}}  required at"]
    for spec in CHECKS:
        levels = ", ".join(levels_requiring(spec)) or "informational"
        lines.append(f"{spec.id:<6} {spec.component + '::' + spec.check:<{width}}  {levels}")
        lines.append(f"{'':<6} {spec.title}")
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corrsource",
        description="Verify that a model repository ships its Corresponding Source.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__} (pytest-corrsource)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="draft corresponding-source.yaml for a repository")
    init.add_argument("path", nargs="?", default=".", type=Path)
    init.add_argument("--force", action="store_true", help="overwrite an existing manifest")
    init.add_argument("--stdout", action="store_true", help="print the draft instead of writing it")
    check = sub.add_parser(
        "check",
        usage="corrsource check [PATH] [PYTEST ARGS ...]",
        help="run pytest --corresponding-source on a repository (extra args go to pytest)",
        description="Run `pytest --corresponding-source PATH`. Every argument after PATH that "
        "corrsource does not know is passed on to pytest unchanged.",
        epilog="examples: corrsource check . --corrsource-level open-weights -q; "
        "corrsource check models/tiny -n 2 --corrsource-report report.json. "
        "See `pytest --help` (section corresponding-source) for every option.",
    )
    check.add_argument(
        "path", nargs="?", default=".", help="the repository (default: the current folder)"
    )
    sub.add_parser("checks", help="list every check and the levels that require it")
    explain_cmd = sub.add_parser("explain", help="explain one check: what, why, how to fix")
    explain_cmd.add_argument("check_id", metavar="CSxxx")
    sub.add_parser(
        "schema",
        help="print the manifest's JSON Schema",
        description="Print the JSON Schema of corresponding-source.yaml, for editors that "
        "work offline: corrsource schema > corresponding-source.schema.json, then make the "
        "manifest's first line `# yaml-language-server: $schema=corresponding-source.schema.json`.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "check":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "schema":
        from pytest_corrsource.schema.__main__ import render

        sys.stdout.write(render())
        return 0
    if args.command == "checks":
        sys.stdout.write(checks_table())
        return 0
    if args.command == "explain":
        check_id = args.check_id.upper()
        if CUSTOM_ID.fullmatch(check_id):
            import pytest

            # A check a plugin or conftest.py adds: pytest loads them, here, and explains it.
            return int(pytest.main(["-p", "no:cacheprovider", "--corrsource-explain", check_id]))
        if check_id not in BY_ID:
            known = ", ".join(BY_ID)
            sys.stderr.write(f"corrsource: unknown check `{args.check_id}` (known: {known})\n")
            return 2
        sys.stdout.write(explain(check_id))
        return 0
    if args.command == "check":
        import pytest

        # The manifest file itself is the argument: the repository's own tests are not
        # collected, so one that fails to import cannot stop the checks (llama2.c's test_all.py).
        from pytest_corrsource.manifest import MANIFEST_NAME

        target = Path(args.path)
        if (target / MANIFEST_NAME).is_file():
            target = target / MANIFEST_NAME
        return int(pytest.main(["--corresponding-source", str(target), *rest]))
    from pytest_corrsource.draft.write import run_init

    return run_init(args.path, force=args.force, stdout=args.stdout)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
