"""Which files of the repository are the model's weights: by their bytes (magic numbers, never
the extension alone), shards of an index, pointers to content elsewhere (LFS, DVC), the model
files of MLflow model folders, and intermediate checkpoints; tokenizer files are not weights."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from pytest_corrsource.draft.files import (
    PICKLE_EXTS,
    WEIGHT_EXTS,
    dvc_tracked_note,
    hash_file,
    in_data,
    on_disk,
)
from pytest_corrsource.draft.findings import Draft, DraftWeights
from pytest_corrsource.draft.sources import read_text, read_yaml

__all__ = ["classify_weights", "declare_weights_file", "find_weights", "is_tokenizer"]

_TRAINING_STATE = re.compile(r"^(optimizer|scheduler|rng_state|training_args|trainer_state)")
_CHECKPOINT_DIR = re.compile(r"^(checkpoints?|ckpts?|checkpoint-\d+)$")
_FORMAT_ORDER = ("safetensors-index", "safetensors", "gguf", "npz", "npy", "torch-zip", "pickle")
_UNSAFE = "pickle-based: unsafe format; convert to safetensors"
#: Tokenizer files: the model needs them, but they hold no weights (llama2.c's tokenizer.bin,
#: sentencepiece's tokenizer.model, vocab/merges files).
_TOKENIZER_NAME = re.compile(
    r"(^|[._-])(tokenizers?|vocab|merges|spiece|sentencepiece|spm)([._\d-]|$)"
)
_WEIGHT_FORMATS = ("safetensors", "safetensors-index", "gguf")
#: MLflow flavour keys that name the model's file or folder, relative to the MLmodel's folder.
_MLMODEL_KEYS = (
    "pickled_model",
    "model_data",
    "model_path",
    "data",
    "saved_model_dir",
    "model_file",
)
_SKOPS_NOTE = (
    "a skops file (a zip of schema.json and .npy arrays): read as skops; the manifest has no "
    "`format` value for it"
)


def is_tokenizer(rel: str) -> bool:
    """A tokenizer file by its name, with an extension a weights file could have."""
    posix = PurePosixPath(rel)
    suffix = posix.suffix.lower()
    return (suffix in WEIGHT_EXTS or suffix == ".model") and bool(
        _TOKENIZER_NAME.search(posix.stem.lower())
    )


def classify_weights(root: Path, rel: str) -> tuple[str | None, DraftWeights | None]:
    """("weights", entry) for a weights file, ("pointer", entry) for a pointer to one,
    (None, None) otherwise."""
    from pytest_corrsource.formats import FormatError
    from pytest_corrsource.formats.detect import detect_format
    from pytest_corrsource.formats.pointers import detect_pointer

    path = root / rel
    ext = PurePosixPath(rel).suffix.lower()
    inside_data = in_data(rel)
    pointer = detect_pointer(path, root) if ext in WEIGHT_EXTS else None
    if pointer is not None:
        entry = DraftWeights(rel, pointer=True)
        if pointer.oid and pointer.oid.startswith("sha256:"):
            entry.sha256 = pointer.oid.removeprefix("sha256:")
            entry.notes.append(f"sha256 from the {pointer.kind} pointer (the content's digest)")
        entry.notes.append(f"TODO: this is a {pointer.kind} pointer: {pointer.fetch_hint}")
        return "pointer", entry
    try:
        fmt = detect_format(path)
    except FormatError:
        return None, None
    if fmt not in _WEIGHT_FORMATS and is_tokenizer(rel):
        return None, None
    if fmt == "opaque" and _is_skops(path):
        entry = DraftWeights(rel)
        entry.notes.append(_SKOPS_NOTE)
        return "weights", entry
    if fmt in ("safetensors", "gguf", "torch-zip") or (
        fmt == "safetensors-index" and rel.endswith(".index.json")
    ):
        return "weights", DraftWeights(rel, fmt)
    if inside_data:
        return None, None  # npy/npz/pickles and raw files in data folders are data
    if fmt in ("npy", "npz"):
        return "weights", DraftWeights(rel, fmt)
    if fmt == "pickle" and (ext in PICKLE_EXTS or ext == ""):
        return "weights", DraftWeights(rel, fmt)
    if ext in WEIGHT_EXTS and ext not in (".npy", ".npz", ".pkl", ".pickle", ".joblib"):
        entry = DraftWeights(rel)
        entry.notes.append(
            "TODO: format not recognised from its bytes (reported as opaque): "
            "is this really weights?"
        )
        return "weights", entry
    return None, None


def find_weights(draft: Draft, files: list[str], log: Callable[[str], None]) -> None:
    from pytest_corrsource.formats import FormatError
    from pytest_corrsource.formats.shards import read_safetensors_index

    root = draft.root
    found: list[DraftWeights] = []
    file_set = set(files)
    for rel in files:
        _kind, entry = classify_weights(root, rel)
        if entry is not None:
            found.append(entry)
    # DVC stubs `X.dvc` for weights: pulled (on disk, ignored by git) or not.
    for rel in files:
        if rel.endswith(".dvc"):
            target = rel[: -len(".dvc")]
            if target in file_set or PurePosixPath(target).suffix.lower() not in WEIGHT_EXTS:
                continue
            if on_disk(root, target):
                _kind, entry = classify_weights(root, target)
                if entry is not None:
                    entry.notes.append(dvc_tracked_note(rel))
                    found.append(entry)
            else:  # a link out of the repository is not the pulled file either
                entry = DraftWeights(target)
                entry.notes.append(f'TODO: tracked by DVC, not in the repository: dvc pull "{rel}"')
                found.append(entry)
    _mlflow_models(draft, files, found)
    tokenizers = [f for f in files if is_tokenizer(f) and all(e.path != f for e in found)]
    if tokenizers:
        shown = ", ".join(tokenizers[:6]) + (" …" if len(tokenizers) > 6 else "")
        draft.weights_notes.append(f"not weights: {shown} (tokenizer files)")
    shard_files: set[str] = set()
    for entry in found:
        if entry.format == "safetensors-index":
            try:
                index = read_safetensors_index(root / entry.path, root)
            except FormatError as exc:
                entry.notes.append(f"TODO: the index cannot be read: {exc}")
                continue
            folder = PurePosixPath(entry.path).parent
            for shard in index.shards:
                rel = str(folder / shard) if str(folder) != "." else shard
                shard_files.add(rel)
                if (root / rel).is_file():
                    entry.shards[shard] = hash_file(root, rel, log)
                else:
                    entry.notes.append(f"TODO: shard {shard} is missing")
    found = [e for e in found if e.path not in shard_files]
    for entry in found:
        if entry.format in ("pickle", "torch-zip"):
            entry.inline = _UNSAFE
        if not entry.pointer and on_disk(root, entry.path):
            entry.sha256 = hash_file(root, entry.path, log)
    found.sort(key=lambda e: (_rank(e), e.path))
    main = [e for e in found if not _is_checkpoint(e.path)]
    if main:
        draft.checkpoints = [e for e in found if _is_checkpoint(e.path)]
        for entry in draft.checkpoints:
            entry.notes.insert(0, "intermediate checkpoint or training state")
        found = main
    draft.weights = found


def _rank(entry: DraftWeights) -> int:
    order = {fmt: i for i, fmt in enumerate(_FORMAT_ORDER)}
    return order.get(entry.format or "", len(order))


def _is_checkpoint(rel: str) -> bool:
    posix = PurePosixPath(rel)
    return any(_CHECKPOINT_DIR.match(p) for p in posix.parts[:-1]) or bool(
        _TRAINING_STATE.match(posix.name)
    )


def _is_skops(path: Path) -> bool:
    from pytest_corrsource.formats.skops import is_skops

    return is_skops(path)


def _mlflow_models(draft: Draft, files: list[str], found: list[DraftWeights]) -> None:
    """The model files an MLflow model folder's ``MLmodel`` names (``pickled_model: model.pkl``,
    ``model_data: data``) become weights, with the flavour and serialisation they were saved
    with; a folder named there contributes the weights files inside it."""
    root = draft.root
    for rel in files:
        if PurePosixPath(rel).name != "MLmodel":
            continue
        data = read_yaml(read_text(root / rel))
        flavors = data.get("flavors") if isinstance(data, dict) else None
        if not isinstance(flavors, dict):
            draft.weights_notes.append(f"TODO: {rel} names no readable `flavors`")
            continue
        folder = PurePosixPath(rel).parent
        draft.mlflow_models.append(str(folder))
        # python_function repeats the native flavour's file: the native one says more.
        ordered = sorted(flavors.items(), key=lambda item: item[0] == "python_function")
        for flavor, body in ordered:
            if not isinstance(body, dict):
                continue
            for key in _MLMODEL_KEYS:
                value = body.get(key)
                if not isinstance(value, str) or not value or ".." in PurePosixPath(value).parts:
                    continue
                target = str(folder / value) if str(folder) != "." else value
                serialization = body.get("serialization_format")
                how = f"flavor {flavor}" + (
                    f", serialization_format {serialization}" if serialization else ""
                )
                note = f"model file of the MLflow model {rel} ({how})"
                members = [f for f in files if f == target or f.startswith(target + "/")]
                for member in members:
                    entry = next((e for e in found if e.path == member), None)
                    if entry is None and member == target:
                        entry = classify_weights(root, member)[1] or DraftWeights(member)
                        if entry.format is None and not entry.notes:
                            entry.notes.append(
                                "TODO: format not recognised from its bytes (reported as "
                                "opaque): check it is the model"
                            )
                        found.append(entry)
                    if entry is not None and not any(
                        n.startswith("model file of") for n in entry.notes
                    ):
                        entry.notes.insert(0, note)


def declare_weights_file(root: Path, rel: str, log: Callable[[str], None]) -> DraftWeights | None:
    """The entry for one weights file found outside the listing (a pulled DVC output), hashed,
    or None when its bytes are not weights."""
    _kind, entry = classify_weights(root, rel)
    if entry is None:
        return None
    if entry.format in ("pickle", "torch-zip"):
        entry.inline = _UNSAFE
    if not entry.pointer:
        entry.sha256 = hash_file(root, rel, log)
    return entry
