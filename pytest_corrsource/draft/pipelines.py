"""DVC pipelines (``dvc.yaml`` + ``dvc.lock``) and MLflow projects (``MLproject``): read them
and import their stages and entry points as the draft's steps, outputs and data sources.

The readers never raise for malformed input (a broken dvc.yaml just yields less)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pytest_corrsource.draft import sources as src
from pytest_corrsource.draft.commands import step_from_command
from pytest_corrsource.draft.files import (
    CODE_EXTS,
    DATA_LICENSE_TODO,
    WEIGHT_EXTS,
    dvc_tracked_note,
    hash_file,
    on_disk,
)
from pytest_corrsource.draft.findings import Draft, DraftSource, DraftStep, DraftWeights
from pytest_corrsource.draft.sources import (
    PYTHON_VERSION,
    SHELL_SYNTAX,
    EnvSpec,
    read_text,
    read_yaml,
    to_manifest_command,
)
from pytest_corrsource.draft.weights import declare_weights_file

__all__ = [
    "DvcStage",
    "MlflowProject",
    "import_dvc",
    "import_mlflow",
    "read_dvc",
    "read_mlflow",
]

# --- DVC ------------------------------------------------------------------------------------


@dataclass
class DvcStage:
    name: str
    command: str
    deps: list[str]
    outs: list[str]
    metrics: list[str]
    lock_md5: dict[str, str]  # out path -> md5 (or "md5:…" / "hash" text) from dvc.lock


def _paths(items: Any) -> list[str]:
    out: list[str] = []
    if not isinstance(items, list):
        return out
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            out += [str(k) for k in item]
    return [p.rstrip("/") for p in out]


def read_dvc(root: Path) -> tuple[list[DvcStage], list[str]]:
    """Stages of ``dvc.yaml`` (with output digests from ``dvc.lock``), and notes."""
    data = read_yaml(read_text(root / "dvc.yaml"))
    notes: list[str] = []
    if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
        return [], ["TODO: dvc.yaml has no readable `stages`"]
    lock = read_yaml(read_text(root / "dvc.lock")) if (root / "dvc.lock").is_file() else None
    lock_stages = lock.get("stages") if isinstance(lock, dict) else None
    stages: list[DvcStage] = []
    for name, body in data["stages"].items():
        if not isinstance(body, dict):
            continue
        if "foreach" in body or "matrix" in body:
            notes.append(f"TODO: dvc.yaml stage `{name}` uses foreach/matrix: not imported")
            continue
        cmd = body.get("cmd")
        if isinstance(cmd, list):
            command = " && ".join(str(c) for c in cmd)
        elif isinstance(cmd, str):
            command = cmd
        else:
            continue
        if body.get("wdir") not in (None, ".", "./"):
            command = f"cd {shlex.quote(str(body['wdir']))} && {command}"
        md5: dict[str, str] = {}
        locked = lock_stages.get(str(name)) if isinstance(lock_stages, dict) else None
        if isinstance(locked, dict):
            for out in locked.get("outs") or []:
                if isinstance(out, dict) and "path" in out:
                    digest = out.get("md5") or out.get("hash") or out.get("etag")
                    if digest:
                        md5[str(out["path"]).rstrip("/")] = str(digest)
        stages.append(
            DvcStage(
                name=str(name),
                command=command,
                deps=_paths(body.get("deps")),
                outs=_paths(body.get("outs")),
                metrics=_paths(body.get("metrics")),
                lock_md5=md5,
            )
        )
    return stages, notes


# --- MLflow ---------------------------------------------------------------------------------


@dataclass
class MlflowProject:
    name: str | None
    env_file: str | None
    env_kind: str | None  # python_env | conda_env | docker_env
    entry_points: dict[str, tuple[str, list[str]]]  # name -> (command, notes)


_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*)\}")


def read_mlflow(root: Path) -> MlflowProject | None:
    data = read_yaml(read_text(root / "MLproject"))
    if not isinstance(data, dict):
        return None
    env_file = env_kind = None
    for kind in ("python_env", "conda_env", "docker_env"):
        if data.get(kind) is not None:
            env_kind = kind
            value = data[kind]
            env_file = str(value) if isinstance(value, str) else None
            break
    entries: dict[str, tuple[str, list[str]]] = {}
    points = data.get("entry_points")
    if isinstance(points, dict):
        for name, body in points.items():
            if not isinstance(body, dict) or not isinstance(body.get("command"), str):
                continue
            params = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
            assert isinstance(params, dict)
            notes: list[str] = []
            raw = " ".join(body["command"].split())
            # Literal braces first, then each {param} becomes its default.
            pieces: list[str] = []
            pos = 0
            for match in _PARAM.finditer(raw):
                pieces.append(raw[pos : match.start()].replace("{", "{{").replace("}", "}}"))
                pos = match.end()
                param = match.group(1)
                spec = params.get(param)
                default = spec.get("default") if isinstance(spec, dict) else None
                if default is None:
                    pieces.append(f"TODO-{param}")
                    notes.append(f"TODO: MLproject parameter `{param}` has no default: set a value")
                else:
                    value = str(default).lower() if isinstance(default, bool) else str(default)
                    pieces.append(shlex.quote(value).replace("{", "{{").replace("}", "}}"))
            pieces.append(raw[pos:].replace("{", "{{").replace("}", "}}"))
            command = "".join(pieces)
            if SHELL_SYNTAX.search(command):
                command = f"sh -c {shlex.quote(command)}"
            entries[str(name)] = (command, notes)
    name = data.get("name")
    return MlflowProject(
        name=str(name) if name is not None else None,
        env_file=env_file,
        env_kind=env_kind,
        entry_points=entries,
    )


def mlflow_role(entry_point: str) -> str | None:
    lower = entry_point.lower()
    if lower in ("main", "train") or lower.startswith("train"):
        return "training"
    if lower.startswith(("predict", "generate", "infer", "sample", "serve")):
        return "run"
    if lower.startswith(("eval", "validate", "test")):
        return "evaluation"
    if lower.startswith(("prepare", "preprocess", "etl", "load_raw", "ingest")):
        return "preprocessing"
    return src.role_of(lower)


def read_python_env(path: Path, rel: str) -> EnvSpec:
    """MLflow's python_env.yaml: ``python``, ``build_dependencies``, ``dependencies``."""
    spec = EnvSpec()
    data = read_yaml(read_text(path))
    if not isinstance(data, dict):
        spec.notes.append(f"TODO: {rel} could not be read")
        return spec
    python = data.get("python")
    if python is not None and PYTHON_VERSION.match(str(python)):
        spec.python = str(python)
    for key in ("build_dependencies", "dependencies"):
        items = data.get(key)
        if isinstance(items, list):
            args = [a for item in items for a in str(item).split() if str(item) != "pip"]
            if not args:
                continue
            spec.commands.append(to_manifest_command("python -m pip install " + shlex.join(args)))
    return spec


# --- importing into the draft ---------------------------------------------------------------


def import_dvc(draft: Draft, files: list[str], log: Callable[[str], None]) -> dict[str, DraftStep]:
    stages, notes = read_dvc(draft.root)
    draft.data_notes += notes
    file_set = set(files)
    outputs = {o for s in stages for o in s.outs}
    steps: dict[str, DraftStep] = {}
    known_weights = {w.path for w in draft.weights}
    for stage in stages:
        weights_outs = [
            o
            for o in stage.outs
            if PurePosixPath(o).suffix.lower() in WEIGHT_EXTS or o in known_weights
        ]
        command = to_manifest_command(stage.command)
        code = [d for d in stage.deps if PurePosixPath(d).suffix in CODE_EXTS and d in file_set]
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
        step = DraftStep(command, code=code)
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
            if entry is None and out not in file_set and on_disk(draft.root, out):
                # Pulled (or reproduced) but ignored by git, as DVC arranges for its outputs.
                entry = declare_weights_file(draft.root, out, log)
                if entry is not None:
                    entry.notes.append(dvc_tracked_note("dvc.lock" if digest else "dvc.yaml"))
                    draft.weights.append(entry)
            elif entry is None and out not in file_set:
                entry = DraftWeights(out)
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
            if dep in code or dep in outputs or PurePosixPath(dep).suffix in CODE_EXTS:
                continue
            if any(s.path == dep for s in draft.sources):
                continue
            if dep in file_set:
                source = DraftSource(dep, hash_file(draft.root, dep, log))
            elif on_disk(draft.root, dep):
                source = DraftSource(dep, hash_file(draft.root, dep, log))
                stub = f"{dep}.dvc"
                source.notes.append(dvc_tracked_note(stub if stub in file_set else "dvc.yaml"))
            else:
                source = DraftSource(dep)
                inside = [f for f in files if f.startswith(dep + "/")]
                if inside:
                    source.notes.append(
                        f"TODO: a folder ({len(inside)} files): list its files or an archive"
                    )
                else:
                    source.notes.append(f'TODO: not in the repository: dvc pull "{dep}"')
            source.notes.append(f"input of dvc.yaml stage `{stage.name}`")
            source.notes.append(DATA_LICENSE_TODO)
            draft.sources.append(source)
    return steps


def import_mlflow(draft: Draft, files: list[str]) -> dict[str, DraftStep]:
    project = read_mlflow(draft.root)
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
            env = read_python_env(draft.root / rel, rel)
        else:
            env = src.read_conda_env(draft.root / rel, rel)
        for command in env.commands:
            if command not in draft.install_commands:
                draft.install_commands.append(command)
        draft.install_python = draft.install_python or env.python
        # conda.yaml at the top was read already: its notes once
        draft.install_notes += [n for n in env.notes if n not in draft.install_notes]
        draft.install_notes.append(f"environment from MLproject `{project.env_kind}: {rel}`")
    elif project.env_kind == "docker_env":
        draft.install_notes.append(
            "TODO: MLproject uses docker_env: describe the image's dependencies here"
        )
    steps: dict[str, DraftStep] = {}
    for name, (command, notes) in project.entry_points.items():
        role = mlflow_role(name)
        if role is None:
            continue
        if role in steps:
            steps[role].notes.append(f"MLproject entry point `{name}` also: {command}")
            continue
        step = step_from_command(command, f"MLproject entry point `{name}`", file_set, [])
        step.notes += notes
        if role == "training":
            step.notes.append(
                "TODO: make it smoke-sized and write the model under {outdir} "
                '(then `produces: "{outdir}/<file>"`)'
            )
        steps[role] = step
    return steps
