"""Generate text with tinychar, downloading the vocabulary at run time.

    python generate.py --weights PATH --prompt "The " --seed 0 --tokens 40

A deliberately network-dependent copy of tinychar's generate.py. The weights file here has no
``vocab.codepoints`` tensor; the vocabulary (the tokenizer) is fetched over HTTP every time the
model runs. This stands in for the common pattern of a model that downloads its tokenizer or
config from a model hub at run time: the repository alone is not enough to run it.

The hub is ``http://tinychar-hub.invalid``, reached through the HTTP proxy of the
environment (``http_proxy``): ``hub.py`` is that proxy, a server outside the sandbox that
answers every request with ``assets/vocab.json`` (its ``conftest.py`` starts it for a pytest
session). Without network access -- e.g. with the network cut for CS404 -- the download fails
and the script exits with status 4 and a clear message.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request

import numpy as np
from model import VOCAB_NAME, decode, encode, load_weights, sample

HUB_URL = "http://tinychar-hub.invalid/vocab.json"


def fetch_vocabulary() -> np.ndarray:
    """Download ``vocab.json`` from the hub (through the environment's proxy settings)."""
    with urllib.request.urlopen(HUB_URL, timeout=10) as response:
        payload = json.load(response)
    return np.array(payload["codepoints"], dtype=np.int32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="safetensors file")
    parser.add_argument("--prompt", default="The ")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tokens", type=int, default=200, help="characters to generate")
    parser.add_argument("--temperature", type=float, default=0.8)
    args = parser.parse_args()

    try:
        codepoints = fetch_vocabulary()
    except OSError as exc:  # socket errors and urllib.error.URLError are both OSErrors
        print(
            f"cannot download the vocabulary (network unavailable?): {exc}\n"
            "this model needs network access at run time to fetch its tokenizer",
            file=sys.stderr,
        )
        sys.exit(4)

    params = load_weights(args.weights)
    params[VOCAB_NAME] = codepoints
    prompt_ids = encode(args.prompt, codepoints)
    rng = np.random.default_rng(args.seed)
    out = sample(params, prompt_ids, args.tokens, rng, temperature=args.temperature)
    print(decode(prompt_ids, codepoints) + decode(out, codepoints))


if __name__ == "__main__":
    main()
