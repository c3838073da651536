"""Classify weights files by content (magic bytes), never by extension, and dispatch readers."""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path
from typing import Literal, get_args

from . import FormatError, WeightsHeader
from .gguf import read_gguf_header
from .npy import NPY_MAGIC, read_npy_header, read_npz_header
from .pickle_scan import is_legacy_torch_tar, looks_like_pickle
from .safetensors import SAFETENSORS_MAX_HEADER, read_safetensors_header
from .shards import read_safetensors_index, verify_sharded_checkpoint

__all__ = ["FORMATS", "DetectedFormat", "detect_format", "read_weights_header"]

#: What :func:`detect_format` can say a file is, by its first bytes.
DetectedFormat = Literal[
    "safetensors", "safetensors-index", "gguf", "npy", "npz", "torch-zip", "pickle", "opaque"
]
FORMATS: tuple[DetectedFormat, ...] = get_args(DetectedFormat)
_HEAD = 4096
_JSON_WHITESPACE = b" \t\r\n"
_TORCH_LEGACY_MAGIC = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
PICKLE_WARNING = "pickle-based format: structure not validated here; see the safety scan"
OPAQUE_WARNING = "unknown format: the file is present and hashed but its structure is unverified"


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    # A header length beyond the file still marks a safetensors file (a truncated one): the
    # reader then fails it precisely instead of it passing as "opaque".
    if length < 2 or length > SAFETENSORS_MAX_HEADER:
        return False
    body = head[8 : 8 + length].lstrip(_JSON_WHITESPACE)
    # Only the bytes inside the window are checked; a header padded with more leading
    # whitespace than the window holds is not recognised (real writers pad < 8 bytes).
    return body[:1] == b"{"


def _zip_kind(path: Path) -> DetectedFormat:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except Exception:  # a corrupt archive is not any known weights format
        return "opaque"
    # torch finds `data.pkl` case-insensitively (miniz), so any case marks a torch zip
    if any(name.lower() == "data.pkl" or name.lower().endswith("/data.pkl") for name in names):
        return "torch-zip"
    if names and all(name.endswith(".npy") for name in names):
        return "npz"
    return "opaque"


def detect_format(path: Path) -> DetectedFormat:
    """Return one of :data:`FORMATS` from the file's first bytes (reads at most 4 KiB,
    plus the zip central directory for zips). Raises :class:`FormatError` if unreadable."""
    from pytest_corrsource.safe_io import open_regular

    path = Path(path)
    try:
        with open_regular(path) as handle:  # a FIFO or device is refused, never read
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(_HEAD)
    except OSError as error:
        raise FormatError(f"cannot read the file: {error.strerror or error}.") from None
    if head.startswith(b"GGUF"):
        return "gguf"
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _zip_kind(path)
    if _looks_like_safetensors(head, size):
        return "safetensors"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if _TORCH_LEGACY_MAGIC in head[:32]:
        return "pickle"
    stripped = head.lstrip(_JSON_WHITESPACE + b"\xef\xbb\xbf")
    if stripped.startswith(b"{") and (
        b'"weight_map"' in head or path.name.endswith(".safetensors.index.json")
    ):
        return "safetensors-index"
    if looks_like_pickle(head):
        return "pickle"
    if is_legacy_torch_tar(path):
        return "pickle"  # torch's pre-0.4 tar checkpoint: pickles inside a tar
    return "opaque"


def read_weights_header(path: Path, repo_root: Path) -> WeightsHeader:
    """Detect ``path``'s format and run the matching header-only reader."""
    kind = detect_format(path)
    if kind == "safetensors":
        return read_safetensors_header(path)
    if kind == "safetensors-index":
        return verify_sharded_checkpoint(read_safetensors_index(path, repo_root))
    if kind == "gguf":
        return read_gguf_header(path)
    if kind == "npy":
        return read_npy_header(path)
    if kind == "npz":
        return read_npz_header(path)
    if kind in ("pickle", "torch-zip"):
        return WeightsHeader(format=kind, warnings=(PICKLE_WARNING,))
    return WeightsHeader(format="opaque", warnings=(OPAQUE_WARNING,))
