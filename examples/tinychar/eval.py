"""Evaluate tinychar on held-out text.

    python eval.py --weights PATH [--data data/val.txt]

Prints ``loss: <float>`` (mean cross-entropy in nats per character, every character of the text
predicted from the ones before it) and ``bits_per_char: <float>``. Characters the model's
vocabulary does not contain are dropped before scoring.
"""

from __future__ import annotations

import argparse
import math

from model import VOCAB_NAME, context_size, encode, load_weights, loss, pad_index, windows
from prepare import read_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="safetensors (or exported .npz) file")
    parser.add_argument("--data", default="data/val.txt", help="UTF-8 text to score")
    args = parser.parse_args()

    params = load_weights(args.weights)
    ids = encode(read_text(args.data), params[VOCAB_NAME])
    if len(ids) == 0:
        raise SystemExit(f"{args.data}: no characters from the model's vocabulary")
    contexts, targets = windows(ids, context_size(params), pad_index(params[VOCAB_NAME]))
    value = loss(params, contexts, targets)
    print(f"loss: {value:.4f}")
    print(f"bits_per_char: {value / math.log(2):.4f}")
    print(f"characters: {len(ids)}")


if __name__ == "__main__":
    main()
