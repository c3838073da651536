"""Sharded safetensors checkpoints: ``model.safetensors.index.json`` plus its shards.

The index is read with the huggingface_hub rules (size cap, JSON object, dict ``weight_map``
of strings, no path traversal, matching extension) and the checkpoint is then verified from
the shard headers themselves: exact key coverage, one shard per tensor, and
``metadata.total_size`` equal to the sum of the tensors' byte sizes.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from . import FormatError, TensorInfo, WeightsHeader
from .safetensors import read_safetensors_header

__all__ = [
    "ShardedIndex",
    "read_safetensors_index",
    "shard_paths",
    "verify_sharded_checkpoint",
]

_MAX_LISTED = 5
_NUMBERED = re.compile(r"(?P<prefix>.*)-(?P<index>\d{5})-of-(?P<total>\d{5})\.safetensors")


@dataclass(frozen=True)
class ShardedIndex:
    """A parsed shard index. ``shards`` are sorted distinct names relative to the index's folder."""

    path: Path
    weight_map: dict[str, str]
    shards: tuple[str, ...]
    total_size: int | None
    metadata: dict[str, Any] = field(default_factory=dict)


def _listing(items: Iterable[str]) -> str:
    ordered = sorted(items)
    shown = ", ".join(f"`{item}`" for item in ordered[:_MAX_LISTED])
    if len(ordered) > _MAX_LISTED:
        shown += f" and {len(ordered) - _MAX_LISTED} more"
    return shown


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise FormatError(f"index is not valid: duplicate JSON key `{key}`.")
        result[key] = value
    return result


def _check_shard_name(name: str, folder: Path, root: Path) -> None:
    if not name:
        raise FormatError("weight_map names an empty shard file name.")
    if "\x00" in name:
        raise FormatError(f"shard name {name!r} contains a NUL character.")
    for pure in (PureWindowsPath(name), PurePosixPath(name)):
        if pure.drive or pure.root or ".." in pure.parts:
            raise FormatError(f"shard name `{name}` is not a plain relative path (path traversal).")
    if not name.endswith(".safetensors"):
        raise FormatError(f"shard `{name}` does not end in `.safetensors`.")
    try:
        resolved = (folder / name).resolve()
    except (OSError, RuntimeError) as error:
        raise FormatError(f"shard `{name}` cannot be resolved: {error}.") from None
    if not resolved.is_relative_to(root):
        raise FormatError(f"shard `{name}` resolves outside the repository (to {resolved}).")


def read_safetensors_index(
    index_path: Path, repo_root: Path, *, max_index_bytes: int = 10 * 1024 * 1024
) -> ShardedIndex:
    """Parse and sanity-check a ``*.safetensors.index.json`` file (shards are not opened)."""
    try:
        with open(index_path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > max_index_bytes:
                raise FormatError(f"index is {size} bytes, over the {max_index_bytes}-byte limit.")
            raw = handle.read(max_index_bytes + 1)
    except OSError as error:
        raise FormatError(f"cannot read the index: {error.strerror or error}.") from None
    if len(raw) > max_index_bytes:
        raise FormatError(f"index is over the {max_index_bytes}-byte limit.")
    try:
        parsed = json.loads(raw.decode("utf-8-sig"), object_pairs_hook=_reject_duplicates)
    except UnicodeDecodeError as error:
        raise FormatError(f"index is not valid UTF-8 (invalid byte at {error.start}).") from None
    except json.JSONDecodeError as error:
        raise FormatError(
            f"index is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}."
        ) from None
    except (ValueError, RecursionError) as error:
        raise FormatError(f"index is not valid JSON: {error or 'nesting too deep'}.") from None
    if not isinstance(parsed, dict):
        raise FormatError("index is not a JSON object.")
    weight_map = parsed.get("weight_map")
    if weight_map is None:
        raise FormatError("index has no `weight_map`.")
    if not isinstance(weight_map, dict):
        raise FormatError("index `weight_map` is not an object.")
    raw_metadata = parsed.get("metadata", {})
    if raw_metadata is None:
        raw_metadata = {}
    if not isinstance(raw_metadata, dict):
        raise FormatError("index `metadata` is not an object.")
    total_size: int | None = None
    if "total_size" in raw_metadata:
        value = raw_metadata["total_size"]
        if isinstance(value, float) and value.is_integer() and value >= 0:
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise FormatError("index `metadata.total_size` is not a non-negative integer.")
        total_size = value

    folder = Path(index_path).parent
    try:
        root = Path(repo_root).resolve()
    except (OSError, RuntimeError) as error:
        raise FormatError(f"repository root cannot be resolved: {error}.") from None
    checked: set[str] = set()
    for tensor, shard in weight_map.items():
        if not isinstance(shard, str):
            raise FormatError(f"weight_map value for tensor `{tensor}` is not a string.")
        if shard not in checked:
            _check_shard_name(shard, folder, root)
            checked.add(shard)
    return ShardedIndex(
        path=Path(index_path),
        weight_map=dict(weight_map),
        shards=tuple(sorted(checked)),
        total_size=total_size,
        metadata=dict(raw_metadata),
    )


def shard_paths(index: ShardedIndex) -> tuple[Path, ...]:
    """The shard files an index names, joined onto the index's folder, in ``shards`` order."""
    folder = index.path.parent
    return tuple(folder / shard for shard in index.shards)


def _numbering(shards: tuple[str, ...], folder: Path) -> tuple[list[str], list[str]]:
    """Shards following ``{prefix}-{i:05d}-of-{n:05d}.safetensors`` that the map leaves out.

    Returns (present but unreferenced, neither referenced nor present).
    """
    groups: dict[tuple[str, str], set[int]] = {}
    for shard in shards:
        match = _NUMBERED.fullmatch(shard)
        if match:
            groups.setdefault((match["prefix"], match["total"]), set()).add(int(match["index"]))
    present: list[str] = []
    absent: list[str] = []
    for (prefix, total), seen in sorted(groups.items()):
        for number in range(1, int(total) + 1):
            if number in seen:
                continue
            name = f"{prefix}-{number:05d}-of-{total}.safetensors"
            (present if (folder / name).is_file() else absent).append(name)
    return present, absent


def verify_sharded_checkpoint(index: ShardedIndex) -> WeightsHeader:
    """Read every shard header and cross-check them against the index.

    Shards numbered ``-NNNNN-of-MMMMM`` that the map omits are checked too: present ones are
    read (their tensors then show up as absent from the map), absent ones are reported.
    Raises :class:`FormatError` listing every problem found; returns the union of the
    shards' tensors in name order (format "safetensors-index").
    """
    problems: list[str] = []
    missing: list[str] = []
    located: dict[str, str] = {}
    tensors: dict[str, TensorInfo] = {}
    in_two: list[str] = []
    unlisted: dict[str, list[str]] = {}
    misplaced: list[str] = []
    readable: set[str] = set()
    folder = index.path.parent
    siblings, gaps = _numbering(index.shards, folder)
    if gaps:
        problems.append(
            f"shard numbering is incomplete: {_listing(gaps)} neither referenced nor present"
        )
    for shard in (*index.shards, *siblings):
        path = folder / shard
        if not path.is_file():
            missing.append(shard)
            continue
        try:
            header = read_safetensors_header(path)
        except FormatError as error:
            problems.append(f"shard `{shard}` is invalid: {error}")
            continue
        readable.add(shard)
        for tensor in header.tensors:
            if tensor.name in located:
                in_two.append(f"`{tensor.name}` (in `{located[tensor.name]}` and `{shard}`)")
                continue
            located[tensor.name] = shard
            tensors[tensor.name] = tensor
            mapped = index.weight_map.get(tensor.name)
            if mapped is None:
                unlisted.setdefault(shard, []).append(tensor.name)
            elif mapped != shard:
                misplaced.append(f"`{tensor.name}` (in `{shard}`, the map says `{mapped}`)")
    if missing:
        problems.insert(0, f"missing shards: {_listing(missing)}")
    for shard, names in sorted(unlisted.items()):
        problems.append(f"shard `{shard}` holds tensors absent from weight_map: {_listing(names)}")
    absent: dict[str, list[str]] = {}
    for name, shard in index.weight_map.items():
        if shard in readable and located.get(name) is None:
            absent.setdefault(shard, []).append(name)
    for shard, names in sorted(absent.items()):
        problems.append(f"weight_map tensors missing from `{shard}`: {_listing(names)}")
    if misplaced:
        shown = ", ".join(sorted(misplaced)[:_MAX_LISTED])
        extra = len(misplaced) - _MAX_LISTED
        problems.append(
            "tensors in a shard other than the one weight_map names: "
            + shown
            + (f" and {extra} more" if extra > 0 else "")
        )
    if in_two:
        problems.append("tensors present in two shards: " + ", ".join(sorted(in_two)[:_MAX_LISTED]))
    warnings: list[str] = []
    total = sum(tensor.nbytes for tensor in tensors.values())
    if index.total_size is None:
        warnings.append("index has no metadata.total_size; the tensor byte total is unchecked")
    elif not problems and index.total_size != total:
        problems.append(
            f"metadata.total_size is {index.total_size} but the shards' tensors hold {total} bytes"
        )
    if problems:
        raise FormatError("sharded checkpoint is inconsistent: " + "; ".join(problems) + ".")
    metadata = {key: value for key, value in index.metadata.items() if isinstance(value, str)}
    if index.total_size is not None:
        metadata["total_size"] = str(index.total_size)
    return WeightsHeader(
        format="safetensors-index",
        tensors=tuple(tensors[name] for name in sorted(tensors)),
        metadata=metadata,
        warnings=tuple(warnings),
    )
