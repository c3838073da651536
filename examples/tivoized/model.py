"""tinychar: a tiny character-level language model written with numpy only.

Architecture (a fixed-window neural language model in the style of Bengio et al., 2003):

    context  = the CONTEXT previous characters, as vocabulary indices      (B, CONTEXT)
    x        = embed.weight[context], flattened                             (B, CONTEXT*EMBED)
    h        = tanh(x @ hidden.weight + hidden.bias)                        (B, HIDDEN)
    logits   = h @ out.weight + out.bias                                    (B, V)
    p(next)  = softmax(logits)

Parameters (the safetensors schema of every file this repository writes):

    embed.weight      float32 (V, EMBED)
    hidden.weight     float32 (CONTEXT*EMBED, HIDDEN)
    hidden.bias       float32 (HIDDEN,)
    out.weight        float32 (HIDDEN, V)
    out.bias          float32 (V,)
    vocab.codepoints  int32   (V,)   Unicode code points of the vocabulary, in index order

The tokenizer ships inside the weights as ``vocab.codepoints``, so a weights file is all that is
needed to generate text. The context width is not stored separately: it is recovered from the
shapes as ``hidden.weight.shape[0] // embed.weight.shape[1]``.
"""

from __future__ import annotations

import numpy as np

# Default sizes. Small on purpose: the whole model is about 25 000 parameters (~100 KB).
CONTEXT = 8
EMBED = 16
HIDDEN = 128

FLOAT_NAMES = ("embed.weight", "hidden.weight", "hidden.bias", "out.weight", "out.bias")
VOCAB_NAME = "vocab.codepoints"

Params = dict[str, np.ndarray]


# --------------------------------------------------------------------------- tokenizer


def build_vocab(text: str) -> np.ndarray:
    """The sorted code points of every character in ``text`` (int32)."""
    return np.array(sorted({ord(ch) for ch in text}), dtype=np.int32)


def encode(text: str, codepoints: np.ndarray) -> np.ndarray:
    """Map text to vocabulary indices (int32). Characters outside the vocabulary are dropped."""
    index = {int(cp): i for i, cp in enumerate(codepoints)}
    return np.array([index[ord(ch)] for ch in text if ord(ch) in index], dtype=np.int32)


def decode(ids: np.ndarray, codepoints: np.ndarray) -> str:
    return "".join(chr(int(codepoints[i])) for i in ids)


def pad_index(codepoints: np.ndarray) -> int:
    """Index used to left-pad a prompt shorter than the context: the space if known, else 0."""
    hits = np.flatnonzero(codepoints == ord(" "))
    return int(hits[0]) if hits.size else 0


# --------------------------------------------------------------------------- parameters


def context_size(params: Params) -> int:
    return params["hidden.weight"].shape[0] // params["embed.weight"].shape[1]


def init_params(
    codepoints: np.ndarray,
    seed: int = 0,
    context: int = CONTEXT,
    embed: int = EMBED,
    hidden: int = HIDDEN,
) -> Params:
    """Seeded random initialisation (scaled so that activations start with unit-ish variance)."""
    rng = np.random.default_rng(seed)
    vocab = len(codepoints)
    fan_in = context * embed

    def normal(shape: tuple[int, ...], scale: float) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    return {
        "embed.weight": normal((vocab, embed), 1.0),
        "hidden.weight": normal((fan_in, hidden), 1.0 / np.sqrt(fan_in)),
        "hidden.bias": np.zeros(hidden, dtype=np.float32),
        # A small output layer keeps the initial loss close to log(V).
        "out.weight": normal((hidden, vocab), 0.1 / np.sqrt(hidden)),
        "out.bias": np.zeros(vocab, dtype=np.float32),
        VOCAB_NAME: np.asarray(codepoints, dtype=np.int32),
    }


def windows(ids: np.ndarray, context: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """All (context, next-character) pairs of a sequence, left-padded so every character is a
    target. Returns contexts (N, context) and targets (N,)."""
    padded = np.concatenate([np.full(context, pad, dtype=np.int32), ids.astype(np.int32)])
    rows = np.arange(len(ids))[:, None] + np.arange(context)[None, :]
    return padded[rows], ids.astype(np.int32)


# --------------------------------------------------------------------------- forward / loss


def forward(params: Params, contexts: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Logits (B, V) for a batch of contexts (B, CONTEXT), plus the activations backward needs."""
    emb = params["embed.weight"][contexts]  # (B, C, E)
    x = emb.reshape(len(contexts), -1)  # (B, C*E)
    h = np.tanh(x @ params["hidden.weight"] + params["hidden.bias"])  # (B, H)
    logits = h @ params["out.weight"] + params["out.bias"]  # (B, V)
    return logits, {"x": x, "h": h}


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def loss(params: Params, contexts: np.ndarray, targets: np.ndarray) -> float:
    """Mean cross-entropy (nats per character)."""
    logits, _ = forward(params, contexts)
    logp = log_softmax(logits)
    return float(-logp[np.arange(len(targets)), targets].mean())


def loss_and_grads(
    params: Params, contexts: np.ndarray, targets: np.ndarray
) -> tuple[float, dict[str, np.ndarray]]:
    """Mean cross-entropy and its gradient with respect to every float parameter."""
    n = len(targets)
    logits, cache = forward(params, contexts)
    logp = log_softmax(logits)
    value = float(-logp[np.arange(n), targets].mean())

    # d(loss)/d(logits) = softmax - one_hot, averaged over the batch.
    dlogits = np.exp(logp)
    dlogits[np.arange(n), targets] -= 1.0
    dlogits /= n

    h, x = cache["h"], cache["x"]
    grads = {
        "out.weight": h.T @ dlogits,
        "out.bias": dlogits.sum(axis=0),
    }
    dh = dlogits @ params["out.weight"].T
    dpre = dh * (1.0 - h * h)  # tanh'
    grads["hidden.weight"] = x.T @ dpre
    grads["hidden.bias"] = dpre.sum(axis=0)
    dx = (dpre @ params["hidden.weight"].T).reshape(n, contexts.shape[1], -1)
    dembed = np.zeros_like(params["embed.weight"])
    np.add.at(dembed, contexts, dx)  # scatter-add: the same character can appear many times
    grads["embed.weight"] = dembed
    return value, grads


# --------------------------------------------------------------------------- sampling


def sample(
    params: Params,
    prompt_ids: np.ndarray,
    n_tokens: int,
    rng: np.random.Generator,
    temperature: float = 0.8,
) -> np.ndarray:
    """Extend ``prompt_ids`` by ``n_tokens`` characters.

    Each step draws from softmax(logits / temperature) with the caller's seeded generator, so the
    result is deterministic for a seed but moves with every change of the weights.
    ``temperature <= 0`` means greedy (argmax) decoding.
    """
    context = context_size(params)
    pad = pad_index(params[VOCAB_NAME])
    ids = [pad] * context + [int(i) for i in prompt_ids]
    generated = []
    for _ in range(n_tokens):
        window = np.array(ids[-context:], dtype=np.int32)[None, :]
        logits, _ = forward(params, window)
        logits = logits[0].astype(np.float64)
        if temperature <= 0:
            nxt = int(np.argmax(logits))
        else:
            probs = np.exp(log_softmax(logits / temperature))
            nxt = int(rng.choice(len(probs), p=probs / probs.sum()))
        ids.append(nxt)
        generated.append(nxt)
    return np.array(generated, dtype=np.int32)


# --------------------------------------------------------------------------- weights files


def load_weights(path: str) -> Params:
    """Read a weights file: safetensors, or the ``.npz`` written by export.py (by suffix)."""
    if str(path).endswith(".npz"):
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    from safetensors.numpy import load_file

    return load_file(path)


def save_weights(path: str, params: Params, metadata: dict[str, str]) -> None:
    """Write ``params`` as safetensors with ``metadata``, byte-for-byte reproducibly.

    safetensors keeps ``__metadata__`` in a hash map, so with more than one key the order in the
    JSON header (and therefore the file's sha256) changes from run to run. The header is rewritten
    with its metadata keys sorted; the length is unchanged, so the tensor data stays where it is.
    """
    import json

    from safetensors.numpy import save_file

    tensors = {name: np.ascontiguousarray(params[name]) for name in sorted(params)}
    save_file(tensors, path, metadata=metadata)
    with open(path, "r+b") as fh:
        size = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(size))
        header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
        text = json.dumps(header, separators=(",", ":")).encode()
        if len(text) > size:  # cannot happen for a pure reordering; keep the original then
            return
        fh.seek(8)
        fh.write(text.ljust(size, b" "))
