"""Starts the stand-in hub (``hub.py``) for a pytest session in this example.

It runs in the pytest process, outside any sandbox, and ``http_proxy`` points the model's
commands at it: reachable from the online runs, unreachable from the network-cut run (CS404).
"""

from __future__ import annotations

import os
from typing import Any

import hub

_server: Any = None


def pytest_configure(config: Any) -> None:
    global _server
    _server, proxy = hub.start()
    os.environ["http_proxy"] = proxy


def pytest_unconfigure(config: Any) -> None:
    if _server is not None:
        _server.shutdown()
        _server.server_close()
