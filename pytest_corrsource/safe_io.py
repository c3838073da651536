"""The checker's own reads of repository files: regular files only, and bounded.

Stage: below the checks; standard library only. A hostile repository can put a FIFO where the
checker expects its weights or model card (``open`` would block forever waiting for a writer),
a symlink to ``/dev/zero`` (an endless read), a socket or a device (opening some devices has
side effects), or a sparse file of many gigabytes. Every file the checker opens itself goes
through :func:`open_regular`, which

1. ``stat``\\ s the path first and refuses anything but a regular file without opening it;
2. opens it with ``O_NONBLOCK | O_NOCTTY`` (so a FIFO swapped in after the ``stat`` cannot
   block the open, and a terminal device cannot become our controlling terminal) and
   ``fstat``\\ s the descriptor: what was opened is what is read.

Reads of whole files are bounded (:func:`read_bounded`, :func:`read_head`); large files are
streamed by their callers (hashing, :func:`same_content`), never loaded whole.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from pytest_corrsource.errors import CorrsourceError

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "FileTooLarge",
    "NotRegularFile",
    "open_regular",
    "read_bounded",
    "read_head",
    "read_text_bounded",
    "regular_file_problem",
    "same_content",
]

_CHUNK = 1 << 20

#: What the checker reads of a document it parses whole (model card, data card, source file):
#: far more than any real one, far less than a hostile multi-gigabyte "README".
MAX_DOCUMENT_BYTES = 4 << 20


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


class NotRegularFile(CorrsourceError, OSError):
    """The path is a FIFO, device, socket or directory: the checker does not read it."""

    def __init__(self, path: Path | str, kind: str) -> None:
        self.kind = kind
        super().__init__(f"{path} is {kind}, not a regular file; only regular files are read")
        self.filename = str(path)
        self.strerror = f"{kind}, not a regular file"

    def __str__(self) -> str:
        return str(self.args[0])


class FileTooLarge(CorrsourceError, OSError):
    """The file is larger than what the checker reads of that kind of file."""

    def __init__(self, path: Path | str, size: int, limit: int) -> None:
        super().__init__(f"{path} is {size} bytes; files of this kind are read up to {limit} bytes")
        self.filename = str(path)
        self.strerror = f"{size} bytes, over the {limit}-byte limit"

    def __str__(self) -> str:
        return str(self.args[0])


def regular_file_problem(path: Path | str) -> str | None:
    """Why *path* (symlinks followed) is not a readable regular file, or ``None`` if it is
    one. A missing path is not a problem here: callers report it their own way."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else _kind(mode)


def open_regular(path: Path | str, buffering: int = -1) -> BinaryIO:
    """Open *path* for binary reading if, and only if, it is a regular file.

    Raises :class:`NotRegularFile` (an :class:`OSError`) for FIFOs, devices, sockets and
    directories, without blocking; other :class:`OSError`\\ s as ``open`` does.
    """
    mode = os.stat(path).st_mode  # refuse before opening: opening a device can act
    if not stat.S_ISREG(mode):
        raise NotRegularFile(path, _kind(mode))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode  # the file actually opened (it may have been swapped)
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, _kind(mode))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # a regular file: ordinary reads from here on
        handle: BinaryIO = os.fdopen(fd, "rb", buffering=buffering)
        return handle
    except BaseException:
        os.close(fd)
        raise


def read_head(path: Path | str, max_bytes: int) -> bytes:
    """At most the first *max_bytes* of a regular file."""
    with open_regular(path) as handle:
        return _read_up_to(handle, max_bytes)


def _read_up_to(handle: BinaryIO, limit: int) -> bytes:
    parts: list[bytes] = []
    left = limit
    while left > 0:
        chunk = handle.read(min(left, _CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def read_bounded(path: Path | str, max_bytes: int) -> bytes:
    """The whole content of a regular file, or :class:`FileTooLarge` if it exceeds
    *max_bytes* (judged by what can be read, not by the size ``stat`` reports)."""
    with open_regular(path) as handle:
        data = _read_up_to(handle, max_bytes + 1)
    if len(data) > max_bytes:
        size = os.stat(path).st_size
        raise FileTooLarge(path, max(size, len(data)), max_bytes)
    return data


def read_text_bounded(
    path: Path | str, max_bytes: int, *, encoding: str = "utf-8", errors: str = "replace"
) -> str:
    """:func:`read_bounded`, decoded."""
    return read_bounded(path, max_bytes).decode(encoding, errors)


def same_content(a: Path | str, b: Path | str) -> bool:
    """Whether two regular files hold the same bytes, streamed (any size, fixed memory)."""
    if os.stat(a).st_size != os.stat(b).st_size:
        return False
    with open_regular(a) as fa, open_regular(b) as fb:
        while True:
            ca, cb = fa.read(_CHUNK), fb.read(_CHUNK)
            if ca != cb:
                return False
            if not ca:
                return True
