"""``load_manifest``: the MANIFEST.md example, every kind of error (exact text and position),
and, for arbitrary input, a Manifest or a ManifestError and nothing else."""

from __future__ import annotations

import tempfile
import tracemalloc
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pytest_corrsource.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    DataSource,
    Manifest,
    ManifestError,
    PathRef,
    load_manifest,
)
from pytest_corrsource.schema.spec import (
    MANIFEST_SPEC,
    MAX_NODES,
    ListOf,
    MapOf,
    Scalar,
    Spec,
    Struct,
)

H1, H2, H3 = "9f86d0" + "a" * 58, "5e88" + "b" * 60, "1b4f" + "c" * 60

# The example of MANIFEST.md (the contract), verbatim but for the elided digests and one folded
# line.
EXAMPLE = f"""\
# yaml-language-server: $schema=<schema shipped in the package>
version: 1                        # required
name: tinychar                    # required: the model's name
# Only version, name and weights are required for the manifest to be valid. A component that a
# level needs but the manifest does not declare is a failed check ("the manifest declares no
# `run`: …"), not a manifest error, so a weights-only repository gets a useful report.
licenses:                         # SPDX expressions; resolution: component > kind > distribution
  distribution: MIT               # fallback for everything
  code: MIT                       # training/inference/architecture/scripts
  weights: CC-BY-4.0              # parameters (weights count as data in MOF)
  data: CC0-1.0                   # datasets

weights:                          # required, at least one
  - path: weights/model.safetensors
    sha256: {H1}               # optional but recommended; `init` fills it in
  - path: weights/model.safetensors.index.json   # a sharded checkpoint: the index names its shards
  - path: weights/legacy.bin
    format: pickle                # optional; detected from magic bytes otherwise
    allow-unsafe: false           # a pickle with globals outside the allow-list fails unless true

architecture: [model.py]          # source files that define the model

install:                          # how to get a working environment from nothing
  requirements: [requirements.txt]   # dependency specs: requirements*.txt, pyproject.toml, …
  commands:
    - python -m pip install -r requirements.txt
  python: "3.11"                  # optional; default: the interpreter running pytest

generate:                         # optional: turn the weights into the runnable model
  - command: python export.py --weights {{weights}} --out {{outdir}}/model.npz
    produces: ["{{outdir}}/model.npz"]
    timeout: 300

run:                              # run the model from its weights
  command: python generate.py --weights {{weights}} --prompt "The " --seed 0 --tokens 40
  timeout: 120                    # seconds, default 600
  deterministic: true             # default true: same weights + same command => same output
  expect:
    exit-code: 0                  # default 0
    stdout: "(?s).{{40,}}"          # optional regex that stdout must match (re.search)
    files: []                     # optional files the run must create (placeholders allowed)

modify:                           # optional: fine-tuning / editing scripts that take the weights
  command: python finetune.py --weights {{weights}} --data data/extra.txt
    --out {{outdir}}/ft.safetensors           # (folded here to fit 100 columns)
  produces: ["{{outdir}}/ft.safetensors"]

training:                         # optional (required by the open-source-ai level)
  code: [train.py, model.py]
  command: python train.py --steps 3 --out {{outdir}}/model.safetensors   # a smoke-sized run
  produces: "{{outdir}}/model.safetensors"
  reproduce: schema               # schema (default) | exact | tolerance
  tolerance: 1.0e-6               # with reproduce: tolerance, max abs difference per tensor
  timeout: 900

data:                             # optional (data information is required by open-source-ai)
  sources:
    - path: data/corpus.txt
      sha256: {H2}
      license: CC0-1.0
    - url: https://example.org/corpus-v2.tar.gz     # obtainable but not shipped
      sha256: {H3}
      license: CC-BY-4.0
      description: public web crawl subset, see DATA_CARD.md
  preprocessing:
    code: [prepare.py]
    command: python prepare.py --out {{outdir}}/train.bin
    produces: ["{{outdir}}/train.bin"]
  card: DATA_CARD.md              # provenance, scope, selection, labelling, processing

evaluation:                       # optional
  code: [eval.py]
  data: [data/val.txt]
  command: python eval.py --weights {{weights}}
  expect: {{stdout: "loss: [0-9.]+"}}

checkpoints:                      # optional intermediate checkpoints (MOF class I)
  - path: ckpt/step-100.safetensors

docs:                             # optional
  model-card: README.md           # Hugging Face style front matter is read when present
  paper: paper.pdf
  technical-report: REPORT.md
  results: RESULTS.md
"""

BASE = "version: 1\nname: tiny\nweights:\n  - path: w.safetensors\n"  # 4 lines


def write(folder: Path, text: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST_NAME
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, needle: str) -> int:
    """1-based number of the first line of ``text`` containing ``needle``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def error_of(tmp_path: Path, text: str | bytes) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        load_manifest(write(tmp_path / "repo", text))
    return info.value


# --- the example ------------------------------------------------------------------------------


def test_manifest_md_example_loads(tmp_path: Path) -> None:
    path = write(tmp_path / "repo", EXAMPLE)
    m = load_manifest(path)
    assert isinstance(m, Manifest)
    assert m.path == path
    assert m.root == path.resolve().parent
    assert (m.version, m.name) == (1, "tinychar")

    lic = m.licenses
    assert (lic.distribution, lic.code, lic.weights, lic.data, lic.docs) == (
        "MIT",
        "MIT",
        "CC-BY-4.0",
        "CC0-1.0",
        None,
    )
    assert lic.lines == {
        "distribution": line_of(EXAMPLE, "distribution: MIT"),
        "code": line_of(EXAMPLE, "  code: MIT"),
        "weights": line_of(EXAMPLE, "weights: CC-BY-4.0"),
        "data": line_of(EXAMPLE, "data: CC0-1.0"),
    }

    w0, w1, w2 = m.weights
    assert (w0.path, w0.sha256, w0.format, w0.allow_unsafe) == (
        "weights/model.safetensors",
        H1,
        None,
        False,
    )
    assert w0.line == line_of(EXAMPLE, "- path: weights/model.safetensors") == 14
    assert (w1.path, w1.sha256, w1.line) == (
        "weights/model.safetensors.index.json",
        None,
        line_of(EXAMPLE, ".index.json"),
    )
    assert (w2.path, w2.format, w2.allow_unsafe, w2.line) == (
        "weights/legacy.bin",
        "pickle",
        False,
        line_of(EXAMPLE, "legacy.bin"),
    )
    assert m.architecture == (PathRef("model.py", line_of(EXAMPLE, "architecture:")),)

    assert m.install is not None
    assert m.install.requirements == (
        PathRef("requirements.txt", line_of(EXAMPLE, "requirements: [")),
    )
    assert m.install.commands == ("python -m pip install -r requirements.txt",)
    assert m.install.python == "3.11"

    (step,) = m.generate
    assert step.command == "python export.py --weights {weights} --out {outdir}/model.npz"
    assert step.produces == ("{outdir}/model.npz",)
    assert step.timeout == 300.0
    assert step.line == line_of(EXAMPLE, "python export.py")

    run = m.run
    assert run is not None
    assert run.command.startswith("python generate.py --weights {weights} --prompt ")
    assert '"The "' in run.command
    assert (run.timeout, run.deterministic) == (120.0, True)
    assert (run.expect.exit_code, run.expect.stdout, run.expect.files) == (0, "(?s).{40,}", ())
    assert run.line == line_of(EXAMPLE, "python generate.py")

    assert m.modify is not None
    assert m.modify.produces == ("{outdir}/ft.safetensors",)
    assert m.modify.timeout == 600.0

    t = m.training
    assert t is not None
    assert [c.path for c in t.code] == ["train.py", "model.py"]
    assert t.produces == "{outdir}/model.safetensors"
    assert (t.reproduce, t.tolerance, t.timeout) == ("schema", 1e-6, 900.0)

    d = m.data
    assert d is not None
    assert d.sources == (
        DataSource(
            line=line_of(EXAMPLE, "- path: data/corpus.txt"),
            path="data/corpus.txt",
            sha256=H2,
            license="CC0-1.0",
        ),
        DataSource(
            line=line_of(EXAMPLE, "- url: https://"),
            url="https://example.org/corpus-v2.tar.gz",
            sha256=H3,
            license="CC-BY-4.0",
            description="public web crawl subset, see DATA_CARD.md",
        ),
    )
    assert d.preprocessing is not None
    assert d.preprocessing.code == (PathRef("prepare.py", line_of(EXAMPLE, "[prepare.py]")),)
    assert d.card == PathRef("DATA_CARD.md", line_of(EXAMPLE, "card: DATA_CARD.md"))

    e = m.evaluation
    assert e is not None
    assert [p.path for p in e.code] == ["eval.py"]
    assert [p.path for p in e.data] == ["data/val.txt"]
    assert e.expect.stdout == "loss: [0-9.]+"

    (ckpt,) = m.checkpoints
    assert (ckpt.path, ckpt.line) == ("ckpt/step-100.safetensors", line_of(EXAMPLE, "ckpt/"))

    assert m.docs is not None
    assert m.docs.model_card == PathRef("README.md", line_of(EXAMPLE, "model-card:"))
    assert m.docs.paper == PathRef("paper.pdf", line_of(EXAMPLE, "paper:"))
    assert m.docs.technical_report is not None
    assert m.docs.results is not None

    # Each top-level section remembers the line of its key.
    top = [line.split(":", 1)[0] for line in EXAMPLE.splitlines() if line[:1].isalpha()]
    assert list(m.lines) == top
    for key in top:
        assert m.line_of(key) == next(
            i for i, line in enumerate(EXAMPLE.splitlines(), 1) if line.startswith(f"{key}:")
        )
        assert m.declares(key)
    assert m.line_of("weights") == 13
    assert m.line_of("run") == 34
    assert not m.declares("env")
    assert m.line_of("env") == 1


def test_minimal_manifest_defaults(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path / "repo", BASE))
    assert m.weights[0].path == "w.safetensors"
    assert (m.run, m.install, m.training, m.docs) == (None, None, None, None)
    assert (m.generate, m.architecture, m.env) == ((), (), {})
    assert m.licenses.distribution is None


def test_unquoted_numbers_where_text_is_expected(tmp_path: Path) -> None:
    m = load_manifest(
        write(tmp_path / "repo", BASE.replace("tiny", "2024") + "install:\n  python: 3.10\n")
    )
    assert m.name == "2024"
    assert m.install is not None
    assert m.install.python == "3.10"  # not 3.1


def test_single_item_in_place_of_a_list(tmp_path: Path) -> None:
    m = load_manifest(
        write(tmp_path / "repo", BASE + "architecture: model.py\ninstall:\n  commands: make\n")
    )
    assert [a.path for a in m.architecture] == ["model.py"]
    assert m.install is not None
    assert m.install.commands == ("make",)


def test_empty_docs_section_and_normalised_paths(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path / "repo", BASE + "docs:\narchitecture: [./src//model.py]\n"))
    assert m.docs is not None
    assert m.docs.model_card is None
    assert m.architecture[0].path == "src/model.py"


def test_display_name_in_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "repo", "version: 2\nname: t\nweights: [{path: w}]\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path, display="models/tiny/corresponding-source.yaml")
    assert str(info.value) == (
        "models/tiny/corresponding-source.yaml:1:10: version: expected one of `1`, found `2`"
    )


# --- errors -------------------------------------------------------------------------------------

KNOWN_KEYS = (
    "(known keys: `version`, `name`, `licenses`, `weights`, `architecture`, `env`, `install`, "
    "`generate`, `run`, `modify`, `training`, `data`, `evaluation`, `limits`, `checkpoints`, "
    "`docs`, `source-form`, `waive`)"
)
RUN = BASE + "run:\n  command: python run.py\n"  # run.* on line 6 onwards

ERRORS = [
    # unknown keys
    ("unknown-close", BASE + "weigths: []\n", 5, 1, "weigths",
     "unknown key `weigths` — did you mean `weights`?"),
    ("unknown-far", BASE + "zzz: 1\n", 5, 1, "zzz", f"unknown key `zzz` {KNOWN_KEYS}"),
    ("unknown-nested", RUN + "  expect:\n    stdot: x\n", 8, 5, "run.expect.stdot",
     "unknown key `stdot` — did you mean `stdout`?"),
    ("unknown-in-list", "version: 1\nname: t\nweights:\n  - pth: w\n", 4, 5, "weights[0].pth",
     "unknown key `pth` — did you mean `path`?"),
    # wrong type, one per scalar kind, and for containers
    ("integer", "version: one\nname: t\nweights: [{path: w}]\n", 1, 10, "version",
     "expected an integer, found a string"),
    ("integer-bool", BASE + "run:\n  command: x\n  expect:\n    exit-code: true\n", 8, 16,
     "run.expect.exit-code", "expected an integer, found a boolean"),
    ("string", "version: 1\nname: [a]\nweights: [{path: w}]\n", 2, 7, "name",
     "expected a non-empty name, found a list"),
    ("string-null", RUN.replace("python run.py", "") , 6, 11, "run.command",
     "expected a command (split with shlex; placeholders allowed), found nothing (null)"),
    ("number", RUN + "  timeout: soon\n", 7, 12, "run.timeout",
     "expected a number of seconds greater than 0, found a string"),
    ("number-range", RUN + "  timeout: 0\n", 7, 12, "run.timeout",
     "expected a number of seconds greater than 0, found 0"),
    ("number-nan", RUN + "  timeout: .nan\n", 7, 12, "run.timeout",
     "expected a number of seconds greater than 0, found .nan"),
    ("boolean", RUN + "  deterministic: maybe\n", 7, 18, "run.deterministic",
     "expected true or false, found a string"),
    ("mapping", BASE + "licenses: MIT\n", 5, 11, "licenses", "expected a mapping, found a string"),
    ("list", "version: 1\nname: t\nweights: w.safetensors\n", 3, 10, "weights",
     "expected a list of mappings, found a string"),
    ("list-of-commands", BASE + "install:\n  commands: {a: b}\n", 6, 13, "install.commands",
     "expected a command (split with shlex; placeholders allowed), found a mapping"),
    ("empty-weights", "version: 1\nname: t\nweights: []\n", 3, 10, "weights",
     "expected at least 1 entry, found none"),
    ("not-a-mapping", "- a\n- b\n", 1, 1, "", "expected a mapping (the manifest), found a list"),
    # enums, patterns, regexes
    ("enum", BASE + "training:\n  reproduce: exakt\n", 6, 14, "training.reproduce",
     "expected one of `schema`, `exact`, `tolerance`, found `exakt` — did you mean `exact`?"),
    ("enum-far", BASE + "training:\n  reproduce: bitwise\n", 6, 14, "training.reproduce",
     "expected one of `schema`, `exact`, `tolerance`, found `bitwise`"),
    ("version", "version: 2\nname: t\nweights: [{path: w}]\n", 1, 10, "version",
     "expected one of `1`, found `2`"),
    ("sha256", "version: 1\nname: t\nweights:\n  - path: w\n    sha256: 9F86D0\n", 5, 13,
     "weights[0].sha256",
     "expected a sha256 digest (64 lowercase hexadecimal characters), found `9F86D0`"),
    ("sha256-upper", f"version: 1\nname: t\nweights:\n  - path: w\n    sha256: {'A' * 64}\n", 5,
     13, "weights[0].sha256",
     f"expected a sha256 digest (64 lowercase hexadecimal characters), found `{'A' * 64}`"),
    ("regex", RUN + "  expect:\n    stdout: '([a-'\n", 8, 13, "run.expect.stdout",
     "invalid regular expression: unterminated character set at position 4"),
    ("url", BASE + "data:\n  sources:\n    - url: ftp://x\n", 7, 12, "data.sources[0].url",
     "expected an http(s) URL, found `ftp://x`"),
    ("python", BASE + "install:\n  python: three\n", 6, 11, "install.python",
     "expected a Python version such as 3.11, found `three`"),
    ("blank-name", "version: 1\nname: '  '\nweights: [{path: w}]\n", 2, 7, "name",
     "expected a non-empty name, found `  `"),
    ("env-key", BASE + "env:\n  1BAD: x\n", 6, 3, "env.1BAD", "invalid key `1BAD`"),
    # required keys, duplicates, exactly-one-of
    ("missing-name", "version: 1\nweights: [{path: w}]\n", 1, 1, "name",
     "missing required key `name` in the manifest"),
    ("missing-weights", "version: 1\nname: t\n", 1, 1, "weights",
     "missing required key `weights` in the manifest"),
    ("missing-command", BASE + "run:\n  timeout: 3\n", 6, 3, "run.command",
     "missing required key `command` in `run`"),
    ("missing-path", "version: 1\nname: t\nweights:\n  - sha256: " + "a" * 64 + "\n", 4, 5,
     "weights[0].path", "missing required key `path` in `weights[0]`"),
    ("duplicate-key", BASE + "name: other\n", 5, 1, "name",
     "duplicate key `name` (first given on line 2)"),
    ("duplicate-weights", BASE + "  - path: ./w.safetensors\n", 5, 11, "weights[1].path",
     "`w.safetensors` is already declared on line 4"),
    ("source-both", BASE + "data:\n  sources:\n    - path: d.txt\n      url: https://x.org/a\n",
     7, 7, "data.sources[0]", "expected exactly one of `path` or `url`, found both"),
    ("source-neither", BASE + "data:\n  sources:\n    - license: MIT\n", 7, 7, "data.sources[0]",
     "expected exactly one of `path` or `url`, found neither"),
    ("non-string-key", BASE + "1: x\n", 5, 1, "", "expected a string key, found an integer"),
    # paths leaving the repository
    ("dotdot", "version: 1\nname: t\nweights:\n  - path: weights/../../x\n", 4, 11,
     "weights[0].path", "`weights/../../x` leaves the repository (`..`)"),
    ("absolute", "version: 1\nname: t\nweights:\n  - path: /etc/passwd\n", 4, 11,
     "weights[0].path",
     "`/etc/passwd` is an absolute path; paths must be relative to the repository"),
    ("windows-absolute", "version: 1\nname: t\nweights:\n  - path: 'C:\\w'\n", 4, 11,
     "weights[0].path",
     "`C:\\w` is an absolute path; paths must be relative to the repository"),
    ("dotdot-in-list", BASE + "architecture: [a.py, ../b.py]\n", 5, 22, "architecture[1]",
     "`../b.py` leaves the repository (`..`)"),
    ("dotdot-data", BASE + "data:\n  sources:\n    - path: ../d.txt\n", 7, 13,
     "data.sources[0].path", "`../d.txt` leaves the repository (`..`)"),
    ("dotdot-card", BASE + "data:\n  card: ../CARD.md\n", 6, 9, "data.card",
     "`../CARD.md` leaves the repository (`..`)"),
    ("empty-path", "version: 1\nname: t\nweights:\n  - path: ''\n", 4, 11, "weights[0].path",
     "an empty path"),
    ("nul-path", 'version: 1\nname: t\nweights:\n  - path: "a\\0b"\n', 4, 11, "weights[0].path",
     "'a\\x00b' contains a NUL character"),
    # YAML itself
    ("empty", "", 1, 1, "", "the manifest is empty"),
    ("comments-only", "# nothing here\n\n", 1, 1, "", "the manifest is empty"),
    ("yaml-indent", "version: 1\nname: t\nweights:\n  - path: w\n   sha256: x\n", 5, 4, "",
     "YAML syntax error: expected <block end>, but found '<block mapping start>'"),
    ("yaml-flow", "version: 1\nname: [t\nweights: []\n", 3, 8, "",
     "YAML syntax error: expected ',' or ']', but got ':'"),
    ("yaml-tab", "version: 1\n\tname: x\n", 2, 1, "",
     "YAML syntax error: found character '\\t' that cannot start any token"),
    ("yaml-two-documents", BASE + "---\nversion: 1\n", 5, 1, "",
     "YAML syntax error: expected a single document in the stream, but found another document"),
    ("yaml-control-character", BASE + "# \x1b[31m\n", 5, 3, "",
     "YAML syntax error: special characters are not allowed (#x001b)"),
    ("yaml-undefined-alias", BASE + "architecture: *nope\n", 5, 15, "",
     "YAML syntax error: found undefined alias 'nope'"),
    # tags: nothing is ever constructed from them
    ("python-object-apply", "version: 1\nname: !!python/object/apply:os.system ['echo']\n"
     "weights: [{path: w}]\n", 2, 7, "name",
     "the YAML tag `!!python/object/apply:os.system` is not allowed: a manifest is plain data"),
    ("python-object-mapping", BASE + "run: !!python/object:os.system {command: x}\n", 5, 6,
     "run", "the YAML tag `!!python/object:os.system` is not allowed: a manifest is plain data"),
    ("python-name", "version: 1\nname: !!python/name:os.system x\nweights: [{path: w}]\n", 2, 7,
     "name", "the YAML tag `!!python/name:os.system` is not allowed: a manifest is plain data"),
    ("local-tag", BASE + "architecture: !include other.yaml\n", 5, 15, "architecture",
     "the YAML tag `!include` is not allowed: a manifest is plain data"),
    ("binary-tag", "version: 1\nname: !!binary aGk=\nweights: [{path: w}]\n", 2, 7, "name",
     "expected a non-empty name, found a value tagged !!binary"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "line", "column", "keypath", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in ERRORS],
)
def test_errors(
    tmp_path: Path, text: str, line: int, column: int, keypath: str, message: str
) -> None:
    error = error_of(tmp_path, text)
    assert (error.line, error.column, error.keypath, error.message) == (
        line,
        column,
        keypath,
        message,
    )
    where = f"{MANIFEST_NAME}:{line}:{column}"
    assert str(error) == (f"{where}: {keypath}: {message}" if keypath else f"{where}: {message}")


def test_symlink_leading_outside_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "model.safetensors").write_bytes(b"x")
    repo = tmp_path / "repo"
    (repo / "weights").mkdir(parents=True)
    (repo / "weights" / "link").symlink_to(outside)
    (repo / "inside.py").write_text("")
    (repo / "ok.py").symlink_to(repo / "inside.py")  # a symlink that stays inside is fine
    text = "version: 1\nname: t\nweights:\n  - path: weights/link/model.safetensors\n"
    error = error_of(tmp_path, text + "architecture: [ok.py]\n")
    assert str(error) == (
        f"{MANIFEST_NAME}:4:11: weights[0].path: `weights/link/model.safetensors` resolves to "
        f"{outside.resolve() / 'model.safetensors'}, outside the repository (a symlink?)"
    )
    m = load_manifest(write(repo, BASE + "architecture: [ok.py]\n"))
    assert m.architecture[0].path == "ok.py"


def test_not_utf8(tmp_path: Path) -> None:
    error = error_of(tmp_path, b"version: 1\nname: caf\xe9\n")
    assert (
        str(error) == f"{MANIFEST_NAME}:2:10: the manifest is not UTF-8: invalid continuation byte"
    )


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    assert load_manifest(write(tmp_path / "repo", "\ufeff" + BASE)).name == "tiny"


def test_over_size_file(tmp_path: Path) -> None:
    size = MAX_MANIFEST_BYTES + 1
    error = error_of(tmp_path, BASE + "#" * (size - len(BASE) - 1) + "\n")
    assert str(error) == f"{MANIFEST_NAME}:1:1: the manifest is {size} bytes; the limit is 4 MiB"


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path / "missing" / MANIFEST_NAME)
    assert str(info.value) == (
        f"{MANIFEST_NAME}:1:1: cannot read the manifest: No such file or directory"
    )
    folder = tmp_path / "dir"
    (folder / MANIFEST_NAME).mkdir(parents=True)
    with pytest.raises(ManifestError, match="cannot read the manifest: Is a directory"):
        load_manifest(folder / MANIFEST_NAME)


def billion_laughs() -> str:
    """The classic: nine levels of nine aliases (9**9 "lol"s if expanded)."""
    lines = ["version: 1", "name: lol", "weights: [{path: w}]", 'architecture: &a ["lol", "lol"]']
    refs = ["a"]
    for level in "bcdefghi":
        lines.append(f"x{level}: &{level} [" + ", ".join([f"*{refs[-1]}"] * 9) + "]")
        refs.append(level)
    lines.append("generate: *i")
    return "\n".join(lines) + "\n"


def alias_fan_out() -> str:
    """Aliases the spec does accept: steps reused 600 times, 100 outputs each (60,000 nodes)."""
    produces = ", ".join(["o"] * 100)
    return (
        BASE
        + f"modify: &s {{command: x, produces: [{produces}]}}\n"
        + "generate: ["
        + ", ".join(["*s"] * 600)
        + "]\n"
    )


#: Peak memory the refusals may take. Expanding either document would take gigabytes (9**9
#: strings; 60,000 nodes walked as objects): a bound on work, not on wall-clock time (how fast
#: they are refused is measured in benchmarks/bench_manifest.py).
PEAK_BYTES = 32 * 2**20


def error_and_peak(tmp_path: Path, text: str) -> tuple[ManifestError, int]:
    tracemalloc.start()
    try:
        error = error_of(tmp_path, text)
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return error, peak


def test_billion_laughs_is_refused_without_expanding(tmp_path: Path) -> None:
    # Where the spec walks into it, the first nested list is already the wrong type.
    error, peak = error_and_peak(tmp_path / "one", billion_laughs())
    assert str(error) == f"{MANIFEST_NAME}:5:1: xb: unknown key `xb` {KNOWN_KEYS}"
    assert peak < PEAK_BYTES

    # Accepted aliases are counted per visit, so a fan-out cannot make the walk explode.
    error, peak = error_and_peak(tmp_path / "two", alias_fan_out())
    assert error.message == f"the manifest has more than {MAX_NODES} YAML nodes"
    assert error.keypath.startswith("generate[")
    assert peak < PEAK_BYTES


def test_merge_keys_are_flattened(tmp_path: Path) -> None:
    text = BASE + "modify: &m {command: x, timeout: 5}\nrun:\n  <<: *m\n  timeout: 9\n"
    error = error_of(tmp_path, text)
    assert str(error) == (
        f"{MANIFEST_NAME}:8:3: run.timeout: duplicate key `timeout` (first given on line 5)"
    )


# --- arbitrary input ----------------------------------------------------------------------------

TOP_KEYS = (
    "version", "name", "licenses", "weights", "architecture", "env", "install", "generate",
    "run", "modify", "training", "data", "evaluation", "checkpoints", "docs", "source-form",
)  # fmt: skip
INNER_KEYS = (
    "path", "sha256", "format", "allow-unsafe", "shards", "command", "produces", "timeout",
    "expect", "stdout", "exit-code", "files", "code", "sources", "url", "card", "requirements",
    "commands", "python", "reproduce", "tolerance", "distribution", "model-card", "allow",
    "weigths", "<<",
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "weights/model.safetensors",
            "w",
            "../x",
            "/abs",
            "a\x00b",
            "C:\\x",
            "python run.py {weights}",
            "a" * 64,
            "(?s).*",
            "([",
            "3.11",
            "safetensors",
            "exact",
            "https://example.org/x",
            "MIT",
        ]
    )
)
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(INNER_KEYS) | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=25,
)


def from_spec(spec: Spec) -> st.SearchStrategy[object]:
    """Documents shaped like the manifest spec (so many of them load), with a wrong value (any
    of VALUES) one time in forty."""
    good: st.SearchStrategy[object]
    if isinstance(spec, Struct):
        fields = {k: from_spec(v) for k, v in spec.fields.items()}
        required = {k: fields.pop(k) for k in spec.required}
        good = st.fixed_dictionaries(required, optional=fields)
    elif isinstance(spec, ListOf):
        good = st.lists(from_spec(spec.item), min_size=spec.min_items, max_size=3)
        if spec.single_ok:
            good |= from_spec(spec.item)
    elif isinstance(spec, MapOf):
        good = st.dictionaries(
            st.sampled_from(["A", "B_1", "x"]), from_spec(spec.value), max_size=2
        )
    else:
        assert isinstance(spec, Scalar)
        if spec.enum is not None:
            good = st.sampled_from(spec.enum)
        elif spec.kind == "integer":
            good = st.integers(0, 10)
        elif spec.kind == "number":
            good = st.integers(1, 1000) | st.floats(1e-6, 1e6)
        elif spec.kind == "boolean":
            good = st.booleans()
        elif spec.pattern is not None:
            good = st.from_regex(spec.pattern, fullmatch=True)
        else:
            good = st.sampled_from(["w.safetensors", "model.py", "python run.py {weights}", "MIT"])
    # (an inner value: hypothesis favours the ends of a range)
    return st.integers(0, 39).flatmap(lambda roll: VALUES if roll == 17 else good)


DOCUMENTS = from_spec(MANIFEST_SPEC) | st.fixed_dictionaries(
    {}, optional={key: VALUES for key in TOP_KEYS}
)


def _load_anything(content: str | bytes) -> Manifest | None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / MANIFEST_NAME
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", errors="surrogatepass")
        try:
            manifest = load_manifest(path)
        except ManifestError as exc:
            error = exc
        else:
            assert isinstance(manifest, Manifest)
            assert manifest.weights
            event("loaded")
            return manifest
    event(f"ManifestError: {error.message.split(':')[0][:40]}")
    assert error.line >= 1
    assert error.column >= 1
    assert str(error).startswith(f"{MANIFEST_NAME}:{error.line}:{error.column}: ")
    return None


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.text())
def test_arbitrary_text(text: str) -> None:
    _load_anything(text)


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    _load_anything(data)


@FUZZ
@given(DOCUMENTS, st.sampled_from(["block", "flow"]))
def test_arbitrary_yaml_documents(document: dict[str, object], style: str) -> None:
    text = yaml.safe_dump(document, default_flow_style=style == "flow", allow_unicode=True)
    _load_anything(text)


@FUZZ
@given(st.lists(st.sampled_from([*TOP_KEYS, *INNER_KEYS, ":", "-", " ", "\n", "  ", "[", "]",
                                 "{", "}", "&a", "*a", "!!python/object:x", "'", '"', "#",
                                 "1", "w", "---", "? ", ","]), max_size=60))  # fmt: skip
def test_yaml_ish_token_soup(tokens: list[str]) -> None:
    _load_anything("".join(tokens))
