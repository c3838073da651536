"""The draft's command sections (run, training, evaluation, preprocessing, generate, modify):
commands found in the README or imported from a pipeline, else guessed from script names,
then pointed at the manifest's placeholders."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from pathlib import PurePosixPath

from pytest_corrsource.draft import sources as src
from pytest_corrsource.draft.files import DATA_DIRS
from pytest_corrsource.draft.findings import Draft, DraftStep

__all__ = ["find_steps", "step_from_command"]

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
            depth == 3 and posix.parts[0] in DATA_DIRS and posix.name == "prepare.py"
        ) or (depth == 2 and posix.parts[0] in DATA_DIRS and src.role_of(rel) is not None)
        if depth != 1 and not in_src and not data_prepare:
            continue
        role = "preprocessing" if data_prepare else src.role_of(rel)
        if role is not None:
            by_role.setdefault(role, []).append(rel)
    for paths in by_role.values():
        paths.sort(key=lambda p: (p.count("/"), len(p), p))
    return by_role


def _step_from_script(role: str, script: str, extra: Iterable[str]) -> DraftStep:
    command = _DEFAULT_COMMANDS[role].format(script=shlex.quote(script))
    step = DraftStep(command, code=[script, *[c for c in extra if c != script]])
    step.notes.append(f"guessed from the file name {script}")
    step.notes.append(_DEFAULT_TODO[role].replace("{script}", script))
    return step


def step_from_command(cmd: str, origin: str, files: set[str], extra: Iterable[str]) -> DraftStep:
    code = [f for f in src.script_in(cmd, files)]
    code += [c for c in extra if c not in code]
    step = DraftStep(cmd, code=code)
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


def _adapt(draft: Draft, role: str, step: DraftStep) -> None:
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


def find_steps(
    draft: Draft,
    files: list[str],
    readme_cmds: list[src.Command],
    imported: dict[str, DraftStep],
) -> None:
    file_set = set(files)
    arch = draft.architecture
    candidates = _script_candidates(files)
    chosen: dict[str, DraftStep] = dict(imported)
    for cmd in readme_cmds:
        if cmd.role in (None, "pip") or cmd.role in chosen:
            continue
        assert cmd.role is not None
        extra = arch if cmd.role in ("training", "run", "evaluation", "modify") else []
        chosen[cmd.role] = step_from_command(cmd.command, cmd.origin, file_set, extra)
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
