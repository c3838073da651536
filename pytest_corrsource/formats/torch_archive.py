"""How PyTorch's zip reader sees a checkpoint, and where it could disagree with ``zipfile``.

``torch.load`` reads ``.pt`` zips with miniz (caffe2/serialize/inline_container.cc,
``PyTorchStreamReader``), the plugin's scanners with Python's :mod:`zipfile`. The two differ:
miniz finds records case-insensitively (``mz_zip_reader_locate_file`` without
``MZ_ZIP_FLAG_CASE_SENSITIVE``), takes the archive name from the first central-directory
entry, never compares a local header's name with the central directory's, and does not
shift offsets for bytes prepended to the archive, which :mod:`zipfile` does. torch also
treats a file as a zip only if its first four bytes are a local-file-header signature
(``torch.serialization._is_zipfile``); anything else goes to the legacy pickle reader.

Rather than re-implement miniz bug for bug, :func:`ambiguities` parses the end-of-central-
directory record(s), the central directory and every local header itself and reports each
place where the two readings *could* differ. An archive with none is read identically by
both, so scanning it through :mod:`zipfile` scans what torch loads.
"""

from __future__ import annotations

import itertools
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["ZipEntry", "ambiguities", "pickle_members", "read_central_directory"]

_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"
_EOCD = b"PK\x05\x06"
_ZIP64_EOCD = b"PK\x06\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_EOCD_SIZE = 22
_MAX_COMMENT = 0xFFFF
_CENTRAL_SIZE = 46
_LOCAL_SIZE = 30
_ZIP64_EXTRA = 0x0001
_MAX_ENTRIES = 1_000_000
_METHODS = {0: "stored", 8: "deflated"}  # all miniz (as built into torch) can read
_UTF8_FLAG = 0x800
_ENCRYPTED_FLAG = 0x1


@dataclass(frozen=True)
class ZipEntry:
    """One central-directory entry, with zip64 values applied."""

    name: bytes
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    local_offset: int
    extra: bytes


class _Ambiguous(Exception):
    pass


def _extra_records(extra: bytes, where: str) -> dict[int, bytes]:
    """Parse an extra field as (id, size, data) records that must fill it exactly: miniz and
    zipfile treat a truncated or overlong record differently."""
    records: dict[int, bytes] = {}
    pos = 0
    while pos < len(extra):
        if len(extra) - pos < 4:
            raise _Ambiguous(f"{where}: truncated extra field ({len(extra) - pos} stray bytes)")
        record_id, length = struct.unpack_from("<HH", extra, pos)
        if pos + 4 + length > len(extra):
            raise _Ambiguous(
                f"{where}: extra field record 0x{record_id:04x} claims {length} bytes, "
                f"{len(extra) - pos - 4} remain"
            )
        if record_id in records:
            raise _Ambiguous(f"{where}: extra field record 0x{record_id:04x} appears twice")
        records[record_id] = extra[pos + 4 : pos + 4 + length]
        pos += 4 + length
    return records


def _zip64_values(
    records: dict[int, bytes], fields: list[int], where: str, *, local: bool = False
) -> list[int]:
    """Replace 0xFFFFFFFF fields by the zip64 extra record's values, in the order of the spec
    (size, compressed size, local offset)."""
    if not any(value == 0xFFFFFFFF for value in fields) or _ZIP64_EXTRA not in records:
        if any(value == 0xFFFFFFFF for value in fields) and not local:
            raise _Ambiguous(f"{where}: a size or offset is 0xFFFFFFFF without a zip64 record")
        return fields
    data = records[_ZIP64_EXTRA]
    out: list[int] = []
    pos = 0
    for value in fields:
        if value == 0xFFFFFFFF:
            if pos + 8 > len(data):
                raise _Ambiguous(f"{where}: zip64 extra record too short")
            (value,) = struct.unpack_from("<Q", data, pos)
            pos += 8
        out.append(value)
    return out


def _read_at(handle: BinaryIO, offset: int, size: int) -> bytes:
    handle.seek(offset)
    return handle.read(size)


def _locate_end(handle: BinaryIO, file_size: int) -> tuple[int, int, int, int]:
    """Return (entries, cd_size, cd_offset, end_of_cd_region) from the EOCD (zip64-aware)."""
    tail_size = min(file_size, _EOCD_SIZE + _MAX_COMMENT)
    tail = _read_at(handle, file_size - tail_size, tail_size)
    positions: list[int] = []
    start = len(tail)
    while True:
        found = tail.rfind(_EOCD, 0, start)
        if found < 0:
            break
        positions.append(found)
        start = found + 3
        if start <= 0:
            break
    if not positions:
        raise _Ambiguous("no end-of-central-directory record")
    if len(positions) > 1:
        raise _Ambiguous(
            f"{len(positions)} end-of-central-directory signatures in the last "
            f"{tail_size} bytes: readers may pick different central directories"
        )
    where = positions[0]
    record = tail[where : where + _EOCD_SIZE]
    if len(record) < _EOCD_SIZE:
        raise _Ambiguous("truncated end-of-central-directory record")
    (_sig, disk, cd_disk, here, entries, cd_size, cd_offset, comment) = struct.unpack(
        "<4sHHHHIIH", record
    )
    eocd_offset = file_size - tail_size + where
    if eocd_offset + _EOCD_SIZE + comment != file_size:
        raise _Ambiguous(
            f"the archive comment length ({comment}) does not reach the end of the file "
            f"({file_size - eocd_offset - _EOCD_SIZE} bytes follow the record)"
        )
    if disk != 0 or cd_disk != 0 or here != entries:
        raise _Ambiguous("multi-disk archive fields are set")
    end_of_cd = eocd_offset
    locator = _read_at(handle, eocd_offset - 20, 20) if eocd_offset >= 20 else b""
    if locator.startswith(_ZIP64_LOCATOR):
        (_s, _disk, zip64_offset, _total) = struct.unpack("<4sIQI", locator)
        zip64 = _read_at(handle, zip64_offset, 56)
        if len(zip64) < 56 or not zip64.startswith(_ZIP64_EOCD):
            raise _Ambiguous("the zip64 locator points at no zip64 end record")
        (_s, record_size, _v1, _v2, _d1, _d2, here64, entries64, cd_size64, cd_offset64) = (
            struct.unpack("<4sQHHIIQQQQ", zip64)
        )
        if zip64_offset + 12 + record_size != eocd_offset - 20:
            raise _Ambiguous("the zip64 end record does not end where its locator starts")
        if here64 != entries64:
            raise _Ambiguous("multi-disk archive fields are set")
        for small, big in ((entries, entries64), (cd_size, cd_size64), (cd_offset, cd_offset64)):
            if small not in (big, 0xFFFF, 0xFFFFFFFF):
                raise _Ambiguous("the zip64 and classic end records disagree")
        entries, cd_size, cd_offset = entries64, cd_size64, cd_offset64
        end_of_cd = zip64_offset
    elif 0xFFFFFFFF in (cd_size, cd_offset) or entries == 0xFFFF:
        raise _Ambiguous("the end record needs zip64 values but has no zip64 locator")
    if cd_offset + cd_size != end_of_cd:
        # zipfile shifts every offset by the difference (it supports prepended data); miniz
        # does not, so the two read different bytes as members.
        raise _Ambiguous(
            f"the central directory is declared at byte {cd_offset} ({cd_size} bytes) but "
            f"ends at byte {end_of_cd}: data was prepended or inserted"
        )
    return entries, cd_size, cd_offset, end_of_cd


def read_central_directory(handle: BinaryIO, file_size: int) -> list[ZipEntry]:
    """Parse the central directory exactly, raising :class:`ValueError` with the ambiguity."""
    try:
        return _read_central_directory(handle, file_size)
    except _Ambiguous as error:
        raise ValueError(str(error)) from None


def _read_central_directory(handle: BinaryIO, file_size: int) -> list[ZipEntry]:
    entries, cd_size, cd_offset, _end = _locate_end(handle, file_size)
    if entries > _MAX_ENTRIES or entries * _CENTRAL_SIZE > cd_size:
        raise _Ambiguous(f"{entries} entries cannot fit a {cd_size}-byte central directory")
    data = _read_at(handle, cd_offset, cd_size)
    if len(data) != cd_size:
        raise _Ambiguous("the central directory runs past the end of the file")
    pos = 0
    found: list[ZipEntry] = []
    for index in range(entries):
        where = f"central directory entry {index}"
        if len(data) - pos < _CENTRAL_SIZE or data[pos : pos + 4] != _CENTRAL:
            raise _Ambiguous(f"{where}: no central header signature at byte {cd_offset + pos}")
        fields = struct.unpack_from("<4sHHHHHHIIIHHHHHII", data, pos)
        (flags, method, crc, csize, usize) = (fields[3], fields[4], fields[7], fields[8], fields[9])
        name_len, extra_len, comment_len = fields[10], fields[11], fields[12]
        disk, offset = fields[13], fields[16]
        end = pos + _CENTRAL_SIZE + name_len + extra_len + comment_len
        if end > len(data):
            raise _Ambiguous(f"{where}: its name, extra field or comment runs past the directory")
        name = data[pos + _CENTRAL_SIZE : pos + _CENTRAL_SIZE + name_len]
        extra = data[pos + _CENTRAL_SIZE + name_len : pos + _CENTRAL_SIZE + name_len + extra_len]
        where = f"member {name.decode('utf-8', 'replace')!r}"
        records = _extra_records(extra, f"{where} (central directory)")
        usize, csize, offset = _zip64_values(records, [usize, csize, offset], where)
        if disk not in (0, 0xFFFF):
            raise _Ambiguous(f"{where}: multi-disk archive fields are set")
        found.append(ZipEntry(name, flags, method, crc, csize, usize, offset, extra))
        pos = end
    if pos != cd_size:
        raise _Ambiguous(
            f"the central directory holds {cd_size - pos} bytes after its {entries} entries"
        )
    return found


def _check_entries(handle: BinaryIO, file_size: int, entries: list[ZipEntry]) -> list[str]:
    problems: list[str] = []
    seen: dict[bytes, bytes] = {}
    spans: list[tuple[int, int, str]] = []
    for entry in entries:
        label = entry.name.decode("utf-8", "replace")
        where = f"member {label!r}"
        folded = entry.name.lower()  # miniz folds ASCII case only, as bytes.lower() does
        if folded in seen:
            other = seen[folded].decode("utf-8", "replace")
            problems.append(
                f"{where} and {other!r} have the same name ignoring case: torch finds "
                "records case-insensitively and may load either"
            )
        seen[folded] = entry.name
        if not entry.flags & _UTF8_FLAG and any(byte >= 0x80 for byte in entry.name):
            problems.append(f"{where}: non-ASCII name without the UTF-8 flag (cp437 vs bytes)")
        if entry.method not in _METHODS:
            problems.append(f"{where}: compression method {entry.method}, which torch cannot read")
        if entry.flags & _ENCRYPTED_FLAG:
            problems.append(f"{where}: encrypted")
        header = _read_at(handle, entry.local_offset, _LOCAL_SIZE)
        if len(header) < _LOCAL_SIZE or not header.startswith(_LOCAL):
            problems.append(f"{where}: no local header at byte {entry.local_offset}")
            continue
        (_s, _v, flags, method, _t, _d, crc, csize, usize, name_len, extra_len) = struct.unpack(
            "<4sHHHHHIIIHH", header
        )
        local_name = _read_at(handle, entry.local_offset + _LOCAL_SIZE, name_len)
        local_extra = _read_at(handle, entry.local_offset + _LOCAL_SIZE + name_len, extra_len)
        if local_name != entry.name:
            problems.append(
                f"{where}: its local header names it {local_name.decode('utf-8', 'replace')!r}"
            )
        if len(local_extra) != extra_len:
            problems.append(f"{where}: local extra field runs past the end of the file")
            continue
        try:
            records = _extra_records(local_extra, f"{where} (local header)")
            if not flags & 0x8:  # without a data descriptor the local values must agree
                usize, csize = _zip64_values(records, [usize, csize], where, local=True)
                if (crc, csize, usize) != (entry.crc, entry.compressed_size, entry.size):
                    problems.append(f"{where}: local header sizes or CRC differ from the directory")
        except _Ambiguous as error:
            problems.append(str(error))
            continue
        if method != entry.method or (flags & 0x9) != (entry.flags & 0x9):
            problems.append(f"{where}: local header method or flags differ from the directory")
        start = entry.local_offset
        end = entry.local_offset + _LOCAL_SIZE + name_len + extra_len + entry.compressed_size
        if end > file_size:
            problems.append(f"{where}: its data runs past the end of the file")
        spans.append((start, end, label))
    spans.sort()
    for (_s1, end1, name1), (start2, _e2, name2) in itertools.pairwise(spans):
        if start2 < end1:
            problems.append(f"members {name1!r} and {name2!r} overlap")
    return problems


def ambiguities(path: Path) -> list[str]:
    """Every way ``path`` (a zip) could be read differently by torch and by :mod:`zipfile`.

    An empty list means both readers see the same members with the same bytes. Never
    raises for bad content; an unreadable file is reported as one entry."""
    try:
        with open(path, "rb") as handle:
            file_size = os.fstat(handle.fileno()).st_size
            try:
                entries = _read_central_directory(handle, file_size)
            except _Ambiguous as error:
                return [str(error)]
            problems: list[str] = []
            first = _read_at(handle, 0, 4)
            if entries and first != _LOCAL:
                # torch only reads a zip that starts with a local header; otherwise it reads
                # the file as a legacy pickle, while zipfile still sees the members.
                problems.append(
                    "the file does not start with a local file header: torch reads it as a "
                    "legacy pickle, zipfile as an archive"
                )
            if entries and min(entry.local_offset for entry in entries) != 0:
                problems.append("bytes precede the first member")
            return problems + _check_entries(handle, file_size, entries)
    except OSError as error:
        return [f"cannot read the file: {error.strerror or error}"]


def pickle_members(names: list[str]) -> list[str]:
    """Members torch (or a TorchScript loader) may unpickle: every ``.pkl``, any case."""
    return [name for name in names if name.lower().endswith(".pkl")]
