"""The check registry: every check is declared once, here, as a :class:`CheckSpec`.

Stage: reference data used by the plan, the checks' failure texts, ``corrsource explain`` and
the reports. A spec names what the check verifies, why, how to fix it, which function runs it
(``run=``, imported only when the check runs) and what it is planned on (``subjects=``). Like a
linter's rule table, ids never change meaning; new checks get new ids. Checks from other
plugins (``pytest_corrsource_checks``, see ``hookspecs.py``) join a :class:`CheckRegistry` with
ids of their own range and are then planned, run, explained and reported like these.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pytest_corrsource import subjects
from pytest_corrsource.checks.api import CheckFunction
from pytest_corrsource.errors import CorrsourceError
from pytest_corrsource.subjects import SubjectRule
from pytest_corrsource.vocabulary import LEVELS, Level

#: Built-in ids: ``CS`` and three digits. Ids of checks other plugins add: ``X``, up to eight
#: capitals naming the organisation or plugin, and three digits (``X101``, ``XACME101``), so
#: no extension can take or shadow a built-in id, now or in a later version.
BUILTIN_ID = re.compile(r"CS\d{3}")
CUSTOM_ID = re.compile(r"X[A-Z]{0,8}\d{3}")
_CHECK_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")


class RegistryError(CorrsourceError, ValueError):
    """A check spec that cannot join the registry (bad or duplicate id, unknown level …)."""


@dataclass(frozen=True)
class CheckSpec:
    """One check: its identity, its documentation, what runs it and what it is planned on."""

    id: str
    component: str
    check: str  # the short name in the node id: <component>::<check>[<subject>]
    title: str  # what it verifies, one line
    level: Level | None  # the lowest level that requires it; None: informational at every level
    clause: str  # the requirement it enforces, quoted briefly
    fix: str  # how to fix a failure, one or two sentences
    # Checks that must pass for this one to mean anything: when one of them did not pass, this
    # check is reported "skipped: blocked by CSxxx" instead of failing a second time. The
    # first same-subject match is used (CS102 on a file after CS101 on that file), else every
    # planned check with that id in its own component (CS402 after CS101 on every weights file).
    after: tuple[str, ...] = ()
    why: str = ""  # why it matters, for `corrsource explain` (defaults to the clause)
    snippet: str = ""  # a manifest fragment, for `corrsource explain` (defaults to the section's)
    # The function that runs it: "module:function" inside pytest_corrsource.checks (imported
    # when the check runs, so planning imports no runner), or the function itself.
    run: str | CheckFunction = ""
    subjects: SubjectRule = subjects.the_manifest  # what it is planned on

    def implementation(self) -> CheckFunction:
        """The check function (importing its module on first use)."""
        if callable(self.run):
            return self.run
        module_name, _, function_name = self.run.partition(":")
        module = importlib.import_module(f"pytest_corrsource.checks.{module_name}")
        function: CheckFunction = getattr(module, function_name)
        return function

    @property
    def explanation(self) -> str:
        return self.why or self.clause

    @property
    def example(self) -> str:
        return self.snippet or SNIPPETS.get(self.component, "")


_GPL1 = "GPLv3 §1: Corresponding Source is all the source needed to generate, install and run"
_OSAID_CODE = "OSAID 1.0 Code: the complete source code used to train and run the system"
_OSAID_DATA = "OSAID 1.0 Data Information: enough detail to build a substantially equivalent system"

CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec(
        "CS001",
        "manifest",
        "complete",
        "the manifest has no TODO left (every drafted value was reviewed)",
        "open-weights",
        "a draft is not a declaration: each TODO marks a value its author has not confirmed",
        "resolve each TODO the message lists (fill in the value, or delete the note once done)",
        why=(
            "`corrsource init` drafts a manifest from what it can see and marks with TODO "
            "what it guessed or could not find; until they are resolved the manifest says "
            "what a tool guessed, not what the authors release, so no level can be met."
        ),
        run="manifest:check_complete",
        subjects=subjects.the_manifest,
    ),
    CheckSpec(
        "CS101",
        "weights",
        "present",
        "each declared weights file (and every shard) exists",
        "open-weights",
        "the weights are the object code being released",
        "commit the file (or fetch it: `git lfs pull`), or correct its `path` in the manifest",
        why=(
            "Weights that are declared but absent cannot be run, studied or modified; a "
            "release that names files it does not ship is not a release of the model."
        ),
        run="weights:check_present",
        subjects=subjects.weights_files,
    ),
    CheckSpec(
        "CS102",
        "weights",
        "not-a-pointer",
        "the weights file is real content, not a Git LFS / git-annex / DVC pointer",
        "open-weights",
        "a pointer file names the weights without shipping them",
        "fetch the real file before running the checks (the message says how)",
        after=("CS101",),
        why=(
            "Git LFS, git-annex and DVC keep the content elsewhere and commit a small "
            "pointer. A checkout without the real file looks complete but holds no model."
        ),
        run="weights:check_not_a_pointer",
        subjects=subjects.weights_files,
    ),
    CheckSpec(
        "CS103",
        "weights",
        "header",
        "a file whose name or `format:` claims a format parses as it; only one claiming nothing "
        "is opaque; an empty file fails",
        "open-weights",
        "weights a reader refuses cannot be run or modified",
        "re-export the weights with the format's reference writer (e.g. safetensors.save_file)",
        after=("CS101", "CS102"),
        why=(
            "A file its format's reader refuses cannot be loaded by anyone. The safetensors "
            "rules checked are those of the reference reader (bounded header, contiguous "
            "offsets, the whole file covered), plus duplicate and hostile tensor names."
        ),
        run="weights:check_header",
        subjects=subjects.weights_files,
    ),
    CheckSpec(
        "CS104",
        "weights",
        "hash",
        "the file matches its declared digest (the manifest's sha256, else DVC's md5 or the "
        "LFS oid)",
        "open-weights",
        "users must be able to verify they run the released weights",
        "declare `sha256:` (`corrsource init` fills it in) or update it after re-exporting",
        after=("CS101", "CS102"),
        why=(
            "A digest lets every user verify that they run the weights that were released, "
            "and lets a CI run notice when the file changed. A repository that tracks its "
            "weights with DVC or Git LFS already records one: without a manifest `sha256`, "
            "that record is compared (DVC's md5 computed as DVC does), and the message names "
            "where the digest came from."
        ),
        run="weights:check_hash",
        subjects=subjects.weights_files,
    ),
    CheckSpec(
        "CS105",
        "weights",
        "safe-to-load",
        "nothing pickle/numpy/torch loaders would unpickle (offset 0 of any file, every archive "
        "member) imports a global off the allow-list; torch and zipfile read archives alike",
        "open-weights",
        "loading a pickle runs code: weights must not carry programs",
        "convert the weights to safetensors; or, after review, set `allow-unsafe: true`",
        after=("CS101", "CS102"),
        why=(
            "Loading a pickle executes code chosen by whoever wrote the file. Weights must be"
            " data: whatever a loader would unpickle (a stream at offset 0 of any file, "
            "whatever it looks like; every .pkl or pickle member of an archive; object "
            "arrays) is disassembled here, never loaded, and any global outside an allow-list"
            " modelled on PyTorch's weights_only loader fails, as does an archive torch and "
            "zipfile could read differently."
        ),
        run="weights:check_safe_to_load",
        subjects=subjects.weights_files,
    ),
    CheckSpec(
        "CS201",
        "install",
        "declared",
        "install commands and at least one dependency specification are declared and present",
        "corresponding-source",
        _GPL1 + ", including the scripts used to control those activities",
        "declare `install.commands` and `install.requirements` (e.g. requirements.txt)",
        why=(
            "GPLv3 §1: Corresponding Source includes the scripts used to control installing "
            "and running the work; a user must be able to build a working environment from "
            "nothing."
        ),
        run="install:check_declared",
        subjects=subjects.install_section,
    ),
    CheckSpec(
        "CS202",
        "install",
        "environment",
        "the install commands succeed in a fresh isolated environment",
        "corresponding-source",
        "GPLv3 §6: Installation Information sufficient to install and run",
        "fix the install commands or dependency files until they work from nothing",
        after=("CS201",),
        why=(
            "GPLv3 §6 asks for Installation Information sufficient to install and run the "
            "work. Declared steps that fail in a fresh environment do not provide it."
        ),
        run="install:check_environment",
        subjects=subjects.install_section,
    ),
    CheckSpec(
        "CS301",
        "generate",
        "step",
        "each generate step succeeds and itself creates or changes every output it declares "
        "(under `{outdir}` or its scratch copy; a file already there unchanged, or a link, "
        "does not count)",
        "corresponding-source",
        _GPL1 + " the object code (conversion, export, compilation)",
        "make the step's command succeed and write every path it declares under `produces`",
        after=("CS101", "CS202"),
        why=(
            "GPLv3 §1 covers the source needed to generate the object code: conversion, "
            "export and compilation steps are part of the Corresponding Source. What counts "
            "as produced: every `produces` path lies under the step's `{outdir}` or its "
            "scratch copy of the repository (`{repo}/…` or relative; anything else is refused"
            " when the manifest loads), and its size and sha256 differ after the step from "
            "before it (or it did not exist). A file that was already there with the same "
            "content, or a symbolic or hard link, was not produced."
        ),
        run="run:check_generate_step",
        subjects=subjects.generate_steps,
    ),
    CheckSpec(
        "CS401",
        "run",
        "files",
        "the run command's local scripts and files exist in the repository",
        "corresponding-source",
        _GPL1 + ": run scripts must ship, not be downloaded at run time",
        "commit the scripts the run command names, or correct the command",
        why=(
            "Scripts the run needs must ship with the model; downloading them at run time "
            "makes the release incomplete and unverifiable."
        ),
        run="run:check_run_files",
        subjects=subjects.run_section,
    ),
    CheckSpec(
        "CS402",
        "run",
        "released-weights",
        "the run succeeds on the released weights and meets `expect` (each `expect.files` entry "
        "created or changed by the run)",
        "corresponding-source",
        _GPL1 + " the object code",
        "make `run.command` succeed on the declared weights, or correct `run.expect`",
        after=("CS101", "CS202", "CS301"),
        why=(
            "The released weights must actually run with the released code, meeting what the "
            "manifest promises (exit code, output, and `expect.files` the run itself created "
            "or changed). CS403 and CS404 are blocked by a failed CS402: they compare with "
            "it."
        ),
        run="run:check_released",
        subjects=subjects.run_section,
    ),
    CheckSpec(
        "CS403",
        "run",
        "modified-weights",
        "the run succeeds on a modified copy of the weights and its output changes",
        "corresponding-source",
        "FSF freedom 1 / GPLv3 §6: the product must not refuse to run a modified version "
        "(no tivoization)",
        "load the weights from the path given to the run, and do not refuse modified weights",
        after=("CS402",),
        why=(
            "The FSF's freedom 1 and GPLv3 §6 forbid tivoization: a user who modifies the "
            "model must be able to run the modification. The run must accept changed weights "
            "and its output must depend on them."
        ),
        run="run:check_modified",
        subjects=subjects.run_section,
    ),
    CheckSpec(
        "CS404",
        "run",
        "offline",
        "the run succeeds without network access",
        "corresponding-source",
        _GPL1 + ": nothing needed to run may be fetched at run time",
        "ship what the run downloads (tokenizers, configs) in the repository",
        after=("CS402",),
        why=(
            "What the run downloads is not in the Corresponding Source. A run that needs the "
            "network depends on files nobody shipped. Where the network cannot be cut (no "
            "user namespaces), CS404 fails 'could not be verified on this machine' unless "
            "waived (`--corrsource-waive CS404=reason` or `waive:` in the manifest): the "
            "level then reads 'met, with waivers'."
        ),
        run="run:check_offline",
        subjects=subjects.run_section,
    ),
    CheckSpec(
        "CS405",
        "modify",
        "finetune",
        "the modify command runs from the released weights and itself writes weights of their "
        "schema",
        None,
        "GPLv3 §1 'and to modify the work'; MOF Training code (fine-tuning scripts)",
        "make `modify.command` succeed and write released-schema weights to `modify.produces`",
        after=("CS101", "CS202"),
        why=(
            "To modify the work the way its makers do, fine-tuning scripts must run from the "
            "released weights and produce weights the run can use."
        ),
        run="training:check_modify",
        subjects=subjects.modify_section,
    ),
    CheckSpec(
        "CS501",
        "source",
        "preferred-form",
        "no object code without its preferred form (pyc, binaries, minified or obfuscated code)",
        "corresponding-source",
        "OSD §2: the preferred form for modification; obfuscated or intermediate forms are "
        "not allowed",
        "commit the source (and its build recipe), or list a reviewed exception under "
        "`source-form.allow`",
        why=(
            "The Open Source Definition §2: the source must be the preferred form for making "
            "modifications; obfuscated code, compiled Python without its source and binaries "
            "without a build recipe are not."
        ),
        run="source_form:check_preferred_form",
        subjects=subjects.source_form,
    ),
    CheckSpec(
        "CS502",
        "source",
        "architecture",
        "the declared architecture code exists and is source",
        "corresponding-source",
        "MOF Model architecture; OSAID 1.0 Code (model architecture)",
        "declare `architecture:` with the files that define the model, and commit them",
        why=(
            "The Model Openness Framework and the OSAID list the model architecture as code "
            "that must be released; without it the weights cannot be interpreted."
        ),
        run="source_form:check_architecture",
        subjects=subjects.architecture,
    ),
    CheckSpec(
        "CS601",
        "training",
        "code",
        "the training code exists",
        "open-source-ai",
        _OSAID_CODE,
        "declare `training.code` and commit those files",
        why=("OSAID 1.0: the complete source code used to train the system."),
        run="training:check_training_code",
        subjects=subjects.training_section,
    ),
    CheckSpec(
        "CS602",
        "training",
        "run",
        "the training command succeeds and itself writes valid weights under `{outdir}` (new or "
        "changed content, not a link)",
        "open-source-ai",
        _OSAID_CODE + ", including arguments and settings used",
        "make `training.command` (a smoke-sized run) succeed and write `training.produces`",
        after=("CS202",),
        why=(
            "Training code that does not run is not the code that trained the model. A smoke-"
            "sized run proves the scripts and their settings work: `training.produces` must "
            "lie under `{outdir}` and hold new content written by the command (not the "
            "released file, not a file already there, not a link)."
        ),
        run="training:check_training_run",
        subjects=subjects.training_section,
    ),
    CheckSpec(
        "CS603",
        "training",
        "reproduce",
        "the weights training wrote have the released weights' schema (and values when asked); "
        "the released file, or a copy there before the step, never counts",
        "open-source-ai",
        "OSAID 1.0: a skilled person can build a substantially equivalent system",
        "make the training code build the released architecture (same tensor names, dtypes, "
        "shapes)",
        after=("CS101", "CS103", "CS602"),
        why=(
            "OSAID 1.0 asks for enough to build a substantially equivalent system: the "
            "training code must produce the released architecture (and, when declared, the "
            "released values). Only weights the training command wrote (CS602) are compared: "
            "the released file, or a copy placed before the step, never counts."
        ),
        run="training:check_reproduce",
        subjects=subjects.training_section,
    ),
    CheckSpec(
        "CS701",
        "data",
        "sources",
        "local data sources exist and match their digests; remote ones are fully declared",
        "open-source-ai",
        _OSAID_DATA + "; a listing of the training data and where to obtain it",
        "commit the data or declare `url`, `sha256` and `license` for each remote source",
        why=(
            "OSAID 1.0 Data Information: a listing of the training data and where to obtain "
            "it, with digests so the exact data can be verified."
        ),
        run="data:check_sources",
        subjects=subjects.data_sources,
    ),
    CheckSpec(
        "CS702",
        "data",
        "card",
        "the data card covers provenance, scope, selection, labelling and processing",
        "open-source-ai",
        _OSAID_DATA,
        "add the missing sections to the data card",
        why=(
            "OSAID 1.0 Data Information: provenance, scope and characteristics, how the data "
            "was obtained and selected, labelling procedures, and processing and filtering "
            "methods."
        ),
        run="data:check_card",
        subjects=subjects.data_card,
    ),
    CheckSpec(
        "CS703",
        "data",
        "preprocessing",
        "the preprocessing command succeeds and itself creates or changes every output it declares",
        "open-source-ai",
        "OSAID 1.0 Code: the code used for processing and filtering data",
        "declare `data.preprocessing` and make its command write its `produces`",
        after=("CS202",),
        why=(
            "OSAID 1.0 Code includes the code used for processing and filtering data; its "
            "`produces` outputs must be created or changed by the command (as for CS301)."
        ),
        run="data:check_preprocessing",
        subjects=subjects.data_preprocessing,
    ),
    CheckSpec(
        "CS801",
        "evaluation",
        "run",
        "evaluation code and data exist and the command succeeds (each `expect.files` entry "
        "created or changed by it); or, with `from-training`, the training run printed its "
        "evaluation",
        "open-source-ai",
        "OSAID 1.0 Code (validation and testing); MOF Evaluation code and data",
        "declare `evaluation` with its code, data and command, and make the command succeed",
        after=("CS101", "CS202"),
        why=(
            "OSAID 1.0 Code includes validation and testing; MOF class II asks for evaluation"
            " code and data. Many repositories evaluate inside the training script: "
            "`evaluation: {from-training: true, expect: {stdout: <pattern>}}` is then verified "
            "on the training run CS602 makes (never a run that did not happen), quoting the "
            "matched line."
        ),
        run="data:check_evaluation",
        subjects=subjects.evaluation_section,
    ),
    CheckSpec(
        "CS901",
        "licenses",
        "declared",
        "every present component resolves to a licence (manifest, else the model card's "
        "front matter); its text ships (a warning for weights alone)",
        "corresponding-source",
        "MOF: every component must carry a licence; unlicensed is never open",
        "declare `licenses.distribution` (or per kind) and commit a LICENSE file",
        why=(
            "Every component needs a licence: unlicensed is never open, and the MOF resolves "
            "licences per component, then per kind, then for the whole distribution; a "
            "manifest that declares none falls back to the model card's front-matter "
            "`license:` (Hugging Face repositories declare it there). The licence text must "
            "ship from `corresponding-source` up (GPLv3 §4, Apache-2.0 §4(a)); for the "
            "weights at `open-weights` a known SPDX id without its text passes with a "
            "warning."
        ),
        run="licenses:check_declared",
        subjects=subjects.licence_kinds,
    ),
    CheckSpec(
        "CS902",
        "licenses",
        "open",
        "the licences are open (OSI-approved, FSF-free, an open-data licence, or a "
        "`LicenseRef-` the manifest declares open with its text); weights may use an OSI or "
        "open-data licence",
        "open-source-ai",
        "OSAID 1.0: OSI-approved terms for code, parameters and data information",
        "release under an open licence (code: e.g. MIT/Apache-2.0; weights and data: e.g. "
        "CC-BY-4.0/CDLA-Permissive-2.0)",
        why=(
            "OSAID 1.0 requires OSI-approved terms; the MOF requires open licences and "
            "prefers type-appropriate ones (code licences for code, open-data licences for "
            "data; for weights an open-data or an OSI-approved licence, which the MOF accepts"
            " for parameters). Ids come from the complete SPDX list; a licence off that list "
            "is declared under `licenses.refs` with its text and openness, and is reported as "
            "'declared open by the manifest', never as OSI-approved."
        ),
        run="licenses:check_open",
        subjects=subjects.declared_licence_kinds,
    ),
    CheckSpec(
        "CS903",
        "docs",
        "model-card",
        "the model card exists and its front-matter licence equals the distribution or the "
        "weights licence",
        None,
        "MOF Model card (class III)",
        "add a model card (README.md) and make its `license:` match the manifest",
        why=(
            "The model card documents what the model is for and its limits; its licence must "
            "agree with the manifest (the distribution licence or the weights licence) or "
            "users get two answers."
        ),
        run="licenses:check_model_card",
        subjects=subjects.docs_section,
    ),
)

# Components in report order, and the level from which each must be declared (None: optional).
COMPONENTS: tuple[tuple[str, Level | None], ...] = (
    ("weights", "open-weights"),
    ("licenses", "open-weights"),
    ("install", "corresponding-source"),
    ("generate", None),
    ("run", "corresponding-source"),
    ("source", "corresponding-source"),
    ("modify", None),
    ("training", "open-source-ai"),
    ("data", "open-source-ai"),
    ("evaluation", "open-source-ai"),
    ("checkpoints", None),
    ("docs", None),
)


class CheckRegistry:
    """The checks of one run: the built-in ones, then those other plugins added.

    Immutable; ``extended`` validates what a plugin adds and returns a new registry.
    """

    def __init__(self, specs: Iterable[CheckSpec]) -> None:
        self.specs: tuple[CheckSpec, ...] = tuple(specs)
        self.by_id: dict[str, CheckSpec] = {spec.id: spec for spec in self.specs}

    def __iter__(self) -> Iterator[CheckSpec]:
        return iter(self.specs)

    def __contains__(self, check_id: object) -> bool:
        return check_id in self.by_id

    def __getitem__(self, check_id: str) -> CheckSpec:
        return self.by_id[check_id]

    @property
    def components(self) -> tuple[str, ...]:
        """Components in report order: the built-in ones, then new ones in order of addition."""
        order = ["manifest", *(name for name, _ in COMPONENTS)]
        for spec in self.specs:
            if spec.component not in order:
                order.append(spec.component)
        return tuple(order)

    def extended(self, specs: Iterable[CheckSpec], source: str) -> CheckRegistry:
        """This registry plus ``specs`` from ``source`` (a plugin's name, for errors)."""
        added: list[CheckSpec] = []
        for spec in specs:
            problem = _custom_spec_problem(spec, self.by_id, added)
            if problem:
                name = repr(spec.id) if isinstance(spec, CheckSpec) else "?"
                raise RegistryError(f"{source}: check {name} cannot be added: {problem}")
            added.append(spec)
        return CheckRegistry((*self.specs, *added))


def _custom_spec_problem(
    spec: CheckSpec, known: dict[str, CheckSpec], added: list[CheckSpec]
) -> str:
    if not isinstance(spec, CheckSpec):
        return f"a pytest_corrsource_checks hook returned {type(spec).__name__}, not a CheckSpec"
    if not CUSTOM_ID.fullmatch(spec.id):
        return (
            "ids of added checks are X, up to eight capitals and three digits (e.g. X101, "
            "XACME101); CS ids belong to pytest-corrsource"
        )
    if spec.id in known or any(other.id == spec.id for other in added):
        return "another check already has this id"
    if spec.level is not None and spec.level not in LEVELS:
        return f"level must be one of {', '.join(LEVELS)} or None, not {spec.level!r}"
    if not _CHECK_NAME.fullmatch(spec.check) or not _CHECK_NAME.fullmatch(spec.component):
        return "component and check names are lower-case words joined by '-'"
    if not callable(spec.run):
        return "`run` must be the check function itself"
    for check_id in spec.after:
        if check_id not in known and all(other.id != check_id for other in added):
            return f"`after` names {check_id}, which is not a known check"
    return ""


BUILTIN = CheckRegistry(CHECKS)
#: Built-in checks by id (what the manifest's `waive:` and `corrsource explain` know offline).
BY_ID: dict[str, CheckSpec] = BUILTIN.by_id


def markdown_table() -> str:
    """The README's check table, generated from this catalogue (a test keeps them equal)."""
    rows = [
        "| id | node | verifies | required from | blocked by |",
        "|---|---|---|---|---|",
    ]
    for spec in CHECKS:
        level = f"`{spec.level}`" if spec.level else "informational"
        after = ", ".join(spec.after) or "-"
        title = spec.title.replace("|", "\\|")
        rows.append(
            f"| {spec.id} | `{spec.component}::{spec.check}` | {title} | {level} | {after} |"
        )
    return "\n".join(rows) + "\n"


# A manifest fragment per component, for `corrsource explain`.
SNIPPETS: dict[str, str] = {
    "weights": "weights:\n  - path: weights/model.safetensors\n    sha256: <64 hex digits>\n",
    "install": "install:\n  requirements: [requirements.txt]\n  commands:\n"
    "    - python -m pip install -r requirements.txt\n",
    "generate": "generate:\n"
    "  - command: python export.py --weights {weights} --out {outdir}/m.npz\n"
    '    produces: ["{outdir}/m.npz"]\n',
    "run": 'run:\n  command: python generate.py --weights {weights} --prompt "The "\n'
    '  timeout: 120\n  deterministic: true\n  expect: {exit-code: 0, stdout: "(?s).{40,}"}\n',
    "modify": "modify:\n"
    "  command: python finetune.py --weights {weights} --out {outdir}/ft.safetensors\n"
    '  produces: ["{outdir}/ft.safetensors"]\n',
    "source": "architecture: [model.py]\nsource-form:\n  allow: [vendor/reviewed-blob.py]\n",
    "training": "training:\n  code: [train.py, model.py]\n"
    "  command: python train.py --steps 3 --out {outdir}/model.safetensors\n"
    '  produces: "{outdir}/model.safetensors"\n  reproduce: schema\n',
    "data": "data:\n  sources:\n    - path: data/corpus.txt\n      sha256: <64 hex digits>\n"
    "      license: CC0-1.0\n  preprocessing:\n    code: [prepare.py]\n"
    "    command: python prepare.py --out {outdir}/train.bin\n"
    '    produces: ["{outdir}/train.bin"]\n'
    "  card: DATA_CARD.md\n",
    "evaluation": "evaluation:\n  code: [eval.py]\n  data: [data/val.txt]\n"
    '  command: python eval.py --weights {weights}\n  expect: {stdout: "loss: ([0-9.]+)"}\n',
    "licenses": "licenses:\n  distribution: MIT\n  code: MIT\n"
    "  weights: CC-BY-4.0\n  data: CC0-1.0\n",
    "docs": "docs:\n  model-card: README.md\n  technical-report: REPORT.md\n",
}
