"""`licenses.refs`: LicenseRef licences declared with their text and openness (issue 14), and a
declared data licence attributed to the data rather than the root LICENSE file.

Each behaviour has a passing and a failing case with the failure text asserted; the attacks (a
text path that escapes the repository by `..`, an absolute path or a symlink, a restrictive
model licence declared open) are refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import RepoFactory

from pytest_corrsource.checks.api import CheckContext, Options, RunState
from pytest_corrsource.hashing import DigestCache
from pytest_corrsource.licensing import RefDeclaration, judge, parse_expression
from pytest_corrsource.manifest import ManifestError, load_manifest
from pytest_corrsource.plan import build_plan
from pytest_corrsource.results import CheckResult, run_planned
from pytest_corrsource.vocabulary import Level

LICENSE_TEXT = {"LICENSE": "MIT License\n"}
FOO_TEXT = {"LICENSES/LicenseRef-Foo.txt": "The Foo Licence: do anything.\n"}


def check(
    root: Path, check_id: str, subject: str, *, level: Level = "open-source-ai"
) -> CheckResult:
    manifest = load_manifest(root / "corresponding-source.yaml")
    planned = next(
        p for p in build_plan(manifest) if p.spec.id == check_id and p.subject == subject
    )
    ctx = CheckContext(manifest, check_id, subject, Options(level=level), DigestCache(), RunState())
    return run_planned(planned, ctx, level)


def manifest(licenses: str, refs: str = "", extra: str = "") -> str:
    text = f"version: 1\nname: tiny\nlicenses:\n  {licenses}\n"
    if refs:
        text += f"  refs:\n    {refs}\n"
    return text + "weights:\n  - path: weights/model.safetensors\n" + extra


FOO_OPEN = "LicenseRef-Foo: {text: LICENSES/LicenseRef-Foo.txt, open: true}"


# ------------------------------------------------------------------------------ the manifest


def test_refs_are_read_with_their_text_openness_and_kinds(make_repo: RepoFactory) -> None:
    root = make_repo(
        manifest(
            "weights: LicenseRef-Foo",
            "LicenseRef-Foo: {text: LICENSES/LicenseRef-Foo.txt, open: false, "
            "kinds: [weights, data], name: Foo Licence}",
        ),
        FOO_TEXT,
    )
    refs = load_manifest(root / "corresponding-source.yaml").licenses.refs
    entry = refs["LicenseRef-Foo"]
    assert (entry.text.path, entry.text.line, entry.open) == (
        "LICENSES/LicenseRef-Foo.txt",
        6,
        False,
    )
    assert (entry.kinds, entry.name) == (("weights", "data"), "Foo Licence")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("../../etc/passwd", "`../../etc/passwd` leaves the repository (`..`)"),
        ("/etc/passwd", "`/etc/passwd` is an absolute path; paths must be relative"),
    ],
)
def test_a_ref_text_outside_the_repository_is_refused_with_file_and_line(
    make_repo: RepoFactory, text: str, message: str
) -> None:
    root = make_repo(
        manifest("code: LicenseRef-Foo", f"LicenseRef-Foo: {{text: '{text}', open: true}}")
    )
    with pytest.raises(ManifestError) as caught:
        load_manifest(root / "corresponding-source.yaml")
    assert str(caught.value).startswith(
        "corresponding-source.yaml:6:28: licenses.refs.LicenseRef-Foo.text: "
    )
    assert message in str(caught.value)


def test_a_ref_text_symlinked_out_of_the_repository_is_refused(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours\n")
    root = make_repo(manifest("code: LicenseRef-Foo", FOO_OPEN))
    (root / "LICENSES").mkdir()
    os.symlink(secret, root / "LICENSES" / "LicenseRef-Foo.txt")
    with pytest.raises(ManifestError) as caught:
        load_manifest(root / "corresponding-source.yaml")
    assert str(caught.value) == (
        "corresponding-source.yaml:6:28: licenses.refs.LicenseRef-Foo.text: "
        f"`LICENSES/LicenseRef-Foo.txt` resolves to {secret}, outside the repository (a symlink?)"
    )


def test_a_ref_text_symlink_swapped_in_after_loading_fails_cs902(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours\n")
    root = make_repo(manifest("weights: LicenseRef-Foo", FOO_OPEN), FOO_TEXT)
    manifest_ = load_manifest(root / "corresponding-source.yaml")
    target = root / "LICENSES" / "LicenseRef-Foo.txt"
    target.unlink()
    os.symlink(secret, target)
    planned = next(p for p in build_plan(manifest_) if p.spec.id == "CS902")
    ctx = CheckContext(
        manifest_, "CS902", "weights", Options(level="open-source-ai"), DigestCache(), RunState()
    )
    result = run_planned(planned, ctx, "open-source-ai")
    assert result.outcome == "failed"
    assert (
        "the text of LicenseRef-Foo, `LICENSES/LicenseRef-Foo.txt` (corresponding-source.yaml:6), "
        f"resolves to {secret}, outside the repository (a symlink?)"
    ) in result.message


def test_a_ref_key_must_be_a_licence_reference(make_repo: RepoFactory) -> None:
    root = make_repo(manifest("code: MIT", "Foo: {text: LICENSE, open: true}"), LICENSE_TEXT)
    with pytest.raises(ManifestError) as caught:
        load_manifest(root / "corresponding-source.yaml")
    assert str(caught.value) == (
        "corresponding-source.yaml:6:5: licenses.refs.Foo: invalid key `Foo`: a key is a licence "
        "reference such as `LicenseRef-Foo` (letters, digits, `.` and `-` after `LicenseRef-`)"
    )


def test_a_ref_must_state_its_openness(make_repo: RepoFactory) -> None:
    root = make_repo(manifest("code: LicenseRef-Foo", "LicenseRef-Foo: {text: LICENSE}"))
    with pytest.raises(ManifestError) as caught:
        load_manifest(root / "corresponding-source.yaml")
    assert "licenses.refs.LicenseRef-Foo" in str(caught.value)
    assert "`open`" in str(caught.value)


def test_a_ref_declared_twice_in_different_case_is_refused(make_repo: RepoFactory) -> None:
    root = make_repo(
        manifest(
            "code: LicenseRef-Foo",
            f"{FOO_OPEN}\n    LicenseRef-FOO: {{text: LICENSE, open: false}}",
        )
    )
    with pytest.raises(ManifestError) as caught:
        load_manifest(root / "corresponding-source.yaml")
    assert str(caught.value) == (
        "corresponding-source.yaml:7:21: licenses.refs.LicenseRef-FOO: `LicenseRef-FOO` is "
        "declared twice (also as `LicenseRef-Foo`)"
    )


# ------------------------------------------------------------------------------------ CS901


def test_cs901_passes_a_declared_ref_and_names_its_text(make_repo: RepoFactory) -> None:
    root = make_repo(
        manifest("distribution: MIT\n  weights: LicenseRef-Foo", FOO_OPEN.replace("    ", "")),
        {**LICENSE_TEXT, **FOO_TEXT},
    )
    result = check(root, "CS901", "weights")
    assert result.outcome == "passed", result.message
    assert result.message == "weights: LicenseRef-Foo (LICENSES/LicenseRef-Foo.txt)"
    assert result.warnings == []


def test_cs901_fails_an_undeclared_ref_saying_how_to_declare_it(make_repo: RepoFactory) -> None:
    root = make_repo(manifest("weights: LicenseRef-Foo"), LICENSE_TEXT)
    result = check(root, "CS901", "weights", level="open-weights")
    assert result.outcome == "failed"
    assert (
        "found: weights/model.safetensors: LicenseRef-Foo is not declared: declare it under "
        "`licenses.refs`: `LicenseRef-Foo: {text: LICENSES/LicenseRef-Foo.txt, open: "
        "true|false}` (its licence text, and whether its terms are open)"
    ) in result.message


def test_cs901_a_reference_into_another_spdx_document_cannot_be_declared(
    make_repo: RepoFactory,
) -> None:
    root = make_repo(manifest("weights: DocumentRef-sbom:LicenseRef-Foo"), LICENSE_TEXT)
    result = check(root, "CS901", "weights", level="open-weights")
    assert result.outcome == "failed"
    assert (
        "DocumentRef-sbom:LicenseRef-Foo is not declared: it names a licence in another SPDX "
        "document, which is not in the repository: commit its text and use a local reference "
        "instead, declare it under `licenses.refs`: `LicenseRef-Foo: {text: "
        "LICENSES/LicenseRef-Foo.txt, open: true|false}`"
    ) in result.message


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({}, "does not exist"),
        ({"LICENSES/LicenseRef-Foo.txt": ""}, "is empty"),
        ({"LICENSES/LicenseRef-Foo.txt/x": "a folder"}, "is a directory, not a regular file"),
    ],
)
def test_cs901_and_cs902_fail_a_ref_without_its_text(
    make_repo: RepoFactory, files: dict[str, str], problem: str
) -> None:
    root = make_repo(manifest("weights: LicenseRef-Foo", FOO_OPEN), {**LICENSE_TEXT, **files})
    expected = (
        "weights/model.safetensors: the text of LicenseRef-Foo, `LICENSES/LicenseRef-Foo.txt` "
        f"(corresponding-source.yaml:6), {problem}"
    )
    for check_id in ("CS901", "CS902"):
        result = check(root, check_id, "weights")
        assert result.outcome == "failed", check_id
        assert expected in result.message, check_id


def test_cs901_a_ref_text_that_is_a_fifo_is_not_read(make_repo: RepoFactory) -> None:
    root = make_repo(manifest("weights: LicenseRef-Foo", FOO_OPEN), LICENSE_TEXT)
    (root / "LICENSES").mkdir()
    os.mkfifo(root / "LICENSES" / "LicenseRef-Foo.txt")
    result = check(root, "CS901", "weights")
    assert result.outcome == "failed"
    assert "`LICENSES/LicenseRef-Foo.txt` (corresponding-source.yaml:6), is a FIFO" in (
        result.message
    )


def test_cs901_suggests_the_id_an_unknown_one_most_likely_means(make_repo: RepoFactory) -> None:
    root = make_repo(manifest("weights: Apache-2"), LICENSE_TEXT)
    result = check(root, "CS901", "weights")
    assert result.outcome == "passed"
    assert result.warnings == [
        "weights/model.safetensors: Apache-2 (did you mean Apache-2.0?) not on the SPDX "
        "licence list"
    ]
    closed = check(root, "CS902", "weights")
    assert closed.outcome == "failed"
    assert (
        "Apache-2 is not a recognised licence id (did you mean Apache-2.0?), so it cannot be "
        "judged open"
    ) in closed.message


def test_cs901_accepts_an_id_in_another_case_as_spdx_does(make_repo: RepoFactory) -> None:
    root = make_repo(manifest("distribution: apache-2.0"), LICENSE_TEXT)
    result = check(root, "CS901", "weights")
    assert (result.outcome, result.warnings) == ("passed", [])


# ------------------------------------------------------------------------------------ CS902


def test_cs902_a_ref_declared_open_is_reported_as_declared_by_the_manifest(
    make_repo: RepoFactory,
) -> None:
    root = make_repo(manifest("weights: LicenseRef-Foo", FOO_OPEN), {**LICENSE_TEXT, **FOO_TEXT})
    result = check(root, "CS902", "weights")
    assert result.outcome == "passed", result.message
    assert result.message == (
        "weights: LicenseRef-Foo (licenses.weights): open via LicenseRef-Foo (declared open by "
        "the manifest), type-appropriate for parameters"
    )
    assert "OSI" not in result.message


def test_cs902_a_ref_declared_not_open_fails(make_repo: RepoFactory) -> None:
    root = make_repo(
        manifest("weights: LicenseRef-Foo", FOO_OPEN.replace("true", "false")),
        {**LICENSE_TEXT, **FOO_TEXT},
    )
    result = check(root, "CS902", "weights")
    assert result.outcome == "failed"
    assert (
        "found: weights/model.safetensors: LicenseRef-Foo is declared not open by the manifest "
        "(`licenses.refs`)"
    ) in result.message


def test_cs902_a_restrictive_model_licence_declared_open_stays_closed(
    make_repo: RepoFactory,
) -> None:
    # A repository cannot make Llama's terms open by saying so.
    root = make_repo(
        manifest(
            "weights: LicenseRef-llama2",
            "LicenseRef-llama2: {text: LICENSES/llama2.txt, open: true}",
        ),
        {**LICENSE_TEXT, "LICENSES/llama2.txt": "LLAMA 2 COMMUNITY LICENSE AGREEMENT\n"},
    )
    result = check(root, "CS902", "weights")
    assert result.outcome == "failed"
    assert (
        "LicenseRef-llama2 (Llama 2 Community License Agreement) is a model licence with use "
        "restrictions (open weights at most), never an open licence"
    ) in result.message


def test_cs902_warns_when_a_ref_is_not_written_for_the_component(make_repo: RepoFactory) -> None:
    root = make_repo(
        manifest(
            "weights: LicenseRef-Foo",
            "LicenseRef-Foo: {text: LICENSES/LicenseRef-Foo.txt, open: true, kinds: [code]}",
        ),
        {**LICENSE_TEXT, **FOO_TEXT},
    )
    result = check(root, "CS902", "weights")
    assert result.outcome == "passed"
    assert result.warnings == [
        "weights/model.safetensors: LicenseRef-Foo is open but not a typical licence for "
        "parameters (the MOF asks for a type-appropriate open licence)"
    ]


def test_judge_without_declarations_keeps_refs_closed() -> None:
    expr = parse_expression("LicenseRef-Foo")
    assert not judge(expr, "code").open
    declared = judge(expr, "code", {"licenseref-foo": RefDeclaration(True, ("code",))})
    assert declared.open
    assert declared.reason == (
        "open via LicenseRef-Foo (declared open by the manifest), type-appropriate for code"
    )


# ------------------------------------------------------------------------ data attribution

DATA = "data: {sources: [{path: data/corpus.txt}]}\n"


def test_a_data_licence_is_attributed_to_the_data_text_not_the_root_licence(
    make_repo: RepoFactory,
) -> None:
    root = make_repo(
        manifest("distribution: MIT\n  data: CC0-1.0", "", DATA),
        {**LICENSE_TEXT, "data/corpus.txt": "abc", "data/LICENSE": "CC0 1.0 Universal\n"},
    )
    result = check(root, "CS901", "data")
    assert result.outcome == "passed", result.message
    assert result.message == "data: CC0-1.0 (data/LICENSE)"
    assert result.data["texts"] == {"CC0-1.0": ["data/LICENSE"]}
    assert result.warnings == []
    opened = check(root, "CS902", "data")
    assert opened.message == (
        "data: CC0-1.0 (licenses.data): open via CC0-1.0, type-appropriate for data"
    )


def test_a_data_licence_without_its_own_text_is_not_given_the_root_licence(
    make_repo: RepoFactory,
) -> None:
    root = make_repo(
        manifest("distribution: MIT\n  data: CC-BY-4.0", "", DATA),
        {**LICENSE_TEXT, "data/corpus.txt": "abc"},
    )
    result = check(root, "CS901", "data")
    assert result.outcome == "passed"
    assert result.message == "data: CC-BY-4.0 (no licence text)"
    assert result.warnings == [
        "data/corpus.txt: no licence text of its own for CC-BY-4.0 (licenses.data): none beside "
        "it and no LICENSES/<id>.txt; LICENSE is the repository's licence"
    ]


def test_reuse_texts_and_kind_named_files_are_attributed(make_repo: RepoFactory) -> None:
    root = make_repo(
        manifest(
            "distribution: MIT\n  weights: CC-BY-4.0\n  data: CDLA-Permissive-2.0",
            "",
            DATA + "architecture: [model.py]\n",
        ),
        {
            **LICENSE_TEXT,
            "model.py": "",
            "LICENSE-weights": "CC BY 4.0\n",
            "LICENSES/CDLA-Permissive-2.0.txt": "CDLA 2.0\n",
            "data/corpus.txt": "abc",
        },
    )
    weights = check(root, "CS901", "weights")
    assert weights.message == "weights: CC-BY-4.0 (LICENSE-weights)"
    data = check(root, "CS901", "data")
    assert data.message == "data: CDLA-Permissive-2.0 (LICENSES/CDLA-Permissive-2.0.txt)"
    assert (weights.warnings, data.warnings) == ([], [])
    # The code's licence is the root LICENSE, not the files named for the weights or the data.
    assert check(root, "CS901", "code").message == "code: MIT (LICENSE)"


def test_the_distribution_licence_keeps_the_root_licence_text(make_repo: RepoFactory) -> None:
    root = make_repo(
        manifest("distribution: MIT", "", DATA), {**LICENSE_TEXT, "data/corpus.txt": "a"}
    )
    result = check(root, "CS901", "data")
    assert (result.message, result.warnings) == ("data: MIT (LICENSE)", [])


# ------------------------------------------------------------------------ the MOF class


def _weights_verdict(root: Path) -> tuple[bool, str | None]:
    from pytest_corrsource.levels import classify_mof

    manifest_ = load_manifest(root / "corresponding-source.yaml")
    passed = CheckResult("CS101", "weights", "weights/model.safetensors", "passed", "", 5, 0.0)
    verdict = classify_mof(manifest_, {"CS101": passed})
    name = "Model parameters (Final)"
    return verdict.included[name], verdict.reasons.get(name)


def test_the_mof_class_counts_a_ref_declared_open_with_its_text(make_repo: RepoFactory) -> None:
    root = make_repo(manifest("weights: LicenseRef-Foo", FOO_OPEN), {**LICENSE_TEXT, **FOO_TEXT})
    assert _weights_verdict(root) == (True, None)


def test_the_mof_class_does_not_count_an_undeclared_or_textless_ref(
    make_repo: RepoFactory,
) -> None:
    root = make_repo(manifest("weights: LicenseRef-Foo"), LICENSE_TEXT, name="undeclared")
    included, reason = _weights_verdict(root)
    assert not included
    assert reason is not None
    assert reason.startswith(
        "licence not open: LicenseRef-Foo is a custom licence the manifest does not declare"
    )
    textless = make_repo(manifest("weights: LicenseRef-Foo", FOO_OPEN), LICENSE_TEXT, name="t")
    assert _weights_verdict(textless) == (
        False,
        "licence not open: the text of LicenseRef-Foo, `LICENSES/LicenseRef-Foo.txt` "
        "(corresponding-source.yaml:6), does not exist",
    )


@pytest.mark.parametrize(
    ("hub_id", "reason"),
    [
        (
            "llama3",
            "LicenseRef-llama3 (Meta Llama 3 Community License Agreement) is a model licence with "
            "use restrictions (open weights at most), never an open licence",
        ),
        (
            "gpl",
            "LicenseRef-gpl (GNU GPL, version not stated) names a family of licences, not one: "
            "declare the SPDX id of the version (e.g. GPL-3.0-only, BSD-3-Clause, CC-BY-4.0)",
        ),
        (
            "apple-ascl",
            "LicenseRef-apple-ascl (Apple Sample Code License) is not an open licence: not "
            "OSI-approved, not FSF-libre",
        ),
    ],
)
def test_hub_licences_off_the_spdx_list_say_why_they_are_not_open(hub_id: str, reason: str) -> None:
    from pytest_corrsource.licensing import normalize

    spdx = normalize(hub_id)
    assert spdx is not None
    verdict = judge(parse_expression(spdx), "parameters", {spdx: RefDeclaration(True)})
    assert (verdict.open, verdict.reason) == (False, reason)
