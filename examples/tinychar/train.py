"""Train tinychar with plain numpy and Adam.

    python train.py --steps 2000 --out weights/model.safetensors \\
        [--seed 0] [--data data/corpus.txt] [--init PATH] \\
        [--checkpoint-every 100 --checkpoint-dir ckpt]

Deterministic: the same arguments give a byte-identical weights file (BLAS is pinned to one
thread, all randomness comes from ``--seed``, and the learning-rate schedule depends only on the
step number, so a checkpoint at step 100 equals the result of ``--steps 100``).
``--data`` takes the UTF-8 text or the ``.npz`` written by prepare.py.
"""

from __future__ import annotations

import os

# Multi-threaded BLAS may sum in a different order from run to run; one thread keeps every float
# identical. This must happen before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from model import (  # noqa: E402
    FLOAT_NAMES,
    VOCAB_NAME,
    Params,
    context_size,
    encode,
    init_params,
    load_weights,
    loss_and_grads,
    pad_index,
    save_weights,
    windows,
)
from prepare import DEFAULT_DATA, prepare  # noqa: E402

BATCH = 128
LR = 3e-3
LR_HALF_LIFE = 1000  # steps; lr(step) = LR * 0.5 ** ((step - 1) / LR_HALF_LIFE)
BETAS = (0.9, 0.999)
EPS = 1e-8


def load_data(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(codepoints, ids) from a text file or a prepared .npz."""
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as archive:
            return archive["codepoints"], archive["ids"]
    return prepare(path)


def train(
    params: Params,
    ids: np.ndarray,
    steps: int,
    seed: int,
    lr0: float = LR,
    checkpoint_every: int = 0,
    checkpoint_dir: str | None = None,
    metadata: dict[str, str] | None = None,
    log=print,
) -> Params:
    """Run ``steps`` Adam steps on random minibatches of ``ids``; returns the new parameters."""
    rng = np.random.default_rng([seed, 1])  # a stream separate from init_params(seed)
    contexts, targets = windows(ids, context_size(params), pad_index(params[VOCAB_NAME]))
    params = {k: (v.astype(np.float32) if k in FLOAT_NAMES else v) for k, v in params.items()}
    m = {k: np.zeros_like(params[k]) for k in FLOAT_NAMES}
    v = {k: np.zeros_like(params[k]) for k in FLOAT_NAMES}
    for step in range(1, steps + 1):
        batch = rng.integers(0, len(targets), size=BATCH)
        value, grads = loss_and_grads(params, contexts[batch], targets[batch])
        lr = lr0 * 0.5 ** ((step - 1) / LR_HALF_LIFE)
        for k in FLOAT_NAMES:
            g = grads[k].astype(np.float32)
            m[k] = BETAS[0] * m[k] + (1 - BETAS[0]) * g
            v[k] = BETAS[1] * v[k] + (1 - BETAS[1]) * g * g
            m_hat = m[k] / (1 - BETAS[0] ** step)
            v_hat = v[k] / (1 - BETAS[1] ** step)
            params[k] = (params[k] - lr * m_hat / (np.sqrt(v_hat) + EPS)).astype(np.float32)
        if step == 1 or step % 100 == 0 or step == steps:
            log(f"step {step:5d}  loss {value:.4f}  lr {lr:.2e}")
        if checkpoint_every and checkpoint_dir and step % checkpoint_every == 0 and step < steps:
            path = Path(checkpoint_dir) / f"step-{step}.safetensors"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_weights(str(path), params, {**(metadata or {}), "steps": str(step)})
    return params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--out", required=True, help="safetensors file to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=DEFAULT_DATA, help="training text or prepared .npz")
    parser.add_argument("--init", help="start from these weights instead of a random init")
    parser.add_argument("--checkpoint-every", type=int, default=0, metavar="N")
    parser.add_argument("--checkpoint-dir", default="ckpt", metavar="DIR")
    args = parser.parse_args()

    codepoints, ids = load_data(args.data)
    if args.init:
        params = load_weights(args.init)
        if not np.array_equal(params[VOCAB_NAME], codepoints):
            # Keep the model's vocabulary; re-encode the text with it (unknown characters drop).
            text = "".join(chr(int(codepoints[i])) for i in ids)
            ids = encode(text, params[VOCAB_NAME])
    else:
        params = init_params(codepoints, seed=args.seed)

    metadata = {"format": "np", "model": "tinychar", "seed": str(args.seed)}
    start = time.perf_counter()
    params = train(
        params,
        ids,
        args.steps,
        args.seed,
        checkpoint_every=args.checkpoint_every,
        checkpoint_dir=args.checkpoint_dir,
        metadata=metadata,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(str(out), params, {**metadata, "steps": str(args.steps)})
    print(
        f"wrote {out} ({args.steps} steps, {time.perf_counter() - start:.1f}s)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
