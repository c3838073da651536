"""Convert the safetensors weights into an ``.npz`` archive that generate.py can run from.

    python export.py --weights weights/model.safetensors --out OUT.npz

Every tensor is copied unchanged under its own name; the result is checked by reloading it.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from model import load_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="safetensors file to convert")
    parser.add_argument("--out", required=True, help="the .npz to write")
    args = parser.parse_args()

    params = load_weights(args.weights)
    buffer = io.BytesIO()  # written through a buffer so the file lands exactly at --out
    np.savez(buffer, **{name: params[name] for name in sorted(params)})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buffer.getvalue())

    with np.load(out, allow_pickle=False) as archive:
        for name, value in params.items():
            if not np.array_equal(archive[name], value) or archive[name].dtype != value.dtype:
                raise SystemExit(f"export check failed for tensor {name}")
    print(f"wrote {out}: {len(params)} tensors")


if __name__ == "__main__":
    main()
