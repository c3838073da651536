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
    chosen_from: dict[str, src.Command] = {}
    skipped: dict[str, list[str]] = {}
    skipped_scripts: set[str] = set()
    for cmd in readme_cmds:
        if cmd.role == "pip":
            continue
        if cmd.placeholder is not None:
            # Someone else's model behind a stand-in path (llama2.c's Meta 7B export): not a
            # step of this release; said, so the reviewer sees what was left out.
            what = cmd.script or cmd.command.split(" ", 1)[0]
            skipped.setdefault(cmd.role or "generate", []).append(
                f"{cmd.where} runs {what} with a placeholder path ({cmd.placeholder}): not drafted"
            )
            if cmd.script:
                skipped_scripts.add(cmd.script)
            continue
        if cmd.role is None:
            continue
        extra = arch if cmd.role in ("training", "run", "evaluation", "modify") else []
        earlier = chosen_from.get(cmd.role)
        if cmd.role not in chosen:
            chosen[cmd.role] = step_from_command(cmd.command, cmd.origin, file_set, extra)
            chosen_from[cmd.role] = cmd
        elif (
            earlier is not None
            and earlier.script == cmd.script
            and src.is_cpu_variant(cmd.command)
            and not src.is_cpu_variant(earlier.command)
        ):
            # The CPU variant of the same command is the one a checker can run.
            step = step_from_command(cmd.command, cmd.origin, file_set, extra)
            step.notes.append(f"the CPU variant of {earlier.where} ({earlier.command})")
            chosen[cmd.role] = step
            chosen_from[cmd.role] = cmd
    if "training" not in chosen:
        _training_beside_a_flag(readme_cmds, chosen, chosen_from, file_set, arch)
    for role, scripts in candidates.items():
        if role in chosen:
            continue
        if role == "generate":
            # An export/convert script may serve another model or format: whether the released
            # model needs it to run is not known here, so no step is invented.
            shown = [s for s in scripts if s not in skipped_scripts]
            if shown:
                skipped.setdefault("generate", []).append(
                    f"found {', '.join(shown[:3])}: if the released model needs it to run, "
                    "declare it under `generate` (not drafted: what it converts is not known)"
                )
            continue
        extra = arch if role in ("training", "run", "evaluation", "modify") else []
        chosen[role] = _step_from_script(role, scripts[0], extra)
        if len(scripts) > 1:
            chosen[role].notes.append(f"also found: {', '.join(scripts[1:4])}")
    if "training" not in chosen:
        by_content = _training_by_content(draft, files)
        if by_content is not None:
            by_content.code += [a for a in arch if a not in by_content.code]
            chosen["training"] = by_content
    for role, notes in skipped.items():
        if role in chosen:
            chosen[role].notes += notes
        elif role == "generate":
            draft.generate_notes += notes
        elif role == "training":
            draft.training_notes += notes
        elif role == "preprocessing":
            draft.data_notes += notes
        else:
            draft.run_notes += notes
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
        elif draft.mlflow_models:
            folder = draft.mlflow_models[0]
            draft.run_notes.append(
                f"run: {{command: mlflow models predict -m {folder} -i <input.csv> -t csv "
                "--env-manager local}"
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


def _training_beside_a_flag(
    readme_cmds: list[src.Command],
    chosen: dict[str, DraftStep],
    chosen_from: dict[str, src.Command],
    file_set: set[str],
    arch: list[str],
) -> None:
    """One script that trains by default and samples with an option (makemore's
    ``--sample-only``): its README line without that option is the training command. A guess
    from the README's own contrast, said so in a note."""
    flagged = {c.script: c for c in chosen_from.values() if c.flag and c.script}
    for cmd in readme_cmds:
        if cmd.role is not None or cmd.placeholder is not None or cmd.script not in flagged:
            continue
        other = flagged[cmd.script]
        step = step_from_command(cmd.command, cmd.origin, file_set, arch)
        step.notes.append(
            f"the same script without {other.flag} (the {other.role} command): guessed as training"
        )
        chosen["training"] = step
        return


#: What a training script does, read from its text: it optimises and it saves the result.
_TRAINS = re.compile(r"\.backward\(|\btrainer\.(?:run|train|fit)\(|\boptimizer\.step\(|\.fit\(")
_SAVES = re.compile(
    r"\btorch\.save\(|\.save_pretrained\(|\bsave_file\(|\bjoblib\.dump\(|\.save_model\("
    r"|\.log_model\(|\bskops\.io\.dump\("
)
_MAX_SCRIPTS_READ = 50


def _training_by_content(draft: Draft, files: list[str]) -> DraftStep | None:
    """A script that trains and saves a model, found by reading it: top-level scripts and
    ``projects/<name>/*.py`` (minGPT's adder and chargpt). Which one produces the released
    weights is not known when several do: the others are named in a TODO."""
    scripts = [
        f
        for f in files
        if f.endswith(".py")
        and (
            ("/" not in f and src.role_of(f) is None)
            or (f.startswith("projects/") and f.count("/") == 2)
        )
    ]
    found: list[tuple[str, str]] = []
    for script in sorted(scripts, key=lambda f: (f.count("/"), f))[:_MAX_SCRIPTS_READ]:
        text = src.read_text(draft.root / script) or ""
        trains, saves = _TRAINS.search(text), _SAVES.search(text)
        if trains and saves:
            signals = ", ".join(m.group().strip(".(") for m in (trains, saves))
            found.append((script, signals))
    if not found:
        return None
    script, signals = found[0]
    step = DraftStep(f"python {shlex.quote(script)}", code=[script])
    step.notes.append(f"{script} trains and saves a model ({signals})")
    for other, _signals in found[1:4]:
        step.notes.append(
            f"TODO: {other} trains too: keep the script whose run produces the released weights"
        )
    step.notes.append(
        "TODO: add smoke-sized arguments (a few steps) and write the weights under {outdir}; "
        'then declare `produces: "{outdir}/<file>"`'
    )
    return step
