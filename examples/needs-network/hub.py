"""The stand-in model hub: an HTTP server, outside the sandbox, serving ``assets/vocab.json``.

    python hub.py            # prints the proxy setting to use, serves until Ctrl-C

Many models download their tokenizer from a hub at run time. Tests have no internet, so this
hub runs on the host's loopback and acts as the HTTP proxy through which ``generate.py``
reaches ``http://tinychar-hub.invalid/vocab.json``: any GET is answered with the vocabulary.
``conftest.py`` starts it for a pytest session and sets ``http_proxy`` (a variable the checker
passes to the model's commands). The online run reaches it; the run with the network cut
(CS404, its own network namespace with only its own loopback) cannot, and fails.
"""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

VOCAB = Path(__file__).resolve().parent / "assets" / "vocab.json"


class _Hub(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # the http.server naming
        body = VOCAB.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep output clean
        pass


def start() -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve in a daemon thread on 127.0.0.1 (any free port); returns the server and the
    ``http_proxy`` value that routes requests to it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    return server, f"http://{host}:{port}"


if __name__ == "__main__":
    server, proxy = start()
    print(f"hub running; in another shell: export http_proxy={proxy}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()
