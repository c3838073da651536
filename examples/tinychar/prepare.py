"""Turn the training text into model-ready arrays.

    python prepare.py --out PATH [--data data/corpus.txt]

Reads the corpus as UTF-8, normalises line endings to "\\n", builds the character vocabulary
(the sorted set of code points) and writes an ``.npz`` with two int32 arrays:

    codepoints  the vocabulary, in index order (becomes ``vocab.codepoints`` in the weights)
    ids         the corpus encoded as vocabulary indices

The output depends only on the input text, so it is byte-for-byte deterministic.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from model import build_vocab, encode

DEFAULT_DATA = "data/corpus.txt"


def read_text(path: str) -> str:
    return Path(path).read_text(encoding="utf-8").replace("\r\n", "\n").replace("\r", "\n")


def prepare(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(codepoints, ids) for a text file."""
    text = read_text(path)
    codepoints = build_vocab(text)
    return codepoints, encode(text, codepoints)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="where to write the .npz")
    parser.add_argument("--data", default=DEFAULT_DATA, help="UTF-8 training text")
    args = parser.parse_args()

    codepoints, ids = prepare(args.data)
    # Through a buffer so the file lands exactly at --out (np.savez would append ".npz").
    buffer = io.BytesIO()
    np.savez(buffer, codepoints=codepoints, ids=ids)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buffer.getvalue())
    print(f"vocabulary: {len(codepoints)} characters, corpus: {len(ids)} characters -> {out}")


if __name__ == "__main__":
    main()
