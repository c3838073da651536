"""What ``corrsource init`` reads besides the file tree: README commands, model-card front
matter, licence texts and conda environment files (DVC and MLflow: ``pipelines.py``).

Every function here is a pure reader: it returns plain data (:class:`Command`, :class:`Card`,
…) and never raises for malformed input (a broken dvc.yaml or README just yields less).
``discover.py`` and ``commands.py`` decide what to do with what is found.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pytest_corrsource.plain_yaml import load_plain_yaml

__all__ = [
    "Card",
    "Command",
    "flag_role",
    "is_cpu_variant",
    "placeholder_path",
    "read_card",
    "read_conda_env",
    "readme_commands",
    "role_of",
    "sniff_license_text",
    "to_manifest_command",
]

_MAX_TEXT = 2 * 1024 * 1024

#: Script-name prefixes and the manifest section they suggest.
_ROLE_PREFIXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("modify", ("finetune", "fine_tune", "fine-tune")),
    ("training", ("train",)),
    ("run", ("predict", "generate", "sample", "infer", "inference")),
    ("evaluation", ("eval",)),
    ("preprocessing", ("prepare", "preprocess")),
    ("generate", ("export", "convert")),
)


def role_of(path: str) -> str | None:
    """The manifest section a script named like ``path`` most likely belongs to."""
    stem = PurePosixPath(path).stem.lower()
    for role, prefixes in _ROLE_PREFIXES:
        if stem.startswith(prefixes):
            return role
    return None


def read_text(path: Path) -> str | None:
    """A small text file's content (BOM stripped), or None if unreadable, binary, huge or not
    a regular file (a FIFO named like a script is never opened for reading: it would block)."""
    from pytest_corrsource.safe_io import read_bounded

    try:
        raw = read_bounded(path, _MAX_TEXT)
    except OSError:  # NotRegularFile and FileTooLarge are OSErrors
        return None
    if b"\x00" in raw:
        return None
    return raw.decode("utf-8-sig", errors="replace")


def read_yaml(text: str | None) -> Any:
    if text is None:
        return None
    try:  # the manifest's nesting limit: deep nesting recursed in PyYAML's composer
        return load_plain_yaml(text)
    except ValueError:
        return None


# --- commands -------------------------------------------------------------------------------

SHELL_SYNTAX = re.compile(r"[|<>;&`]|\$\(|\$\{|^\s*[A-Za-z_][A-Za-z0-9_]*=")


def strip_comment(line: str) -> str:
    """``line`` without a trailing shell comment (a `` #`` outside quotes)."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line


def to_manifest_command(line: str) -> str:
    """A command line as the manifest's shell-free runner needs it: ``python3`` becomes
    ``python``, literal braces are escaped, and shell syntax (pipes, redirects, ``&&``,
    variable assignments) is wrapped in ``sh -c '…'``."""
    line = " ".join(strip_comment(line).split())
    line = re.sub(r"^python3(\.\d+)?(?=\s)", "python", line)
    line = line.replace("{", "{{").replace("}", "}}")
    if SHELL_SYNTAX.search(line):
        return f"sh -c {shlex.quote(line)}"
    return line


@dataclass(frozen=True)
class Command:
    """A command found somewhere, with the script it runs and where it was found."""

    command: str
    origin: str  # "README.md line 12 (```sh block)"
    script: str | None = None  # repository-relative path of the Python script it runs
    role: str | None = None
    flag: str | None = None  # the option that gave the role (`--sample-only`), if one did
    placeholder: str | None = None  # a stand-in path the reader must replace (path/to/model)

    @property
    def where(self) -> str:
        """The origin without the block kind: ``README.md line 12``."""
        return self.origin.split(" (", 1)[0]


#: Options that make a script's command a run or an evaluation whatever the script is called
#: (makemore: `python makemore.py -i names.txt -o names --sample-only`).
_FLAG_ROLES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("run", re.compile(r"--(sample[-_]only|sample|generate|predict|inference|infer|interactive)")),
    ("evaluation", re.compile(r"--(eval[-_]only|evaluate|eval|test[-_]only|do[-_]eval)")),
)
_FALSE = frozenset({"false", "0", "no", "off"})
#: Stand-ins for paths the reader has to supply: `path/to/llama/model/7B`, `<checkpoint>`,
#: `YOUR_MODEL_DIR`.
_PLACEHOLDER = re.compile(
    r"(^|/)path/to(/|$)|<[A-Za-z][\w .-]*>|\bYOUR_[A-Z_]+\b|(^|/)your[_-]\w+(/|$)", re.IGNORECASE
)
#: Options that select the CPU in a command (nanoGPT: `--device=cpu` beside the CUDA default).
_CPU = re.compile(
    r"(^|\s)(--device[= ]cpu|--cpu|--no[-_]cuda|--use[-_]cpu|--accelerator[= ]cpu)(?=\s|$)"
)


def flag_role(line: str) -> tuple[str, str] | None:
    """(role, option) when an option of ``line`` says what the command does."""
    try:
        tokens = shlex.split(line)
    except ValueError:
        tokens = line.split()
    for token in tokens[1:]:
        option, _, value = token.partition("=")
        if value.lower() in _FALSE:
            continue
        for role, pattern in _FLAG_ROLES:
            if pattern.fullmatch(option):
                return role, option
    return None


def placeholder_path(line: str) -> str | None:
    """The first argument of ``line`` that is a stand-in for a path the reader must supply."""
    try:
        tokens = shlex.split(line)
    except ValueError:
        tokens = line.split()
    for token in tokens[1:]:
        value = token.partition("=")[2] if token.startswith("-") else token
        if value and _PLACEHOLDER.search(value):
            return value
    return None


def is_cpu_variant(command: str) -> bool:
    """Whether ``command`` asks for the CPU explicitly (the variant a checker can run)."""
    return bool(_CPU.search(command))


_PY_SCRIPT = re.compile(r"^(?:python3?(?:\.\d+)?)(?:\s+-[uOBW]\S*)*\s+(?P<script>[^\s-]\S*\.py)\b")
_PIP = re.compile(r"^(?:python3?\s+-m\s+)?pip3?\s+install\s+(?P<args>.+)$")
_INLINE_PIP = re.compile(r"`((?:python3?\s+-m\s+)?pip3?\s+install\s+[^`]+)`")
_FENCE = re.compile(r"^ {0,3}(```+|~~~+)\s*([\w+-]*)")
_SHELL_TAGS = {"", "bash", "sh", "shell", "console", "zsh", "shell-session", "text"}
_PWC_TAGS = {"setup": "install", "train": "training", "eval": "evaluation"}


def _logical_lines(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Join backslash continuations and strip shell prompts and comments."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, raw in lines:
        text = raw.rstrip()
        if pending is not None:
            number, text = pending[0], pending[1] + " " + text.strip()
            pending = None
        if text.endswith("\\"):
            pending = (number, text[:-1].rstrip())
            continue
        stripped = strip_comment(re.sub(r"^\s*(?:\$|>>>|%|❯)\s+", "", text)).strip()
        if stripped and not stripped.startswith("#"):
            out.append((number, stripped))
    if pending is not None:
        out.append(pending)
    return out


def pip_to_command(args: str) -> str:
    return to_manifest_command(f"python -m pip install {args.strip()}")


def readme_commands(readme: Path, rel: str, repo_files: set[str]) -> list[Command]:
    """Commands from a README's fenced code blocks, in order.

    ```setup / ```train / ```eval blocks (the Papers-with-Code README template) give their
    first command to that section (setup: every pip line to install). Shell blocks give each
    ``python <script>.py`` line to the section an option of it says (``--sample-only``: run)
    or else its script name suggests (kept without a section when neither does), and
    ``pip install`` lines to install. Inline ```pip install …``` spans outside blocks count
    too. A line with a stand-in path (``path/to/model``) is marked ``placeholder``.
    """
    text = read_text(readme)
    if text is None:
        return []
    all_lines = text.splitlines()
    start = 0
    if all_lines and all_lines[0].strip() == "---":  # skip Hugging Face front matter
        for i in range(1, len(all_lines)):
            if all_lines[i].strip() == "---":
                start = i + 1
                break
    found: list[Command] = []
    block: list[tuple[int, str]] | None = None
    fence = tag = ""
    for index in range(start, len(all_lines)):
        line = all_lines[index]
        number = index + 1
        match = _FENCE.match(line)
        if block is None:
            if match:
                block, fence, tag = [], match.group(1), match.group(2).lower()
            else:
                for inline in _INLINE_PIP.findall(line):
                    pip = _PIP.match(inline.strip())
                    if pip:
                        origin = f"{rel} line {number}"
                        found.append(
                            Command(pip_to_command(pip.group("args")), origin, None, "pip")
                        )
            continue
        if match and line.strip().startswith(fence[:3]) and not match.group(2):
            found += _block_commands(block, tag, rel, repo_files)
            block = None
            continue
        block.append((number, line))
    return found


def _block_commands(
    block: list[tuple[int, str]], tag: str, rel: str, repo_files: set[str]
) -> list[Command]:
    if tag not in _SHELL_TAGS and tag not in _PWC_TAGS:
        return []
    out: list[Command] = []
    for number, line in _logical_lines(block):
        origin = f"{rel} line {number} (```{tag or 'untagged'} block)"
        pip = _PIP.match(line)
        if pip:
            out.append(Command(pip_to_command(pip.group("args")), origin, None, "pip"))
            continue
        script_match = _PY_SCRIPT.match(line)
        script = None
        if script_match:
            candidate = script_match.group("script").removeprefix("./")
            script = candidate if candidate in repo_files else None
        if tag in _PWC_TAGS:
            section = _PWC_TAGS[tag]
            if section == "install":
                continue  # only pip lines are usable as install commands
            out.append(Command(to_manifest_command(line), origin, script, section))
        elif script is not None:
            # An option says more than the script's name (`train.py --eval_only` evaluates).
            by_flag = flag_role(line)
            role = by_flag[0] if by_flag else role_of(script)
            if role is None and PurePosixPath(script).name == "prepare.py":
                role = "preprocessing"
            # Kept without a role too: the same script under another option tells what it is.
            out.append(
                Command(
                    to_manifest_command(line),
                    origin,
                    script,
                    role,
                    flag=by_flag[1] if by_flag else None,
                    placeholder=placeholder_path(line),
                )
            )
    return out


# --- model card -----------------------------------------------------------------------------


@dataclass
class Card:
    """A model card and its Hugging Face front matter (empty dict when it has none)."""

    path: str
    front: dict[str, Any] = field(default_factory=dict)
    front_error: bool = False


def read_card(root: Path, rel: str) -> Card:
    text = read_text(root / rel) or ""
    card = Card(rel)
    if not text.startswith("---"):
        return card
    end = text.find("\n---", 3)
    if end == -1:
        return card
    data = read_yaml(text[3:end])
    if isinstance(data, dict):
        card.front = {str(k): v for k, v in data.items()}
    else:
        card.front_error = data is None and bool(text[3:end].strip())
    return card


# --- licence texts --------------------------------------------------------------------------

_LICENSE_SNIFFERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Apache-2.0", ("apache license", "version 2.0")),
    ("MIT", ("mit license",)),
    ("MIT", ("permission is hereby granted, free of charge",)),
    ("BSD-3-Clause", ("bsd 3-clause",)),
    ("BSD-2-Clause", ("bsd 2-clause",)),
    ("BSD-3-Clause", ("redistribution and use in source and binary forms", "neither the name")),
    ("BSD-2-Clause", ("redistribution and use in source and binary forms",)),
    ("AGPL-3.0-only", ("gnu affero general public license", "version 3")),
    ("LGPL-3.0-only", ("gnu lesser general public license", "version 3")),
    ("LGPL-2.1-only", ("gnu lesser general public license", "version 2.1")),
    ("GPL-3.0-only", ("gnu general public license", "version 3")),
    ("GPL-2.0-only", ("gnu general public license", "version 2")),
    ("MPL-2.0", ("mozilla public license", "2.0")),
    ("CC-BY-SA-4.0", ("attribution-sharealike 4.0 international",)),
    ("CC-BY-4.0", ("attribution 4.0 international",)),
    ("CC0-1.0", ("cc0 1.0 universal",)),
    ("Unlicense", ("this is free and unencumbered software released into the public domain",)),
    ("ISC", ("isc license",)),
    ("BSL-1.0", ("boost software license",)),
)


def sniff_license_text(path: Path) -> str | None:
    """The SPDX id of a common licence, recognised from the first lines of its text."""
    text = read_text(path)
    if text is None:
        return None
    head = " ".join(text[:1500].lower().split())
    for spdx, needles in _LICENSE_SNIFFERS:
        if all(needle in head for needle in needles):
            return spdx
    return None


# --- environments ---------------------------------------------------------------------------

PYTHON_VERSION = re.compile(r"^\d+(?:\.\d+){0,2}$")


@dataclass
class EnvSpec:
    """What an environment file says: pip install commands, a Python version, leftovers."""

    commands: list[str] = field(default_factory=list)
    python: str | None = None
    notes: list[str] = field(default_factory=list)


def read_conda_env(path: Path, rel: str) -> EnvSpec:
    """environment.yml / conda.yaml: its ``pip:`` part becomes a pip command; conda packages
    become a TODO (the isolated environment is a virtualenv, not conda)."""
    spec = EnvSpec()
    data = read_yaml(read_text(path))
    deps = data.get("dependencies") if isinstance(data, dict) else None
    if not isinstance(deps, list):
        spec.notes.append(f"TODO: {rel} lists no dependencies that could be read")
        return spec
    conda: list[str] = []
    pip: list[str] = []
    for dep in deps:
        if isinstance(dep, dict) and isinstance(dep.get("pip"), list):
            pip += [str(x) for x in dep["pip"]]
        elif isinstance(dep, str):
            name = re.split(r"[=<>!\s]", dep, maxsplit=1)[0]
            if name == "python":
                version = dep[len(name) :].lstrip("=").strip()
                if PYTHON_VERSION.match(version):
                    spec.python = version
            elif name != "pip":
                conda.append(dep)
    if pip:
        args = [a for item in pip for a in item.split()]
        spec.commands.append(to_manifest_command("python -m pip install " + shlex.join(args)))
    if conda:
        shown = ", ".join(conda[:8]) + (" …" if len(conda) > 8 else "")
        spec.notes.append(
            f"TODO: {rel} is a conda environment; these conda packages need pip equivalents "
            f"in install.commands: {shown}"
        )
    return spec


def script_in(command: str, repo_files: set[str]) -> list[str]:
    """Repository files a command names (scripts, configs), in order."""
    try:
        tokens = shlex.split(command)
    except ValueError:
        tokens = command.split()
    if tokens[:2] == ["sh", "-c"] and len(tokens) > 2:
        return script_in(tokens[2], repo_files)
    found: list[str] = []
    for token in tokens:
        for part in (token, token.split("=", 1)[-1]):
            clean = part.removeprefix("./")
            if clean in repo_files and clean not in found:
                found.append(clean)
    return found
