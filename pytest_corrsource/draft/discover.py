"""What is in a model repository: weights by magic bytes (with their digests), dependency
specs, the model definition, the model card, licence texts, data and docs; with the README's
commands and DVC/MLflow pipelines, :func:`build_draft` assembles the whole draft. Wherever it
had to guess it says so with a ``TODO`` note."""

from __future__ import annotations

import itertools
import json
import posixpath
import re
import shlex
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from pytest_corrsource.draft import sources as src
from pytest_corrsource.draft.commands import find_steps
from pytest_corrsource.draft.files import (
    CODE_EXTS,
    DATA_LICENSE_TODO,
    dvc_tracked_note,
    hash_file,
    in_data,
    listing,
    on_disk,
)
from pytest_corrsource.draft.findings import Draft, DraftSource, DraftStep
from pytest_corrsource.draft.pipelines import import_dvc, import_mlflow
from pytest_corrsource.draft.weights import find_weights

__all__ = ["build_draft"]

_MAX_DATA_SOURCES = 100
_MAX_SCRIPTS_READ = 50
#: A class that is a network: `class GPT(nn.Module)`, `class M(tf.keras.Model)` (not a
#: Django `models.Model`).
_DEFINES_MODULE = re.compile(r"^class\s+\w+\((?:[\w.]*\.)?(?:Module|keras\.Model)\)", re.MULTILINE)
#: Extensions of data files outside the data folders (mlflow-example's wine-quality.csv).
_DATA_EXTS = frozenset({".csv", ".tsv", ".parquet", ".jsonl", ".arrow", ".feather"})
#: Extensions a data file named by the training command or code may have (makemore's names.txt).
#: Not .json/.yaml (configurations more often than data) nor .bin (weights, tokenizers).
_NAMED_DATA_EXTS = _DATA_EXTS | {".txt", ".xml", ".npy", ".npz"}
_NOT_DATA_NAMES = re.compile(
    r"^(license|licence|copying|readme|requirements|changelog|changes|notice|authors|"
    r"contributing|citation|code_of_conduct|security)",
    re.IGNORECASE,
)


# --- install ----------------------------------------------------------------------------------


def _find_install(draft: Draft, files: list[str], readme_cmds: list[src.Command]) -> None:
    root = draft.root
    top = {f for f in files if "/" not in f}
    reqs = sorted(f for f in top if re.fullmatch(r"requirements[\w.-]*\.(txt|in)", f))
    reqs += sorted(f for f in files if re.fullmatch(r"requirements/[\w.-]+\.txt", f))
    main_reqs = [r for r in reqs if r in ("requirements.txt", "requirements/base.txt")] or [
        r for r in reqs if not re.search(r"dev|test|doc|lint", r)
    ][:1]
    for req in reqs:
        draft.requirements.append(req)
        if req in main_reqs:
            draft.install_commands.append(f"python -m pip install -r {shlex.quote(req)}")
    extra = [r for r in reqs if r not in main_reqs]
    if extra:
        draft.install_notes.append(
            f"also found {', '.join(extra)} (not installed: add commands if the model needs them)"
        )
    for name in ("pyproject.toml", "setup.py", "setup.cfg"):
        if name not in top:
            continue
        text = src.read_text(root / name) or ""
        if name == "pyproject.toml" and not re.search(
            r"^\[(project|build-system|tool\.poetry)\]", text, re.M
        ):
            continue  # tool configuration only
        draft.requirements.append(name)
        if "python -m pip install ." not in draft.install_commands:
            draft.install_commands.append("python -m pip install .")
    if "uv.lock" in top:
        draft.requirements.append("uv.lock")
        draft.install_notes.append(
            "uv.lock pins the environment; `uv sync` reproduces it exactly if uv is available"
        )
    for name in ("environment.yml", "environment.yaml", "conda.yaml", "conda.yml"):
        if name in top:
            draft.requirements.append(name)
            env = src.read_conda_env(root / name, name)
            draft.install_commands += [c for c in env.commands if c not in draft.install_commands]
            draft.install_python = draft.install_python or env.python
            draft.install_notes += env.notes
    pip_lines = [c for c in readme_cmds if c.role == "pip"]
    if pip_lines:
        if draft.install_commands:
            for cmd in pip_lines[:3]:
                draft.install_notes.append(f"{cmd.origin} also says: {cmd.command}")
        else:
            for cmd in pip_lines:
                draft.install_commands.append(cmd.command)
                for named in _requirement_files(cmd.command, set(files)):
                    if named not in draft.requirements:
                        draft.requirements.append(named)
            draft.install_notes.append(f"commands from {pip_lines[0].origin}")
            if not draft.requirements:
                draft.install_notes.append(
                    "TODO: no dependency specification file: write a requirements.txt "
                    "with pinned versions and install it here"
                )


def _requirement_files(command: str, repo_files: set[str]) -> list[str]:
    """The repository's files a pip command installs from (``-r src/requirements.txt``)."""
    try:
        tokens = shlex.split(command)
    except ValueError:
        return []
    named: list[str] = []
    for option, value in itertools.pairwise(tokens):
        if option in ("-r", "--requirement", "-c", "--constraint"):
            named.append(value.removeprefix("./"))
    for token in tokens:
        for prefix in ("--requirement=", "-r"):
            if token.startswith(prefix) and len(token) > len(prefix) and token != "-r":
                named.append(token[len(prefix) :].removeprefix("./"))
    return [n for n in named if n in repo_files]


# --- architecture -----------------------------------------------------------------------------


def _find_architecture(draft: Draft, files: list[str]) -> None:
    py = [f for f in files if f.endswith(".py") and not re.search(r"(^|/)tests?(/|_)", f)]
    exact = [f for f in py if PurePosixPath(f).name == "model.py"]
    modeling = [f for f in py if PurePosixPath(f).name.startswith("modeling_")]
    loose = [f for f in py if "model" in PurePosixPath(f).stem.lower() and src.role_of(f) is None]
    for group in (exact, modeling, loose):
        if group:
            draft.architecture = sorted(group, key=lambda p: (p.count("/"), p))[:3]
            break
    if draft.architecture:
        return
    shallow = sorted((f for f in py if f.count("/") <= 1), key=lambda p: (p.count("/"), p))
    defining = [
        f
        for f in shallow[:_MAX_SCRIPTS_READ]
        if _DEFINES_MODULE.search(src.read_text(draft.root / f) or "")
    ]
    if defining:
        draft.architecture = defining[:3]
        draft.architecture_notes.append(
            f"{', '.join(defining[:3])}: defines the network (a class derived from nn.Module "
            "or a Keras Model)"
        )
        return
    draft.architecture_notes.append(
        "TODO: no model definition found (model.py, modeling_*.py): list the source files "
        "that define the architecture"
    )
    config = src.read_text(draft.root / "config.json") if "config.json" in files else None
    if config:
        try:
            archs = json.loads(config).get("architectures")
        except (ValueError, AttributeError, RecursionError):  # json recurses on deep nesting
            archs = None
        if isinstance(archs, list) and archs:
            names = ", ".join(str(a) for a in archs)
            draft.architecture_notes.append(
                f"config.json names {names}: if it comes from a library (transformers), its "
                "source is that library's"
            )


# --- licences, card, data, docs ---------------------------------------------------------------


def _find_card(draft: Draft, files: list[str]) -> src.Card | None:
    top = {f.lower(): f for f in files if "/" not in f}
    candidates = [top[n] for n in ("readme.md", "model_card.md", "modelcard.md") if n in top]
    if not candidates:
        draft.docs_notes.append("TODO: no model card (README.md): write one")
        return None
    cards = [src.read_card(draft.root, c) for c in candidates]
    card = next((c for c in cards if c.front), cards[0])
    draft.docs["model-card"] = card.path
    return card


def _card_license_ref(draft: Draft, front: dict[str, object], texts: list[str]) -> str | None:
    """A model card's licence off the SPDX list (Hugging Face: `license: other`, with
    `license_name` and `license_link`) drafted as `licenses.refs`: its text is the linked file
    when that ships, else the one licence file. Drafted **not open**: only its authors can say
    otherwise, and a TODO asks them to (CS001 fails until then)."""
    name = front.get("license_name")
    if not isinstance(name, str) or not name.strip():
        return None
    slug = re.sub(r"[^A-Za-z0-9.-]+", "-", name.strip()).strip("-.")[:60]
    if not slug:
        return None
    link = front.get("license_link")
    text = None
    if isinstance(link, str) and not re.match(r"[a-z][a-z0-9+.-]*:", link):
        candidate = posixpath.normpath(link.removeprefix("./"))
        inside = not candidate.startswith(("../", "/")) and candidate not in ("..", ".")
        path = draft.root / candidate
        # A link out of the repository, or a symbolic link, is never the licence's text.
        if inside and (candidate in texts or (path.is_file() and not path.is_symlink())):
            text = candidate
    if text is None and len(texts) == 1:
        text = texts[0]
    if text is None:
        return None
    ref = f"LicenseRef-{slug}"
    draft.license_refs[ref] = (text, name.strip())
    draft.license_notes.append(
        f"TODO: `{ref}` ({name.strip()}, text {text}) is drafted as not open; set `open: true` "
        "only if its terms are open (no use restrictions), then delete this note"
    )
    return ref


def _find_licenses(draft: Draft, files: list[str], card: src.Card | None) -> None:
    from pytest_corrsource.checks.licenses import license_files
    from pytest_corrsource.licensing import LicenseError, normalize

    front = card.front if card else {}
    card_spdx: str | None = None
    raw = front.get("license")
    if isinstance(raw, list):
        raw = " OR ".join(str(x) for x in raw)
    if raw not in (None, ""):
        try:
            card_spdx = normalize(str(raw))
        except LicenseError:
            card_spdx = None
        if card_spdx is None:
            label = front.get("license_name") or front.get("license_link") or raw
            draft.license_notes.append(
                f"TODO: the model card says `license: {raw}` ({label}): not an SPDX licence; "
                "declare the SPDX id or LicenseRef-…"
            )
    texts = license_files(draft.root)
    if raw not in (None, "") and card_spdx is None:
        ref = _card_license_ref(draft, front, texts)
        if ref is not None:
            card_spdx = ref
    sniffed: dict[str, str] = {}
    for rel in texts:
        spdx = src.sniff_license_text(draft.root / rel)
        if spdx:
            sniffed[rel] = spdx
            if spdx.startswith(("GPL", "LGPL", "AGPL")):
                draft.license_notes.append(
                    f"TODO: {rel} reads like {spdx}; use {spdx.replace('-only', '-or-later')} "
                    "if the notices say `or any later version`"
                )
    by_kind: dict[str, str] = {}
    general: list[str] = []
    for rel, spdx in sniffed.items():
        lower = rel.lower()
        if "weight" in lower or "model" in lower:
            by_kind.setdefault("weights", spdx)
        elif "data" in lower:
            by_kind.setdefault("data", spdx)
        else:
            general.append(spdx)
    if card_spdx:
        draft.licenses["distribution"] = card_spdx
        draft.license_notes.insert(0, f"distribution licence from {card.path if card else ''}")
        for spdx in general:
            if spdx != card_spdx:
                by_kind.setdefault("code", spdx)
                draft.license_notes.append(
                    f"TODO: the licence file reads like {spdx} but the model card says "
                    f"{card_spdx}: `code: {spdx}` is a guess; check which covers what"
                )
                break
    elif general:
        draft.licenses["distribution"] = general[0]
        draft.license_notes.insert(0, "distribution licence recognised from the licence text")
    for rel in files:
        name = PurePosixPath(rel).name.lower()
        if in_data(rel) and name.startswith(("license", "licence", "copying")):
            spdx = src.sniff_license_text(draft.root / rel)
            if spdx and "data" not in by_kind:
                by_kind["data"] = spdx
                draft.license_notes.append(f"data licence recognised from {rel}")
    draft.licenses.update(by_kind)
    if not texts:
        draft.license_notes.append("TODO: no licence file (LICENSE): add the licence text")
    elif not draft.licenses:
        draft.license_notes.append(
            f"TODO: {', '.join(texts)} found but not recognised: declare its SPDX id"
        )
    for key in ("datasets", "base_model"):
        value = front.get(key)
        if value:
            shown = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
            draft.license_notes.append(
                f"the model card names {key}: {shown} (check their licences and terms)"
            )


def _find_data(draft: Draft, files: list[str], log: Callable[[str], None]) -> None:
    declared = {w.path for w in (*draft.weights, *draft.checkpoints)}
    for w in draft.weights:
        folder = PurePosixPath(w.path).parent
        declared |= {str(folder / s) if str(folder) != "." else s for s in w.shards}
    known = {s.path for s in draft.sources}
    lower = {f.lower(): f for f in files}
    for name in ("data_card.md", "datacard.md", "datasheet.md", "data/readme.md",
                 "datasets/readme.md", "data.md"):  # fmt: skip
        if name in lower:
            draft.data_card = lower[name]
            break
    candidates: list[str] = []
    for rel in files:
        posix = PurePosixPath(rel)
        if rel in declared or rel in known or rel == draft.data_card:
            continue
        if not in_data(rel) and not _is_data_file(draft, rel):
            continue
        if posix.suffix.lower() in CODE_EXTS or posix.name.startswith("."):
            continue
        if posix.name.lower() in (
            "readme.md",
            "readme",
            "readme.txt",
        ) or posix.name.lower().startswith(("license", "licence", "copying")):
            continue
        if posix.suffix == ".dvc":
            target = rel[: -len(".dvc")]
            if target not in files and target not in known:
                if on_disk(draft.root, target):
                    source = DraftSource(target, hash_file(draft.root, target, log))
                    source.notes.append(dvc_tracked_note(rel))
                else:
                    source = DraftSource(target)
                    source.notes.append(
                        f'TODO: tracked by DVC, not in the repository: dvc pull "{rel}"'
                    )
                source.notes.append(DATA_LICENSE_TODO)
                draft.sources.append(source)
            continue
        candidates.append(rel)
    for rel in candidates[:_MAX_DATA_SOURCES]:
        from pytest_corrsource.formats.pointers import detect_pointer

        pointer = detect_pointer(draft.root / rel, draft.root)
        if pointer is not None:
            source = DraftSource(rel)
            if pointer.oid and pointer.oid.startswith("sha256:"):
                source.sha256 = pointer.oid.removeprefix("sha256:")
            source.notes.append(f"TODO: this is a {pointer.kind} pointer: {pointer.fetch_hint}")
        else:
            source = DraftSource(rel, hash_file(draft.root, rel, log))
        source.notes.append(DATA_LICENSE_TODO)
        draft.sources.append(source)
    if len(candidates) > _MAX_DATA_SOURCES:
        draft.data_notes.append(
            f"TODO: {len(candidates) - _MAX_DATA_SOURCES} more data files not listed: declare "
            "an archive of them, or list them"
        )


def _is_data_file(draft: Draft, rel: str) -> bool:
    """A data file outside the data folders, by its format (a CSV at the top), not inside an
    MLflow model folder (whose files belong to the model)."""
    if PurePosixPath(rel).suffix.lower() not in _DATA_EXTS:
        return False
    return not any(rel.startswith(folder + "/") for folder in draft.mlflow_models if folder)


def _sources_read_by_training(draft: Draft, log: Callable[[str], None]) -> None:
    """Data files the training command or the training code names (makemore's
    ``-i names.txt``; mlflow-example's train.py reading ``"wine-quality.csv"``) are sources;
    when no preprocessing step exists, the training reads them as they are."""
    training = draft.training
    if training is None:
        return
    declared = {w.path for w in (*draft.weights, *draft.checkpoints)}
    candidates = sorted(
        f
        for f in draft.files
        if PurePosixPath(f).suffix.lower() in _NAMED_DATA_EXTS
        and not _NOT_DATA_NAMES.match(PurePosixPath(f).name)
        and f not in declared
        and not any(f.startswith(folder + "/") for folder in draft.mlflow_models if folder)
    )
    named: dict[str, str] = {}  # data file -> what names it
    command = training.command
    if command.startswith("sh -c "):
        command = command[len("sh -c ") :]
    try:
        tokens = shlex.split(command)
    except ValueError:
        tokens = command.split()
    for token in tokens[1:]:
        for value in (token, token.partition("=")[2]):
            clean = value.removeprefix("./")
            if clean in candidates:
                named.setdefault(clean, "the training command")
    for script in training.code[:_MAX_SCRIPTS_READ]:
        if not script.endswith(".py"):
            continue
        text = src.read_text(draft.root / script) or ""
        folder = str(PurePosixPath(script).parent)
        for rel in candidates:
            name = PurePosixPath(rel).name
            local = str(PurePosixPath(rel).parent) == folder
            if any(f"{q}{rel}{q}" in text or (local and f"{q}{name}{q}" in text) for q in "'\""):
                named.setdefault(rel, script)
    for rel, where in named.items():
        note = f"{where} names {rel}"
        source = next((s for s in draft.sources if s.path == rel), None)
        if source is None:
            source = DraftSource(rel, hash_file(draft.root, rel, log))
            source.notes.append(DATA_LICENSE_TODO)
            draft.sources.append(source)
        source.notes.insert(0, note)
    if named and draft.preprocessing is None:
        rel, where = next(iter(named.items()))
        draft.no_preprocessing = f"the training reads {rel} as it is ({where} names it)"
        draft.no_preprocessing_notes.append(
            "no preprocessing step was found and the training names its data: check that it "
            "needs none (CS703 verifies the training names a declared source)"
        )


def _find_docs(draft: Draft, files: list[str]) -> None:
    lower = {f.lower(): f for f in files if "/" not in f}
    for key, names in (
        ("paper", ("paper.pdf",)),
        ("technical-report", ("report.md", "technical_report.md", "report.pdf")),
        ("results", ("results.md",)),
    ):
        for name in names:
            if name in lower:
                draft.docs[key] = lower[name]
                break


# --- orchestration ----------------------------------------------------------------------------


def build_draft(root: Path, log: Callable[[str], None] | None = None) -> Draft:
    """Inspect ``root`` and return the draft (hashing the weights and data files)."""
    emit = log or (lambda _text: None)
    draft = Draft(root=root)
    files = listing(root)
    file_set = set(files)
    draft.files = file_set
    find_weights(draft, files, emit)
    card = _find_card(draft, files)
    readme_cmds: list[src.Command] = []
    top = {f.lower(): f for f in files if "/" not in f}
    for name in ("readme.md", "readme.rst", "readme"):
        if name in top:
            readme_cmds = src.readme_commands(root / top[name], top[name], file_set)
            break
    _find_install(draft, files, readme_cmds)
    imported: dict[str, DraftStep] = {}
    if "dvc.yaml" in file_set:
        imported.update(import_dvc(draft, files, emit))
    if "MLproject" in file_set:
        for role, step in import_mlflow(draft, files).items():
            imported.setdefault(role, step)
    _find_architecture(draft, files)
    for step in imported.values():
        if step.code:
            step.code += [a for a in draft.architecture if a not in step.code]
    _find_data(draft, files, emit)
    find_steps(draft, files, readme_cmds, imported)
    _sources_read_by_training(draft, emit)
    _find_licenses(draft, files, card)
    if "data" in draft.licenses:
        # A data licence was recognised (data/LICENSE): `licenses.data` covers every source
        # without its own, so their licence is no longer a TODO.
        for source in draft.sources:
            source.notes = [n for n in source.notes if n != DATA_LICENSE_TODO]
    _find_docs(draft, files)
    front = card.front if card else {}
    model_name = front.get("model_name")
    index = front.get("model-index")
    if model_name:
        draft.name, draft.name_note = str(model_name), f"model_name in {card.path if card else ''}"
    elif isinstance(index, list) and index and isinstance(index[0], dict) and index[0].get("name"):
        draft.name, draft.name_note = str(index[0]["name"]), "model-index in the model card"
    elif not draft.name:
        draft.name = root.resolve().name or "model"
        draft.name_note = "the folder's name"
    if not draft.weights:
        draft.weights_notes.append(
            "TODO: no weights file found (safetensors, GGUF, npz, torch checkpoints): "
            "replace this placeholder with the path of the released weights"
        )
    if not draft.install_commands and not draft.requirements:
        draft.install_notes.append(
            "TODO: no dependency specification found: add a requirements.txt (pinned) and "
            "the commands that install it, e.g."
        )
        draft.install_notes.append(
            "install: {requirements: [requirements.txt], commands: "
            "[python -m pip install -r requirements.txt]}"
        )
    elif not draft.install_commands:
        draft.install_notes.append("TODO: no install command could be derived: add one")
    return draft
