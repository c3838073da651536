"""``corrsource init [PATH]``: inspect a model repository and draft its manifest.

The draft is built from what the repository shows: weights by magic bytes (with their
digests), dependency specs, scripts by name, README commands, the model card's front matter,
licence texts, DVC pipelines and MLflow projects. Wherever it had to guess it says so with a
``# TODO`` comment. It is written as text (comments survive), checked with ``load_manifest``
and the JSON Schema before it is written, and written atomically.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pytest_corrsource import init_sources as src
from pytest_corrsource.errors import CorrsourceError
from pytest_corrsource.manifest import MANIFEST_NAME, load_manifest
from pytest_corrsource.schema import SCHEMA_URL

__all__ = ["InitError", "build_draft", "render", "run_init"]

_SCHEMA_FILE = Path(__file__).parent / "schema" / "corresponding-source.schema.json"

#: Extensions that name model weights (pickle-based ones are scanned by CS105).
PICKLE_EXTS = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib"})
WEIGHT_EXTS = frozenset(
    {".safetensors", ".gguf", ".npz", ".npy", ".onnx", ".h5", ".keras", ".tflite"} | PICKLE_EXTS
)
_CODE_EXTS = frozenset({".py", ".sh", ".ipynb", ".ps1", ".bat", ".js", ".r", ".jl", ".c", ".cpp"})
_DATA_DIRS = ("data", "datasets")
_SKIP_PARTS = frozenset(
    {".git", ".hg", ".svn", ".venv", "venv", "env", ".env", "node_modules", "__pycache__",
     ".pytest_cache", ".tox", ".nox", ".mypy_cache", ".ruff_cache", "site-packages", ".dvc",
     ".ipynb_checkpoints", "wandb", "mlruns"}
)  # fmt: skip
_TRAINING_STATE = re.compile(r"^(optimizer|scheduler|rng_state|training_args|trainer_state)")
_CHECKPOINT_DIR = re.compile(r"^(checkpoints?|ckpts?|checkpoint-\d+)$")
_FORMAT_ORDER = ("safetensors-index", "safetensors", "gguf", "npz", "npy", "torch-zip", "pickle")
_MAX_DATA_SOURCES = 100
_UNSAFE = "pickle-based: unsafe format; convert to safetensors"


class InitError(CorrsourceError):
    """The draft could not be built (a bug when it is about the draft's own validity)."""


# --- the draft --------------------------------------------------------------------------------


@dataclass
class Weights:
    path: str
    format: str | None = None
    sha256: str | None = None
    shards: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    inline: str | None = None  # comment after `format:`
    pointer: bool = False


@dataclass
class Step:
    command: str
    code: list[str] = field(default_factory=list)
    produces: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)  # evaluation data named by the command


@dataclass
class Source:
    path: str
    sha256: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Draft:
    root: Path
    files: set[str] = field(default_factory=set)
    name: str = ""
    name_note: str = ""
    licenses: dict[str, str] = field(default_factory=dict)
    license_notes: list[str] = field(default_factory=list)
    weights: list[Weights] = field(default_factory=list)
    weights_notes: list[str] = field(default_factory=list)
    checkpoints: list[Weights] = field(default_factory=list)
    architecture: list[str] = field(default_factory=list)
    architecture_notes: list[str] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)
    install_commands: list[str] = field(default_factory=list)
    install_python: str | None = None
    install_notes: list[str] = field(default_factory=list)
    generate: list[Step] = field(default_factory=list)
    run: Step | None = None
    run_notes: list[str] = field(default_factory=list)
    modify: Step | None = None
    training: Step | None = None
    training_notes: list[str] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    preprocessing: Step | None = None
    data_card: str | None = None
    data_notes: list[str] = field(default_factory=list)
    evaluation: Step | None = None
    docs: dict[str, str] = field(default_factory=dict)
    docs_notes: list[str] = field(default_factory=list)


# --- discovery --------------------------------------------------------------------------------


def _listing(root: Path) -> list[str]:
    """Repository files (git-aware), without tool folders, virtualenvs, or escaping symlinks."""
    from pytest_corrsource.checks.source_form import repository_files

    venvs: set[str] = set()
    files: list[str] = []
    real_root = root.resolve()
    for rel in repository_files(root):
        posix = PurePosixPath(rel.replace(os.sep, "/"))
        parts = posix.parts
        if any(p in _SKIP_PARTS or p.endswith(".egg-info") for p in parts[:-1]):
            continue
        if posix.name == "pyvenv.cfg":
            venvs.add(str(posix.parent))
            continue
        path = root / posix
        try:
            if not path.resolve().is_relative_to(real_root):
                continue
        except (OSError, RuntimeError):
            continue
        files.append(str(posix))
    if venvs:
        files = [f for f in files if not any(f.startswith(v + "/") for v in venvs)]
    return files


#: The note on each data source until a licence for it is known.
_DATA_LICENSE_TODO = "TODO: license of this data (SPDX id)"


def _in_data(rel: str) -> bool:
    return PurePosixPath(rel).parts[0] in _DATA_DIRS and "/" in rel


def _human(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover


def _hash(root: Path, rel: str, log: Callable[[str], None]) -> str:
    from pytest_corrsource.hashing import sha256_file

    path = root / rel
    size = path.stat().st_size
    log(f"hashing {rel} ({_human(size)}) … ")
    started = time.perf_counter()
    digest = sha256_file(path)
    elapsed = max(time.perf_counter() - started, 1e-6)
    log(f"{_human(size / elapsed)}/s\n")
    return digest


def _classify_weights(root: Path, rel: str) -> tuple[str | None, Weights | None]:
    """("weights", entry) for a weights file, ("pointer", entry) for a pointer to one,
    (None, None) otherwise."""
    from pytest_corrsource.formats import FormatError
    from pytest_corrsource.formats.detect import detect_format
    from pytest_corrsource.formats.pointers import detect_pointer

    path = root / rel
    ext = PurePosixPath(rel).suffix.lower()
    in_data = _in_data(rel)
    pointer = detect_pointer(path, root) if ext in WEIGHT_EXTS else None
    if pointer is not None:
        entry = Weights(rel, pointer=True)
        if pointer.oid and pointer.oid.startswith("sha256:"):
            entry.sha256 = pointer.oid.removeprefix("sha256:")
            entry.notes.append(f"sha256 from the {pointer.kind} pointer (the content's digest)")
        entry.notes.append(f"TODO: this is a {pointer.kind} pointer: {pointer.fetch_hint}")
        return "pointer", entry
    try:
        fmt = detect_format(path)
    except FormatError:
        return None, None
    if fmt in ("safetensors", "gguf", "torch-zip") or (
        fmt == "safetensors-index" and rel.endswith(".index.json")
    ):
        return "weights", Weights(rel, fmt)
    if in_data:
        return None, None  # npy/npz/pickles and raw files in data folders are data
    if fmt in ("npy", "npz"):
        return "weights", Weights(rel, fmt)
    if fmt == "pickle" and (ext in PICKLE_EXTS or ext == ""):
        return "weights", Weights(rel, fmt)
    if ext in WEIGHT_EXTS and ext not in (".npy", ".npz", ".pkl", ".pickle", ".joblib"):
        entry = Weights(rel)
        entry.notes.append(
            "TODO: format not recognised from its bytes (reported as opaque): "
            "is this really weights?"
        )
        return "weights", entry
    return None, None


def _find_weights(draft: Draft, files: list[str], log: Callable[[str], None]) -> None:
    from pytest_corrsource.formats import FormatError
    from pytest_corrsource.formats.shards import read_safetensors_index

    root = draft.root
    found: list[Weights] = []
    file_set = set(files)
    for rel in files:
        _kind, entry = _classify_weights(root, rel)
        if entry is not None:
            found.append(entry)
    # DVC stubs `X.dvc` for weights that were never pulled.
    for rel in files:
        if rel.endswith(".dvc"):
            target = rel[: -len(".dvc")]
            if target not in file_set and PurePosixPath(target).suffix.lower() in WEIGHT_EXTS:
                _kind, entry = _classify_weights(root, target)
                if entry is not None:
                    found.append(entry)
    shard_files: set[str] = set()
    for entry in found:
        if entry.format == "safetensors-index":
            try:
                index = read_safetensors_index(root / entry.path, root)
            except FormatError as exc:
                entry.notes.append(f"TODO: the index cannot be read: {exc}")
                continue
            folder = PurePosixPath(entry.path).parent
            for shard in index.shards:
                rel = str(folder / shard) if str(folder) != "." else shard
                shard_files.add(rel)
                if (root / rel).is_file():
                    entry.shards[shard] = _hash(root, rel, log)
                else:
                    entry.notes.append(f"TODO: shard {shard} is missing")
    found = [e for e in found if e.path not in shard_files]
    for entry in found:
        if entry.format in ("pickle", "torch-zip"):
            entry.inline = _UNSAFE
        if not entry.pointer and (root / entry.path).is_file():
            entry.sha256 = _hash(root, entry.path, log)
    found.sort(key=lambda e: (_rank(e), e.path))
    main = [e for e in found if not _is_checkpoint(e.path)]
    if main:
        draft.checkpoints = [e for e in found if _is_checkpoint(e.path)]
        for entry in draft.checkpoints:
            entry.notes.insert(0, "intermediate checkpoint or training state")
        found = main
    draft.weights = found


def _rank(entry: Weights) -> int:
    order = {fmt: i for i, fmt in enumerate(_FORMAT_ORDER)}
    return order.get(entry.format or "", len(order))


def _is_checkpoint(rel: str) -> bool:
    posix = PurePosixPath(rel)
    return any(_CHECKPOINT_DIR.match(p) for p in posix.parts[:-1]) or bool(
        _TRAINING_STATE.match(posix.name)
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
            draft.install_notes.append(f"commands from {pip_lines[0].origin}")
            if not draft.requirements:
                draft.install_notes.append(
                    "TODO: no dependency specification file: write a requirements.txt "
                    "with pinned versions and install it here"
                )


# --- scripts and commands ---------------------------------------------------------------------


_DEFAULT_COMMANDS = {
    "training": "python {script}",
    "run": "python {script} --weights {{weights}}",
    "evaluation": "python {script} --weights {{weights}}",
    "preprocessing": "python {script}",
    "generate": "python {script} --weights {{weights}} --out {{outdir}}",
    "modify": "python {script} --weights {{weights}} --out {{outdir}}",
}
_DEFAULT_TODO = {
    "training": "TODO: add smoke-sized arguments (a few steps) and write the weights under "
    '{outdir}; then declare `produces: "{outdir}/<file>"`',
    "run": "TODO: check {script}'s real arguments: it must load the weights given as {weights} "
    "and print its output (the run check swaps in modified weights)",
    "evaluation": "TODO: check {script}'s real arguments and the evaluation data it reads",
    "preprocessing": "TODO: check the arguments; write outputs under {outdir} and declare "
    "them in `produces`",
    "generate": "TODO: check {script}'s real arguments; declare what it writes in `produces`",
    "modify": "TODO: check {script}'s real arguments; it should write the modified weights "
    "under {outdir}",
}


def _script_candidates(files: list[str]) -> dict[str, list[str]]:
    by_role: dict[str, list[str]] = {}
    for rel in files:
        posix = PurePosixPath(rel)
        if posix.suffix != ".py":
            continue
        depth = len(posix.parts)
        in_src = depth == 2 and posix.parts[0] in ("src", "scripts", "tools", "bin")
        data_prepare = (
            depth == 3 and posix.parts[0] in _DATA_DIRS and posix.name == "prepare.py"
        ) or (depth == 2 and posix.parts[0] in _DATA_DIRS and src.role_of(rel) is not None)
        if depth != 1 and not in_src and not data_prepare:
            continue
        role = "preprocessing" if data_prepare else src.role_of(rel)
        if role is not None:
            by_role.setdefault(role, []).append(rel)
    for paths in by_role.values():
        paths.sort(key=lambda p: (p.count("/"), len(p), p))
    return by_role


def _step_from_script(role: str, script: str, extra: Iterable[str]) -> Step:
    command = _DEFAULT_COMMANDS[role].format(script=shlex.quote(script))
    step = Step(command, code=[script, *[c for c in extra if c != script]])
    step.notes.append(f"guessed from the file name {script}")
    step.notes.append(_DEFAULT_TODO[role].replace("{script}", script))
    return step


def _step_from_command(cmd: str, origin: str, files: set[str], extra: Iterable[str]) -> Step:
    code = [f for f in src.script_in(cmd, files)]
    code += [c for c in extra if c not in code]
    step = Step(cmd, code=code)
    step.notes.append(f"from {origin}")
    return step


_OUT_OPTIONS = frozenset(
    {"--out", "--output", "-o", "--outdir", "--out-dir", "--out_dir", "--output-dir",
     "--output_dir", "--save", "--save-path", "--save_path", "--output-file", "--output_file"}
)  # fmt: skip
_CONFIG_SUFFIXES = frozenset({".py", ".sh", ".yaml", ".yml", ".json", ".toml", ".cfg", ".ini"})
_SAFE_TOKEN = re.compile(r"[\w@%+=:,./{}\[\]-]+")


def _join(tokens: list[str]) -> str:
    return " ".join(t if _SAFE_TOKEN.fullmatch(t) else shlex.quote(t) for t in tokens)


def _adapt(draft: Draft, role: str, step: Step) -> None:
    """Point a found command at the manifest's placeholders: a declared weights path becomes
    ``{weights}`` (or, written by training, ``{outdir}/<name>``), and the output path of a step
    that declares outputs goes under ``{outdir}`` (then listed in ``produces``)."""
    try:
        tokens = shlex.split(step.command)
    except ValueError:
        return
    if not tokens or tokens[0] == "sh":
        return
    weights = [w.path for w in draft.weights]
    sources = {s.path for s in draft.sources}
    writes_outputs = role in ("training", "generate", "modify", "preprocessing")
    changed = False
    previous = ""
    for i, token in enumerate(tokens):
        option, value = previous, token
        if token.startswith("-"):
            if "=" not in token:
                previous = token
                continue
            option, _, value = token.partition("=")
        previous = token
        clean = value.removeprefix("./")
        new = None
        if clean in weights and (role == "training" or option in _OUT_OPTIONS):
            new = "{outdir}/" + PurePosixPath(clean).name
        elif clean in weights:
            index = weights.index(clean)
            new = "{weights}" if index == 0 else f"{{weights[{index}]}}"
        elif (
            writes_outputs
            and option in _OUT_OPTIONS
            and "{" not in value
            and not clean.startswith("/")
            and clean not in draft.files
        ):
            new = "{outdir}/" + clean.lstrip("/")
        if new is None:
            continue
        is_file = new.startswith("{outdir}/") and bool(PurePosixPath(new).suffix)
        if is_file and writes_outputs and new not in step.produces:
            step.produces.append(new)
        tokens[i] = new if token == value else f"{option}={new}"
        changed = True
    if changed:
        step.command = _join(tokens)
        step.notes.append("paths of the declared weights and outputs became placeholders")
    named = [c for c in step.code]
    declared = set(weights) | sources
    step.code = [
        c
        for c in named
        if c not in declared and PurePosixPath(c).suffix.lower() in _CONFIG_SUFFIXES
    ]
    if role == "evaluation":
        step.data = [c for c in named if c in sources or (c not in step.code and c not in weights)]


def _find_steps(
    draft: Draft,
    files: list[str],
    readme_cmds: list[src.Command],
    imported: dict[str, Step],
) -> None:
    file_set = set(files)
    arch = draft.architecture
    candidates = _script_candidates(files)
    chosen: dict[str, Step] = dict(imported)
    for cmd in readme_cmds:
        if cmd.role in (None, "pip") or cmd.role in chosen:
            continue
        assert cmd.role is not None
        extra = arch if cmd.role in ("training", "run", "evaluation", "modify") else []
        chosen[cmd.role] = _step_from_command(cmd.command, cmd.origin, file_set, extra)
    for role, scripts in candidates.items():
        if role in chosen:
            continue
        extra = arch if role in ("training", "run", "evaluation", "modify") else []
        chosen[role] = _step_from_script(role, scripts[0], extra)
        if len(scripts) > 1:
            chosen[role].notes.append(f"also found: {', '.join(scripts[1:4])}")
    for role, step in chosen.items():
        _adapt(draft, role, step)
        if any(n.startswith("TODO") for n in step.notes):
            continue
        if role in ("run", "evaluation", "modify", "generate") and "{weights" not in step.command:
            step.notes.append(
                "TODO: the command does not mention {weights}: make it load the declared "
                "weights (the run checks swap in a modified copy)"
            )
        elif role == "preprocessing" and "{outdir}" not in step.command:
            step.notes.append(
                "TODO: write the outputs under {outdir} and declare them in `produces`"
            )
        elif role == "training" and "{outdir}" not in step.command:
            step.notes.append(
                "TODO: make this a smoke-sized run (a few steps) writing the weights under "
                '{outdir}, then declare `produces: "{outdir}/<file>"`'
            )
        elif role == "training":
            step.notes.append("TODO: keep it smoke-sized (a few steps): the check runs it")
    draft.training = chosen.get("training")
    draft.run = chosen.get("run")
    draft.evaluation = chosen.get("evaluation")
    draft.preprocessing = chosen.get("preprocessing")
    draft.modify = chosen.get("modify")
    if "generate" in chosen:
        draft.generate = [chosen["generate"]]
    if draft.run is None:
        draft.run_notes.append(
            "TODO: no inference script found. Declare how to run the model from its weights, e.g."
        )
        formats = {w.format for w in draft.weights}
        if "gguf" in formats:
            draft.run_notes.append('run: {command: llama-cli -m {weights} -p "Hello" -n 16}')
            draft.run_notes.append(
                "(llama.cpp is not in this repository: ship or build the runner via `install`)"
            )
        else:
            draft.run_notes.append("run: {command: python generate.py --weights {weights}}")
    if draft.training is None:
        draft.training_notes.append(
            "TODO: no training script found (training code is required by open-source-ai), e.g."
        )
        draft.training_notes.append(
            "training: {code: [train.py], "
            "command: python train.py --out {outdir}/model.safetensors}"
        )


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
    draft.architecture_notes.append(
        "TODO: no model definition found (model.py, modeling_*.py): list the source files "
        "that define the architecture"
    )
    config = src.read_text(draft.root / "config.json") if "config.json" in files else None
    if config:
        try:
            archs = json.loads(config).get("architectures")
        except (ValueError, AttributeError):
            archs = None
        if isinstance(archs, list) and archs:
            names = ", ".join(str(a) for a in archs)
            draft.architecture_notes.append(
                f"config.json names {names}: if it comes from a library (transformers), its "
                "source is that library's"
            )


# --- importers --------------------------------------------------------------------------------


def _import_dvc(draft: Draft, files: list[str], log: Callable[[str], None]) -> dict[str, Step]:
    stages, notes = src.read_dvc(draft.root)
    draft.data_notes += notes
    file_set = set(files)
    outputs = {o for s in stages for o in s.outs}
    steps: dict[str, Step] = {}
    known_weights = {w.path for w in draft.weights}
    for stage in stages:
        weights_outs = [
            o
            for o in stage.outs
            if PurePosixPath(o).suffix.lower() in WEIGHT_EXTS or o in known_weights
        ]
        command = src.to_manifest_command(stage.command)
        code = [d for d in stage.deps if PurePosixPath(d).suffix in _CODE_EXTS and d in file_set]
        if weights_outs:
            role = "training"
        elif stage.name.lower().startswith("eval") or (stage.metrics and not stage.outs):
            role = "evaluation"
        elif stage.outs:
            role = "preprocessing"
        else:
            continue
        if role in steps:
            steps[role].notes.append(f"dvc.yaml stage `{stage.name}` also: {command}")
            continue
        step = Step(command, code=code)
        step.notes.append(f"from dvc.yaml stage `{stage.name}` (outs: {', '.join(stage.outs)})")
        if role == "training":
            step.notes.append(
                "TODO: the stage writes to fixed paths; make a smoke-sized variant writing "
                'under {outdir} and declare `produces: "{outdir}/<file>"`'
            )
        else:
            step.notes.append("TODO: outputs go to fixed paths; write them under {outdir}")
        steps[role] = step
        for out in weights_outs:
            digest = stage.lock_md5.get(out)
            entry = next((w for w in draft.weights if w.path == out), None)
            if entry is None and out not in file_set:
                entry = Weights(out)
                entry.notes.append(
                    f"TODO: output of DVC stage `{stage.name}`, not in the repository: "
                    f'dvc pull "{out}" (or dvc repro), then run corrsource init --force'
                )
                draft.weights.append(entry)
            if entry is not None:
                entry.notes.append(
                    f"output of dvc.yaml stage `{stage.name}`"
                    + (f" (dvc.lock md5 {digest})" if digest else "")
                )
        for dep in stage.deps:
            if dep in code or dep in outputs or PurePosixPath(dep).suffix in _CODE_EXTS:
                continue
            if any(s.path == dep for s in draft.sources):
                continue
            if dep in file_set:
                source = Source(dep, _hash(draft.root, dep, log))
            else:
                source = Source(dep)
                inside = [f for f in files if f.startswith(dep + "/")]
                if inside:
                    source.notes.append(
                        f"TODO: a folder ({len(inside)} files): list its files or an archive"
                    )
                else:
                    source.notes.append(f'TODO: not in the repository: dvc pull "{dep}"')
            source.notes.append(f"input of dvc.yaml stage `{stage.name}`")
            source.notes.append(_DATA_LICENSE_TODO)
            draft.sources.append(source)
    return steps


def _import_mlflow(draft: Draft, files: list[str]) -> dict[str, Step]:
    project = src.read_mlflow(draft.root)
    if project is None:
        draft.install_notes.append("TODO: MLproject could not be read")
        return {}
    if project.name and not draft.name:
        draft.name = project.name
        draft.name_note = "from MLproject"
    file_set = set(files)
    if project.env_file and project.env_file in file_set:
        rel = project.env_file
        if rel not in draft.requirements:
            draft.requirements.append(rel)
        if project.env_kind == "python_env":
            env = src.read_python_env(draft.root / rel, rel)
        else:
            env = src.read_conda_env(draft.root / rel, rel)
        for command in env.commands:
            if command not in draft.install_commands:
                draft.install_commands.append(command)
        draft.install_python = draft.install_python or env.python
        draft.install_notes += env.notes
        draft.install_notes.append(f"environment from MLproject `{project.env_kind}: {rel}`")
    elif project.env_kind == "docker_env":
        draft.install_notes.append(
            "TODO: MLproject uses docker_env: describe the image's dependencies here"
        )
    steps: dict[str, Step] = {}
    for name, (command, notes) in project.entry_points.items():
        role = src.mlflow_role(name)
        if role is None:
            continue
        if role in steps:
            steps[role].notes.append(f"MLproject entry point `{name}` also: {command}")
            continue
        step = _step_from_command(command, f"MLproject entry point `{name}`", file_set, [])
        step.notes += notes
        if role == "training":
            step.notes.append(
                "TODO: make it smoke-sized and write the model under {outdir} "
                '(then `produces: "{outdir}/<file>"`)'
            )
        steps[role] = step
    return steps


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
        if _in_data(rel) and name.startswith(("license", "licence", "copying")):
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
        if not _in_data(rel) or rel in declared or rel in known or rel == draft.data_card:
            continue
        if posix.suffix.lower() in _CODE_EXTS or posix.name.startswith("."):
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
                source = Source(target)
                source.notes.append(
                    f'TODO: tracked by DVC, not in the repository: dvc pull "{rel}"'
                )
                source.notes.append(_DATA_LICENSE_TODO)
                draft.sources.append(source)
            continue
        candidates.append(rel)
    for rel in candidates[:_MAX_DATA_SOURCES]:
        from pytest_corrsource.formats.pointers import detect_pointer

        pointer = detect_pointer(draft.root / rel, draft.root)
        if pointer is not None:
            source = Source(rel)
            if pointer.oid and pointer.oid.startswith("sha256:"):
                source.sha256 = pointer.oid.removeprefix("sha256:")
            source.notes.append(f"TODO: this is a {pointer.kind} pointer: {pointer.fetch_hint}")
        else:
            source = Source(rel, _hash(draft.root, rel, log))
        source.notes.append(_DATA_LICENSE_TODO)
        draft.sources.append(source)
    if len(candidates) > _MAX_DATA_SOURCES:
        draft.data_notes.append(
            f"TODO: {len(candidates) - _MAX_DATA_SOURCES} more data files not listed: declare "
            "an archive of them, or list them"
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
    files = _listing(root)
    file_set = set(files)
    draft.files = file_set
    _find_weights(draft, files, emit)
    card = _find_card(draft, files)
    readme_cmds: list[src.Command] = []
    top = {f.lower(): f for f in files if "/" not in f}
    for name in ("readme.md", "readme.rst", "readme"):
        if name in top:
            readme_cmds = src.readme_commands(root / top[name], top[name], file_set)
            break
    _find_install(draft, files, readme_cmds)
    imported: dict[str, Step] = {}
    if "dvc.yaml" in file_set:
        imported.update(_import_dvc(draft, files, emit))
    if "MLproject" in file_set:
        for role, step in _import_mlflow(draft, files).items():
            imported.setdefault(role, step)
    _find_architecture(draft, files)
    for step in imported.values():
        if step.code:
            step.code += [a for a in draft.architecture if a not in step.code]
    _find_data(draft, files, emit)
    _find_steps(draft, files, readme_cmds, imported)
    _find_licenses(draft, files, card)
    if "data" in draft.licenses:
        # A data licence was recognised (data/LICENSE): `licenses.data` covers every source
        # without its own, so their licence is no longer a TODO.
        for source in draft.sources:
            source.notes = [n for n in source.notes if n != _DATA_LICENSE_TODO]
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


# --- rendering --------------------------------------------------------------------------------

# Characters PyYAML refuses, and the ones it reads as line breaks inside a quoted scalar.
_ESCAPE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_PLAIN_REFUSED = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]|^\s|\s$")


def scalar(value: str, *, flow: bool = False) -> str:
    """``value`` as a YAML scalar for a block mapping value (or, with ``flow``, an item of a
    ``[…]`` list): plain when it reads back as the same string in that very context, else a
    JSON string (valid YAML) with the characters YAML refuses escaped."""
    import yaml

    if value and not _PLAIN_REFUSED.search(value) and not (flow and re.search(r"[,\[\]{}]", value)):
        probe = f"k: [{value}]" if flow else f"k: {value}"
        try:
            if yaml.safe_load(probe) == {"k": [value] if flow else value}:
                return value
        except yaml.YAMLError:
            pass
    text = json.dumps(value, ensure_ascii=False)
    return _ESCAPE.sub(
        lambda m: (
            f"\\u{ord(m.group()):04x}" if ord(m.group()) < 0x10000 else f"\\U{ord(m.group()):08x}"
        ),
        text,
    )


def _flow(items: list[str]) -> str:
    return "[" + ", ".join(scalar(i, flow=True) for i in items) + "]"


class _Out:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def comment(self, indent: int, text: str) -> None:
        text = " ".join(text.split())
        self.lines.append(f"{' ' * indent}# {text}")

    def notes(self, indent: int, notes: Iterable[str]) -> None:
        for note in notes:
            self.comment(indent, note)

    def key(self, indent: int, key: str, value: str | None = None, inline: str = "") -> None:
        line = f"{' ' * indent}{key}:" + (f" {value}" if value is not None else "")
        if inline:
            line += "  # " + " ".join(inline.split())
        self.lines.append(line)

    def blank(self) -> None:
        if self.lines and self.lines[-1] != "":
            self.lines.append("")


def _weights_list(out: _Out, entries: list[Weights]) -> None:
    for entry in entries:
        out.notes(2, entry.notes)
        out.key(2, "- path", scalar(entry.path))
        if entry.format:
            out.key(4, "format", entry.format, entry.inline or "")
        if entry.sha256:
            out.key(4, "sha256", entry.sha256)
        if entry.shards:
            out.key(4, "shards")
            for name, digest in entry.shards.items():
                out.key(6, scalar(name), digest)


def _step(out: _Out, indent: int, step: Step, *, produces_list: bool = True) -> None:
    if step.code:
        out.key(indent, "code", _flow(step.code))
    out.key(indent, "command", scalar(step.command))
    if step.produces:
        value = _flow(step.produces) if produces_list else scalar(step.produces[0])
        out.key(indent, "produces", value)


def render(draft: Draft) -> str:
    """The draft as commented YAML, in the key order of MANIFEST.md."""
    out = _Out()
    out.lines.append(f"# yaml-language-server: $schema={SCHEMA_URL}")
    out.lines.append(
        "# Draft written by corrsource init: review every TODO, then run pytest "
        "--corresponding-source"
    )
    out.comment(
        0,
        "(offline: `corrsource schema > corresponding-source.schema.json` and point the first "
        "line at that file)",
    )
    out.key(0, "version", "1")
    out.key(0, "name", scalar(draft.name), draft.name_note)

    out.blank()
    if draft.licenses:
        out.key(
            0, "licenses", None, "SPDX expressions; resolution: component > kind > distribution"
        )
        out.notes(2, draft.license_notes)
        for kind in ("distribution", "code", "weights", "data", "docs"):
            if kind in draft.licenses:
                out.key(2, kind, scalar(draft.licenses[kind]))
    else:
        out.comment(0, "TODO: declare `licenses:` (SPDX expressions, e.g. `distribution: MIT`)")
        out.notes(0, draft.license_notes)

    out.blank()
    out.key(0, "weights")
    out.notes(2, draft.weights_notes)
    if draft.weights:
        _weights_list(out, draft.weights)
    else:
        out.key(2, "- path", "TODO-weights.safetensors")

    out.blank()
    if draft.architecture:
        out.key(0, "architecture", _flow(draft.architecture), "source files that define the model")
    else:
        out.comment(0, "architecture: []")
    out.notes(0, draft.architecture_notes)

    out.blank()
    if draft.requirements or draft.install_commands:
        out.key(0, "install")
        out.notes(2, draft.install_notes)
        if draft.requirements:
            out.key(2, "requirements", _flow(draft.requirements))
        if draft.install_commands:
            out.key(2, "commands")
            for command in draft.install_commands:
                out.lines.append(f"    - {scalar(command)}")
        if draft.install_python:
            out.key(2, "python", json.dumps(draft.install_python))
    else:
        out.notes(0, draft.install_notes)

    if draft.generate:
        out.blank()
        out.key(0, "generate", None, "turn the weights into the runnable model")
        for step in draft.generate:
            out.notes(2, step.notes)
            out.lines.append(f"  - command: {scalar(step.command)}")
            if step.code:
                out.key(4, "code", _flow(step.code))

    out.blank()
    if draft.run:
        out.key(0, "run", None, "run the model from its weights")
        out.notes(2, draft.run.notes)
        out.key(2, "command", scalar(draft.run.command))
        out.comment(
            2, "optional: timeout: 600 (seconds); expect: {stdout: <regex>} checks the output"
        )
    else:
        out.notes(0, draft.run_notes)

    if draft.modify:
        out.blank()
        out.key(0, "modify", None, "fine-tuning / editing scripts that take the weights")
        out.notes(2, draft.modify.notes)
        _step(out, 2, draft.modify)

    out.blank()
    if draft.training:
        out.key(0, "training")
        out.notes(2, draft.training.notes)
        _step(out, 2, draft.training, produces_list=False)
    else:
        out.notes(0, draft.training_notes)

    has_data = draft.sources or draft.preprocessing or draft.data_card
    out.blank()
    if has_data:
        out.key(0, "data")
        out.notes(2, draft.data_notes)
        if draft.sources:
            out.key(2, "sources")
            for source in draft.sources:
                out.notes(4, source.notes)
                out.key(4, "- path", scalar(source.path))
                if source.sha256:
                    out.key(6, "sha256", source.sha256)
        if draft.preprocessing:
            out.key(2, "preprocessing")
            out.notes(4, draft.preprocessing.notes)
            _step(out, 4, draft.preprocessing)
        if draft.data_card:
            out.key(2, "card", scalar(draft.data_card))
        else:
            out.comment(
                2,
                "TODO: write a data card (provenance, scope, selection, labelling, "
                "processing) and declare it: `card: DATA_CARD.md`",
            )
    else:
        out.notes(0, draft.data_notes)
        out.comment(
            0,
            "TODO: declare `data:` (the training data: sources with sha256 and licence, "
            "preprocessing, a data card): required by the open-source-ai level",
        )

    if draft.evaluation:
        out.blank()
        out.key(0, "evaluation")
        out.notes(2, draft.evaluation.notes)
        if draft.evaluation.data:
            out.key(2, "data", _flow(draft.evaluation.data))
        _step(out, 2, draft.evaluation)

    if draft.checkpoints:
        out.blank()
        out.key(0, "checkpoints")
        _weights_list(out, draft.checkpoints)

    out.blank()
    if draft.docs:
        out.key(0, "docs")
        out.notes(2, draft.docs_notes)
        for key in ("model-card", "paper", "technical-report", "results"):
            if key in draft.docs:
                out.key(2, key, scalar(draft.docs[key]))
    else:
        out.notes(0, draft.docs_notes)
    while out.lines and out.lines[-1] == "":
        out.lines.pop()
    return "\n".join(out.lines) + "\n"


def count_todos(text: str) -> int:
    """The TODOs left for the user: the ones check CS001 reports (not the header's mention)."""
    from pytest_corrsource.checks.manifest import find_todos

    return len(find_todos(text))


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
    schema = json.loads(_SCHEMA_FILE.read_text(encoding="utf-8"))
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
