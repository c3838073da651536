"""CS101–CS105: the declared weights exist, are real, valid, as declared, and safe to load.

Every failure here is a :class:`CheckFailed` with a precise message: a corrupt or hostile file
is a failed check, never an exception escaping into pytest. Headers are read without reading
tensor data; pickles are disassembled, never loaded.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from pytest_corrsource.checks.api import CheckContext, CheckFailed, Finding
from pytest_corrsource.manifest import WeightsEntry
from pytest_corrsource.safe_io import regular_file_problem


def _entry(ctx: CheckContext) -> WeightsEntry:
    entries = ctx.manifest.checkpoints if ctx.component == "checkpoints" else ctx.manifest.weights
    for entry in (*entries, *ctx.manifest.weights, *ctx.manifest.checkpoints):
        if entry.path == ctx.subject:
            return entry
    raise AssertionError(f"no weights entry {ctx.subject!r}")  # the plan made the subject


def _is_index(path: Path, entry: WeightsEntry) -> bool:
    return entry.format == "safetensors-index" or path.name.endswith(".index.json")


def _shards(ctx: CheckContext, path: Path) -> list[Path]:
    """Shard paths named by an index; raises CheckFailed when the index cannot be read."""
    from pytest_corrsource.formats import FormatError
    from pytest_corrsource.formats.shards import read_safetensors_index, shard_paths

    try:
        return list(shard_paths(read_safetensors_index(path, ctx.root)))
    except FormatError as exc:
        raise CheckFailed(f"{ctx.subject}: the shard index is invalid: {exc}") from None
    except OSError as exc:
        raise CheckFailed(f"{ctx.subject}: cannot read the shard index: {exc.strerror}") from None


def _rel(ctx: CheckContext, path: Path) -> str:
    try:
        return str(path.relative_to(ctx.root))
    except ValueError:
        return str(path)


def _require_present(ctx: CheckContext, path: Path) -> None:
    if not path.is_file():
        raise CheckFailed(f"{_rel(ctx, path)} is missing (see CS101), so it cannot be checked")


def check_present(ctx: CheckContext) -> Finding:
    """CS101."""
    from pytest_corrsource.formats.pointers import detect_pointer

    entry = _entry(ctx)
    path = ctx.root / entry.path
    special = regular_file_problem(path)
    if special is not None:  # a FIFO would block whoever opens it: never "present"
        raise CheckFailed(f"{entry.path} is {special}, not a regular file")
    if not path.is_file():
        pointer = detect_pointer(path, ctx.root)
        kind = "a dangling symlink" if path.is_symlink() else "not found"
        if pointer is None:
            raise CheckFailed(f"{entry.path}: {kind}")
        # The message says what to run: CS102 and the rest, blocked by CS101, repeat it.
        raise CheckFailed(
            f"{entry.path}: {kind}; it is tracked by {pointer.tracked_by}, not fetched yet: "
            f"run `{pointer.fetch_hint}`",
            fix=f"run `{pointer.fetch_hint}` before the checks",
        )
    if not _is_index(path, entry):
        return Finding()
    try:
        shards = _shards(ctx, path)
    except CheckFailed as exc:
        # Presence is all CS101 judges; the broken index is CS103's failure.
        return Finding(warnings=[f"{exc.message} (shards not listed; see CS103)"])
    missing = [_rel(ctx, s) for s in shards if not s.is_file()]
    if missing:
        raise CheckFailed(f"{entry.path} names {len(shards)} shards; missing: {', '.join(missing)}")
    return Finding(message=f"{len(shards)} shards present")


def check_not_a_pointer(ctx: CheckContext) -> Finding:
    """CS102."""
    from pytest_corrsource.formats.pointers import detect_pointer

    entry = _entry(ctx)
    path = ctx.root / entry.path
    files = [path]
    if path.is_file() and _is_index(path, entry):
        with contextlib.suppress(CheckFailed):  # CS103 reports a broken index
            files += _shards(ctx, path)
    for file in files:
        pointer = detect_pointer(file, ctx.root)
        if pointer is not None:
            size = f" of a {pointer.size}-byte file" if pointer.size is not None else ""
            what = (
                f"is not in the work tree: it is a DVC output ({pointer.source}) not pulled yet"
                if pointer.source
                else f"is a {pointer.kind} pointer{size}, not the weights"
            )
            raise CheckFailed(
                f"{_rel(ctx, file)} {what}: run `{pointer.fetch_hint}`",
                fix=f"fetch the real content first: `{pointer.fetch_hint}`",
            )
    if not path.exists() and not path.is_symlink():
        raise CheckFailed(f"{entry.path} is missing (see CS101), so it cannot be checked")
    return Finding()


#: What a file's name claims it is: the detected formats that honour the claim.
_CLAIMS_BY_SUFFIX: dict[str, tuple[str, ...]] = {
    ".safetensors": ("safetensors",),
    ".gguf": ("gguf",),
    ".npy": ("npy",),
    ".npz": ("npz",),
    ".pt": ("torch-zip", "pickle"),
    ".pth": ("torch-zip", "pickle"),
    ".ckpt": ("torch-zip", "pickle"),
    ".pkl": ("pickle", "torch-zip"),
    ".pickle": ("pickle", "torch-zip"),
    # `.bin` is both torch's pickle name and the name of raw layouts (llama2.c, GPT-2 .bin):
    # it claims "torch/pickle or raw", so an opaque `.bin` passes as raw (with a warning),
    # but one that starts like a pickle or a zip must parse as one.
    ".bin": ("torch-zip", "pickle", "opaque"),
}
_READERS = ("safetensors", "gguf", "npy", "npz")


def _claim(entry: WeightsEntry, path: Path) -> tuple[tuple[str, ...], str]:
    """(formats that would honour the claim, who claims it); () if nothing is claimed."""
    if entry.format:
        return (entry.format,), f"declared `format: {entry.format}`"
    suffix = path.suffix.lower()
    if suffix in _CLAIMS_BY_SUFFIX:
        return _CLAIMS_BY_SUFFIX[suffix], f"named `{suffix}`"
    return (), ""


def _is_joblib(path: Path) -> bool:
    """Whether the file parses to its end as joblib writes it: a pickle whose arrays' bytes sit
    inline after each ``NumpyArrayWrapper`` (which plain pickle parsing stops at)."""
    from pytest_corrsource.formats import FormatError
    from pytest_corrsource.formats.pickled_arrays import read_pickled_arrays

    try:
        arrays = read_pickled_arrays(path)
    except (FormatError, OSError):
        return False
    return bool(arrays)


def _validate_pickle(path: Path, fmt: str) -> None:
    """A pickle-based file must parse as the loaders read it (never unpickled here)."""
    from pytest_corrsource.formats import FormatError
    from pytest_corrsource.formats.pickle_scan import scan_weights_file

    scan = scan_weights_file(path, claims_pickle=True)
    if scan.errors and not _is_joblib(path):
        raise FormatError(f"{'; '.join(scan.errors)}.")
    if fmt == "torch-zip" and not any(m.lower().endswith(".pkl") for m in scan.members):
        raise FormatError("the archive holds no pickle member (`data.pkl`).")


def check_header(ctx: CheckContext) -> Finding:
    """CS103: a file that claims a format (by its name or `format:`) parses as that format;
    only a file that claims nothing may be reported as opaque; an empty file always fails."""
    from pytest_corrsource.formats import FormatError, WeightsHeader
    from pytest_corrsource.formats.detect import detect_format, read_weights_header
    from pytest_corrsource.formats.gguf import read_gguf_header
    from pytest_corrsource.formats.npy import read_npy_header, read_npz_header
    from pytest_corrsource.formats.pointers import detect_pointer
    from pytest_corrsource.formats.safetensors import read_safetensors_header

    entry = _entry(ctx)
    path = ctx.root / entry.path
    _require_present(ctx, path)
    if detect_pointer(path, ctx.root) is not None:
        raise CheckFailed(f"{entry.path} is a pointer file, not weights (see CS102)")
    readers = {
        "safetensors": read_safetensors_header,
        "gguf": read_gguf_header,
        "npy": read_npy_header,
        "npz": read_npz_header,
    }
    detected = "weights file"  # what to call it if even sniffing the bytes fails
    try:
        if path.stat().st_size == 0:
            raise CheckFailed(f"{entry.path} is empty", fix="replace it with the real weights")
        detected = detect_format(path)
        accepted, claimant = _claim(entry, path)
        if _is_index(path, entry):
            accepted, claimant = ("safetensors-index",), claimant or "named `.index.json`"
        wanted = accepted[0] if accepted else ""
        if wanted in _READERS:
            # The claimed format's own reader says precisely what is wrong, whatever the
            # bytes were sniffed as.
            try:
                header: WeightsHeader = readers[wanted](path)
            except FormatError as exc:
                raise CheckFailed(
                    f"{entry.path} is {claimant} but does not parse as {wanted}: {exc} "
                    f"(its bytes look like: {detected})",
                    fix=f"replace it with a valid {wanted} file or correct its name/`format:`",
                ) from None
        elif accepted and detected not in accepted:
            raise CheckFailed(
                f"{entry.path} is {claimant} but its content is {detected} "
                "(detected from its bytes, not its name)",
                fix="correct `format:` or the name, or replace the file with one in the "
                "claimed format",
            )
        else:
            header = read_weights_header(path, ctx.root)
        if detected in ("pickle", "torch-zip"):
            _validate_pickle(path, detected)
    except FormatError as exc:
        raise CheckFailed(f"{entry.path}: invalid {detected}: {exc}") from None
    except OSError as exc:
        raise CheckFailed(f"{entry.path}: cannot be read: {exc.strerror}") from None
    count = len(header.tensors)
    warnings = list(header.warnings)
    if not count and (header.format in ("pickle", "torch-zip") or entry.layout is not None):
        # Their header holds no tensor table: count what the tensor reader finds (without
        # unpickling), so a 57-tensor checkpoint is not reported as "0 tensors".
        count, note = _tensor_count(path, detected, ctx.root, entry.layout)
        warnings += [note] if note else []
    summary = f"{header.format}, {count} tensor{'s' if count != 1 else ''}"
    if header.format == "opaque" and entry.layout is not None:
        summary = f"raw layout declared in the manifest, {count} tensor{'s' if count != 1 else ''}"
    elif header.format == "opaque" and path.suffix.lower() == ".bin":
        summary = "raw `.bin` layout (neither a pickle nor a zip), 0 tensors"
        warnings = [
            f"{entry.path} is neither a torch pickle nor a zip: taken as a raw tensor layout "
            "(e.g. llama2.c), whose structure is unverified"
        ]
    return Finding(
        message=summary,
        warnings=warnings,
        data={"format": header.format, "tensors": count},
    )


def _tensor_count(path: Path, fmt: str, root: Path, layout: object) -> tuple[int, str]:
    """How many tensors the tensor reader finds, and a note when it cannot tell."""
    from pytest_corrsource.formats import FormatError
    from pytest_corrsource.formats.tensors import read_schema

    try:
        return len(read_schema(path, fmt, root=root, layout=layout)), ""
    except (FormatError, OSError) as exc:
        return 0, f"tensors not counted: {exc} (a limit of pytest-corrsource, not of the file)"


def _digests(ctx: CheckContext, files: list[Path]) -> dict[Path, str]:
    """sha256 of ``files``; with ``prehash``, all declared weights are hashed in one parallel
    pass the first time, so shards and several weights files share the cores."""
    from pytest_corrsource.hashing import hash_files

    if ctx.options.prehash:

        def hash_everything() -> dict[Path, str]:
            wanted: list[Path] = []
            for entry in (*ctx.manifest.weights, *ctx.manifest.checkpoints):
                path = ctx.root / entry.path
                if entry.sha256 and path.is_file():
                    wanted.append(path)
                if entry.shards and path.parent.is_dir():
                    wanted += [path.parent / n for n in entry.shards if (path.parent / n).is_file()]
            return hash_files(wanted, ctx.digests)

        known: dict[Path, str] = ctx.state.once(f"prehash:{ctx.manifest.path}", hash_everything)
        todo = [f for f in files if f not in known]
        return {**{f: known[f] for f in files if f in known}, **hash_files(todo, ctx.digests)}
    return hash_files(files, ctx.digests)


def check_hash(ctx: CheckContext) -> Finding:
    """CS104."""
    entry = _entry(ctx)
    path = ctx.root / entry.path
    _require_present(ctx, path)
    expected: dict[Path, str] = {}
    if entry.sha256:
        expected[path] = entry.sha256
    for name, digest in sorted(entry.shards.items()):
        shard = path.parent / name
        _require_present(ctx, shard)
        expected[shard] = digest
    if not expected:
        return _check_recorded_digest(ctx, entry, path)
    try:
        actual = _digests(ctx, list(expected))
    except OSError as exc:
        raise CheckFailed(f"{entry.path}: cannot be read: {exc}") from None
    wrong = [
        f"{_rel(ctx, f)} has sha256 {actual[f]}, the manifest declares {want}"
        for f, want in expected.items()
        if actual[f] != want
    ]
    if wrong:
        raise CheckFailed(
            "; ".join(wrong),
            fix="if the file was re-exported on purpose, update `sha256:`; otherwise fetch the "
            "released file again",
        )
    return Finding(data={"sha256": actual.get(path, "")})


def _check_recorded_digest(ctx: CheckContext, entry: WeightsEntry, path: Path) -> Finding:
    """CS104 without `sha256:` in the manifest: the digest DVC (dvc.lock, a .dvc stub) or a Git
    LFS pointer records is the declared one; with none, the file's sha256 is only reported."""
    from pytest_corrsource.hashing import dvc_md5_files
    from pytest_corrsource.tracking import declared_digest, shell_word

    declared, why_not = declared_digest(ctx.root, entry.path)
    try:
        if declared is None:
            (digest,) = _digests(ctx, [path]).values()
            sha256, actual = digest, ""
        elif declared.algorithm == "sha256":
            (sha256,) = _digests(ctx, [path]).values()
            actual = sha256
        else:
            ((sha256, actual),) = dvc_md5_files([path], ctx.digests, declared.algorithm).values()
    except OSError as exc:
        raise CheckFailed(f"{entry.path}: cannot be read: {exc}") from None
    if declared is None:
        return Finding(
            warnings=[
                *([why_not] if why_not else []),
                f"no sha256 declared for {entry.path}; its sha256 is {sha256}: declare it "
                "so users can verify they run the released weights",
            ],
            data={"sha256": sha256},
        )
    data = {"sha256": sha256, declared.name: actual, "digest_source": declared.described()}
    if actual != declared.value:
        rel = shell_word(entry.path)
        if declared.name == "md5":
            record, restore = "`dvc commit`", f"dvc pull --force {rel}"
        else:
            record, restore = "commit it again through Git LFS", f"git checkout -- {rel}"
        raise CheckFailed(
            f"{entry.path} has {declared.name} {actual}; {declared.described()} is "
            f"{declared.value} (the manifest declares no sha256)",
            fix=f"if the file was re-exported on purpose, record it again ({record}) and "
            f"declare `sha256: {sha256}`; otherwise restore the recorded file (`{restore}`)",
        )
    return Finding(
        message=f"{declared.name} {actual} matches {declared.described()}",
        data=data,
    )


#: Formats that cannot carry code, provided the file really parses as one.
_CODE_FREE = ("safetensors", "gguf", "npy", "npz")
#: Name suffixes that say "a loader will unpickle this": a parse failure there is an error.
#: (`.bin` is not one: it also names raw layouts, see _CLAIMS_BY_SUFFIX.)
_PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def _safety_of(ctx: CheckContext, entry: WeightsEntry, path: Path) -> tuple[str, list[str]]:
    """(summary, warnings) for one file; raises CheckFailed if a loader could run its code."""
    from pytest_corrsource.formats import FormatError
    from pytest_corrsource.formats.detect import detect_format, read_weights_header
    from pytest_corrsource.formats.pickle_scan import scan_weights_file

    rel = _rel(ctx, path)
    try:
        fmt = detect_format(path)
    except FormatError as exc:
        raise CheckFailed(f"{rel}: {exc}") from None
    claims_pickle = fmt in ("pickle", "torch-zip") or (
        fmt == "opaque" and path.name.lower().endswith(_PICKLE_SUFFIXES)
    )
    # Every file, whatever it was sniffed as: a polyglot can be valid safetensors and a
    # pickle that pickle.load/torch.load execute.
    scan = scan_weights_file(path, claims_pickle=claims_pickle)
    recommend = "convert it to safetensors, which cannot carry code"
    if scan.ambiguities:
        raise CheckFailed(
            f"{rel}: ambiguous archive: {'; '.join(scan.ambiguities)}",
            fix="re-save it with torch.save (or numpy.savez); torch's zip reader and "
            "Python's zipfile must see the same members",
        )
    if not scan.safe:
        problems = (
            [f"globals outside the allow-list: {', '.join(scan.unsafe)}"] if scan.unsafe else []
        )
        problems += list(scan.unscannable)
        problems += [f"unparsable: {e}" for e in scan.errors]
        found = f"{rel} ({fmt}) would run code when loaded: {'; '.join(problems)}"
        if entry.allow_unsafe:
            return "allowed by `allow-unsafe: true`", [found]
        raise CheckFailed(
            found, fix=f"{recommend}; a reviewed file may be accepted with `allow-unsafe: true`"
        )
    if scan.pickled:
        return f"pickle-based ({fmt}) with only allow-listed globals", [
            f"{rel} is pickle-based: {recommend}"
        ]
    if fmt in _CODE_FREE:
        try:
            read_weights_header(path, ctx.root)
        except (FormatError, OSError) as exc:
            # Only looks like a code-free format: "carries no code" cannot be claimed for it.
            # Every loader in scope was considered above and none would unpickle anything,
            # so this is CS103's failure (not repeated here), and a warning.
            return "no pickle stream at offset 0 and no container holding one", [
                f"{rel} starts like {fmt} but does not parse as {fmt} ({exc}); no loader "
                "among pickle.load, numpy.load and torch.load would unpickle it"
            ]
        return f"{fmt}, no pickle anywhere: cannot carry code", []
    compressed = _compressed_pickle(ctx, entry, path)
    if compressed is not None:
        return compressed
    return "no pickle stream at offset 0 and no container holding one", [
        f"{rel}: unknown format ({fmt}); no loader among pickle.load, numpy.load and "
        "torch.load would unpickle it, but other loaders were not considered"
    ]


# joblib.load also reads compressed pickles; what it would unpickle is scanned like any other.
_MAX_DECOMPRESSED_SCAN = 4 << 30


def _compressed_pickle(
    ctx: CheckContext, entry: WeightsEntry, path: Path
) -> tuple[str, list[str]] | None:
    """(summary, warnings) for a joblib-compressed pickle (zlib, gzip, bz2, xz, lzma), None when
    the file is not one; raises CheckFailed when joblib.load would run code from it."""
    import tempfile

    from pytest_corrsource.formats import FormatError
    from pytest_corrsource.formats.pickle_scan import scan_weights_file
    from pytest_corrsource.formats.pickled_arrays import compression_of
    from pytest_corrsource.formats.tensors import decompress_joblib
    from pytest_corrsource.safe_io import read_head

    codec = compression_of(read_head(path, 8))
    if codec is None:
        return None
    rel = _rel(ctx, path)
    with tempfile.TemporaryDirectory(prefix="corrsource-joblib-") as folder:
        stream = Path(folder) / "stream.pkl"
        try:
            decompress_joblib(path, codec, stream, max_bytes=_MAX_DECOMPRESSED_SCAN)
        except FormatError:
            return None  # not a compressed stream after all (a zlib magic is one byte)
        scan = scan_weights_file(stream, claims_pickle=True)
    if not scan.pickled:
        return None
    problems = [f"globals outside the allow-list: {', '.join(scan.unsafe)}"] if scan.unsafe else []
    problems += [f"unparsable: {e}" for e in scan.errors]
    if problems:
        found = f"{rel} ({codec}-compressed pickle) would run code under joblib.load: " + (
            "; ".join(problems)
        )
        if entry.allow_unsafe:
            return "allowed by `allow-unsafe: true`", [found]
        raise CheckFailed(
            found,
            fix="convert it to safetensors, which cannot carry code; a reviewed file may be "
            "accepted with `allow-unsafe: true`",
        )
    return f"{codec}-compressed pickle with only allow-listed globals", [
        f"{rel} is a compressed pickle: convert it to safetensors, which cannot carry code"
    ]


def check_safe_to_load(ctx: CheckContext) -> Finding:
    """CS105: nothing pickle.load, numpy.load(allow_pickle=True) or
    torch.load(weights_only=False) would unpickle from the file imports a global outside the
    allow-list, and torch and zipfile read any archive identically."""
    entry = _entry(ctx)
    path = ctx.root / entry.path
    _require_present(ctx, path)
    files = [path]
    if _is_index(path, entry):
        files += _shards(ctx, path)
    summaries: list[str] = []
    warnings: list[str] = []
    try:
        for file in files:
            _require_present(ctx, file)
            summary, found = _safety_of(ctx, entry, file)
            summaries.append(summary)
            warnings += found
    except OSError as exc:
        raise CheckFailed(f"{entry.path}: cannot be read: {exc.strerror}") from None
    message = summaries[0] if len(set(summaries)) == 1 else "; ".join(sorted(set(summaries)))
    return Finding(message=message, warnings=warnings)
