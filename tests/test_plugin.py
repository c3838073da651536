"""The plugin surface, end to end: inner pytest runs (pytester) on small real repositories.

The main collection and report tests run twice, in process and under ``-n 2`` (pytest-xdist
needs a subprocess), through the ``run`` fixture. Tests about options, ini keys and start-up
behaviour run in process only: they do not depend on how items are distributed.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis  # noqa: F401  (see below)
import pytest
from conftest import MINIMAL_MANIFEST, RUNNABLE_FILES, RUNNABLE_MANIFEST, RepoFactory, sha256

MANIFEST = "corresponding-source.yaml"
WEIGHTS = "weights/model.safetensors"
LICENSE: dict[str, str | bytes] = {"LICENSE": "MIT License\n"}
OPEN_WEIGHTS = "--corrsource-level=open-weights"

# Every item of MINIMAL_MANIFEST in collection order (<component>::<check>[<subject>]).
MINIMAL_ITEMS = [
    f"{MANIFEST}::manifest::complete",
    f"{MANIFEST}::weights::present[{WEIGHTS}]",
    f"{MANIFEST}::weights::not-a-pointer[{WEIGHTS}]",
    f"{MANIFEST}::weights::header[{WEIGHTS}]",
    f"{MANIFEST}::weights::hash[{WEIGHTS}]",
    f"{MANIFEST}::weights::safe-to-load[{WEIGHTS}]",
    f"{MANIFEST}::licenses::declared[weights]",
    f"{MANIFEST}::licenses::open[weights]",
    f"{MANIFEST}::install::declared",
    f"{MANIFEST}::run::files",
    f"{MANIFEST}::source::preferred-form",
    f"{MANIFEST}::source::architecture",
    f"{MANIFEST}::training::code",
    f"{MANIFEST}::data::sources",
    f"{MANIFEST}::evaluation::run",
    f"{MANIFEST}::docs::model-card",
]
WEIGHTS_ITEMS = MINIMAL_ITEMS[1:6]

# In-process runs drop the modules they imported; hypothesis's pytest plugin imports hypothesis
# (about 1 s with assertion rewriting) in every inner session unless it is already loaded here.
# Subprocess runs turn that plugin off instead.
NO_HYPOTHESIS = ("-p", "no:hypothesispytest")

Runner = Callable[..., pytest.RunResult]
RepoBuilder = Callable[..., Path]


def esc(text: str) -> str:
    """``text`` as a literal fnmatch pattern (``[`` opens a character class there)."""
    return text.replace("[", "[[]")


def output(result: pytest.RunResult) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


def assert_clean(result: pytest.RunResult) -> None:
    text = output(result)
    assert "Traceback" not in text
    assert "INTERNALERROR" not in text


def summary_lines(result: pytest.RunResult, name: str = "tiny") -> list[str]:
    """The plugin's terminal summary: from its separator line to the next separator."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if f"corresponding source: {name}" in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("="))
    return lines[start:end]


@pytest.fixture(
    params=[
        pytest.param([], id="serial"),
        pytest.param(["-n", "2"], id="xdist", marks=pytest.mark.e2e),  # a subprocess session
    ]
)
def plugin_args(request: pytest.FixtureRequest) -> list[str]:
    return list(request.param)


@pytest.fixture
def run(pytester: pytest.Pytester, plugin_args: list[str]) -> Runner:
    """``pytest --corresponding-source`` in ``pytester.path``: in process, or in a subprocess
    under pytest-xdist."""

    def run_(*args: str) -> pytest.RunResult:
        full = ["-p", "no:randomly", "--corresponding-source", *plugin_args, *args]
        if plugin_args:
            return pytester.runpytest_subprocess(*NO_HYPOTHESIS, *full, timeout=300)
        return pytester.runpytest(*full)

    return run_


@pytest.fixture
def inline(pytester: pytest.Pytester) -> Runner:
    def run_(*args: str) -> pytest.RunResult:
        return pytester.runpytest("-p", "no:randomly", *args)

    return run_


@pytest.fixture
def repo(pytester: pytest.Pytester, make_repo: RepoFactory) -> RepoBuilder:
    """``repo(manifest, files, into="")``: a make_repo tree (plus a LICENSE) copied into
    ``pytester.path / into``."""
    count = 0

    def build(
        manifest: str = MINIMAL_MANIFEST,
        files: dict[str, str | bytes] | None = None,
        into: str = "",
    ) -> Path:
        nonlocal count
        count += 1
        source = make_repo(manifest, {**LICENSE, **(files or {})}, name=f"source{count}")
        target = pytester.path / into
        shutil.copytree(source, target, dirs_exist_ok=True, symlinks=True)
        return target

    return build


def write_manifest(pytester: pytest.Pytester, text: str) -> Path:
    path = pytester.path / MANIFEST
    path.write_text(text)
    return path


# --- markers and inertness -----------------------------------------------------------------------


def test_markers_are_listed(inline: Runner) -> None:
    result = inline("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.corresponding_source: a Corresponding Source check*",
            "@pytest.mark.requires_weights(path): *",
            "@pytest.mark.training_code: *",
            "@pytest.mark.training_data: *",
        ],
        consecutive=False,
    )
    assert result.ret == 0


def test_markers_work_under_strict_markers_without_the_flag(
    pytester: pytest.Pytester, repo: RepoBuilder, inline: Runner
) -> None:
    repo()
    pytester.makepyfile(
        test_marked="""
        import pytest

        @pytest.mark.corresponding_source
        def test_cs():
            pass

        @pytest.mark.requires_weights("weights/model.safetensors")
        def test_weights():
            pass

        @pytest.mark.training_code
        def test_training():
            pass

        @pytest.mark.training_data
        def test_data():
            pass
        """
    )
    result = inline("--strict-markers", "-rs")
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED * the manifest declares no training code (`training.code`)",
            "SKIPPED * the manifest declares no training data (`data.sources`)",
        ],
        consecutive=False,
    )
    selected = inline("--strict-markers", "-m", "corresponding_source")
    selected.assert_outcomes(passed=1, deselected=3)


def test_inert_without_the_flag(
    pytester: pytest.Pytester, repo: RepoBuilder, inline: Runner
) -> None:
    repo()
    pytester.makepyfile(test_normal="def test_normal():\n    assert True\n")
    result = inline("-v")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    assert MANIFEST not in result.stdout.str()
    assert "corrsource:" not in result.stdout.str()  # no header line
    assert (pytester.path / ".pytest_cache").is_dir()  # the cache is on, and we wrote nothing
    assert not (pytester.path / ".pytest_cache" / "v" / "corrsource").exists()

    collected = inline("--collect-only", "-q")
    assert [line for line in collected.outlines if "::" in line] == ["test_normal.py::test_normal"]


def test_importing_the_plugin_is_cheap() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import pytest_corrsource.plugin"],
        capture_output=True,
        text=True,
        check=True,
    )
    modules = {
        line.rsplit("|", 1)[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "pytest_corrsource.plugin" in modules
    heavy = {
        m
        for m in modules
        if m.split(".")[0] in ("yaml", "numpy", "safetensors")
        or m.startswith("pytest_corrsource.verification")
    }
    assert heavy == set()


def test_a_session_without_the_flag_imports_only_the_entry_point(tmp_path: Path) -> None:
    """pytest loads the entry point and registers the hook specifications; nothing else of ours
    is imported without --corresponding-source (no registry, no conftest hook is called)."""
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-p", "no:randomly", "test_one.py"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ours = {
        line.rsplit("|", 1)[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "pytest_corrsource" in line
    }
    ours = {m for m in ours if m.startswith("pytest_corrsource")}
    assert ours <= {"pytest_corrsource", "pytest_corrsource.plugin", "pytest_corrsource.hookspecs"}


# --- collection ----------------------------------------------------------------------------------


def test_items_are_named_as_in_the_manifest_contract(repo: RepoBuilder, run: Runner) -> None:
    repo()
    result = run("-rA", OPEN_WEIGHTS)
    result.stdout.fnmatch_lines_random([f"PASSED {esc(item)}" for item in WEIGHTS_ITEMS])
    assert result.ret == 0

    collected = run("--collect-only", "-q")
    assert [line for line in collected.outlines if "::" in line] == MINIMAL_ITEMS

    selected = run("-m", "corresponding_source", OPEN_WEIGHTS)
    outcomes = selected.parseoutcomes()
    assert "deselected" not in outcomes
    outcomes.pop("seconds", None)
    assert sum(outcomes.values()) == len(MINIMAL_ITEMS)
    assert selected.ret == 0


def test_marker_selects_only_manifest_items(
    pytester: pytest.Pytester, repo: RepoBuilder, inline: Runner
) -> None:
    repo()
    pytester.makepyfile(test_other="def test_other():\n    pass\n")
    result = inline("--corresponding-source", OPEN_WEIGHTS, "-m", "corresponding_source")
    outcomes = result.parseoutcomes()
    assert outcomes["deselected"] == 1
    assert outcomes["passed"] >= len(WEIGHTS_ITEMS)
    assert result.ret == 0


def test_collection_order_is_deterministic(repo: RepoBuilder, pytester: pytest.Pytester) -> None:
    repo()
    first = [item.nodeid for item in pytester.inline_genitems("--corresponding-source")[0]]
    second = [item.nodeid for item in pytester.inline_genitems("--corresponding-source")[0]]
    assert first == second == MINIMAL_ITEMS


def test_items_report_their_manifest_line(
    repo: RepoBuilder, pytester: pytest.Pytester, inline: Runner
) -> None:
    wrong = "0" * 64
    repo(MINIMAL_MANIFEST.replace("{sha}", wrong))
    items, _ = pytester.inline_genitems("--corresponding-source")
    by_id = {item.nodeid: item for item in items}
    hash_item = by_id[f"{MANIFEST}::weights::hash[{WEIGHTS}]"]
    # reportinfo's line is 0-based: the weights entry is on line 5 of the manifest.
    assert hash_item.location[:2] == (MANIFEST, 4)
    assert by_id[f"{MANIFEST}::licenses::declared[weights]"].location[:2] == (MANIFEST, 2)

    result = inline("--corresponding-source", OPEN_WEIGHTS, "-rs")
    result.stdout.fnmatch_lines(
        [
            f"*_ CS104 {esc(MANIFEST)}::weights::hash[[]{WEIGHTS}] at {MANIFEST}:5 _*",
            f"CS104 weights::hash[[]{WEIGHTS}]: the file matches its declared digest (the*",
            f"*found: *{wrong}*",
            "*requirement: users must be able to verify they run the released weights",
            # skips point at the manifest, not at the plugin's source
            f"SKIPPED [[]1] {MANIFEST}:1: `training` is not declared*",
        ],
        consecutive=False,
    )
    assert "collect.py" not in result.stdout.str()
    assert result.ret == 1


def test_testpaths_elsewhere_still_collects_the_root_manifest(
    pytester: pytest.Pytester, repo: RepoBuilder, inline: Runner
) -> None:
    repo()
    pytester.makeini("[pytest]\ntestpaths = tests\n")
    pytester.mkdir("tests")
    (pytester.path / "tests" / "test_x.py").write_text("def test_x():\n    pass\n")
    result = inline("--corresponding-source", "--collect-only", "-q")
    names = [line for line in result.outlines if "::" in line]
    assert names == ["tests/test_x.py::test_x", *MINIMAL_ITEMS]

    plain = inline("--collect-only", "-q")
    assert [line for line in plain.outlines if "::" in line] == ["tests/test_x.py::test_x"]


def test_repo_path_argument_from_another_directory(
    pytester: pytest.Pytester, repo: RepoBuilder, inline: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = repo(into="models/tiny")
    elsewhere = pytester.mkdir("elsewhere")
    monkeypatch.chdir(elsewhere)
    result = inline("--corresponding-source", OPEN_WEIGHTS, str(target), "-v")
    result.stdout.fnmatch_lines([f"*{esc(WEIGHTS_ITEMS[3])} PASSED*"], consecutive=False)
    assert result.ret == 0

    monkeypatch.chdir(pytester.path)
    relative = inline("--corresponding-source", OPEN_WEIGHTS, "models/tiny", "--collect-only")
    relative.stdout.fnmatch_lines([f"corrsource: models/tiny/{MANIFEST} (level open-weights)"])
    assert relative.ret == 0


@pytest.mark.parametrize("how", ["option", "ini"])
def test_manifest_from_option_or_ini(
    pytester: pytest.Pytester, repo: RepoBuilder, inline: Runner, how: str
) -> None:
    repo(into="models/tiny")
    manifest = f"models/tiny/{MANIFEST}"
    if how == "option":
        args = [f"--corrsource-manifest={manifest}"]
    else:
        pytester.makeini(f"[pytest]\ncorrsource_manifest = {manifest}\n")
        args = []
    result = inline("--corresponding-source", OPEN_WEIGHTS, "-v", *args)
    result.stdout.fnmatch_lines(
        [
            f"corrsource: {manifest} (level open-weights)",
            f"{esc(manifest)}::weights::hash[[]{WEIGHTS}] PASSED*",
        ],
        consecutive=False,
    )
    assert result.ret == 0


def test_missing_manifest_is_a_usage_error(pytester: pytest.Pytester, inline: Runner) -> None:
    result = inline("--corresponding-source")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: --corresponding-source: no manifest at {pytester.path / MANIFEST}; draft one "
            f"with `corrsource init {pytester.path}`, or pass --corrsource-manifest PATH"
        ]
    )
    other = inline("--corresponding-source", "--corrsource-manifest=nowhere/cs.yaml")
    assert other.ret == pytest.ExitCode.USAGE_ERROR
    other.stderr.fnmatch_lines(
        [
            f"ERROR: --corrsource-manifest: no manifest at "
            f"{pytester.path / 'nowhere' / 'cs.yaml'}; check the path"
        ]
    )
    assert "pass --corrsource-manifest" not in output(other)
    assert_clean(other)
    pytester.makeini("[pytest]\ncorrsource_manifest = elsewhere.yaml\n")
    ini = inline("--corresponding-source")
    assert ini.ret == pytest.ExitCode.USAGE_ERROR
    ini.stderr.fnmatch_lines(
        [
            f"ERROR: ini option corrsource_manifest: no manifest at "
            f"{pytester.path / 'elsewhere.yaml'}; check the path"
        ]
    )


# --- levels --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cli", "env", "ini", "expected"),
    [
        (None, None, None, "corresponding-source"),
        (None, None, "open-source-ai", "open-source-ai"),
        (None, "open-weights", "open-source-ai", "open-weights"),
        ("open-source-ai", "open-weights", "corresponding-source", "open-source-ai"),
        # the command line wins without looking at the (bad) environment
        ("open-weights", "bogus", None, "open-weights"),
    ],
)
def test_level_precedence(
    pytester: pytest.Pytester,
    repo: RepoBuilder,
    inline: Runner,
    monkeypatch: pytest.MonkeyPatch,
    cli: str | None,
    env: str | None,
    ini: str | None,
    expected: str,
) -> None:
    repo()
    if env:
        monkeypatch.setenv("CORRSOURCE_LEVEL", env)
    if ini:
        pytester.makeini(f"[pytest]\ncorrsource_level = {ini}\n")
    args = [f"--corrsource-level={cli}"] if cli else []
    result = inline("--corresponding-source", "--collect-only", *args)
    result.stdout.fnmatch_lines([f"corrsource: {MANIFEST} (level {expected})"])
    assert result.ret == 0


def test_bad_level_names_its_source(
    pytester: pytest.Pytester, repo: RepoBuilder, inline: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo()
    choices = "(choose from open-weights, corresponding-source, open-source-ai)"
    monkeypatch.setenv("CORRSOURCE_LEVEL", "gpl")
    result = inline("--corresponding-source")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: environment variable CORRSOURCE_LEVEL: unknown level `gpl` {esc(choices)}"]
    )

    monkeypatch.delenv("CORRSOURCE_LEVEL")
    pytester.makeini("[pytest]\ncorrsource_level = open weights\n")
    result = inline("--corresponding-source")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: ini option corrsource_level: unknown level `open weights` {esc(choices)}"]
    )
    # Without the flag a bad level is nobody's business.
    assert inline().ret == pytest.ExitCode.NO_TESTS_COLLECTED

    result = inline("--corresponding-source", "--corrsource-level=gold")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*argument --corrsource-level: invalid choice: 'gold'*"])


@pytest.mark.e2e
def test_levels_decide_what_must_pass(repo: RepoBuilder, run: Runner) -> None:
    # A `run` whose script is missing: a failure beyond open-weights is not required there.
    repo(MINIMAL_MANIFEST + "run:\n  command: python missing.py --weights {weights}\n")
    weights_only = run(OPEN_WEIGHTS, "-rxs")
    assert weights_only.ret == 0
    assert weights_only.parseoutcomes().get("failed", 0) == 0
    weights_only.stdout.fnmatch_lines(
        [
            # pytest 8.0.0 alone writes "- reason: …" in the short summary: `*` covers both.
            f"XFAIL {esc(MANIFEST)}::run::files - *not required at level `open-weights` "
            "(required from level `corresponding-source`)*",
        ],
        consecutive=False,
    )
    assert_clean(weights_only)

    default = run("-rf")
    assert default.ret == pytest.ExitCode.TESTS_FAILED
    default.stdout.fnmatch_lines(
        [
            "*CS401 run::files: the run command's local scripts and files exist*",
            "*missing.py*",
            "*requirement: GPLv3 §1*",
        ],
        consecutive=False,
    )
    assert_clean(default)


def test_weights_only_manifest_at_default_level_lacks_run(repo: RepoBuilder, run: Runner) -> None:
    repo()
    weights_only = run(OPEN_WEIGHTS)
    assert weights_only.ret == 0
    result = run("-rfx")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "CS401 run::files: the run command's local scripts and files exist in the repository",
            "  found: the manifest declares no `run`*corresponding-source*",
            "  requirement: GPLv3 §1: Corresponding Source is all the source needed to generate,*",
            "  fix: *",
        ],
        consecutive=False,
    )
    # Beyond the level: the model card is informational, reported as xfail.
    result.stdout.fnmatch_lines(
        [f"XFAIL {esc(MANIFEST)}::docs::model-card - *not required at level*"], consecutive=False
    )
    assert_clean(result)


# --- manifest errors -----------------------------------------------------------------------------


def test_manifest_error_is_one_collection_error(pytester: pytest.Pytester, run: Runner) -> None:
    write_manifest(pytester, MINIMAL_MANIFEST.replace("weights:", "weigths:"))
    result = run()
    # pytest stops after a collection error; under xdist the workers report it and finish.
    assert result.ret in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.TESTS_FAILED)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            f"*ERROR collecting {MANIFEST}*",
            f"{MANIFEST}:4:1: weigths: unknown key `weigths` — did you mean `weights`?",
        ],
        consecutive=False,
    )
    assert result.stdout.str().count("did you mean `weights`?") == 2  # the error and the summary
    assert_clean(result)


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        pytest.param(
            "version: 1\nname: tiny\nweights:\n  - path: weights/model.safetensors\n"
            "   sha256: abc\n",
            f"{MANIFEST}:5:4: YAML syntax error: expected <block end>, but found "
            "'<block mapping start>'",
            id="yaml-syntax",
        ),
        pytest.param(
            "version: 1\nname: [tiny\nweights: []\n",
            f"{MANIFEST}:3:8: YAML syntax error: expected ',' or ']', but got ':'",
            id="yaml-flow",
        ),
        pytest.param(
            "version: 1\nname: tiny\nweights:\n  - path: ../x.safetensors\n",
            f"{MANIFEST}:4:11: weights[[]0].path: `../x.safetensors` leaves the repository (`..`)",
            id="dotdot",
        ),
        pytest.param(
            "version: 1\nname: tiny\nweights:\n  - path: /etc/passwd\n",
            f"{MANIFEST}:4:11: weights[[]0].path: `/etc/passwd` is an absolute path; paths must "
            "be relative to the repository",
            id="absolute",
        ),
        pytest.param(
            "version: 1\nname: tiny\nweights:\n  - path: weights/model.safetensors\n"
            "run:\n  command: python run.py\n  expect:\n    stdout: '([a-'\n",
            f"{MANIFEST}:8:13: run.expect.stdout: invalid regular expression: unterminated "
            "character set at position 4",
            id="regex",
        ),
    ],
)
def test_manifest_errors_are_precise(
    pytester: pytest.Pytester, inline: Runner, manifest: str, expected: str
) -> None:
    write_manifest(pytester, manifest)
    result = inline("--corresponding-source")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([expected], consecutive=False)
    assert_clean(result)


def test_symlink_leading_outside_is_refused(
    pytester: pytest.Pytester, repo: RepoBuilder, inline: Runner, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(b"x")
    root = repo("version: 1\nname: tiny\nweights:\n  - path: weights/link.safetensors\n")
    (root / "weights" / "link.safetensors").symlink_to(outside)
    result = inline("--corresponding-source")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            f"{MANIFEST}:4:11: weights[[]0].path: `weights/link.safetensors` resolves to "
            f"{outside}, outside the repository (a symlink?)"
        ],
        consecutive=False,
    )
    assert_clean(result)


# --- reports -------------------------------------------------------------------------------------

REPORT_FIELDS = {"manifest", "name", "level", "passed", "levels_met", "mof_class", "checks"}
CHECK_FIELDS = {"id", "component", "subject", "outcome", "message", "line", "seconds"}


def test_json_and_markdown_report(
    pytester: pytest.Pytester, repo: RepoBuilder, run: Runner
) -> None:
    repo(files={"README.md": "---\nlicense: mit\n---\n# tiny\n"})
    result = run(OPEN_WEIGHTS, "--corrsource-report=out/r.json")
    assert result.ret == 0
    report = json.loads((pytester.path / "out" / "r.json").read_text())
    # MANIFEST.md lists these "at least"; extra keys are additive extensions.
    assert set(report) >= REPORT_FIELDS
    assert report["manifest"] == MANIFEST
    assert report["name"] == "tiny"
    assert report["level"] == "open-weights"
    assert report["passed"] is True
    assert report["levels_met"] == ["open-weights"]
    assert report["mof_class"] in ("I", "II", "III", "unclassified")
    assert [f"{MANIFEST}::{c['component']}::{c['check']}" for c in report["checks"]] == (
        MINIMAL_ITEMS
    )
    for check in report["checks"]:
        assert set(check) >= CHECK_FIELDS
        assert check["outcome"] in ("passed", "failed", "skipped", "not-required")
        assert isinstance(check["line"], int)
        assert isinstance(check["seconds"], float | int)
        assert isinstance(check["message"], str)
    hash_check = next(c for c in report["checks"] if c["id"] == "CS104")
    assert hash_check == {
        **hash_check,
        "component": "weights",
        "subject": WEIGHTS,
        "outcome": "passed",
        "line": 5,
    }
    markdown = (pytester.path / "out" / "r.json.md").read_text()
    assert "## Corresponding Source: tiny" in markdown
    assert "**✅ PASSED** at level `open-weights`" in markdown
    assert f"| CS104 weights::hash | {WEIGHTS} | ✅ passed | 5 |" in markdown

    result = run(OPEN_WEIGHTS, "--corrsource-report-md=summary.md")
    assert (pytester.path / "summary.md").read_text().startswith("## Corresponding Source: tiny")
    assert not (pytester.path / "summary.md.md").exists()


@pytest.mark.e2e
def test_report_under_xdist_equals_serial(
    pytester: pytest.Pytester, repo: RepoBuilder, inline: Runner, tmp_path: Path
) -> None:
    # Weights only, at the default level: passed, failed, skipped and not-required outcomes.
    # (A declared `run` that fails would put its scratch folder's random name in the message.)
    # The repository sits in a subfolder: pytester writes `stdout`/`stderr` files beside it.
    repo(files={"model.py": "import os\n"}, into="model")

    def strip(data: Any) -> Any:
        if isinstance(data, dict):
            return {k: strip(v) for k, v in data.items() if k != "seconds"}
        if isinstance(data, list):
            return [strip(v) for v in data]
        return data

    # Reports go outside the repository, so both runs see the same files.
    args = ("-p", "no:randomly", "-p", "no:cacheprovider", "--corresponding-source", "model")
    serial = inline(*args, f"--corrsource-report={tmp_path / 's.json'}")
    xdist = pytester.runpytest_subprocess(
        *NO_HYPOTHESIS, *args, "-n", "2", f"--corrsource-report={tmp_path / 'x.json'}", timeout=300
    )
    assert serial.ret == xdist.ret == pytest.ExitCode.TESTS_FAILED
    s_json = json.loads((tmp_path / "s.json").read_text())
    x_json = json.loads((tmp_path / "x.json").read_text())
    assert {c["outcome"] for c in s_json["checks"]} == {
        "passed",
        "failed",
        "skipped",
        "not-required",
    }
    assert strip(s_json) == strip(x_json)
    assert s_json["passed"] is False
    assert summary_lines(serial) == summary_lines(xdist)
    assert serial.parseoutcomes() | {"seconds": 0} == xdist.parseoutcomes() | {"seconds": 0}


def test_terminal_summary(repo: RepoBuilder, run: Runner) -> None:
    repo()
    result = run(OPEN_WEIGHTS)
    lines = summary_lines(result)
    assert lines[0].strip("= ") == "corresponding source: tiny"
    assert "  weights      verified" in lines
    assert "  licenses     verified" in lines
    assert "  run          not declared" in lines
    assert "levels: open-weights: met  corresponding-source: not met  open-source-ai: not met" in (
        lines
    )
    assert any(line.startswith("Model Openness Framework class: unclassified (") for line in lines)
    assert "verdict: level open-weights met" in lines


def test_quiet_summary_keeps_the_verdict_not_the_table(repo: RepoBuilder, run: Runner) -> None:
    repo()
    result = run(OPEN_WEIGHTS, "-q")
    lines = result.outlines  # -q: no closing separator line to stop at
    assert "verdict: level open-weights met" in lines
    assert any(line.startswith("levels: open-weights: met") for line in lines)
    assert not any(line.startswith("  weights ") for line in lines)


def test_options_without_the_flag_warn_and_change_nothing(
    pytester: pytest.Pytester, repo: RepoBuilder, inline: Runner
) -> None:
    repo()
    pytester.makepyfile(test_normal="def test_normal():\n    assert True\n")
    result = inline("--corrsource-level=open-weights", "--corrsource-report", "r.json")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*PytestConfigWarning: --corrsource-level, --corrsource-report ignored: "
            "pytest-corrsource runs only with --corresponding-source"
        ]
    )
    assert not (pytester.path / "r.json").exists()
    # ini keys stay silent: projects set them once and enable the checks only in CI
    pytester.makeini("[pytest]\ncorrsource_level = open-weights\n")
    quiet = inline()
    quiet.assert_outcomes(passed=1)
    assert "PytestConfigWarning" not in quiet.stdout.str()


def test_a_broken_test_file_of_the_repository_is_named_not_deselected(
    pytester: pytest.Pytester, repo: RepoBuilder, inline: Runner
) -> None:
    # llama2.c's own test_all.py imports `requests`: pytest stops at that collection error
    # before any check runs, and the report must say so instead of "deselected". (Under
    # pytest-xdist the workers run the collected items anyway, so nothing is lost there.)
    repo()
    pytester.makepyfile(test_all="import not_installed_anywhere\n")

    def run(*args: str) -> pytest.RunResult:
        return inline("--corresponding-source", *args)

    result = run(OPEN_WEIGHTS, "--corrsource-report=r.json")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "verdict: not judged*",
            "  the checks did not run: pytest stopped at collection errors: test_all.py: "
            "ModuleNotFoundError: No module named 'not_installed_anywhere'",
            "  verify the manifest alone with `corrsource check`*",
        ]
    )
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["checks"][0]["message"].startswith(
        "did not run (pytest stopped at collection errors: test_all.py: ModuleNotFoundError"
    )
    # the manifest file alone as the argument verifies it whatever the other files hold
    alone = run(OPEN_WEIGHTS, MANIFEST)
    assert alone.ret == pytest.ExitCode.OK


def test_collect_only_writes_no_report_and_no_verdict(
    pytester: pytest.Pytester, repo: RepoBuilder, inline: Runner
) -> None:
    repo()
    result = inline("--corresponding-source", "--collect-only", "--corrsource-report=r.json")
    assert result.ret == 0
    assert "verdict:" not in result.stdout.str()
    assert not (pytester.path / "r.json").exists()


def test_without_cacheprovider(pytester: pytest.Pytester, repo: RepoBuilder, run: Runner) -> None:
    repo()
    result = run("-p", "no:cacheprovider", OPEN_WEIGHTS)
    assert result.ret == 0
    assert result.parseoutcomes()["passed"] >= len(WEIGHTS_ITEMS)
    assert not (pytester.path / ".pytest_cache").exists()
    assert_clean(result)


def test_digest_cache_between_runs(
    pytester: pytest.Pytester, repo: RepoBuilder, run: Runner
) -> None:
    root = repo()
    weights = root / WEIGHTS
    past = time.time() - 60  # older than hashing.RACY_WINDOW_NS, or nothing is cached
    os.utime(weights, (past, past))
    digest = sha256(weights)

    first = run(OPEN_WEIGHTS)
    assert first.ret == 0
    cache_file = pytester.path / ".pytest_cache" / "v" / "corrsource" / "v1" / "sha256"
    assert cache_file.is_file()
    entries = json.loads(cache_file.read_text())
    entry = entries[str(weights.resolve())]
    assert entry["sha256"] == digest
    assert entry["size"] == weights.stat().st_size

    # The second run trusts the cache while the file's identity is unchanged: poison the cached
    # digest and the hash check must report the poisoned value it read from there.
    poisoned = "f" * 64
    entry["sha256"] = poisoned
    cache_file.write_text(json.dumps(entries))
    second = run(OPEN_WEIGHTS, "-k", "hash")
    assert second.ret == pytest.ExitCode.TESTS_FAILED
    second.stdout.fnmatch_lines([f"*found: *{poisoned}*"], consecutive=False)

    # Touching the file changes its identity: the cache entry is ignored and re-written.
    os.utime(weights, (past - 10, past - 10))
    third = run(OPEN_WEIGHTS, "-k", "hash")
    assert third.ret == 0
    assert json.loads(cache_file.read_text())[str(weights.resolve())]["sha256"] == digest


def _evil_pickle() -> bytes:
    # GLOBAL posix.system, then REDUCE: written opcode by opcode, never unpickled.
    return (
        pickle.PROTO
        + b"\x02"
        + pickle.GLOBAL
        + b"posix\nsystem\n"
        + pickle.SHORT_BINUNICODE
        + b"\x04echo"
        + pickle.TUPLE1
        + pickle.REDUCE
        + pickle.STOP
    )


def test_corrupt_weights_fail_precisely(
    pytester: pytest.Pytester, repo: RepoBuilder, run: Runner
) -> None:
    root = repo(
        "version: 1\nname: tiny\nlicenses: {distribution: MIT}\nweights:\n"
        "  - path: weights/truncated.safetensors\n"
        "  - path: weights/random.bin\n"
        "    format: safetensors\n"
        "  - path: weights/evil.pkl\n"
    )
    real = (root / WEIGHTS).read_bytes()
    (root / "weights" / "truncated.safetensors").write_bytes(real[:-10])
    (root / "weights" / "random.bin").write_bytes(bytes(range(256)) * 3)
    (root / "weights" / "evil.pkl").write_bytes(_evil_pickle())

    result = run(OPEN_WEIGHTS, "-rf")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    size = len(real) - 10
    result.stdout.fnmatch_lines_random(
        [
            "*found: weights/truncated.safetensors is named `.safetensors` but does not parse "
            f"as safetensors: file truncated: tensors end at byte {len(real)} but the file has "
            f"only {size} bytes (10 bytes missing). (its bytes look like: safetensors)",
            "*found: weights/random.bin is declared `format: safetensors` but does not parse "
            "as safetensors: * (its bytes look like: opaque)",
            "*found: weights/evil.pkl (pickle) would run code when loaded: globals outside the "
            "allow-list: posix.system",
        ],
    )
    failed = {
        line.split(" ", 1)[1].split(" - ", 1)[0]
        for line in result.outlines
        if line.startswith("FAILED ")
    }
    assert failed == {
        f"{MANIFEST}::weights::header[weights/truncated.safetensors]",
        f"{MANIFEST}::weights::header[weights/random.bin]",
        f"{MANIFEST}::weights::safe-to-load[weights/evil.pkl]",
    }
    assert_clean(result)


# --- exit status ---------------------------------------------------------------------------------


def test_required_check_that_cannot_run_here_fails_and_blocks_its_dependants(
    pytester: pytest.Pytester, repo: RepoBuilder, run: Runner
) -> None:
    # Issue 12: never "exit 1 with nothing failed". CS202 cannot run on this machine: it fails
    # saying so; what needs the environment is blocked by it, not failed a second time.
    manifest = RUNNABLE_MANIFEST.replace("install:\n", 'install:\n  python: "2.1"\n')
    repo(manifest, RUNNABLE_FILES)
    result = run("-rs")
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1
    assert "error" not in outcomes
    result.stdout.fnmatch_lines(
        [
            "*CS202 install::environment: the install commands succeed in a fresh isolated*",
            "  found: could not be verified on this machine: install.python asks for Python 2.1*",
            "  fix: *--corrsource-waive CS202=<reason>*",
            "verdict: level corresponding-source NOT met",
            "  - CS202 install::environment: failed",
            "  - CS402 run::released-weights: skipped (blocked by CS202 (could not be verified*",
            "SKIPPED [[]3] corresponding-source.yaml:13: blocked by CS202 (could not be verified*",
        ],
        consecutive=False,
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED

    # A partial run judges nothing: the selected checks pass, so pytest's own status stands.
    partial = run("-k", "weights")
    assert partial.ret == pytest.ExitCode.OK
    outcomes = partial.parseoutcomes()
    assert outcomes["passed"] + outcomes.get("skipped", 0) < 21  # xdist does not count deselected
