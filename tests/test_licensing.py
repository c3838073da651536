"""Unit tests for pytest_corrsource.licensing (SPDX expressions, MOF licence judgement)."""

from __future__ import annotations

import importlib.resources
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_corrsource.licensing import (
    And,
    Judgement,
    LicenseError,
    LicenseExpr,
    LicenseId,
    LicenseRef,
    Or,
    With,
    is_open_id,
    judge,
    license_ids,
    license_info,
    normalize,
    parse_expression,
    render,
    same_license,
    unknown_ids,
)


def load_data() -> dict[str, Any]:
    resource = importlib.resources.files("pytest_corrsource") / "data" / "licenses.json"
    data: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return data


def j(text: str, content_type: str) -> Judgement:
    return judge(parse_expression(text), content_type)


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "text",
    [
        "MIT",
        "Apache-2.0+",
        "MIT OR Apache-2.0",
        "MIT AND Apache-2.0",
        "MIT OR Apache-2.0 AND BSD-3-Clause",
        "(MIT OR Apache-2.0) AND BSD-3-Clause",
        "GPL-2.0-or-later WITH Classpath-exception-2.0",
        "Apache-2.0 WITH LLVM-exception OR MIT",
        "LicenseRef-custom",
        "DocumentRef-spdx-tool-1.2:LicenseRef-MIT-Style-2",
        "MIT AND (LGPL-2.1-or-later OR BSD-3-Clause) AND LicenseRef-x",
    ],
)
def test_canonical_text_round_trips(text: str) -> None:
    expr = parse_expression(text)
    assert render(expr) == text
    assert parse_expression(render(expr)) == expr


def test_precedence_and_binds_tighter_than_or() -> None:
    expr = parse_expression("MIT OR Apache-2.0 AND BSD-3-Clause")
    assert expr == Or((LicenseId("MIT"), And((LicenseId("Apache-2.0"), LicenseId("BSD-3-Clause")))))
    expr = parse_expression("MIT AND Apache-2.0 OR BSD-3-Clause")
    assert expr == Or((And((LicenseId("MIT"), LicenseId("Apache-2.0"))), LicenseId("BSD-3-Clause")))


def test_with_binds_tightest() -> None:
    expr = parse_expression("MIT AND GPL-2.0-only WITH Classpath-exception-2.0 OR ISC")
    assert expr == Or(
        (
            And(
                (
                    LicenseId("MIT"),
                    With(LicenseId("GPL-2.0-only"), "Classpath-exception-2.0"),
                )
            ),
            LicenseId("ISC"),
        )
    )


def test_nested_parentheses_and_flattening() -> None:
    expr = parse_expression("((MIT OR (ISC OR Zlib)) AND ((BSD-2-Clause)))")
    assert expr == And(
        (Or((LicenseId("MIT"), LicenseId("ISC"), LicenseId("Zlib"))), LicenseId("BSD-2-Clause"))
    )
    assert render(expr) == "(MIT OR ISC OR Zlib) AND BSD-2-Clause"


def test_or_later_suffix() -> None:
    assert parse_expression("Apache-2.0+") == LicenseId("Apache-2.0", or_later=True)
    assert parse_expression("GPL-2.0+") == LicenseId("GPL-2.0", or_later=True)
    assert is_open_id("Apache-2.0+")
    assert j("Apache-2.0+", "code").open


def test_case_normalisation_of_known_ids_and_operators() -> None:
    expr = parse_expression("mit or apache-2.0 and gpl-2.0-only with classpath-exception-2.0")
    assert render(expr) == "MIT OR Apache-2.0 AND GPL-2.0-only WITH Classpath-exception-2.0"
    assert render(parse_expression("licenseref-Foo")) == "LicenseRef-Foo"
    # unknown ids keep their case
    assert render(parse_expression("My-Licence-1.0 OR mit")) == "My-Licence-1.0 OR MIT"
    # MOF's spelling of PDDL-1.0
    assert parse_expression("ODC-PDDL-1.0") == LicenseId("PDDL-1.0")


def test_license_refs() -> None:
    assert parse_expression("LicenseRef-custom") == LicenseRef("LicenseRef-custom")
    assert parse_expression("DocumentRef-a:LicenseRef-b") == LicenseRef(
        "DocumentRef-a:LicenseRef-b"
    )
    with_ref = parse_expression("LicenseRef-x WITH Classpath-exception-2.0")
    assert with_ref == With(LicenseRef("LicenseRef-x"), "Classpath-exception-2.0")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty licence expression"),
        ("   ", "empty licence expression"),
        ("MIT AND", "expected a licence id after `AND` at column 8"),
        ("MIT OR", "expected a licence id after `OR` at column 7"),
        ("AND MIT", "expected a licence id at column 1, found `AND`"),
        ("MIT AND OR ISC", "expected a licence id after `AND` at column 9, found `OR`"),
        ("(MIT", "unbalanced `(` at column 1: expected `)` at column 5, found end of input"),
        ("MIT)", "unbalanced `)` at column 4"),
        ("(MIT OR ISC))", "unbalanced `)` at column 13"),
        ("()", "expected a licence id after `(` at column 2, found `)`"),
        ("MIT ISC", "unexpected `ISC` at column 5 after a complete expression"),
        ("MIT (ISC)", "unexpected `(` at column 5 after a complete expression"),
        ("MIT WITH", "expected an exception id after `WITH` at column 9, found end of input"),
        ("MIT WITH AND", "expected an exception id after `WITH` at column 10, found `AND`"),
        (
            "MIT WITH LicenseRef-x",
            "expected an exception id after `WITH` at column 10, found `LicenseRef-x`",
        ),
        ("MIT WITH Foo+", "expected an exception id after `WITH` at column 10, found `Foo+`"),
        (
            "(MIT OR ISC) WITH LLVM-exception",
            "`WITH` at column 14 must follow a single licence id",
        ),
        ("LicenseRef-x+", "`+` is not allowed after a LicenseRef at column 13"),
        ("MIT!", "invalid character `!` in `MIT!` at column 4"),
        ("MIT OR Apache_2.0", "invalid character `_` in `Apache_2.0` at column 14"),
        ("MIT++", "malformed licence id `MIT++` at column 1"),
        ("AdditionRef-x", "is an addition, allowed only after `WITH`"),
    ],
)
def test_errors_name_position_and_token(text: str, message: str) -> None:
    with pytest.raises(LicenseError) as info:
        parse_expression(text)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_deep_nesting_is_a_licence_error_not_a_crash() -> None:
    with pytest.raises(LicenseError, match="nested deeper"):
        parse_expression("(" * 5000 + "MIT" + ")" * 5000)


def test_unknown_exception_is_allowed_and_reported() -> None:
    expr = parse_expression("GPL-2.0-only WITH My-exception")
    assert expr == With(LicenseId("GPL-2.0-only"), "My-exception")
    assert unknown_ids(expr) == {"My-exception"}


def test_license_ids_and_unknown_ids() -> None:
    expr = parse_expression(
        "MIT OR (Apache-2.0+ AND Foo-1.0) OR GPL-2.0-only WITH Classpath-exception-2.0 "
        "OR LicenseRef-x"
    )
    assert license_ids(expr) == {"MIT", "Apache-2.0", "Foo-1.0", "GPL-2.0-only", "LicenseRef-x"}
    assert unknown_ids(expr) == {"Foo-1.0"}


expr_ids = st.sampled_from(["MIT", "Apache-2.0", "CC-BY-4.0", "GPL-2.0-only", "Foo.1-x"])
simples: st.SearchStrategy[LicenseId | LicenseRef] = st.one_of(
    st.builds(LicenseId, expr_ids, st.booleans()),
    st.builds(LicenseRef, st.sampled_from(["LicenseRef-a", "DocumentRef-d:LicenseRef-b"])),
)
atoms: st.SearchStrategy[LicenseExpr] = st.one_of(
    simples,
    st.builds(With, simples, st.sampled_from(["Classpath-exception-2.0", "Other-exc"])),
)


def _combine(children: st.SearchStrategy[LicenseExpr]) -> st.SearchStrategy[LicenseExpr]:
    def flat(kind: type[And] | type[Or], parts: list[LicenseExpr]) -> LicenseExpr:
        out: list[LicenseExpr] = []
        for part in parts:
            out.extend(part.parts if isinstance(part, kind) else (part,))
        return kind(tuple(out))

    lists = st.lists(children, min_size=2, max_size=4)
    return st.one_of(lists.map(lambda ps: flat(And, ps)), lists.map(lambda ps: flat(Or, ps)))


expressions = st.recursive(atoms, _combine, max_leaves=12)


@given(expressions)
def test_render_parse_round_trip(expr: LicenseExpr) -> None:
    assert parse_expression(render(expr)) == expr


@given(
    st.one_of(
        st.text(),
        st.lists(
            st.sampled_from(
                ["MIT", "and", "OR", "WITH", "(", ")", "+", "LicenseRef-x", " ", "Foo", ":"]
            )
        ).map("".join),
    )
)
def test_arbitrary_text_only_raises_license_error(text: str) -> None:
    try:
        expr = parse_expression(text)
    except LicenseError:
        return
    assert parse_expression(render(expr)) == expr


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("apache-2.0", "Apache-2.0"),
        ("mit", "MIT"),
        ("cc-by-4.0", "CC-BY-4.0"),
        ("cc-by-nc-sa-4.0", "CC-BY-NC-SA-4.0"),
        ("gpl-3.0", "GPL-3.0-only"),
        ("odc-by", "ODC-By-1.0"),
        ("pddl", "PDDL-1.0"),
        ("llama3", "LicenseRef-llama3"),
        ("llama3.1", "LicenseRef-llama3.1"),
        ("openrail++", "LicenseRef-openrail-plusplus"),
        ("gemma", "LicenseRef-gemma"),
        ("afl-3.0", "AFL-3.0"),
        ("  MIT  OR   apache-2.0 ", "MIT OR Apache-2.0"),
        ("other", None),
        ("unknown", None),
        ("", None),
        ("NONE", None),
        ("NOASSERTION", None),
    ],
)
def test_normalize(text: str, expected: str | None) -> None:
    assert normalize(text) == expected


def test_normalize_rejects_garbage() -> None:
    with pytest.raises(LicenseError):
        normalize("MIT AND")


def test_hub_model_licences_are_recognised_but_not_open() -> None:
    for hub in ("llama3", "openrail", "creativeml-openrail-m", "bigscience-bloom-rail-1.0"):
        spdx = normalize(hub)
        assert spdx is not None
        assert license_info(spdx) is not None
        assert not is_open_id(spdx)
        verdict = j(spdx, "data")
        assert not verdict.open
        assert spdx in verdict.reason


# --------------------------------------------------------------------------- openness


def test_license_info() -> None:
    info = license_info("mit")
    assert info is not None
    assert (info.id, info.osi, info.fsf, info.open_data, info.types) == (
        "MIT",
        True,
        True,
        False,
        ("code",),
    )
    assert license_info("No-Such-Licence") is None
    wtfpl = license_info("WTFPL")
    assert wtfpl is not None
    assert (wtfpl.osi, wtfpl.fsf) == (False, True)


@pytest.mark.parametrize(
    ("ident", "expected"),
    [
        ("MIT", True),
        ("WTFPL", True),  # FSF-libre only
        ("CC-BY-4.0", True),  # open data
        ("PDDL-1.0", True),
        ("ODC-PDDL-1.0", True),
        ("GFDL-1.3", True),
        ("OpenMDW-1.0", True),
        ("GPL-2.0+", True),
        ("GPL-3.0-or-later", True),
        ("CC-BY-NC-4.0", False),
        ("CC-BY-ND-4.0", False),
        ("CC-BY-NC-SA-4.0", False),
        ("SSPL-1.0", False),
        ("LicenseRef-MIT", False),
        ("No-Such-Licence", False),
    ],
)
def test_is_open_id(ident: str, expected: bool) -> None:
    assert is_open_id(ident) is expected


def test_gpl_with_classpath_exception_is_open_for_code() -> None:
    verdict = j("GPL-2.0-or-later WITH Classpath-exception-2.0", "code")
    assert verdict == Judgement(
        True, True, ("GPL-2.0-or-later",), "open via GPL-2.0-or-later, type-appropriate for code"
    )


def test_or_with_a_custom_branch_is_open_via_the_open_branch() -> None:
    verdict = j("MIT OR LicenseRef-Proprietary", "code")
    assert verdict.open
    assert verdict.type_appropriate
    assert verdict.choice == ("MIT",)


def test_and_with_a_custom_part_is_not_open() -> None:
    verdict = j("MIT AND LicenseRef-custom", "code")
    assert not verdict.open
    assert not verdict.type_appropriate
    assert verdict.choice == ()
    assert "LicenseRef-custom" in verdict.reason


def test_custom_ref_alone_is_not_open() -> None:
    verdict = j("LicenseRef-custom", "code")
    assert not verdict.open
    assert "LicenseRef-custom" in verdict.reason


def test_unknown_id_is_not_open() -> None:
    verdict = j("Proprietary", "code")
    assert not verdict.open
    assert "Proprietary" in verdict.reason


def test_unlicensed() -> None:
    assert judge(None, "data") == Judgement(False, False, (), "unlicensed: no licence declared")


def test_non_commercial_is_not_open() -> None:
    verdict = j("CC-BY-NC-4.0", "data")
    assert not verdict.open
    assert "CC-BY-NC-4.0" in verdict.reason
    assert "not an open licence" in verdict.reason


def test_cc_by_is_open_for_data_and_document_not_appropriate_for_code() -> None:
    for content_type in ("data", "document"):
        verdict = j("CC-BY-4.0", content_type)
        assert (verdict.open, verdict.type_appropriate) == (True, True)
    code = j("CC-BY-4.0", "code")
    assert (code.open, code.type_appropriate) == (True, False)
    assert "not a type-appropriate licence for code" in code.reason


def test_mit_for_data_is_open_but_not_type_appropriate() -> None:
    verdict = j("MIT", "data")
    assert (verdict.open, verdict.type_appropriate, verdict.choice) == (True, False, ("MIT",))


@pytest.mark.parametrize(
    ("text", "appropriate"),
    [
        ("MIT", True),  # OSI-approved: the MOF accepts open source licences for parameters
        ("Apache-2.0", True),
        ("CC-BY-4.0", True),  # an open-data licence
        ("CDLA-Permissive-2.0", True),
        ("WTFPL", False),  # free, but neither OSI-approved nor an open-data licence
        ("GFDL-1.3-only", False),
    ],
)
def test_parameters_accept_osi_and_open_data_licences(text: str, appropriate: bool) -> None:
    verdict = j(text, "parameters")
    assert (verdict.open, verdict.type_appropriate) == (True, appropriate)
    if not appropriate:
        assert verdict.reason.endswith(f"{text} is not a type-appropriate licence for parameters")


@pytest.mark.parametrize("content_type", ["code", "data", "document", "parameters"])
def test_openmdw_is_open_and_appropriate_for_everything(content_type: str) -> None:
    verdict = j("OpenMDW-1.0", content_type)
    assert (verdict.open, verdict.type_appropriate) == (True, True)


def test_or_prefers_a_type_appropriate_branch() -> None:
    verdict = j("MIT OR CDLA-Permissive-2.0", "data")
    assert (verdict.open, verdict.type_appropriate, verdict.choice) == (
        True,
        True,
        ("CDLA-Permissive-2.0",),
    )
    # no appropriate branch: the first open one is chosen
    verdict = j("CC-BY-NC-4.0 OR MIT OR ISC", "data")
    assert (verdict.open, verdict.type_appropriate, verdict.choice) == (True, False, ("MIT",))


def test_and_needs_every_part_appropriate() -> None:
    verdict = j("MIT AND CC-BY-4.0", "code")
    assert (verdict.open, verdict.type_appropriate) == (True, False)
    assert verdict.choice == ("MIT", "CC-BY-4.0")
    assert "CC-BY-4.0 is not a type-appropriate" in verdict.reason
    verdict = j("(MIT OR CC-BY-4.0) AND (CC0-1.0 OR ODbL-1.0)", "data")
    assert (verdict.open, verdict.type_appropriate) == (True, True)
    assert verdict.choice == ("CC-BY-4.0", "CC0-1.0")


def test_no_open_alternative() -> None:
    verdict = j("CC-BY-NC-4.0 OR LicenseRef-x", "data")
    assert not verdict.open
    assert "CC-BY-NC-4.0" in verdict.reason
    assert "LicenseRef-x" in verdict.reason


def test_judge_rejects_unknown_content_type() -> None:
    with pytest.raises(ValueError, match="content type"):
        judge(parse_expression("MIT"), "weights")


# --------------------------------------------------------------------------- equality


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("MIT", "mit", True),
        ("apache-2.0", "Apache-2.0", True),
        ("MIT OR Apache-2.0", "Apache-2.0 OR MIT", True),
        ("MIT AND (ISC OR Zlib)", "(zlib OR isc) AND mit", True),
        ("MIT OR Apache-2.0 AND ISC", "(MIT OR Apache-2.0) AND ISC", False),
        ("GPL-3.0", "GPL-3.0-only", True),
        ("gpl-3.0", "GPL-3.0-only", True),
        ("GPL-2.0+", "GPL-2.0-or-later", True),
        ("GPL-2.0-only", "GPL-2.0-or-later", False),
        ("GPL-2.0-only WITH classpath-exception-2.0", "GPL-2.0 WITH Classpath-exception-2.0", True),
        ("GPL-2.0-only WITH Classpath-exception-2.0", "GPL-2.0-only", False),
        ("Apache-2.0+", "Apache-2.0", False),
        ("MIT", "MIT-0", False),
        ("other", "other", False),
        ("MIT", "", False),
        ("MIT AND", "MIT", False),
    ],
)
def test_same_license(a: str, b: str, expected: bool) -> None:
    assert same_license(a, b) is expected
    assert same_license(b, a) is expected


# --------------------------------------------------------------------------- data file


def test_hand_kept_data_is_well_formed() -> None:
    """data/licenses.json holds only what SPDX does not say; every id it names is known."""
    data = load_data()
    assert {"source", "date", "notes", "open_data", "open_any", "types", "hub_refs"} <= set(data)
    for word in ("SPDX", "license-expression", "spdx.json", "LicenseHandler.php"):
        assert word in data["source"]
    for ident in [*data["open_data"], *data["open_any"], *data["types"]]:
        info = license_info(ident)
        assert info is not None, ident
        assert info.id == ident, "hand-kept ids are spelled as SPDX spells them"
        assert not info.restricted
    for ident, types in data["types"].items():
        assert types, ident
        assert set(types) <= {"code", "data", "document"}, ident
        assert len(set(types)) == len(types), ident
    for ident, entry in data["hub_refs"].items():
        assert ident.startswith("LicenseRef-"), ident
        assert set(entry) == {"name", "types", "closed"}, ident
        assert entry["closed"] in ("use-restrictions", "unversioned", "not-open"), ident
        assert entry["name"], ident
        assert render(parse_expression(ident)) == ident
        assert not is_open_id(ident)
    for hub, spdx in data["hub_ids"].items():
        assert hub == hub.lower()
        assert spdx is None or license_info(spdx) is not None, hub
    assert data["hub_ids"]["other"] is None
    assert data["hub_ids"]["unknown"] is None
    for alias, target in data.get("aliases", {}).items():
        assert license_info(target) is not None
        assert license_info(alias) == license_info(target)


def test_data_covers_the_commonly_seen_licences() -> None:
    required = [
        "MIT", "MIT-0", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "BSD-3-Clause-Clear",
        "0BSD", "ISC", "Zlib", "Unlicense", "CC0-1.0", "GPL-2.0-only", "GPL-2.0-or-later",
        "GPL-3.0-only", "GPL-3.0-or-later", "LGPL-2.1-only", "LGPL-2.1-or-later",
        "LGPL-3.0-only", "LGPL-3.0-or-later", "AGPL-3.0-only", "AGPL-3.0-or-later", "MPL-2.0",
        "EPL-1.0", "EPL-2.0", "EUPL-1.2", "Artistic-2.0", "BSL-1.0", "PostgreSQL", "Python-2.0",
        "OFL-1.1", "WTFPL", "CDLA-Permissive-1.0", "CDLA-Permissive-2.0", "CDLA-Sharing-1.0",
        "ODC-By-1.0", "ODbL-1.0", "PDDL-1.0", "GFDL-1.3-only", "GFDL-1.3-or-later", "GFDL-1.3",
        "OGL-Canada-2.0", "OGL-UK-2.0", "OGL-UK-3.0", "OpenMDW-1.0", "AFL-3.0", "ECL-2.0",
    ]  # fmt: skip
    for version in ("1.0", "2.0", "2.5", "3.0", "4.0"):
        required += [f"CC-BY-{version}", f"CC-BY-SA-{version}", f"CC-BY-NC-{version}"]
        required += [f"CC-BY-ND-{version}", f"CC-BY-NC-SA-{version}"]
    required += ["CC-BY-NC-ND-3.0", "CC-BY-NC-ND-4.0"]
    assert [ident for ident in required if license_info(ident) is None] == []
    # every id in MOF's open-data list (LicenseHandler.php) is open
    mof_open_data = [
        "CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0", "CDLA-Permissive-1.0", "CDLA-Permissive-2.0",
        "CDLA-Sharing-1.0", "ODC-PDDL-1.0", "ODC-By-1.0", "ODbL-1.0", "GFDL-1.3",
        "OGL-Canada-2.0", "OGL-UK-2.0", "OGL-UK-3.0",
    ]  # fmt: skip
    assert [ident for ident in mof_open_data if not is_open_id(ident)] == []


def test_cc_pddc_is_an_open_data_licence() -> None:
    # The public-domain dedication some data sets ship under (issue 14): known, open for data.
    from pytest_corrsource.licensing import is_open_id, license_info, normalize

    assert normalize("CC-PDDC") == "CC-PDDC"
    assert is_open_id("CC-PDDC")
    info = license_info("CC-PDDC")
    assert info is not None
    assert info.open_data
    assert "data" in info.types
