"""CS901–CS903 as plain functions: licences resolve, are open, and agree with the model card.

CS902 is required from `open-source-ai` and CS903 at no level (informational), so their
failures are asserted at the level that makes them count, and as `not-required` below it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PlannedChecks, RepoFactory

from pytest_corrsource.checks.api import Options
from pytest_corrsource.manifest import load_manifest
from pytest_corrsource.plan import build_plan
from pytest_corrsource.results import CheckResult
from pytest_corrsource.vocabulary import Level

LICENSE_TEXT = {"LICENSE": "MIT License\n"}


def check(
    root: Path, check_id: str, subject: str, *, level: Level = "corresponding-source"
) -> CheckResult:
    return PlannedChecks(root, Options(level=level))(check_id, subject)


def manifest(licenses: str = "", extra: str = "") -> str:
    head = "version: 1\nname: tiny\n"
    if licenses:
        head += f"licenses: {licenses}\n"
    return head + "weights:\n  - path: weights/model.safetensors\n" + extra


# ------------------------------------------------------------------------------------ CS901


def test_cs901_passes_with_a_licence_and_its_text(make_repo: RepoFactory) -> None:
    root = make_repo(manifest("{distribution: MIT}"), LICENSE_TEXT)
    result = check(root, "CS901", "weights")
    assert result.outcome == "passed"
    assert result.message == "weights: MIT (LICENSE)"
    assert result.data == {
        "licenses": ["MIT"],
        "files": ["LICENSE"],
        "texts": {"MIT": ["LICENSE"]},
    }


def test_cs901_fails_when_nothing_is_licensed(make_repo: RepoFactory) -> None:
    root = make_repo(manifest(), LICENSE_TEXT)
    result = check(root, "CS901", "weights", level="open-weights")
    assert result.outcome == "failed"
    assert "found: weights/model.safetensors has no licence" in result.message
    assert "unlicensed is never open" in result.message


def test_cs901_fails_naming_an_invalid_expression(make_repo: RepoFactory) -> None:
    root = make_repo(manifest("{distribution: 'MIT AND OR Apache-2.0'}"), LICENSE_TEXT)
    result = check(root, "CS901", "weights")
    assert result.outcome == "failed"
    assert (
        "`MIT AND OR Apache-2.0` (licenses.distribution) is not a valid SPDX expression"
        in result.message
    )


def test_cs901_without_a_licence_file_warns_for_weights_and_fails_for_code(
    make_repo: RepoFactory,
) -> None:
    root = make_repo(
        manifest("{distribution: MIT}", "architecture: [model.py]\n"), {"model.py": ""}
    )
    weights = check(root, "CS901", "weights")
    assert weights.outcome == "passed"
    assert weights.message == "weights: MIT (no licence text)"
    assert weights.warnings == [
        "licence text missing: no licence file (LICENSE, LICENCE, COPYING or LICENSES/) in the "
        "repository; required from `corresponding-source` (GPLv3 §4 and Apache-2.0 §4(a) "
        "oblige giving recipients a copy of the licence with the work)"
    ]
    code = check(root, "CS901", "code")
    assert code.outcome == "failed"
    assert (
        "found: no licence file (LICENSE, LICENCE, COPYING or LICENSES/) in the repository "
        "(GPLv3 §4 and Apache-2.0 §4(a) oblige giving recipients a copy"
    ) in code.message


def test_cs901_without_a_licence_file_needs_a_known_id(make_repo: RepoFactory) -> None:
    root = make_repo(manifest("{distribution: Not-A-Real-Licence-1.0}"))
    result = check(root, "CS901", "weights", level="open-weights")
    assert result.outcome == "failed"
    assert "found: no licence file (LICENSE, LICENCE, COPYING or LICENSES/)" in result.message


HF_CARD = "---\nlicense: apache-2.0\nlibrary_name: sentence-transformers\n---\n# all-MiniLM\n"


def test_cs901_a_hugging_face_card_licence_satisfies_open_weights(make_repo: RepoFactory) -> None:
    """all-MiniLM-L6-v2 style: the licence is only in the card's front matter, no LICENSE."""
    root = make_repo(manifest(), {"README.md": HF_CARD})
    result = check(root, "CS901", "weights", level="open-weights")
    assert result.outcome == "passed", result.message
    assert result.message == "weights: Apache-2.0 (no licence text)"
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith("licence text missing: no licence file")
    # The card's licence is the one the model card check compares: it agrees with itself.
    card = check(root, "CS903", "", level="open-weights")
    assert card.outcome == "passed"
    assert card.message == (
        "README.md: license apache-2.0 agrees with the weights licence Apache-2.0 (taken from "
        "the model card)"
    )


def test_cs901_a_card_licence_needs_its_text_from_corresponding_source(
    make_repo: RepoFactory,
) -> None:
    root = make_repo(
        manifest("", "architecture: [model.py]\n"), {"README.md": HF_CARD, "model.py": ""}
    )
    result = check(root, "CS901", "code")
    assert result.outcome == "failed"
    assert "Apache-2.0 §4(a)" in result.message
    (root / "LICENSE").write_text("Apache License 2.0\n")
    assert check(root, "CS901", "code").message == "code: Apache-2.0 (LICENSE)"


def test_cs901_a_card_without_a_usable_licence_is_no_licence(make_repo: RepoFactory) -> None:
    root = make_repo(manifest(), {"README.md": "---\nlicense: other\n---\n", **LICENSE_TEXT})
    result = check(root, "CS901", "weights", level="open-weights")
    assert result.outcome == "failed"
    assert "weights/model.safetensors has no licence" in result.message


def test_cs901_accepts_a_reuse_licenses_folder(make_repo: RepoFactory) -> None:
    root = make_repo(manifest("{distribution: MIT}"), {"LICENSES/MIT.txt": "MIT License\n"})
    result = check(root, "CS901", "weights")
    assert result.outcome == "passed"
    assert result.data["files"] == ["LICENSES/MIT.txt"]


def test_cs901_resolves_component_over_kind_over_distribution(make_repo: RepoFactory) -> None:
    root = make_repo(
        "version: 1\nname: tiny\nlicenses: {distribution: MIT, weights: CC-BY-4.0}\n"
        "weights:\n  - path: weights/model.safetensors\n  - path: weights/extra.safetensors\n"
        "    license: CC0-1.0\narchitecture: [model.py]\n",
        {**LICENSE_TEXT, "model.py": "", "weights/extra.safetensors": b""},
    )
    assert check(root, "CS901", "weights").data["licenses"] == ["CC-BY-4.0", "CC0-1.0"]
    assert check(root, "CS901", "code").message == "code: MIT (LICENSE)"


def test_cs901_warns_about_ids_not_on_the_spdx_list(make_repo: RepoFactory) -> None:
    root = make_repo(manifest("{distribution: Not-A-Real-Licence-1.0}"), LICENSE_TEXT)
    result = check(root, "CS901", "weights")
    assert result.outcome == "passed"
    assert any("Not-A-Real-Licence-1.0" in w for w in result.warnings), result.warnings


# ------------------------------------------------------------------------------------ CS902


def test_cs902_passes_when_one_branch_of_an_or_is_open(make_repo: RepoFactory) -> None:
    root = make_repo(manifest("{distribution: 'MIT OR LicenseRef-Proprietary'}"), LICENSE_TEXT)
    result = check(root, "CS902", "weights", level="open-source-ai")
    assert result.outcome == "passed"


def test_cs902_passes_type_appropriate_licences_without_warnings(make_repo: RepoFactory) -> None:
    root = make_repo(
        manifest("{code: Apache-2.0, weights: CC-BY-4.0}", "architecture: [model.py]\n"),
        {**LICENSE_TEXT, "model.py": ""},
    )
    for kind in ("weights", "code"):
        result = check(root, "CS902", kind, level="open-source-ai")
        assert result.outcome == "passed"
        assert result.warnings == []


def test_cs902_fails_an_undeclared_custom_licence_reference(make_repo: RepoFactory) -> None:
    root = make_repo(manifest("{distribution: LicenseRef-custom}"), LICENSE_TEXT)
    result = check(root, "CS902", "weights", level="open-source-ai")
    assert result.outcome == "failed"
    assert (
        "found: weights/model.safetensors: LicenseRef-custom is a custom licence the manifest "
        "does not declare: declare it under `licenses.refs`: `LicenseRef-custom: {text: "
        "LICENSES/LicenseRef-custom.txt, open: true|false}`"
    ) in result.message


@pytest.mark.parametrize(
    ("level", "outcome"),
    [("open-source-ai", "failed"), ("corresponding-source", "not-required")],
)
def test_cs902_fails_a_non_commercial_licence(
    make_repo: RepoFactory, level: Level, outcome: str
) -> None:
    root = make_repo(manifest("{distribution: CC-BY-NC-4.0}"), LICENSE_TEXT)
    result = check(root, "CS902", "weights", level=level)
    assert result.outcome == outcome
    assert "weights/model.safetensors: CC-BY-NC-4.0" in result.message
    assert "is not an open licence" in result.message
    if outcome == "not-required":
        assert result.message.startswith(
            "not required at level `corresponding-source` (required from level `open-source-ai`)"
        )


@pytest.mark.parametrize("spdx", ["MIT", "Apache-2.0", "CC-BY-4.0", "CDLA-Permissive-2.0"])
def test_cs902_an_osi_or_open_data_licence_fits_weights(make_repo: RepoFactory, spdx: str) -> None:
    # The MOF accepts open source licences for parameters: no "not typical" warning.
    root = make_repo(manifest(f"{{weights: {spdx}}}"), LICENSE_TEXT)
    result = check(root, "CS902", "weights", level="open-source-ai")
    assert (result.outcome, result.warnings) == ("passed", [])


def test_cs902_warns_when_a_non_osi_code_licence_covers_weights(make_repo: RepoFactory) -> None:
    root = make_repo(manifest("{weights: WTFPL}"), LICENSE_TEXT)
    result = check(root, "CS902", "weights", level="open-source-ai")
    assert result.outcome == "passed"
    assert len(result.warnings) == 1
    assert "WTFPL is open but not a typical licence for parameters" in result.warnings[0]


def test_cs902_still_warns_when_a_code_licence_covers_data(make_repo: RepoFactory) -> None:
    root = make_repo(
        manifest("{distribution: CC-BY-4.0, data: MIT}", "data: {sources: [{path: d.txt}]}\n"),
        {**LICENSE_TEXT, "d.txt": "x"},
    )
    result = check(root, "CS902", "data", level="open-source-ai")
    assert result.outcome == "passed"
    assert "MIT is open but not a typical licence for data" in result.warnings[0]


def test_cs902_is_not_planned_without_a_licenses_section(make_repo: RepoFactory) -> None:
    root = make_repo(manifest(), LICENSE_TEXT)
    plan = build_plan(load_manifest(root / "corresponding-source.yaml"))
    assert [p.spec.id for p in plan if p.spec.id.startswith("CS90")] == ["CS901", "CS903"]


# ------------------------------------------------------------------------------------ CS903


def card(license_line: str | None) -> str:
    if license_line is None:
        return "# tiny\n\nA tiny model.\n"
    return f"---\n{license_line}\ntags: [tiny]\n---\n# tiny\n"


def test_cs903_fails_without_a_readme(make_repo: RepoFactory) -> None:
    root = make_repo(manifest("{weights: Apache-2.0}"), LICENSE_TEXT)
    result = check(root, "CS903", "")
    # CS903 is informational at every level: a failure is reported, never required.
    assert result.outcome == "not-required"
    assert "(informational at every level)" in result.message
    assert "found: no model card: README.md (not declared) does not exist" in result.message


def test_cs903_fails_when_the_declared_card_is_missing(make_repo: RepoFactory) -> None:
    root = make_repo(
        manifest("{weights: Apache-2.0}", "docs: {model-card: MODEL_CARD.md}\n"),
        {**LICENSE_TEXT, "README.md": card("license: apache-2.0")},
    )
    result = check(root, "CS903", "", level="open-source-ai")
    assert result.outcome == "not-required"
    assert "no model card: `docs.model-card: MODEL_CARD.md` does not exist" in result.message


def test_cs903_passes_when_the_front_matter_agrees(make_repo: RepoFactory) -> None:
    root = make_repo(
        manifest("{weights: Apache-2.0}"),
        {**LICENSE_TEXT, "README.md": card("license: apache-2.0")},
    )
    result = check(root, "CS903", "")
    assert result.outcome == "passed"
    assert (
        result.message == "README.md: license apache-2.0 agrees with the weights licence Apache-2.0"
    )


@pytest.mark.parametrize(
    ("card_id", "agrees_with"),
    [("mit", "the distribution licence MIT"), ("cc-by-4.0", "the weights licence CC-BY-4.0")],
)
def test_cs903_agrees_with_the_distribution_or_the_weights_licence(
    make_repo: RepoFactory, card_id: str, agrees_with: str
) -> None:
    root = make_repo(
        manifest("{distribution: MIT, weights: CC-BY-4.0}"),
        {**LICENSE_TEXT, "README.md": card(f"license: {card_id}")},
    )
    result = check(root, "CS903", "")
    assert result.outcome == "passed", result.message
    assert result.message == f"README.md: license {card_id} agrees with {agrees_with}"


def test_cs903_fails_a_card_naming_neither(make_repo: RepoFactory) -> None:
    root = make_repo(
        manifest("{distribution: MIT, weights: CC-BY-4.0}"),
        {**LICENSE_TEXT, "README.md": card("license: apache-2.0")},
    )
    result = check(root, "CS903", "")
    assert result.outcome == "not-required"
    assert (
        "found: README.md front matter says `license: apache-2.0` (Apache-2.0), which is neither "
        "the distribution licence MIT nor the weights licence CC-BY-4.0"
    ) in result.message


def test_cs903_fails_when_the_front_matter_disagrees(make_repo: RepoFactory) -> None:
    root = make_repo(
        manifest("{weights: MIT}"), {**LICENSE_TEXT, "README.md": card("license: apache-2.0")}
    )
    result = check(root, "CS903", "")
    assert result.outcome == "not-required"
    assert (
        "found: README.md front matter says `license: apache-2.0` (Apache-2.0) but the "
        "manifest's weights licence is MIT" in result.message
    )


def test_cs903_without_front_matter_passes_with_a_warning(make_repo: RepoFactory) -> None:
    root = make_repo(manifest("{weights: MIT}"), {**LICENSE_TEXT, "README.md": card(None)})
    result = check(root, "CS903", "")
    assert result.outcome == "passed"
    assert result.warnings == [
        "README.md has no front-matter `license:` to compare with the manifest"
    ]


def test_cs903_fails_on_invalid_front_matter(make_repo: RepoFactory) -> None:
    root = make_repo(
        manifest("{weights: MIT}"), {**LICENSE_TEXT, "README.md": "---\nlicense: [mit\n---\n"}
    )
    result = check(root, "CS903", "")
    assert result.outcome == "not-required"
    assert "the model card's front matter is not valid YAML" in result.message


def test_cs903_fails_on_front_matter_nested_beyond_the_limit(make_repo: RepoFactory) -> None:
    """10,000 `[` recursed into a RecursionError in PyYAML's composer: a crash of the check."""
    deep = "---\nlicense: " + "[" * 10_000 + "]" * 10_000 + "\n---\n"
    root = make_repo(manifest("{weights: MIT}"), {**LICENSE_TEXT, "README.md": deep})
    result = check(root, "CS903", "")
    assert result.outcome == "not-required"
    assert (
        "the model card's front matter is not valid YAML (nested more than 64 levels deep"
        in result.message
    )


@pytest.mark.parametrize(
    "readme",
    [
        pytest.param("---\nlicense:\ntags: [tiny]\n---\n# tiny\n", id="empty-license"),
        pytest.param("---\ntags: [tiny]\n---\n# tiny\n", id="no-license-key"),
    ],
)
def test_cs903_an_empty_front_matter_license_is_absent(make_repo: RepoFactory, readme: str) -> None:
    root = make_repo(manifest("{weights: MIT}"), {**LICENSE_TEXT, "README.md": readme})
    result = check(root, "CS903", "")
    assert result.outcome == "passed", result.message
    assert result.warnings == [
        "README.md has no front-matter `license:` to compare with the manifest"
    ]


def test_cs903_reads_front_matter_after_a_byte_order_mark(make_repo: RepoFactory) -> None:
    readme = "\ufeff" + card("license: mit")
    root = make_repo(manifest("{weights: Apache-2.0}"), {**LICENSE_TEXT, "README.md": readme})
    result = check(root, "CS903", "")
    assert result.outcome == "not-required"
    assert "front matter says `license: mit` (MIT)" in result.message
