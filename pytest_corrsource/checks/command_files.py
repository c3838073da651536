"""Which repository files and modules a manifest command names, read as people write commands.

Stage: a helper of the check functions (CS401), pure text analysis: nothing runs, nothing is
read from disk. A command is split like the runner splits it (``shlex``); then

* ``python [options] script.py args`` names ``script.py``; ``python -m pkg.mod`` names a module;
  ``python -c 'code'`` names no script (the code is program text, not a file name). ``-m`` means
  "module" only for Python: ``mlflow models predict -m model`` names no module.
* ``sh -c '…'`` / ``bash -c '…'`` bodies are analysed too: split at ``;``, ``&&``, ``||``, ``|``
  and newlines, with ``cd DIR`` followed, ``VAR=value`` prefixes and ``env`` skipped, and
  ``< input`` redirections read as files the command needs.
* Any other token names a file when it looks like one (a relative path with ``/`` or a known
  suffix); ``{repo}/x`` is the repository file ``x``; other placeholders, options, URLs,
  absolute paths and free text (with spaces) name nothing here.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field

__all__ = ["CommandFiles", "analyse_command"]

# Tokens that name a file in the repository by their form: a path or a script-like suffix.
FILE_SUFFIXES = (
    ".py", ".sh", ".json", ".yaml", ".yml", ".toml", ".cfg", ".txt", ".npz", ".npy",
    ".safetensors", ".gguf", ".bin", ".pt", ".pth", ".onnx", ".model", ".vocab", ".csv",
    ".c", ".cpp", ".ini", ".pkl", ".skops", ".joblib",
)  # fmt: skip
_PYTHON = re.compile(r"^(python|pypy)(\d+(\.\d+)?)?$")
_SHELLS = ("sh", "bash", "dash", "zsh")
# Long Python options that take a value (``--check-hash-based-pycs always``).
_PYTHON_LONG_VALUE_OPTIONS = ("--check-hash-based-pycs",)
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", "\n"}
_PLACEHOLDER = re.compile(r"\{[a-z]+(\[\d+\])?\}")
_SHELL_EXPANSION = re.compile(r"[$`*?]")


@dataclass
class CommandFiles:
    """What one command names: repository-relative files, dotted modules, and notes."""

    files: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def _add_file(self, path: str) -> None:
        if path not in self.files:
            self.files.append(path)


def analyse_command(command: str) -> CommandFiles:
    """The files and modules ``command`` names; ``ValueError`` when it cannot be split."""
    found = CommandFiles()
    _analyse_argv(shlex.split(command), "", found)
    return found


def _repo_path(token: str, cwd: str) -> str | None:
    """The repository-relative path ``token`` names, or None when it names no repository file."""
    if token.startswith("{repo}/"):
        token = token.removeprefix("{repo}/")
    elif token.startswith("./{repo}/"):
        token = token.removeprefix("./{repo}/")
    if not token or _PLACEHOLDER.search(token) or token.startswith(("-", "/", "~")):
        return None
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", token) or any(c.isspace() for c in token):
        return None
    if "/" not in token and not token.endswith(FILE_SUFFIXES):
        return None
    path = posixpath.normpath(posixpath.join(cwd, token))
    if path == ".." or path.startswith("../"):
        return None  # outside the repository: the manifest loader reports such paths
    return path


def _analyse_argv(tokens: list[str], cwd: str, found: CommandFiles) -> None:
    while tokens and _ASSIGNMENT.match(tokens[0]):  # VAR=value cmd …
        tokens = tokens[1:]
    if tokens and tokens[0] == "env":
        rest = tokens[1:]
        while rest and (rest[0].startswith("-") or _ASSIGNMENT.match(rest[0])):
            rest = rest[1:]
        tokens = rest
    if not tokens:
        return
    program = tokens[0]
    name = posixpath.basename(program)
    if program in ("{python}",) or _PYTHON.match(name):
        _analyse_python(tokens[1:], cwd, found)
        return
    if name in _SHELLS and len(tokens) >= 3 and tokens[1] in ("-c", "-ec", "-ce", "-lc", "-xc"):
        _analyse_shell(tokens[2], cwd, found)
        return
    if "/" in program:  # ./run, bin/tool, {repo}/run: a repository executable
        path = _repo_path(program, cwd)
        if path is not None:
            found._add_file(path)
    _analyse_arguments(tokens[1:], cwd, found)


def _analyse_arguments(tokens: list[str], cwd: str, found: CommandFiles) -> None:
    for token in tokens:
        path = _repo_path(token, cwd)
        if path is not None:
            found._add_file(path)


def _analyse_python(tokens: list[str], cwd: str, found: CommandFiles) -> None:
    """CPython's command line: option clusters (``-u``, ``-OO``, ``-um mod``), options with a
    value (``-W x``, ``-Xdev``), then ``-m module``, ``-c code`` or a script."""
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "--":
            i += 1
            break
        if token.startswith("--"):
            i += 2 if token in _PYTHON_LONG_VALUE_OPTIONS else 1
            continue
        if not token.startswith("-") or token == "-":
            break
        for position, letter in enumerate(token[1:], start=1):
            if letter not in "mcWX":
                continue
            attached = token[position + 1 :]
            value = attached or (tokens[i + 1] if i + 1 < len(tokens) else "")
            after = i + 1 if attached else i + 2
            if letter == "m":
                found.modules.append(value)
                _analyse_arguments(tokens[after:], cwd, found)
                return
            if letter == "c":
                # Program text, not a file; what follows is its sys.argv.
                _analyse_arguments(tokens[after:], cwd, found)
                return
            i = after - 1  # -W / -X: skip their value
            break
        i += 1
    if i >= len(tokens):
        return  # the interactive interpreter: names nothing
    script = tokens[i]
    path = _repo_path(script, cwd)
    if path is None and "/" not in script and not _PLACEHOLDER.search(script) and script != "-":
        path = posixpath.normpath(posixpath.join(cwd, script))  # `python run` runs ./run
    if path is not None:
        found._add_file(path)
    _analyse_arguments(tokens[i + 1 :], cwd, found)


def _analyse_shell(body: str, cwd: str, found: CommandFiles) -> None:
    lexer = shlex.shlex(body.replace("\n", " ; "), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError as exc:
        found.notes.append(f"the shell command cannot be split ({exc}): not analysed")
        return
    command: list[str] = []
    for word in [*words, ";"]:
        if word not in _SEPARATORS and not set(word) <= set(";&|()"):
            command.append(word)
            continue
        cwd = _analyse_simple_shell_command(command, cwd, found)
        command = []


def _analyse_simple_shell_command(words: list[str], cwd: str, found: CommandFiles) -> str:
    """Analyse one simple command of a shell body; returns the working directory after it."""
    plain: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("<", ">", ">>", "2>", "&>", "2>>") and i + 1 < len(words):
            if word == "<":  # input redirection: a file the command reads
                path = _repo_path(words[i + 1], cwd)
                if path is not None:
                    found._add_file(path)
            i += 2
            continue
        if _SHELL_EXPANSION.search(word):
            found.notes.append(f"`{word}` is expanded by the shell: not analysed")
            i += 1
            continue
        plain.append(word)
        i += 1
    if not plain:
        return cwd
    if plain[0] == "cd":
        target = plain[1] if len(plain) > 1 else ""
        if not target or target.startswith(("/", "~", "-")) or _PLACEHOLDER.search(target):
            found.notes.append(f"`cd {target}` leaves the repository: later files not analysed")
            return "/"  # a sentinel: nothing resolves under it
        return posixpath.normpath(posixpath.join(cwd, target))
    if cwd == "/":
        return cwd
    _analyse_argv(plain, cwd, found)
    return cwd
