"""Files that DVC or Git LFS keep out of git: how to fetch them, and the digest each records.

Stage: below the checks (CS101, CS102, CS104, CS701); reads repository files only. A declared
weights file may be

* a DVC output: named by a stage of ``dvc.yaml`` (its ``outs``, ``metrics``, ``plots``), whose
  ``dvc.lock`` records the md5 DVC computed when it ran, or by a ``<path>.dvc`` stub (``dvc
  add``), or inside a folder that is one of those;
* a Git LFS file: ``.gitattributes`` gives it ``filter=lfs``, and git's index holds the pointer
  text whose ``oid sha256:`` is the digest of the real content.

Neither ``dvc`` nor ``git-lfs`` ever runs. DVC's files are read bounded and parsed as plain
YAML (``yaml.safe_load`` semantics, nesting limited); a file that is not what DVC writes yields
nothing. ``git`` runs as :mod:`pytest_corrsource.shipping` runs it (no hooks, no fsmonitor, no
user configuration, a timeout, bounded output); ``git cat-file`` applies no filter driver.

DVC's md5 of a file: since DVC 3 an output written with ``hash: md5`` is the md5 of its bytes;
an entry without ``hash`` (DVC 2.x, "md5-dos2unix") is the md5 of the bytes with CRLF turned
into LF in each 1 MiB chunk when the first 512 bytes look like text (see
:func:`pytest_corrsource.hashing.dvc_md5_files`). A folder output records the md5 of a ``.dir``
listing kept in DVC's cache, not of any file: a file inside one has no digest to compare.
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pytest_corrsource.safe_io import read_bounded

__all__ = [
    "LFS_POINTER_MAX",
    "DeclaredDigest",
    "DvcOutput",
    "declared_digest",
    "dvc_output",
    "lfs_oid",
    "lfs_pointer_fields",
    "shell_word",
]

#: What is read of ``dvc.yaml`` / ``dvc.lock`` (a pipeline of thousands of stages is far less).
MAX_DVC_FILE_BYTES = 4 << 20
#: What is read of a ``.dvc`` stub (a few lines; with an inline `files:` listing, more).
MAX_STUB_BYTES = 1 << 20
#: Outputs looked at per file: YAML aliases can make a small file list the same outputs
#: millions of times.
MAX_OUTPUTS = 100_000
#: Git LFS pointers are smaller than this (git-lfs docs/spec.md).
LFS_POINTER_MAX = 1024
_LFS_VERSION = b"version https://git-lfs.github.com/spec/v1"
_LFS_OID = re.compile(r"^oid sha256:([0-9a-f]{64})$", re.MULTILINE)
_LFS_SIZE = re.compile(r"^size (\d+)$", re.MULTILINE)
_HEX32 = frozenset("0123456789abcdef")


def shell_word(text: str) -> str:
    """*text* quoted for a POSIX shell: a hint the user pastes must not run what a hostile file
    name holds (``"$(…)"`` would run inside double quotes)."""
    return shlex.quote(text)


@dataclass(frozen=True)
class DvcOutput:
    """A DVC output that is, or holds, the file asked about."""

    path: str  # the output, root-relative POSIX (the file itself or a folder holding it)
    source: str  # where it is declared: `dvc.lock`, `models/model.pt.dvc`, `sub/dvc.yaml`
    stage: str | None  # the dvc.yaml stage that writes it (None for a `.dvc` stub)
    md5: str | None  # the recorded md5 (32 hex digits) of the file; None: none or a folder's
    hash_name: str  # "md5" (DVC 3 `hash: md5`) or "md5-dos2unix" (DVC 2.x entries)
    folder: bool  # the output is a folder (its md5 is a `.dir` listing's)
    size: int | None
    cached: bool = True  # False for `cache: false` / `push: false`: `dvc pull` cannot fetch it

    @property
    def described(self) -> str:
        """e.g. "dvc.lock, stage `train`" or "models/model.pt.dvc"."""
        return f"{self.source}, stage `{self.stage}`" if self.stage else self.source

    def fetch_hint(self, rel: str) -> str:
        """The command that brings ``rel`` (this output or a file in it) into the work tree."""
        if not self.cached and self.stage:
            return f"dvc repro {shell_word(self.stage)}"
        return f"dvc pull {shell_word(rel)}"


@dataclass(frozen=True)
class DeclaredDigest:
    """A digest the repository records for a file besides the manifest."""

    algorithm: str  # "sha256", "md5" or "md5-dos2unix"
    value: str  # lowercase hex
    source: str  # the file that records it: "dvc.lock", "model.pt.dvc", "the Git LFS pointer"
    detail: str = ""  # e.g. "stage `train`"

    @property
    def name(self) -> str:
        """The digest as people call it: DVC 2's "md5-dos2unix" is an md5 to them."""
        return "md5" if self.algorithm.startswith("md5") else self.algorithm

    def described(self) -> str:
        """e.g. "dvc.lock's md5 (stage `train`)"."""
        return f"{self.source}'s {self.name}" + (f" ({self.detail})" if self.detail else "")


# --- DVC ------------------------------------------------------------------------------------


def _inside(root: Path, rel: str) -> Path | None:
    """``root / rel`` if it is a regular file whose real path stays inside ``root``."""
    path = root / rel
    try:
        real = Path(os.path.realpath(path))
        base = Path(os.path.realpath(root))
    except (OSError, ValueError):
        return None
    if real != base and base not in real.parents:
        return None  # a symlinked dvc.lock pointing out of the repository is not its lock
    return path if path.is_file() else None


def _load(root: Path, rel: str, limit: int) -> Any:
    from pytest_corrsource.plain_yaml import load_plain_yaml

    path = _inside(root, rel)
    if path is None:
        return None
    try:
        text = read_bounded(path, limit).decode("utf-8", errors="replace")
        return load_plain_yaml(text)
    except (OSError, ValueError):
        return None  # unreadable, too large or not YAML: DVC could not use it either


def _join(base: str, *parts: str) -> str | None:
    """Root-relative POSIX path of ``parts`` under folder ``base``; None if it leaves the root,
    is absolute or holds DVC templating (``${…}``) that only DVC can resolve."""
    if any(not p or "${" in p or "\0" in p for p in parts if p is not None):
        return None
    joined = posixpath.normpath(posixpath.join(base or ".", *parts).replace("\\", "/"))
    if joined.startswith(("/", "../")) or joined == "..":
        return None
    return "" if joined == "." else joined


def _md5_of(entry: dict[str, Any]) -> tuple[str | None, bool]:
    """(md5 of a file, whether the entry is a folder) from an out entry of a lock or stub."""
    value = entry.get("md5")
    if not isinstance(value, str):
        return None, bool(isinstance(entry.get("nfiles"), int))
    value = value.strip().lower()
    if value.endswith(".dir"):
        return None, True
    return (value if len(value) == 32 and set(value) <= _HEX32 else None), False


def _hash_name(entry: dict[str, Any]) -> str:
    return "md5" if entry.get("hash") == "md5" else "md5-dos2unix"


def _size(entry: dict[str, Any]) -> int | None:
    size = entry.get("size")
    return size if type(size) is int and size >= 0 else None


def _covers(out: str, rel: str) -> bool:
    return out == rel or (out == "" or rel.startswith(out + "/"))


def _out_items(items: Any) -> list[tuple[str, dict[str, Any]]]:
    """dvc.yaml `outs`/`metrics`/`plots`: `- path` or `- path: {cache: false, …}`."""
    found: list[tuple[str, dict[str, Any]]] = []
    if not isinstance(items, list):
        return found
    for item in items[:MAX_OUTPUTS]:
        if isinstance(item, str):
            found.append((item, {}))
        elif isinstance(item, dict) and len(item) == 1:
            ((name, flags),) = item.items()
            if isinstance(name, str):
                found.append((name, flags if isinstance(flags, dict) else {}))
    return found


def _from_pipeline(root: Path, folder: str, rel: str) -> DvcOutput | None:
    """The output of ``folder/dvc.yaml`` (with ``folder/dvc.lock``) that is or holds ``rel``."""
    yaml_rel = posixpath.join(folder, "dvc.yaml")
    lock_rel = posixpath.join(folder, "dvc.lock")
    pipeline = _load(root, yaml_rel, MAX_DVC_FILE_BYTES)
    lock = _load(root, lock_rel, MAX_DVC_FILE_BYTES)
    stages = pipeline.get("stages") if isinstance(pipeline, dict) else None
    stages = stages if isinstance(stages, dict) else {}
    locked = lock.get("stages") if isinstance(lock, dict) else None
    locked = locked if isinstance(locked, dict) else {}

    def wdir(stage: str) -> str | None:
        body = stages.get(stage.split("@", 1)[0])  # `train@0`: a foreach/matrix stage's item
        value = body.get("wdir") if isinstance(body, dict) else None
        return _join(folder, value) if isinstance(value, str) else folder

    # dvc.lock first: it records what the run wrote, with digests.
    seen = 0
    for stage, body in locked.items():
        outs = body.get("outs") if isinstance(body, dict) else None
        base = wdir(str(stage))
        if not isinstance(outs, list) or base is None:
            continue
        for entry in outs:
            seen += 1
            if seen > MAX_OUTPUTS:
                return None
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                continue
            out = _join(base, entry["path"])
            if out is None or not _covers(out, rel):
                continue
            md5, folder_out = _md5_of(entry)
            flags = _flags(stages.get(str(stage)), entry["path"])
            return DvcOutput(
                path=out,
                source=lock_rel,
                stage=str(stage),
                md5=md5 if out == rel else None,
                hash_name=_hash_name(entry),
                folder=folder_out or out != rel,
                size=_size(entry) if out == rel else None,
                cached=flags.get("cache", True) is not False and flags.get("push") is not False,
            )
    # dvc.yaml alone: declared, never run (or its lock is not committed).
    for stage, body in stages.items():
        if not isinstance(body, dict) or "foreach" in body or "matrix" in body:
            continue
        base = wdir(str(stage))
        if base is None:
            continue
        for key in ("outs", "metrics", "plots"):
            for name, flags in _out_items(body.get(key)):
                seen += 1
                if seen > MAX_OUTPUTS:
                    return None
                out = _join(base, name)
                if out is None or not _covers(out, rel):
                    continue
                return DvcOutput(
                    path=out,
                    source=yaml_rel,
                    stage=str(stage),
                    md5=None,
                    hash_name="md5",
                    folder=out != rel,
                    size=None,
                    cached=flags.get("cache", True) is not False and flags.get("push") is not False,
                )
    return None


def _flags(body: Any, name: str) -> dict[str, Any]:
    """The dvc.yaml flags (`cache`, `push`) of stage output ``name``."""
    if not isinstance(body, dict):
        return {}
    for key in ("outs", "metrics", "plots"):
        for out, flags in _out_items(body.get(key)):
            if posixpath.normpath(out) == posixpath.normpath(name):
                return flags
    return {}


def _from_stub(root: Path, target: str, rel: str) -> DvcOutput | None:
    """The output of the stub ``target.dvc`` (as `dvc add target` writes it) holding ``rel``."""
    stub_rel = target + ".dvc"
    stub = _load(root, stub_rel, MAX_STUB_BYTES)
    outs = stub.get("outs") if isinstance(stub, dict) else None
    if not isinstance(outs, list):
        return None
    folder = posixpath.dirname(stub_rel)
    for entry in outs[:MAX_OUTPUTS]:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            continue
        out = _join(folder, entry["path"])
        if out is None or not _covers(out, rel):
            continue
        md5, folder_out = _md5_of(entry)
        return DvcOutput(
            path=out,
            source=stub_rel,
            stage=None,
            md5=md5 if out == rel else None,
            hash_name=_hash_name(entry),
            folder=folder_out or out != rel,
            size=_size(entry) if out == rel else None,
        )
    return None


def dvc_output(root: Path, rel: str) -> DvcOutput | None:
    """The DVC output that is ``rel`` (root-relative POSIX) or holds it, or None.

    Looked for, nearest first: ``<rel>.dvc`` and the stub of each folder above it, then the
    ``dvc.yaml``/``dvc.lock`` of the file's folder and of each folder above it up to ``root``.
    """
    rel = posixpath.normpath(rel.replace("\\", "/"))
    parts = PurePosixPath(rel).parts
    if not parts or parts[0] in ("..", "/"):
        return None
    prefixes = ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]
    for target in prefixes:
        found = _from_stub(root, target, rel)
        if found is not None:
            return found
    for folder in [*prefixes[1:], ""]:
        found = _from_pipeline(root, folder, rel)
        if found is not None:
            return found
    return None


# --- Git LFS --------------------------------------------------------------------------------


def lfs_pointer_fields(data: bytes) -> tuple[str | None, int | None] | None:
    """(sha256 oid, size) of the Git LFS pointer that ``data`` (a whole file) is, or None when
    it is not one. A pointer whose oid or size is malformed is still a pointer: (None, None)."""
    if len(data) >= LFS_POINTER_MAX or not data.startswith(_LFS_VERSION):
        return None
    text = data.decode("utf-8", errors="replace")
    oid = _LFS_OID.search(text)
    size = _LFS_SIZE.search(text)
    return (oid.group(1) if oid else None), (int(size.group(1)) if size else None)


def lfs_oid(root: Path, rel: str) -> str | None:
    """The sha256 that the Git LFS pointer in git's index records for ``rel``, when
    ``.gitattributes`` gives it ``filter=lfs``; None otherwise (no git, not tracked, not LFS)."""
    from pytest_corrsource.shipping import GitListingError, run_git

    if shutil.which("git") is None:
        return None
    here = f"./{rel}"  # `:./path` is relative to `-C root`, which may be a subfolder of the repo
    try:
        attributes = run_git(root, "check-attr", "-z", "filter", "--", rel)
        if attributes[-1:] != ["lfs"]:
            return None
        (size_text,) = run_git(root, "cat-file", "-s", f":{here}")
        if int(size_text.strip()) >= LFS_POINTER_MAX:
            return None  # real content was committed, not a pointer
        blob = "\0".join(run_git(root, "cat-file", "blob", f":{here}"))
    except (GitListingError, ValueError):
        return None
    fields = lfs_pointer_fields(blob.encode("utf-8", "surrogateescape"))
    return None if fields is None else fields[0]


# --- the digest to compare with -------------------------------------------------------------


def declared_digest(root: Path, rel: str) -> tuple[DeclaredDigest | None, str]:
    """The digest the repository records for file ``rel`` outside the manifest, and, when there
    is none to compare with, why (empty when nothing tracks the file).

    DVC's record comes first (it is what ``dvc pull`` restores), then Git LFS's pointer.
    """
    output = dvc_output(root, rel)
    if output is not None and output.md5 is not None:
        stage = f"stage `{output.stage}`" if output.stage else ""
        return DeclaredDigest(output.hash_name, output.md5, output.source, stage), ""
    oid = lfs_oid(root, rel)
    if oid is not None:
        return DeclaredDigest("sha256", oid, "the Git LFS pointer", "in git's index"), ""
    if output is None:
        return None, ""
    if output.folder:
        where = "is" if output.path == rel else f"lies in {output.path}/,"
        return None, (
            f"{rel} {where} a DVC-tracked folder ({output.described}): DVC records the md5 of "
            "the folder's listing, not of this file, so no digest could be compared"
        )
    return None, (
        f"{rel} is a DVC output ({output.described}) but no dvc.lock or .dvc file records its "
        "md5, so no digest could be compared"
    )
