"""CS501 preferred form, CS502 architecture: the repository ships source, not object code.

The Open Source Definition §2 asks for "the preferred form in which a programmer would modify
the program"; obfuscated or intermediate forms are not allowed. CS501 scans the repository
(git's view of it when it is a checkout, so ignored files are not judged) for compiled
Python without its source, native binaries without a build recipe, minified JavaScript and
Python that executes decoded blobs. Each finding names the file and line.
"""

from __future__ import annotations

import ast
import fnmatch
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pytest_corrsource.checks.api import CheckContext, CheckFailed, Finding
from pytest_corrsource.safe_io import (
    open_regular,
    read_head,
    read_text_bounded,
    regular_file_problem,
)

_SKIP_DIRS = {".git", ".hg", ".svn", ".venv", "venv", "node_modules", ".pytest_cache", ".tox",
              ".mypy_cache", ".ruff_cache"}  # fmt: skip
_NATIVE_MAGIC = (
    (b"\x7fELF", "an ELF executable or library"),
    (b"\xfe\xed\xfa\xce", "a Mach-O binary"),
    (b"\xfe\xed\xfa\xcf", "a Mach-O binary"),
    (b"\xce\xfa\xed\xfe", "a Mach-O binary"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O binary"),
    (b"MZ", "a Windows (PE) executable or DLL"),
)
BUILD_RECIPES = (
    "Makefile", "makefile", "GNUmakefile", "CMakeLists.txt", "setup.py", "pyproject.toml",
    "Cargo.toml", "meson.build", "configure", "configure.ac", "build.sh", "BUILD", "BUILD.bazel",
    "go.mod", "build.zig", "SConstruct",
)  # fmt: skip
# Calls that turn an encoded blob into code or bytes, and calls that execute what they get.
_DECODERS = {
    "b64decode", "b32decode", "b16decode", "a85decode", "b85decode", "decodebytes",
    "decompress", "fromhex", "unhexlify", "a2b_base64", "a2b_hex", "decode",
}  # fmt: skip
_EXECUTORS = {"exec", "eval", "compile"}
_LOADERS = {("marshal", "loads"), ("pickle", "loads"), ("dill", "loads"), ("cloudpickle", "loads")}
MAX_SOURCE_BYTES = 2 * 1024 * 1024
MAX_FILES = 50_000


@dataclass(frozen=True)
class SourceFinding:
    path: str
    line: int
    problem: str

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.line}: {self.problem}"
            if self.line
            else f"{self.path}: {self.problem}"
        )


def repository_files(root: Path) -> list[str]:
    """Files of the repository, relative, sorted: git's list (tracked and untracked, ignored
    files excluded) in a checkout, else a walk that skips tool folders."""
    if (root / ".git").exists():
        try:
            out = subprocess.run(
                ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                 "--exclude-standard"],
                capture_output=True, timeout=60, check=True,
            ).stdout  # fmt: skip
            listed = sorted({f for f in out.decode("utf-8", "replace").split("\0") if f})
            # Regular files, and whatever else is there but not a directory or dangling link
            # (a tracked symlink to /dev/zero): the scan reports those instead of reading them.
            kept = [
                f
                for f in listed
                if (root / f).is_file()
                or regular_file_problem(root / f) not in (None, "a directory")
            ]
            return kept[:MAX_FILES]
        except (OSError, subprocess.SubprocessError):
            pass  # not a usable checkout: walk it instead
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in sorted(filenames):
            files.append(os.path.relpath(os.path.join(dirpath, name), root))
            if len(files) >= MAX_FILES:
                return files
    return files


def _skipped_paths(ctx: CheckContext) -> set[str]:
    """Weights and data are judged by their own checks, not as code."""
    manifest = ctx.manifest
    skip = {w.path for w in (*manifest.weights, *manifest.checkpoints)}
    for w in manifest.weights:
        skip |= {str(Path(w.path).parent / name) for name in w.shards}
        if w.path.endswith(".index.json"):
            skip |= _index_shards(ctx.root, w.path)
    if manifest.data:
        skip |= {s.path for s in manifest.data.sources if s.path}
    if manifest.evaluation:
        skip |= {d.path for d in manifest.evaluation.data}
    return skip


def _index_shards(root: Path, index: str) -> set[str]:
    """The shards a sharded checkpoint's index names (empty when it cannot be read)."""
    from pytest_corrsource.formats import FormatError
    from pytest_corrsource.formats.shards import read_safetensors_index

    try:
        shards = read_safetensors_index(root / index, root).shards
    except (FormatError, OSError):
        return set()
    return {str(Path(index).parent / name) for name in shards}


def _head(path: Path, size: int = 8) -> bytes:
    try:
        return read_head(path, size)
    except OSError:
        return b""


def _is_pe(path: Path, head: bytes) -> bool:
    """An MZ header whose e_lfanew points at the ``PE\\0\\0`` signature."""
    if len(head) < 64:
        return False
    offset = int.from_bytes(head[0x3C:0x40], "little")
    try:
        with open_regular(path) as f:
            f.seek(offset)
            return f.read(4) == b"PE\0\0"
    except (OSError, ValueError, OverflowError):
        return False


def _call_name(node: ast.expr) -> tuple[str | None, str]:
    """(module or object name, function name) of a call target."""
    if isinstance(node, ast.Name):
        return None, node.id
    if isinstance(node, ast.Attribute):
        owner = node.value
        return (owner.id if isinstance(owner, ast.Name) else None), node.attr
    return None, ""


def _decoded_blob(node: ast.AST) -> str | None:
    """What makes ``node`` an encoded blob, if it is one."""
    for child in ast.walk(node):
        if isinstance(child, ast.Call):
            _owner, name = _call_name(child.func)
            if name in _DECODERS:
                return f"{name}(...)"
        if (
            isinstance(child, ast.Constant)
            and isinstance(child.value, bytes)
            and len(child.value) > 64
        ):
            return "a bytes literal"
    return None


def scan_python(text: str) -> list[tuple[int, str]]:
    """(line, problem) for each execution of a decoded blob in Python source."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []  # not Python 3 source we can judge; other checks will fail if it matters
    problems = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        owner, name = _call_name(node.func)
        if (owner is None and name in _EXECUTORS) or (owner, name) in _LOADERS:
            for arg in node.args:
                blob = _decoded_blob(arg)
                if blob:
                    call = f"{owner}.{name}" if owner else name
                    problems.append((node.lineno, f"{call}() of {blob}: obfuscated code"))
                    break
    return problems


def _minified(path: Path) -> bool:
    try:
        data = read_head(path, MAX_SOURCE_BYTES)
    except OSError:
        return False
    if len(data) < 2048:
        return False
    lines = data.count(b"\n") + 1
    return len(data) / lines > 500


def scan_repository(ctx: CheckContext, files: list[str]) -> list[SourceFinding]:
    root = ctx.root
    present = set(files)
    skip = _skipped_paths(ctx)
    has_recipe = any(Path(f).name in BUILD_RECIPES for f in files)
    findings: list[SourceFinding] = []
    for rel in files:
        if rel in skip:
            continue
        path = root / rel
        p = Path(rel)
        special = regular_file_problem(path)
        if special is not None:
            # A FIFO would block the scan, a device never end it; neither is source.
            findings.append(SourceFinding(rel, 0, f"{special}, not a regular file"))
            continue
        if p.suffix in (".pyc", ".pyo"):
            source = (
                p.parent.parent / (p.name.split(".", 1)[0] + ".py")
                if p.parent.name == "__pycache__"
                else p.with_suffix(".py")
            )
            if str(source) not in present:
                findings.append(
                    SourceFinding(rel, 0, f"compiled Python without its source ({source})")
                )
            continue
        head = _head(path, 64)
        native = next((what for magic, what in _NATIVE_MAGIC if head.startswith(magic)), None)
        if native and head.startswith(b"MZ") and not _is_pe(path, head):
            native = None  # two bytes alone are too weak: a PE file has its signature too
        if native and not has_recipe:
            findings.append(
                SourceFinding(rel, 0, f"{native} with no build recipe in the repository")
            )
            continue
        if p.suffix in (".js", ".mjs", ".cjs"):
            unminified = p.name.replace(".min.", ".")
            if (
                p.name.endswith(f".min{p.suffix}") and str(p.with_name(unminified)) not in present
            ) or (not p.name.endswith(f".min{p.suffix}") and _minified(path)):
                findings.append(SourceFinding(rel, 0, "minified JavaScript without its source"))
            continue
        if p.suffix == ".py":
            try:
                text = read_text_bounded(path, MAX_SOURCE_BYTES)
            except OSError:  # FileTooLarge included: too big to be hand-written source
                continue
            findings += [SourceFinding(rel, line, problem) for line, problem in scan_python(text)]
    return findings


def _allowed(ctx: CheckContext, finding: SourceFinding) -> bool:
    return any(
        finding.path == a.path or fnmatch.fnmatch(finding.path, a.path)
        for a in ctx.manifest.source_form_allow
    )


def check_preferred_form(ctx: CheckContext) -> Finding:
    """CS501."""
    files = repository_files(ctx.root)
    findings = scan_repository(ctx, files)
    accepted = [f for f in findings if _allowed(ctx, f)]
    rejected = [f for f in findings if not _allowed(ctx, f)]
    warnings = [f"accepted by `source-form.allow`: {f}" for f in accepted]
    if rejected:
        shown = "; ".join(str(f) for f in rejected[:20])
        more = f" (and {len(rejected) - 20} more)" if len(rejected) > 20 else ""
        raise CheckFailed(f"{len(rejected)} file(s) not in their preferred form: {shown}{more}")
    return Finding(message=f"{len(files)} files scanned", warnings=warnings)


def check_architecture(ctx: CheckContext) -> Finding:
    """CS502: the declared architecture files exist and are source."""
    problems = []
    for ref in ctx.manifest.architecture:
        path = ctx.root / ref.path
        special = regular_file_problem(path)
        if special is not None:
            problems.append(f"{ref.path} (line {ref.line}) is {special}, not a regular file")
            continue
        if not path.is_file():
            problems.append(f"{ref.path} (line {ref.line}) does not exist")
            continue
        try:
            data = read_head(path, MAX_SOURCE_BYTES)
        except OSError as exc:
            problems.append(f"{ref.path} (line {ref.line}) cannot be read: {exc}")
            continue
        if b"\0" in data:
            problems.append(f"{ref.path} is binary, not source")
            continue
        if path.suffix == ".py":
            try:
                ast.parse(data.decode("utf-8", "replace"))
            except SyntaxError as exc:
                problems.append(f"{ref.path}:{exc.lineno}: not valid Python ({exc.msg})")
            except (RecursionError, MemoryError):  # `1+1+…` or `---…1` many thousands deep
                problems.append(f"{ref.path}: not valid Python (nested too deeply to parse)")
    if problems:
        raise CheckFailed("; ".join(problems))
    return Finding(message=", ".join(r.path for r in ctx.manifest.architecture))
