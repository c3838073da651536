"""Generate text with tinychar, downloading the vocabulary at run time.

    python generate.py --weights PATH --prompt "The " --seed 0 --tokens 40

A deliberately network-dependent copy of tinychar's generate.py. The weights file here has no
``vocab.codepoints`` tensor; the vocabulary (the tokenizer) is fetched over HTTP every time the
model runs. This stands in for the common pattern of a model that downloads its tokenizer or
config from a model hub at run time: the repository alone is not enough to run it.

So that the example is self-contained (tests have no internet), the "hub" is a tiny
``http.server`` that this script starts in a background thread on 127.0.0.1, port 0 (any free
port), serving the repository's ``assets/`` folder. The download still goes through a real
socket. Without network access -- e.g. in a network namespace whose loopback interface is down
-- binding or connecting fails and the script exits with status 4 and a clear message, so
pytest-corrsource reports a failure of CS404 (the run must succeed offline).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import sys
import threading
import urllib.request
from pathlib import Path

import numpy as np
from model import VOCAB_NAME, decode, encode, load_weights, sample

ASSETS = Path(__file__).resolve().parent / "assets"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep stderr clean
        pass


def fetch_vocabulary() -> np.ndarray:
    """Start the stand-in hub, download ``vocab.json`` from it, and shut the hub down."""
    handler = functools.partial(_QuietHandler, directory=str(ASSETS))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        url = f"http://{host}:{port}/vocab.json"
        # No proxy: an HTTP(S)_PROXY setting must not reroute the loopback "hub".
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=10) as response:
            payload = json.load(response)
    finally:
        server.shutdown()
        server.server_close()
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
