"""Fine-tune tinychar weights on more text.

    python finetune.py --weights PATH --data data/extra.txt --steps 50 --out OUT.safetensors \\
        [--seed 0] [--lr 1e-3]

Continues training (Adam, same loss as train.py) from the given weights. The vocabulary is the
model's own: characters of the new text that it does not contain are dropped. The output has the
same tensor names, dtypes and shapes as the input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model import VOCAB_NAME, encode, load_weights, save_weights
from prepare import read_text
from train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="weights to start from")
    parser.add_argument("--data", required=True, help="UTF-8 text to continue training on")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--out", required=True, help="safetensors file to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3, help="initial Adam learning rate")
    args = parser.parse_args()

    params = load_weights(args.weights)
    text = read_text(args.data)
    ids = encode(text, params[VOCAB_NAME])
    if len(ids) < len(text):
        print(f"dropped {len(text) - len(ids)} characters outside the vocabulary", file=sys.stderr)
    if len(ids) == 0:
        raise SystemExit(f"{args.data}: no characters from the model's vocabulary")
    params = train(params, ids, args.steps, args.seed, lr0=args.lr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": "np", "model": "tinychar", "finetuned-steps": str(args.steps)}
    save_weights(str(out), params, metadata)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
