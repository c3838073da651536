"""Shared fixtures: small real model repositories built in tmp folders.

Every inner pytest run (pytester) and every command our checks start must see neither the
outer CI's GitHub variables nor a user cache: the environment cache is one folder per test
session, shared by all tests (and xdist workers) so identical install specs build once.
"""

from __future__ import annotations

import hashlib
import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file


@pytest.fixture(autouse=True)
def _scrub_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    for name in list(os.environ):
        if name.startswith(("GITHUB_", "CORRSOURCE_")) or name == "CI":
            monkeypatch.delenv(name, raising=False)
    # One cache of isolated environments for the whole test session (and all xdist workers:
    # the base temp's parent is shared), so identical install specs are built once.
    shared = tmp_path_factory.getbasetemp().parent / "corrsource-cache"
    monkeypatch.setenv("CORRSOURCE_CACHE_DIR", str(shared))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_weights(path: Path, seed: int = 0) -> Path:
    """A small real safetensors file with float and integer tensors."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        {
            "layer.weight": rng.standard_normal((4, 3)).astype(np.float32),
            "layer.bias": rng.standard_normal(3).astype(np.float32),
            "position_ids": np.arange(4, dtype=np.int64),
        },
        str(path),
    )
    return path


# A model "run" script that needs only the standard library: it reads the safetensors header
# and data of the weights it is given and prints a digest of the float bytes, so its output
# depends on the weights' values exactly as a real model's would.
RUN_SCRIPT = textwrap.dedent(
    """
    import argparse, hashlib, json, struct, sys
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", required=True)
    args = parser.parse_args()
    with open(args.weights, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    digest = hashlib.sha256()
    for name, info in sorted(header.items()):
        if name != "__metadata__" and info["dtype"].startswith("F"):
            begin, end = info["data_offsets"]
            digest.update(data[begin:end])
    print("model output:", digest.hexdigest()[:16])
    """
)

RepoFactory = Callable[..., Path]


@pytest.fixture
def make_repo(tmp_path: Path) -> RepoFactory:
    """Build a model repository: ``make_repo(manifest_yaml, files={path: text})``.

    ``weights/model.safetensors`` is always written; ``{sha}`` in the manifest text is replaced
    by its digest. ``files`` values may be str (text) or bytes.
    """

    def make(
        manifest: str, files: dict[str, str | bytes] | None = None, name: str = "repo"
    ) -> Path:
        root = tmp_path / name
        root.mkdir()
        weights = write_weights(root / "weights" / "model.safetensors")
        for rel, content in (files or {}).items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        text = textwrap.dedent(manifest).replace("{sha}", sha256(weights))
        (root / "corresponding-source.yaml").write_text(text)
        return root

    return make


MINIMAL_MANIFEST = """\
version: 1
name: tiny
licenses: {distribution: MIT}
weights:
  - path: weights/model.safetensors
    sha256: {sha}
"""

# A complete, runnable repository that needs nothing from PyPI.
RUNNABLE_MANIFEST = """\
version: 1
name: tiny
licenses: {distribution: MIT, weights: CC-BY-4.0}
weights:
  - path: weights/model.safetensors
    sha256: {sha}
architecture: [run.py]
install:
  requirements: [requirements.txt]
  commands:
    - python -c "print('installed')"
run:
  command: python run.py --weights {weights}
  timeout: 60
  expect:
    stdout: "model output: [0-9a-f]+"
"""

RUNNABLE_FILES: dict[str, str | bytes] = {
    "run.py": RUN_SCRIPT,
    "requirements.txt": "# the run needs only the standard library\n",
    "LICENSE": "MIT License\n",
    "README.md": "---\nlicense: cc-by-4.0\n---\n# tiny\n",
}
