"""The repository's files as ``corrsource init`` sees them: the listing, what kinds of files
names suggest, and hashing with a progress line."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

#: Extensions that name model weights (pickle-based ones are scanned by CS105).
PICKLE_EXTS = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib"})
WEIGHT_EXTS = frozenset(
    {".safetensors", ".gguf", ".npz", ".npy", ".onnx", ".h5", ".keras", ".tflite"} | PICKLE_EXTS
)

__all__ = [
    "CODE_EXTS",
    "DATA_DIRS",
    "DATA_LICENSE_TODO",
    "PICKLE_EXTS",
    "WEIGHT_EXTS",
    "dvc_tracked_note",
    "hash_file",
    "in_data",
    "listing",
    "on_disk",
]
CODE_EXTS = frozenset({".py", ".sh", ".ipynb", ".ps1", ".bat", ".js", ".r", ".jl", ".c", ".cpp"})
DATA_DIRS = ("data", "datasets")
_SKIP_PARTS = frozenset(
    {".git", ".hg", ".svn", ".venv", "venv", "env", ".env", "node_modules", "__pycache__",
     ".pytest_cache", ".tox", ".nox", ".mypy_cache", ".ruff_cache", "site-packages", ".dvc",
     ".ipynb_checkpoints", "wandb", "mlruns"}
)  # fmt: skip


def listing(root: Path) -> list[str]:
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
            if not path.is_file():
                continue  # a FIFO or device (git cannot hold one): never opened, never listed
        except (OSError, RuntimeError):
            continue
        files.append(str(posix))
    if venvs:
        files = [f for f in files if not any(f.startswith(v + "/") for v in venvs)]
    return files


#: The note on each data source until a licence for it is known.
DATA_LICENSE_TODO = "TODO: license of this data (SPDX id)"


def in_data(rel: str) -> bool:
    return PurePosixPath(rel).parts[0] in DATA_DIRS and "/" in rel


def human(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover


def hash_file(root: Path, rel: str, log: Callable[[str], None]) -> str:
    from pytest_corrsource.hashing import sha256_file

    path = root / rel
    size = path.stat().st_size
    log(f"hashing {rel} ({human(size)}) … ")
    started = time.perf_counter()
    digest = sha256_file(path)
    elapsed = max(time.perf_counter() - started, 1e-6)
    log(f"{human(size / elapsed)}/s\n")
    return digest


def on_disk(root: Path, rel: str) -> bool:
    """Whether ``rel`` is a regular file inside ``root`` though the listing left it out (a DVC
    output or pulled data, ignored by git); a link out of the repository does not count."""
    path = root / rel
    try:
        return path.is_file() and path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):
        return False


def dvc_tracked_note(tracked_by: str) -> str:
    """The note on a DVC-tracked file that is on disk but not in git."""
    return f"tracked by DVC ({tracked_by}), not by git: a fresh clone needs `dvc pull`"
