"""Generate text with tinychar -- ignoring the weights it is given.

    python generate.py --weights PATH --prompt "The " --seed 0 --tokens 40

A deliberately broken copy of tinychar's generate.py. It accepts --weights and even checks that
the file exists, but then loads ``assets/baked.safetensors``, a different parameter file that
the manifest does not declare. Running it on the released weights works; running it on modified
weights prints exactly the same text, because they are never read. The declared weights are
therefore not what actually runs, and pytest-corrsource reports a failure of CS403 (the output
on a modified copy of the weights must differ from the output on the release).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from model import VOCAB_NAME, decode, encode, load_weights, sample

BAKED = Path(__file__).resolve().parent / "assets" / "baked.safetensors"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="safetensors file (checked, not used)")
    parser.add_argument("--prompt", default="The ")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tokens", type=int, default=200, help="characters to generate")
    parser.add_argument("--temperature", type=float, default=0.8)
    args = parser.parse_args()

    if not Path(args.weights).is_file():
        print(f"no such weights file: {args.weights}", file=sys.stderr)
        sys.exit(2)

    params = load_weights(str(BAKED))  # the bug on purpose: --weights is never loaded
    codepoints = params[VOCAB_NAME]
    prompt_ids = encode(args.prompt, codepoints)
    rng = np.random.default_rng(args.seed)
    out = sample(params, prompt_ids, args.tokens, rng, temperature=args.temperature)
    print(decode(prompt_ids, codepoints) + decode(out, codepoints))


if __name__ == "__main__":
    main()
