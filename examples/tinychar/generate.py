"""Generate text with tinychar.

    python generate.py --weights PATH --prompt "The " --seed 0 --tokens 40 [--temperature 0.8]

Loads the parameters and the vocabulary from --weights only (a safetensors file, or the ``.npz``
written by export.py, chosen by suffix), prints the prompt followed by the generated characters.
Sampling uses a generator seeded with --seed, so the same weights and seed always print the same
text, while any change of the weights changes the sampling distribution and hence the text.
Never touches the network.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from model import VOCAB_NAME, decode, encode, load_weights, sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="safetensors or exported .npz file")
    parser.add_argument("--prompt", default="The ")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tokens", type=int, default=200, help="characters to generate")
    parser.add_argument(
        "--temperature", type=float, default=0.8, help="softmax temperature; 0 = greedy"
    )
    args = parser.parse_args()

    params = load_weights(args.weights)
    codepoints = params[VOCAB_NAME]
    prompt_ids = encode(args.prompt, codepoints)
    if len(prompt_ids) < len(args.prompt):
        print("note: prompt characters outside the vocabulary were dropped", file=sys.stderr)
    rng = np.random.default_rng(args.seed)
    out = sample(params, prompt_ids, args.tokens, rng, temperature=args.temperature)
    print(decode(prompt_ids, codepoints) + decode(out, codepoints))


if __name__ == "__main__":
    main()
