"""``corrsource init``: drafts for repositories shaped like common real ones.

Each test builds a small repository in a tmp folder (nanoGPT, a Hugging Face sharded
checkpoint, a DVC pipeline, an MLflow project, a llama.cpp GGUF release), drafts its manifest
and checks it: it loads, validates against the JSON Schema, declares the right weights with
the right digests and the right commands, and says TODO where it guessed. The weights-release
drafts are then run through the plugin at the open-weights level.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from safetensors.numpy import save_file

from pytest_corrsource.checks.manifest import Todo, find_todos
from pytest_corrsource.draft.render import count_todos, scalar
from pytest_corrsource.draft.write import run_init
from pytest_corrsource.manifest import MANIFEST_NAME, Manifest, load_manifest
from pytest_corrsource.schema import SCHEMA_URL

SCHEMA = Path(__file__).parents[1] / "pytest_corrsource/schema/corresponding-source.schema.json"
MIT = "MIT License\n\nCopyright (c) 2024 someone\n\nPermission is hereby granted, free of charge…\n"
APACHE = "\n                                 Apache License\n           Version 2.0, January 2004\n"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write(root: Path, rel: str, text: str = "") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def torch_zip(path: Path, payload: Any) -> Path:
    """A torch.save-shaped zip whose data.pkl is ``pickle.dumps(payload)`` (nothing is loaded)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(payload, protocol=2))
        archive.writestr("archive/version", "3\n")
    return path


def gguf(path: Path) -> Path:
    """A minimal valid GGUF v3 file: no tensors, one key general.architecture = llama."""

    def string(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    body = b"GGUF" + struct.pack("<IQQ", 3, 0, 1)
    body += string("general.architecture") + struct.pack("<I", 8) + string("llama")
    path.write_bytes(body)
    return path


def draft(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Manifest, str, str]:
    """Run init on ``root``; return the loaded manifest, its text and init's stderr."""
    assert run_init(root, force=False, stdout=False) == 0
    err = capsys.readouterr().err
    path = root / MANIFEST_NAME
    text = path.read_text(encoding="utf-8")
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(yaml.safe_load(text), json.loads(SCHEMA.read_text(encoding="utf-8")))
    lines = text.splitlines()
    # The published URL of this version's schema, the same on every machine.
    assert lines[0] == f"# yaml-language-server: $schema={SCHEMA_URL}"
    assert lines[1].startswith("# Draft written by corrsource init: review every TODO")
    assert not list(root.glob(f".{MANIFEST_NAME}*.tmp"))
    # The count init reports is the number of TODOs check CS001 will name (not the header).
    todos = find_todos(text)
    assert f"\n{len(todos)} TODO{'' if len(todos) == 1 else 's'} to review\n" in err
    return load_manifest(path), text, err


def reviewed(root: Path) -> list[Todo]:
    """What a user does after reviewing the draft: delete the TODO notes (every TODO of
    these drafts is a note; a TODO value would stay and make the run fail). Returns them."""
    path = root / MANIFEST_NAME
    text = path.read_text(encoding="utf-8")
    todos = find_todos(text)
    notes = {t.line for t in todos if t.text.startswith("#")}
    kept = [line for n, line in enumerate(text.splitlines(), 1) if n not in notes]
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return todos


def assert_draft_meets_no_level(repo: Path, tmp_path: Path, todos: list[Todo]) -> None:
    code, report, output = verdict(repo, tmp_path)
    assert code == 1, output
    assert report["levels_met"] == []
    [cs001] = [c for c in report["checks"] if c["id"] == "CS001"]
    assert cs001["outcome"] == "failed"
    for todo in todos:
        assert f"line {todo.line}: {todo.text}" in cs001["message"]


def comments_near(text: str, needle: str, before: int = 6) -> str:
    """The lines just above (and including) the first line containing ``needle``."""
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if needle in line)
    return "\n".join(lines[max(0, index - before) : index + 1])


def verdict(
    repo: Path, tmp_path: Path, *extra: str, targets: tuple[str, ...] = ()
) -> tuple[int, dict[str, Any], str]:
    """Run the checks of ``repo`` (or only the node ids ``targets``) at level open-weights."""
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--corresponding-source", *(targets or (str(repo),)),
         "--corrsource-level", "open-weights", "-p", "no:randomly", "-p", "no:cacheprovider",
         "--corrsource-report", str(report), *extra],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    data = json.loads(report.read_text()) if report.exists() else {}
    return proc.returncode, data, proc.stdout + proc.stderr


# --- repositories -----------------------------------------------------------------------------


def nanogpt(root: Path, payload: Any) -> Path:
    write(root, "train.py", "import model\nprint('training')\n")
    write(root, "sample.py", "import model\nprint('sampling')\n")
    write(root, "model.py", "class GPT: pass\n")
    write(root, "bench.py", "print('bench')\n")
    write(root, "configurator.py", "pass\n")
    write(root, "config/train_shakespeare_char.py", "out_dir = 'out'\nmax_iters = 5000\n")
    write(root, "data/shakespeare_char/prepare.py", "print('prepare')\n")
    write(
        root, "data/shakespeare_char/input.txt", "First Citizen:\nBefore we proceed any further\n"
    )
    write(root, "requirements.txt", "torch\nnumpy\n")
    write(root, "LICENSE", MIT)
    write(
        root,
        "README.md",
        """
        # nanoGPT

        The simplest, fastest repository for training/finetuning medium-sized GPTs.

        ## install

        ```
        pip install torch numpy transformers datasets tiktoken wandb tqdm
        ```

        ## quick start

        ```sh
        python data/shakespeare_char/prepare.py
        ```

        This creates a `train.bin` and `val.bin` in that data directory. Now train:

        ```sh
        python train.py config/train_shakespeare_char.py
        ```

        Then sample from the best model:

        ```sh
        $ python sample.py --out_dir=out-shakespeare-char
        ```
        """,
    )
    torch_zip(root / "out/ckpt.pt", payload)
    (root / ".venv/lib").mkdir(parents=True)
    write(root, ".venv/pyvenv.cfg", "home = /usr/bin\n")
    torch_zip(root / ".venv/lib/stray.pt", {"x": 1})
    return root


def hf_repo(root: Path) -> Path:
    rng = np.random.default_rng(0)
    shards = {
        "model-00001-of-00002.safetensors": {
            "embed.weight": rng.standard_normal((8, 4)).astype(np.float32),
        },
        "model-00002-of-00002.safetensors": {
            "head.weight": rng.standard_normal((4, 8)).astype(np.float32),
            "head.bias": np.zeros(8, dtype=np.float32),
        },
    }
    weight_map: dict[str, str] = {}
    total = 0
    root.mkdir(parents=True, exist_ok=True)
    for name, tensors in shards.items():
        save_file(tensors, str(root / name))
        for key, array in tensors.items():
            weight_map[key] = name
            total += array.nbytes
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    write(root, "model.safetensors.index.json", json.dumps(index, indent=2))
    write(root, "config.json", json.dumps({"architectures": ["LlamaForCausalLM"]}))
    write(root, "tokenizer.json", json.dumps({"version": "1.0", "model": {"type": "BPE"}}))
    write(root, "LICENSE", APACHE)
    write(
        root,
        "README.md",
        """
        ---
        license: apache-2.0
        datasets:
        - wikitext
        base_model: meta-llama/Llama-2-7b-hf
        ---
        # tiny-llama

        A tiny model.
        """,
    )
    return root


# --- the five layouts -------------------------------------------------------------------------


def test_nanogpt_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = nanogpt(tmp_path / "nanoGPT", {"a": [1, 2]})
    manifest, text, err = draft(repo, capsys)

    assert manifest.name == "nanoGPT"
    assert [(w.path, w.format) for w in manifest.weights] == [("out/ckpt.pt", "torch-zip")]
    assert manifest.weights[0].sha256 == digest(repo / "out/ckpt.pt")
    assert "format: torch-zip  # pickle-based: unsafe format; convert to safetensors" in text
    assert ".venv" not in text
    assert [a.path for a in manifest.architecture] == ["model.py"]
    # README commands win over file-name guesses, and say where they came from.
    assert manifest.training is not None
    assert manifest.training.command == "python train.py config/train_shakespeare_char.py"
    assert [c.path for c in manifest.training.code] == [
        "train.py",
        "config/train_shakespeare_char.py",
        "model.py",
    ]
    assert "# from README.md line 20 (```sh block)" in comments_near(text, "python train.py")
    assert "TODO: make this a smoke-sized run" in comments_near(text, "python train.py")
    assert manifest.run is not None
    assert manifest.run.command == "python sample.py --out_dir=out-shakespeare-char"
    assert "does not mention {weights}" in comments_near(text, "python sample.py")
    assert manifest.data is not None
    assert manifest.data.preprocessing is not None
    assert manifest.data.preprocessing.command == "python data/shakespeare_char/prepare.py"
    [source] = manifest.data.sources
    assert source.path == "data/shakespeare_char/input.txt"
    assert source.sha256 == digest(repo / source.path)
    assert "TODO: license of this data" in comments_near(text, "input.txt")
    assert manifest.install is not None
    assert [r.path for r in manifest.install.requirements] == ["requirements.txt"]
    assert manifest.install.commands == ("python -m pip install -r requirements.txt",)
    assert "also says: python -m pip install torch numpy transformers" in text
    assert manifest.licenses.distribution == "MIT"
    assert manifest.docs is not None
    assert manifest.docs.model_card is not None
    assert manifest.docs.model_card.path == "README.md"
    # stderr: a progress line per hashed file and a summary with the next command.
    assert "hashing out/ckpt.pt (" in err
    assert "/s\n" in err
    assert "TODOs to review" in err
    assert f"pytest --corresponding-source {repo}" in err


@pytest.mark.e2e
def test_hugging_face_sharded_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = hf_repo(tmp_path / "tiny-llama")
    manifest, text, _err = draft(repo, capsys)

    [weights] = manifest.weights  # the index, not each shard
    assert weights.path == "model.safetensors.index.json"
    assert weights.format == "safetensors-index"
    assert weights.sha256 == digest(repo / "model.safetensors.index.json")
    assert weights.shards == {
        name: digest(repo / name)
        for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
    }
    assert manifest.licenses.distribution == "Apache-2.0"
    assert manifest.docs is not None
    assert manifest.docs.model_card is not None
    assert manifest.docs.model_card.path == "README.md"
    assert "datasets: wikitext" in text
    assert "base_model: meta-llama/Llama-2-7b-hf" in text
    assert "config.json names LlamaForCausalLM" in text
    assert manifest.run is None
    assert manifest.training is None
    assert not manifest.architecture
    assert "# TODO: no inference script found" in text
    assert "tokenizer.json" not in text  # not weights, not data
    todos = find_todos(text)
    assert_draft_meets_no_level(repo, tmp_path, todos)
    assert reviewed(repo) == todos
    code, report, output = verdict(repo, tmp_path)
    assert code == 0, output
    assert report["levels_met"][0] == "open-weights"
    passed = {c["id"] for c in report["checks"] if c["outcome"] == "passed"}
    assert {"CS101", "CS102", "CS103", "CS104", "CS105", "CS901"} <= passed


def test_dvc_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "dvc-project"
    write(
        repo,
        "dvc.yaml",
        """
        stages:
          prepare:
            cmd: python src/prepare.py data/raw.csv
            deps:
              - src/prepare.py
              - data/raw.csv
            outs:
              - data/prepared
          train:
            cmd: python src/train.py
            deps:
              - src/train.py
              - data/prepared
            outs:
              - model.safetensors
        """,
    )
    write(
        repo,
        "dvc.lock",
        """
        schema: '2.0'
        stages:
          prepare:
            cmd: python src/prepare.py data/raw.csv
            outs:
            - path: data/prepared
              md5: 1a2b3c4d5e6f708192a3b4c5d6e7f809.dir
          train:
            cmd: python src/train.py
            outs:
            - path: model.safetensors
              md5: 0123456789abcdef0123456789abcdef
              size: 120
        """,
    )
    write(repo, "src/prepare.py", "print('prepare')\n")
    write(repo, "src/train.py", "print('train')\n")
    write(repo, "data/raw.csv", "x,y\n1,2\n")
    write(repo, "requirements.txt", "numpy\n")
    save_file({"w": np.ones((2, 2), dtype=np.float32)}, str(repo / "model.safetensors"))
    manifest, text, _err = draft(repo, capsys)

    assert [(w.path, w.format) for w in manifest.weights] == [("model.safetensors", "safetensors")]
    assert manifest.weights[0].sha256 == digest(repo / "model.safetensors")
    assert "output of dvc.yaml stage `train` (dvc.lock md5 0123456789abcdef" in text
    assert manifest.training is not None
    assert manifest.training.command == "python src/train.py"
    assert [c.path for c in manifest.training.code] == ["src/train.py"]
    assert "# from dvc.yaml stage `train`" in comments_near(text, "python src/train.py")
    assert manifest.data is not None
    assert manifest.data.preprocessing is not None
    assert manifest.data.preprocessing.command == "python src/prepare.py data/raw.csv"
    assert [c.path for c in manifest.data.preprocessing.code] == ["src/prepare.py"]
    [source] = manifest.data.sources  # data/prepared is a stage output, not a source
    assert (source.path, source.sha256) == ("data/raw.csv", digest(repo / "data/raw.csv"))
    assert "input of dvc.yaml stage `prepare`" in text


def test_dvc_output_not_pulled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "unpulled"
    write(
        repo,
        "dvc.yaml",
        "stages:\n  train:\n    cmd: python train.py\n    outs: [models/model.safetensors]\n",
    )
    write(repo, "train.py", "pass\n")
    manifest, text, _err = draft(repo, capsys)
    assert [w.path for w in manifest.weights] == ["models/model.safetensors"]
    assert manifest.weights[0].sha256 is None
    assert 'not in the repository: dvc pull "models/model.safetensors"' in text


def test_mlflow_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "mlflow-example"
    write(
        repo,
        "MLproject",
        """
        name: wine-quality
        python_env: python_env.yaml
        entry_points:
          main:
            parameters:
              alpha: {type: float, default: 0.5}
              l1_ratio: float
            command: "python train.py --alpha {alpha}"
          validate:
            parameters:
              l1_ratio: float
            command: "python validate.py --l1 {l1_ratio}"
        """,
    )
    write(
        repo,
        "python_env.yaml",
        """
        python: "3.10"
        build_dependencies:
          - pip
        dependencies:
          - -r requirements.txt
        """,
    )
    write(repo, "requirements.txt", "scikit-learn\n")
    write(repo, "train.py", "pass\n")
    write(repo, "validate.py", "pass\n")
    torch_zip(repo / "model/model.pth", {"coef": [0.1, 0.2]})
    manifest, text, _err = draft(repo, capsys)

    assert manifest.name == "wine-quality"
    assert manifest.training is not None
    assert manifest.training.command == "python train.py --alpha 0.5"
    assert "# from MLproject entry point `main`" in comments_near(text, "--alpha 0.5")
    assert manifest.evaluation is not None
    assert manifest.evaluation.command == "python validate.py --l1 TODO-l1_ratio"
    assert "TODO: MLproject parameter `l1_ratio` has no default" in text
    assert manifest.install is not None
    assert [r.path for r in manifest.install.requirements] == [
        "requirements.txt",
        "python_env.yaml",
    ]
    # python_env.yaml's `-r requirements.txt` is the same command; its `pip` build dependency
    # is already in every virtualenv.
    assert manifest.install.commands == ("python -m pip install -r requirements.txt",)
    assert manifest.install.python == "3.10"
    assert [(w.path, w.format) for w in manifest.weights] == [("model/model.pth", "torch-zip")]


@pytest.mark.e2e
def test_gguf_release(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "tiny-gguf"
    repo.mkdir()
    gguf(repo / "model.Q4_0.gguf")
    write(repo, "README.md", "---\nlicense: mit\n---\n# tiny GGUF\n")
    write(repo, "LICENSE", MIT)
    manifest, text, _err = draft(repo, capsys)

    [weights] = manifest.weights
    assert (weights.path, weights.format) == ("model.Q4_0.gguf", "gguf")
    assert weights.sha256 == digest(repo / "model.Q4_0.gguf")
    assert manifest.licenses.distribution == "MIT"
    assert manifest.run is None
    assert manifest.install is None
    assert "# TODO: no inference script found" in text
    assert "llama-cli -m {weights}" in text
    assert "# TODO: no dependency specification found" in text
    todos = find_todos(text)
    assert_draft_meets_no_level(repo, tmp_path, todos)
    assert reviewed(repo) == todos
    code, report, output = verdict(repo, tmp_path)
    assert code == 0, output
    assert "open-weights" in report["levels_met"]


#: The components whose checks a draft's weights verdict runs, selected by node id: `-k weights`
#: would also match `run::released-weights` and build an environment with torch.
WEIGHTS_COMPONENTS = ("manifest", "weights", "licenses")


def _weights_verdict(repo: Path, tmp_path: Path) -> tuple[int, dict[str, Any], str]:
    # Only the open-weights checks: the rest (install, run, training …) would build an
    # environment and run the fake scripts, which says nothing about the draft.
    reviewed(repo)
    manifest = repo / "corresponding-source.yaml"
    targets = tuple(f"{manifest}::{component}" for component in WEIGHTS_COMPONENTS)
    code, report, output = verdict(repo, tmp_path, targets=targets)
    ran = {
        c["component"]
        for c in report.get("checks", [])
        if c["message"] != "did not run (deselected)"
    }
    assert ran == set(WEIGHTS_COMPONENTS), output
    return code, report, output


@pytest.mark.e2e
def test_nanogpt_benign_pickle_passes_open_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint whose pickle holds only dicts, lists and ints references no global at all,
    so the static scan (CS105) passes it, with the "convert to safetensors" warning."""
    repo = nanogpt(tmp_path / "nanoGPT", {"a": [1, 2]})
    draft(repo, capsys)
    code, report, output = _weights_verdict(repo, tmp_path)
    assert code == 0, output
    assert [c["id"] for c in report["checks"] if c["outcome"] == "failed"] == []
    [cs105] = [c for c in report["checks"] if c["id"] == "CS105"]
    assert cs105["outcome"] == "passed"
    assert "open-weights" in report["levels_met"]


@pytest.mark.e2e
def test_nanogpt_pickle_with_a_global_fails_only_cs105(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same layout with a pickle that imports a global outside the allow-list (a reference
    to ``print``, pickled by name, never called) fails exactly CS105 at open-weights."""
    repo = nanogpt(tmp_path / "nanoGPT", {"a": [1, 2], "hook": print})
    draft(repo, capsys)
    code, report, output = _weights_verdict(repo, tmp_path)
    assert code == 1, output
    assert [c["id"] for c in report["checks"] if c["outcome"] == "failed"] == ["CS105"]


# --- behaviour of the command -----------------------------------------------------------------


def test_existing_manifest_is_not_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = hf_repo(tmp_path / "r")
    existing = write(repo, MANIFEST_NAME, "version: 1\nname: mine\nweights: [{path: x}]\n")
    before = existing.read_bytes()
    assert run_init(repo, force=False, stdout=False) == 1
    err = capsys.readouterr().err
    assert str(existing) in err
    assert "--force" in err
    assert existing.read_bytes() == before
    assert run_init(repo, force=True, stdout=False) == 0
    assert load_manifest(existing).name == "r"  # the folder: the card has no model_name


def test_stdout_prints_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = hf_repo(tmp_path / "r")
    before = sorted(p.name for p in repo.iterdir())
    assert run_init(repo, force=False, stdout=True) == 0
    out = capsys.readouterr().out
    assert out.startswith("# yaml-language-server: $schema=")
    assert "model.safetensors.index.json" in out
    assert sorted(p.name for p in repo.iterdir()) == before


def test_interrupt_leaves_no_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = hf_repo(tmp_path / "r")

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("pytest_corrsource.draft.write.verify", interrupted)
    assert run_init(repo, force=False, stdout=False) == 130
    assert "interrupted: no manifest written" in capsys.readouterr().err
    assert not (repo / MANIFEST_NAME).exists()
    assert not [p for p in repo.iterdir() if p.name.startswith(".")]


def test_pointer_files_are_declared_with_a_todo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "lfs"
    oid = hashlib.sha256(b"the real weights").hexdigest()
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize 16\n"
    write(repo, "model.safetensors", pointer)
    manifest, text, _err = draft(repo, capsys)
    [weights] = manifest.weights
    assert weights.sha256 == oid  # the LFS oid is the sha256 of the real content
    assert "# TODO: this is a git-lfs pointer: git lfs pull --include model.safetensors" in text


def test_readme_pwc_blocks_and_licence_file_fallback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "pwc"
    write(repo, "weights.npz", "")
    np.savez(repo / "weights.npz", w=np.zeros(3, dtype=np.float32))
    write(repo, "run_eval.py", "pass\n")
    write(repo, "evaluate.py", "pass\n")
    write(repo, "LICENSE", "BSD 3-Clause License\n\nCopyright (c) 2020\n")
    write(
        repo,
        "README.md",
        """
        # A paper's code

        ```setup
        pip install -r requirements-paper.txt
        ```

        ```eval
        python evaluate.py --model-file weights.npz --benchmark imagenet
        ```
        """,
    )
    manifest, text, _err = draft(repo, capsys)
    assert manifest.licenses.distribution == "BSD-3-Clause"
    assert manifest.evaluation is not None
    assert manifest.evaluation.command == (
        "python evaluate.py --model-file {weights} --benchmark imagenet"
    )  # the declared weights' path became the placeholder
    assert manifest.install is not None
    assert manifest.install.commands == ("python -m pip install -r requirements-paper.txt",)
    assert "TODO: no dependency specification file" in text
    assert [(w.path, w.format) for w in manifest.weights] == [("weights.npz", "npz")]


@pytest.mark.parametrize(
    "value",
    ["plain", "yes", "null", "1.0", "a: b", "# x", "{weights}", "it's", 'say "hi"', "tab\there",
     "ünïcode", "\x85\x9f\u2028\x00\x1b", "emoji 😀", "- dash", "@at", "trailing:",
     "a, b", "[x]", "{outdir}/m.npz", "python x.py --w {weights}", " lead", "x #y", "x#y", "!tag",
     "*ref", "&anchor", "%", "`tick`", "?", "1e3", "0x1F", "~", "2024-01-01", "on"],
)  # fmt: skip
def test_scalars_read_back_as_the_same_string(value: str) -> None:
    assert yaml.safe_load(f"key: {scalar(value)}\n") == {"key": value}
    assert yaml.safe_load(f"key: [{scalar(value, flow=True)}, x]\n") == {"key": [value, "x"]}


@pytest.mark.e2e
@pytest.mark.skipif(
    importlib.util.find_spec("pytest_corrsource.__main__") is None,
    reason="python -m pytest_corrsource needs pytest_corrsource/__main__.py",
)
def test_python_m_entry_point(tmp_path: Path) -> None:
    repo = tmp_path / "g"
    repo.mkdir()
    gguf(repo / "m.gguf")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_corrsource", "init", str(repo), "--stdout"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONUTF8": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "path: m.gguf" in proc.stdout
    assert not (repo / MANIFEST_NAME).exists()


def test_readme_paths_become_placeholders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "p"
    repo.mkdir()
    save_file({"w": np.ones(2, dtype=np.float32)}, str(repo / "model.safetensors"))
    write(repo, "export.py", "pass\n")
    write(repo, "train.py", "pass\n")
    write(
        repo,
        "README.md",
        """
        ```bash
        python3 export.py --weights model.safetensors --out model.npz  # the runtime's format
        python train.py --steps 3 \\
            --out model.safetensors
        ```
        """,
    )
    manifest, _text, _err = draft(repo, capsys)
    [step] = manifest.generate
    assert step.command == "python export.py --weights {weights} --out {outdir}/model.npz"
    assert manifest.training is not None
    assert manifest.training.command == "python train.py --steps 3 --out {outdir}/model.safetensors"
    assert manifest.training.produces == "{outdir}/model.safetensors"


def test_todo_count_leaves_out_the_header(tmp_path: Path) -> None:
    header = "# Draft written by corrsource init: review every TODO, then run pytest\n"
    assert count_todos(header) == 0
    assert count_todos(header + "name: x  # TODO: check\n# TODO: two\n") == 2


def test_no_data_licence_todo_once_recognised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "with-data"
    write(repo, "data/corpus.txt", "some text\n" * 10)
    write(repo, "data/LICENSE", "CC0 1.0 Universal\n\nStatement of Purpose\n")
    write(repo, "LICENSE", MIT)
    _manifest, text, _err = draft(repo, capsys)
    assert "data licence recognised from data/LICENSE" in text
    assert "data: CC0-1.0" in text
    assert "TODO: license of this data" not in text

    bare = tmp_path / "no-data-licence"
    write(bare, "data/corpus.txt", "some text\n" * 10)
    write(bare, "LICENSE", MIT)
    _manifest, text, _err = draft(bare, capsys)
    assert "TODO: license of this data" in comments_near(text, "data/corpus.txt")


CUSTOM_LICENCE_CARD = """\
---
license: other
license_name: acme-model-license
license_link: LICENSE.md
---
# acme
"""


def test_a_card_licence_off_spdx_is_drafted_as_a_licence_ref_not_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hugging Face's `license: other` + `license_name` + `license_link`: the draft declares a
    `LicenseRef-` with that text, **not open** until its authors say otherwise (a TODO)."""
    write(tmp_path, "README.md", CUSTOM_LICENCE_CARD)
    write(tmp_path, "LICENSE.md", "ACME model licence. You may not use the model for evil.\n")
    (tmp_path / "model.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    manifest, text, _err = draft(tmp_path, capsys)
    ref = manifest.licenses.refs["LicenseRef-acme-model-license"]
    assert (ref.text.path, ref.open, ref.name) == ("LICENSE.md", False, "acme-model-license")
    assert manifest.licenses.distribution == "LicenseRef-acme-model-license"
    assert "TODO: true only if its terms are open" in text
    assert "is drafted as not open; set `open: true` only if its terms are open" in text


@pytest.mark.parametrize("link", ["../outside/LICENSE.md", "/etc/passwd", "linked.md"])
def test_a_card_licence_link_outside_the_repository_is_not_its_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], link: str
) -> None:
    repo = tmp_path / "repo"
    write(tmp_path, "outside/LICENSE.md", "not this repository's\n")
    write(repo, "README.md", CUSTOM_LICENCE_CARD.replace("LICENSE.md", link))
    (repo / "linked.md").symlink_to(tmp_path / "outside" / "LICENSE.md")
    (repo / "model.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    manifest, text, _err = draft(repo, capsys)
    assert manifest.licenses.refs == {}  # no licence text ships: nothing to declare it by
    assert "not an SPDX licence; declare the SPDX id or LicenseRef-" in text
