"""Generate text with tinychar -- but only with the vendor's own weights.

    python generate.py --weights PATH --prompt "The " --seed 0 --tokens 40

This is a deliberately *tivoized* copy of tinychar's generate.py. Before loading anything it
hashes the weights file and refuses to run unless the digest equals the one hard-coded below.
The source is all here and the released weights run fine, but a user who fine-tunes, quantises
or otherwise modifies the weights cannot run their version with this code: the situation that
GPLv3 section 6 ("Installation Information") and the FSF's freedom 1 are about. pytest-corrsource
reports it as a failure of CS403 (run on a modified copy of the weights).
"""

from __future__ import annotations

import argparse
import hashlib
import sys

import numpy as np
from model import VOCAB_NAME, decode, encode, load_weights, sample

# sha256 of the released weights/model.safetensors -- the only file this script will accept.
VENDOR_SIGNED_SHA256 = "f6dee0efd5e6903c1c68264e3d7f0b0db929edb6935280bd31ea48eeda66ac8e"


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="safetensors file")
    parser.add_argument("--prompt", default="The ")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tokens", type=int, default=200, help="characters to generate")
    parser.add_argument("--temperature", type=float, default=0.8)
    args = parser.parse_args()

    if file_sha256(args.weights) != VENDOR_SIGNED_SHA256:
        print("refusing to run: weights are not the vendor-signed release", file=sys.stderr)
        sys.exit(3)

    params = load_weights(args.weights)
    codepoints = params[VOCAB_NAME]
    prompt_ids = encode(args.prompt, codepoints)
    rng = np.random.default_rng(args.seed)
    out = sample(params, prompt_ids, args.tokens, rng, temperature=args.temperature)
    print(decode(prompt_ids, codepoints) + decode(out, codepoints))


if __name__ == "__main__":
    main()
