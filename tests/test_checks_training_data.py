"""CS405, CS601–CS603, CS701–CS703 and CS801 as plain functions over real, stdlib-only
repositories: each check passes and fails, and its failure text says what was found.

Every runnable repository here keeps the install spec of ``RUNNABLE_MANIFEST`` (same commands,
same requirements.txt), so the isolated environment is built once per session and reused. The
training script writes safetensors with the standard library only (the isolated environment
has nothing else). Remote data comes from an HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import socket
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    MINIMAL_MANIFEST,
    RUNNABLE_FILES,
    RUNNABLE_MANIFEST,
    PlannedChecks,
    RepoFactory,
)
from safetensors.numpy import load_file

from pytest_corrsource.checks.api import Options
from pytest_corrsource.results import CheckResult
from pytest_corrsource.vocabulary import Level

LEVEL: Level = "open-source-ai"

# A "training" script that needs only the standard library: it writes a safetensors file
# (8-byte little-endian header length, space-padded JSON header, raw little-endian data) with
# the released values from values.json, changed as --mode and --delta ask.
TRAIN_SCRIPT = textwrap.dedent(
    """
    import argparse, json, struct, sys

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--mode", default="released")
    parser.add_argument("--delta", type=float, default=0.0)
    args = parser.parse_args()
    modes = set(args.mode.split(","))
    if "crash" in modes:
        sys.exit("training diverged at step 2")
    if "nothing" in modes:
        sys.exit(0)
    if "garbage" in modes:
        with open(args.out, "wb") as f:
            f.write(b"these are not weights")
        sys.exit(0)
    with open("values.json") as f:
        values = json.load(f)
    tensors = {
        "layer.weight": ["F32", [4, 3], values["layer.weight"]],
        "layer.bias": ["F32", [3], values["layer.bias"]],
        "position_ids": ["I64", [4], values["position_ids"]],
    }
    tensors["layer.weight"][2][0] += args.delta
    if "wider" in modes:  # hidden size drift
        tensors["layer.weight"] = ["F32", [4, 5], [0.0] * 20]
    if "missing" in modes:
        del tensors["layer.bias"]
    if "extra" in modes:
        tensors["extra.scale"] = ["F32", [1], [1.0]]
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, flat) in tensors.items():
        code = "f" if dtype == "F32" else "q"
        blob = struct.pack("<%d%s" % (len(flat), code), *flat)
        offsets = [offset, offset + len(blob)]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": offsets}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    data = struct.pack("<Q", len(text)) + text + b"".join(blobs)
    if "truncated" in modes:
        data = data[:-4]
    with open(args.out, "wb") as f:
        f.write(data)
    print("trained")
    """
)

PREPARE_SCRIPT = textwrap.dedent(
    """
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--skip", action="store_true")
    args = parser.parse_args()
    if not args.skip:
        with open("data/corpus.txt") as src, open(args.out, "w") as dst:
            dst.write(src.read().lower())
    """
)

EVAL_SCRIPT = textwrap.dedent(
    """
    import argparse, sys
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", required=True)
    parser.add_argument("--fail", action="store_true")
    args = parser.parse_args()
    if args.fail:
        sys.exit("evaluation crashed")
    with open("data/val.txt") as f:
        f.read()
    print("loss: 1.23")
    """
)

CORPUS = "The quick brown fox.\n"
FULL_CARD = textwrap.dedent(
    """\
    # Data card
    ## Provenance
    Written by hand.
    ## Scope
    English sentences.
    ## Selection
    All of them.
    ## Labelling
    None.
    ## Processing
    Lower-cased by prepare.py.
    """
)


def section(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


TRAINING = section(
    """
    training:
      code: [train.py]
      command: python train.py --out {outdir}/model.safetensors
      produces: "{outdir}/model.safetensors"
      timeout: 60
    """
)
MODIFY = section(
    """
    modify:
      command: python train.py --out {outdir}/ft.safetensors
      produces: ["{outdir}/ft.safetensors"]
      timeout: 60
    """
)
PREPROCESSING = section(
    """
    data:
      sources:
        - path: data/corpus.txt
      preprocessing:
        code: [prepare.py]
        command: python prepare.py --out {outdir}/train.txt
        produces: ["{outdir}/train.txt"]
        timeout: 60
    """
)
EVALUATION = section(
    """
    evaluation:
      code: [eval.py]
      data: [data/val.txt]
      command: python eval.py --weights {weights}
      timeout: 60
      expect: {stdout: "loss: ([0-9.]+)"}
    """
)


def runnable(
    make_repo: RepoFactory,
    sections: str,
    *,
    replace: dict[str, str] | None = None,
    files: dict[str, str | bytes] | None = None,
    name: str = "repo",
) -> Path:
    """The conftest runnable repository (same install spec), plus ``sections`` of manifest,
    the training / preprocessing / evaluation scripts, and the released values."""
    text = RUNNABLE_MANIFEST + sections
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    scripts: dict[str, str | bytes] = {
        "train.py": TRAIN_SCRIPT,
        "prepare.py": PREPARE_SCRIPT,
        "eval.py": EVAL_SCRIPT,
        "data/corpus.txt": CORPUS,
        "data/val.txt": "Jumps over the lazy dog.\n",
    }
    root = make_repo(text, {**RUNNABLE_FILES, **scripts, **(files or {})}, name=name)
    tensors = load_file(str(root / "weights" / "model.safetensors"))
    values = {name: array.reshape(-1).tolist() for name, array in tensors.items()}
    (root / "values.json").write_text(json.dumps(values))
    return root


class Checks(PlannedChecks):
    """The repository's checks at ``open-source-ai``; ``fetch`` and ``cache_dir`` as given."""

    def __init__(self, root: Path, *, fetch: bool = False, cache_dir: Path | None = None) -> None:
        super().__init__(root, Options(level=LEVEL, fetch=fetch, cache_dir=cache_dir))


def passed(result: CheckResult) -> CheckResult:
    assert result.outcome == "passed", f"{result.outcome}: {result.message}"
    return result


def failure(result: CheckResult, outcome: str = "failed") -> str:
    assert result.outcome == outcome, f"{result.outcome}: {result.message}"
    assert outcome != "failed" or result.message.startswith(result.id)
    return result.message


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): digest(p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------- CS601 training code


def test_cs601_passes_when_the_training_code_exists(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, TRAINING)
    assert passed(Checks(root)("CS601")).message == "train.py"


def test_cs601_fails_naming_missing_training_code(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, TRAINING, replace={"code: [train.py]": "code: [train.py, optim.py]"})
    message = failure(Checks(root)("CS601"))
    assert "training code not in the repository: optim.py" in message


def test_cs601_fails_binary_training_code(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, TRAINING, files={"train.py": b"\x7fELF" + bytes(60)})
    assert "training code is binary, not source: train.py" in failure(Checks(root)("CS601"))


def test_cs601_fails_without_training_code(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, TRAINING, replace={"  code: [train.py]\n": ""})
    assert "`training.code` lists no files" in failure(Checks(root)("CS601"))


# --------------------------------------------------------------------------- CS602 / CS603


def with_mode(mode: str, reproduce: str = "") -> dict[str, str]:
    old = "--out {outdir}/model.safetensors\n"
    return {old: f"--out {{outdir}}/model.safetensors {mode}\n{reproduce}"}


@pytest.mark.e2e
def test_cs602_and_cs603_pass_when_training_writes_the_released_schema(
    make_repo: RepoFactory,
) -> None:
    checks = Checks(runnable(make_repo, TRAINING))
    result = passed(checks("CS602"))
    assert "wrote 3 tensors" in result.message
    assert result.data["seconds"] >= 0
    assert passed(checks("CS603")).message == "same 3 tensor names, dtypes and shapes"


@pytest.mark.e2e
def test_cs602_fails_when_training_crashes(make_repo: RepoFactory) -> None:
    checks = Checks(runnable(make_repo, TRAINING, replace=with_mode("--mode crash")))
    message = failure(checks("CS602"))
    assert "the training command failed: exit code 1" in message
    assert "training diverged at step 2" in message  # the tail of its stderr
    # CS603 depends on CS602: blocked by it, not a second failure.
    assert failure(checks("CS603"), "skipped").startswith("blocked by CS602 (the training command")


@pytest.mark.e2e
def test_cs602_fails_when_training_writes_nothing(make_repo: RepoFactory) -> None:
    checks = Checks(runnable(make_repo, TRAINING, replace=with_mode("--mode nothing")))
    message = failure(checks("CS602"))
    assert "exited 0 but did not write {outdir}/model.safetensors" in message
    assert failure(checks("CS603"), "skipped").startswith("blocked by CS602")


@pytest.mark.e2e
def test_cs602_fails_when_training_writes_something_else(make_repo: RepoFactory) -> None:
    checks = Checks(runnable(make_repo, TRAINING, replace=with_mode("--mode garbage")))
    message = failure(checks("CS602"))
    assert "the training command wrote model.safetensors, which is not valid weights" in message
    assert "its format is not recognised" in message
    assert "not valid weights" in failure(checks("CS603"), "skipped")


@pytest.mark.e2e
def test_cs602_fails_truncated_safetensors(make_repo: RepoFactory) -> None:
    checks = Checks(runnable(make_repo, TRAINING, replace=with_mode("--mode truncated")))
    message = failure(checks("CS602"))
    assert "the training command wrote model.safetensors, which is not valid weights" in message


@pytest.mark.e2e
def test_cs603_lists_every_schema_difference(make_repo: RepoFactory) -> None:
    checks = Checks(runnable(make_repo, TRAINING, replace=with_mode("--mode wider,missing,extra")))
    passed(checks("CS602"))  # it did write weights: only their schema is wrong
    message = failure(checks("CS603"))
    assert "do not have the schema of weights/model.safetensors" in message
    assert "shape mismatch: layer.weight ([4, 3] released, [4, 5] regenerated)" in message
    assert "missing tensors: layer.bias" in message
    assert "unexpected tensors: extra.scale" in message
    assert "dtype mismatch" not in message


@pytest.mark.e2e
def test_cs603_exact_passes_identical_values(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, TRAINING, replace=with_mode("", "  reproduce: exact\n"))
    assert passed(Checks(root)("CS603")).message == "values reproduced (exact)"


@pytest.mark.e2e
def test_cs603_exact_fails_different_values(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, TRAINING, replace=with_mode("--delta 1e-3", "  reproduce: exact\n"))
    message = failure(Checks(root)("CS603"))
    assert "1 tensor(s) are not byte-identical: layer.weight" in message


TOLERANCE = "  reproduce: tolerance\n  tolerance: 0.5\n"


@pytest.mark.e2e
def test_cs603_tolerance_passes_a_small_difference(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, TRAINING, replace=with_mode("--delta 0.1", TOLERANCE))
    assert passed(Checks(root)("CS603")).message == "values reproduced (tolerance)"


@pytest.mark.e2e
def test_cs603_tolerance_fails_a_large_difference_naming_the_worst_tensor(
    make_repo: RepoFactory,
) -> None:
    root = runnable(make_repo, TRAINING, replace=with_mode("--delta 2.0", TOLERANCE))
    message = failure(Checks(root)("CS603"))
    assert "1 tensor(s) differ by more than the tolerance 0.5: layer.weight (max |Δ| 2)" in message


# --------------------------------------------------------------------------- CS405 modify


@pytest.mark.e2e
def test_cs405_passes_when_modify_writes_released_schema_weights(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, MODIFY)
    assert passed(Checks(root)("CS405")).message == "wrote {outdir}/ft.safetensors"


@pytest.mark.e2e
def test_cs405_reports_a_wrong_schema(make_repo: RepoFactory) -> None:
    root = runnable(
        make_repo, MODIFY, replace={"ft.safetensors\n": "ft.safetensors --mode wider\n"}
    )
    # CS405 is informational at every level: a failure is reported, not failed.
    message = failure(Checks(root)("CS405"), "not-required")
    assert "informational at every level" in message
    assert (
        "{outdir}/ft.safetensors does not have the schema of weights/model.safetensors" in message
    )
    assert "shape mismatch: layer.weight ([4, 3] released, [4, 5] regenerated)" in message


@pytest.mark.e2e
def test_cs405_reports_missing_output(make_repo: RepoFactory) -> None:
    root = runnable(
        make_repo, MODIFY, replace={"ft.safetensors\n": "ft.safetensors --mode nothing\n"}
    )
    message = failure(Checks(root)("CS405"), "not-required")
    assert "the modify command exited 0 but did not write {outdir}/ft.safetensors" in message


# --------------------------------------------------------------------------- CS701 local sources


def data_manifest(sources: str) -> str:
    return MINIMAL_MANIFEST + "data:\n  sources:\n" + textwrap.indent(section(sources), "    ")


def test_cs701_passes_a_local_source_with_its_digest(make_repo: RepoFactory) -> None:
    root = make_repo(
        data_manifest(f"- path: data/corpus.txt\n  sha256: {digest(CORPUS.encode())}\n"),
        {"data/corpus.txt": CORPUS},
    )
    assert passed(Checks(root)("CS701", "data/corpus.txt")).message == (
        "data/corpus.txt matches its digest"
    )


def test_cs701_fails_a_wrong_digest_naming_both(make_repo: RepoFactory) -> None:
    declared = "0" * 64
    root = make_repo(
        data_manifest(f"- path: data/corpus.txt\n  sha256: {declared}\n"),
        {"data/corpus.txt": CORPUS},
    )
    message = failure(Checks(root)("CS701", "data/corpus.txt"))
    assert f"data/corpus.txt has sha256 {digest(CORPUS.encode())}" in message
    assert f"the manifest declares {declared}" in message


def test_cs701_fails_a_missing_local_source(make_repo: RepoFactory) -> None:
    root = make_repo(data_manifest("- path: data/gone.txt\n"))
    message = failure(Checks(root)("CS701", "data/gone.txt"))
    assert "data/gone.txt (line 9) is not in the repository" in message


def test_cs701_warns_about_a_local_source_without_digest(make_repo: RepoFactory) -> None:
    root = make_repo(data_manifest("- path: data/corpus.txt\n"), {"data/corpus.txt": CORPUS})
    result = passed(Checks(root)("CS701", "data/corpus.txt"))
    assert result.warnings == [
        f"no sha256 declared for data/corpus.txt; it is {digest(CORPUS.encode())}"
    ]


@pytest.mark.parametrize(
    ("keys", "missing"),
    [
        ("license: CC0-1.0\n", "declares no sha256"),
        (f"sha256: {'1' * 64}\n", "declares no license"),
        ("description: a crawl\n", "declares no sha256 and no license"),
    ],
)
def test_cs701_fails_an_incompletely_declared_remote_source(
    make_repo: RepoFactory, keys: str, missing: str
) -> None:
    url = "https://example.org/corpus.tar.gz"
    root = make_repo(data_manifest(f"- url: {url}\n  {keys}"))
    message = failure(Checks(root)("CS701", url))
    assert f"remote source {url} {missing}" in message
    if "and" not in missing:
        assert " and no " not in message


def test_cs701_does_not_download_without_fetch(make_repo: RepoFactory) -> None:
    url = "http://127.0.0.1:9/never-fetched.txt"  # nothing listens: a fetch would fail
    root = make_repo(data_manifest(f"- url: {url}\n  sha256: {'1' * 64}\n  license: CC0-1.0\n"))
    result = passed(Checks(root)("CS701", url))
    assert result.message == "declared, not downloaded"
    assert result.warnings == [f"{url} is declared but not verified (use --corrsource-fetch)"]


# --------------------------------------------------------------------------- CS701 remote sources


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """(base URL, folder): an HTTP server on 127.0.0.1 serving the folder."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


REMOTE = b"remote corpus\n" * 64


def remote_repo(make_repo: RepoFactory, url: str, sha: str, extra: str = "") -> Path:
    return make_repo(data_manifest(f"- url: {url}\n  sha256: {sha}\n  license: CC0-1.0\n{extra}"))


def test_cs701_fetch_downloads_into_the_cache_and_verifies(
    make_repo: RepoFactory, served: tuple[str, Path], tmp_path: Path
) -> None:
    base, folder = served
    (folder / "corpus.txt").write_bytes(REMOTE)
    url, sha = f"{base}/corpus.txt", digest(REMOTE)
    root = remote_repo(make_repo, url, sha)
    before = tree(root)
    cache = tmp_path / "cache"
    result = passed(Checks(root, fetch=True, cache_dir=cache)("CS701", url))
    assert result.message == f"{url} downloaded and verified"
    assert (cache / "downloads" / sha).read_bytes() == REMOTE
    assert sorted(p.name for p in (cache / "downloads").iterdir()) == [sha]
    assert tree(root) == before  # nothing lands in the repository
    # A verified download is not fetched again.
    (folder / "corpus.txt").unlink()
    passed(Checks(root, fetch=True, cache_dir=cache)("CS701", url))


def test_cs701_fetch_fails_a_wrong_digest_naming_both(
    make_repo: RepoFactory, served: tuple[str, Path], tmp_path: Path
) -> None:
    base, folder = served
    (folder / "corpus.txt").write_bytes(REMOTE)
    url, declared = f"{base}/corpus.txt", "2" * 64
    root = remote_repo(make_repo, url, declared)
    cache = tmp_path / "cache"
    message = failure(Checks(root, fetch=True, cache_dir=cache)("CS701", url))
    assert f"{url} downloaded with sha256 {digest(REMOTE)}" in message
    assert f"the manifest declares {declared}" in message
    assert list((cache / "downloads").iterdir()) == []  # the bad download is not kept


def test_cs701_fetch_fails_a_missing_remote_file(
    make_repo: RepoFactory, served: tuple[str, Path], tmp_path: Path
) -> None:
    url = f"{served[0]}/nothing-here.txt"
    root = remote_repo(make_repo, url, digest(REMOTE))
    message = failure(Checks(root, fetch=True, cache_dir=tmp_path / "cache")("CS701", url))
    assert f"{url} cannot be downloaded" in message


def test_cs701_fetch_fails_when_the_server_is_down(
    make_repo: RepoFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens
    url = f"http://127.0.0.1:{port}/corpus.txt"
    root = remote_repo(make_repo, url, digest(REMOTE))
    message = failure(Checks(root, fetch=True, cache_dir=tmp_path / "cache")("CS701", url))
    assert f"{url} cannot be downloaded" in message
    assert list((tmp_path / "cache" / "downloads").iterdir()) == []


def test_cs701_fetch_stops_at_the_declared_size(
    make_repo: RepoFactory, served: tuple[str, Path], tmp_path: Path
) -> None:
    base, folder = served
    (folder / "corpus.txt").write_bytes(REMOTE)
    url = f"{base}/corpus.txt"
    root = remote_repo(make_repo, url, digest(REMOTE), extra="  size: 100\n")
    cache = tmp_path / "cache"
    message = failure(Checks(root, fetch=True, cache_dir=cache)("CS701", url))
    assert f"{url}: more than 100 bytes (its declared `size`)" in message
    assert list((cache / "downloads").iterdir()) == []


# --------------------------------------------------------------------------- CS702 data card


def card_repo(make_repo: RepoFactory, card: str | None) -> Path:
    manifest = data_manifest("- path: data/corpus.txt\n") + "  card: DATA_CARD.md\n"
    files: dict[str, str | bytes] = {"data/corpus.txt": CORPUS}
    if card is not None:
        files["DATA_CARD.md"] = card
    return make_repo(manifest, files)


def test_cs702_passes_a_card_with_all_five_topics(make_repo: RepoFactory) -> None:
    result = passed(Checks(card_repo(make_repo, FULL_CARD))("CS702"))
    assert result.message == (
        "DATA_CARD.md covers provenance, scope, selection, labelling, processing"
    )


def test_cs702_fails_listing_the_missing_topics(make_repo: RepoFactory) -> None:
    card = FULL_CARD.replace("## Selection\n", "").replace("## Labelling\n", "")
    message = failure(Checks(card_repo(make_repo, card))("CS702"))
    assert "DATA_CARD.md does not cover: selection, labelling" in message
    assert "provenance" not in message.split("does not cover:")[1].split("\n")[0]


@pytest.mark.parametrize("bullet", ["", "- ", "* ", "1. "])
def test_cs702_counts_bold_labels(make_repo: RepoFactory, bullet: str) -> None:
    card = textwrap.dedent(
        """\
        # Data card
        {b}**Provenance:** written by hand.
        {b}**Scope**: English sentences.
        {b}__Selection:__ all of them.
        {b}Labelling: none.
        {b}**Processing:** lower-cased.
        """
    ).replace("{b}", bullet)
    passed(Checks(card_repo(make_repo, card))("CS702"))


def test_cs702_ignores_topic_words_outside_headings_and_labels(make_repo: RepoFactory) -> None:
    card = "# Data card\n\nWe describe provenance, scope, selection, labelling and processing.\n"
    message = failure(Checks(card_repo(make_repo, card))("CS702"))
    assert "does not cover: provenance, scope, selection, labelling, processing" in message


def test_cs702_fails_a_missing_card(make_repo: RepoFactory) -> None:
    message = failure(Checks(card_repo(make_repo, None))("CS702"))
    assert "DATA_CARD.md (line 10) does not exist" in message


def test_cs702_fails_when_no_card_is_declared(make_repo: RepoFactory) -> None:
    root = make_repo(data_manifest("- path: data/corpus.txt\n"), {"data/corpus.txt": CORPUS})
    assert "the manifest declares no `data.card`" in failure(Checks(root)("CS702"))


# --------------------------------------------------------------------------- CS703 preprocessing


@pytest.mark.e2e
def test_cs703_passes_when_preprocessing_writes_its_output(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, PREPROCESSING)
    before = tree(root)
    assert passed(Checks(root)("CS703")).message == "wrote {outdir}/train.txt"
    assert tree(root) == before


@pytest.mark.e2e
def test_cs703_fails_when_preprocessing_writes_nothing(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, PREPROCESSING, replace={"train.txt\n": "train.txt --skip\n"})
    message = failure(Checks(root)("CS703"))
    assert "preprocessing exited 0 but did not write {outdir}/train.txt" in message


@pytest.mark.e2e
def test_cs703_fails_when_preprocessing_fails(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, PREPROCESSING, replace={"train.txt\n": "train.txt --bogus\n"})
    message = failure(Checks(root)("CS703"))
    assert "preprocessing failed: exit code 2" in message
    assert "unrecognized arguments: --bogus" in message


@pytest.mark.e2e
def test_cs703_fails_missing_preprocessing_code(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, PREPROCESSING, replace={"code: [prepare.py]": "code: [clean.py]"})
    message = failure(Checks(root)("CS703"))
    assert "preprocessing code not in the repository: clean.py" in message


def test_cs703_fails_when_preprocessing_is_not_declared(make_repo: RepoFactory) -> None:
    root = make_repo(data_manifest("- path: data/corpus.txt\n"), {"data/corpus.txt": CORPUS})
    assert "the manifest declares no `data.preprocessing`" in failure(Checks(root)("CS703"))


NO_PREPROCESSING = section(
    """
    training:
      code: [train.py]
      command: python train.py --input data/corpus.txt --out {outdir}/model.safetensors
      produces: "{outdir}/model.safetensors"
    data:
      sources:
        - path: data/corpus.txt
      no-preprocessing: the training reads the raw text (like makemore's names.txt)
    """
)


def test_cs703_accepts_training_that_reads_the_sources_directly(make_repo: RepoFactory) -> None:
    root = make_repo(
        MINIMAL_MANIFEST + NO_PREPROCESSING,
        {"data/corpus.txt": CORPUS, "train.py": "print('train')\n"},
    )
    assert passed(Checks(root)("CS703")).message == (
        "no preprocessing (the training reads the raw text (like makemore's names.txt)): "
        "`training.command` reads data/corpus.txt directly"
    )


def test_cs703_no_preprocessing_must_be_true(make_repo: RepoFactory) -> None:
    # Saying "no preprocessing" while the training names none of the declared sources is a
    # claim nothing supports: the preprocessing that made the training input is missing.
    text = MINIMAL_MANIFEST + NO_PREPROCESSING.replace("--input data/corpus.txt ", "")
    root = make_repo(text, {"data/corpus.txt": CORPUS, "train.py": "open('tokens.bin')\n"})
    message = failure(Checks(root)("CS703"))
    assert (
        "but neither `training.command` nor the training code names one of data/corpus.txt"
    ) in message
    # ... and the training code naming it is enough
    (root / "train.py").write_text("open('data/corpus.txt')\n")
    assert passed(Checks(root)("CS703")).message.endswith("train.py reads data/corpus.txt directly")


# --------------------------------------------------------------------------- CS801 evaluation


@pytest.mark.e2e
def test_cs801_passes_and_records_the_metric(make_repo: RepoFactory) -> None:
    result = passed(Checks(runnable(make_repo, EVALUATION))("CS801"))
    assert result.data["metric"] == "1.23"
    assert result.message == "evaluation: 1.23"


@pytest.mark.e2e
def test_cs801_records_the_whole_match_without_a_group(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, EVALUATION, replace={"loss: ([0-9.]+)": "loss: [0-9.]+"})
    assert passed(Checks(root)("CS801")).data["metric"] == "loss: 1.23"


@pytest.mark.e2e
def test_cs801_fails_quoting_the_regex(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, EVALUATION, replace={"loss: ([0-9.]+)": "accuracy: [0-9.]+"})
    message = failure(Checks(root)("CS801"))
    assert "stdout does not match `evaluation.expect.stdout` /accuracy: [0-9.]+/" in message
    assert "loss: 1.23" in message  # what it printed instead


@pytest.mark.e2e
def test_cs801_checks_expect_stderr(make_repo: RepoFactory) -> None:
    expect = 'expect: {stdout: "loss: ([0-9.]+)"}'
    ok = runnable(make_repo, EVALUATION, replace={expect: 'expect: {stderr: "^$"}'})
    passed(Checks(ok)("CS801"))
    bad = runnable(
        make_repo, EVALUATION, replace={expect: 'expect: {stderr: "warming up"}'}, name="bad"
    )
    message = failure(Checks(bad)("CS801"))
    assert "stderr does not match `evaluation.expect.stderr` /warming up/" in message


@pytest.mark.e2e
def test_cs801_fails_a_failing_evaluation(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, EVALUATION, replace={"{weights}\n": "{weights} --fail\n"})
    message = failure(Checks(root)("CS801"))
    assert "the evaluation failed: exit code 1" in message
    assert "evaluation crashed" in message


@pytest.mark.e2e
def test_cs801_fails_missing_evaluation_data(make_repo: RepoFactory) -> None:
    root = runnable(
        make_repo, EVALUATION, replace={"data: [data/val.txt]": "data: [data/test.txt]"}
    )
    assert "not in the repository: data/test.txt" in failure(Checks(root)("CS801"))


@pytest.mark.e2e
def test_cs801_fails_without_a_command(make_repo: RepoFactory) -> None:
    root = runnable(
        make_repo, EVALUATION, replace={"  command: python eval.py --weights {weights}\n": ""}
    )
    assert "`evaluation.command` is not declared" in failure(Checks(root)("CS801"))
