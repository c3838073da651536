"""skops files (``skops.io.dump``): a zip of ``schema.json`` plus one ``.npy`` member per array.

``schema.json`` describes the object tree as nested nodes (``{"__class__", "__module__",
"__loader__", "content", …}``); an array is an ``NdArrayNode`` of ``"type": "numpy"`` whose
``"file"`` names its ``.npy`` member. The tensor name is the path of dict keys and list indices
to that node, with skops' own ``content`` levels left out (``coefs_.0``, as for a pickle).
Nothing is loaded: the JSON is parsed with a size cap, the members are read with
``allow_pickle=False``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from . import FormatError

__all__ = ["is_skops", "skops_arrays"]

_MAX_SCHEMA = 64 << 20
_MAX_DEPTH = 200


def is_skops(path: Path) -> bool:
    """A zip whose members are ``schema.json`` and ``.npy``/other skops payloads."""
    try:
        with zipfile.ZipFile(path) as archive:
            return "schema.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def skops_arrays(path: Path) -> dict[str, str]:
    """tensor name -> ``.npy`` member, for every numpy array the schema names."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("schema.json")
            if info.file_size > _MAX_SCHEMA:
                raise FormatError(f"schema.json is {info.file_size} bytes (limit {_MAX_SCHEMA}).")
            schema = json.loads(archive.read(info))
            members = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, RecursionError) as exc:  # deep JSON
        raise FormatError(f"not a readable skops file: {exc}.") from None
    out: dict[str, str] = {}

    def walk(node: Any, parts: tuple[str, ...], depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise FormatError(f"schema.json nests deeper than {_MAX_DEPTH} levels.")
        if isinstance(node, dict):
            if node.get("__loader__") == "NdArrayNode" and node.get("type") == "numpy":
                member = node.get("file")
                if not isinstance(member, str) or member not in members:
                    raise FormatError(f"array {'.'.join(parts)!r} names no member ({member!r}).")
                out[".".join(parts)] = member
                return
            for key, child in node.items():
                walk(child, parts if key == "content" else (*parts, str(key)), depth + 1)
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, (*parts, str(index)), depth + 1)

    walk(schema, (), 0)
    return out
