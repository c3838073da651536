"""Header-only readers and scanners for model weight formats.

Stage: below the checks. These modules know nothing of pytest or of the manifest; they take
a path (and limits) and either return a description of what the file holds or raise
:class:`FormatError` with a message a user can act on. They never read tensor data to
validate a file, never allocate more than a bounded header, and never unpickle anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_corrsource.errors import CorrsourceError

#: A compressed member or stream may expand to at most this many times its compressed size
#: (zip and decompression bombs): the one cap for npz members, the pickle scanner's zip
#: members and joblib's compressed streams.
MAX_DECOMPRESSION_RATIO = 1000


class FormatError(CorrsourceError):
    """The file is not a valid instance of its format.

    ``str(error)`` is a complete sentence naming what is wrong (and where, e.g. a byte
    offset or a tensor name); the caller adds the file name.
    """


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as a header declares it."""

    name: str
    dtype: str  # the format's own dtype name: "F32" (safetensors), "<f4" (numpy), "Q4_0" (GGUF)
    shape: tuple[int, ...]
    nbytes: int


@dataclass(frozen=True)
class WeightsHeader:
    """What a header-only read of a weights file found.

    ``format`` is one of: "safetensors", "safetensors-index", "gguf", "npy", "npz",
    "pickle", "torch-zip", "opaque".
    """

    format: str
    tensors: tuple[TensorInfo, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    # Things that are not errors but that a user should hear about (e.g. "format is opaque").
    warnings: tuple[str, ...] = ()
