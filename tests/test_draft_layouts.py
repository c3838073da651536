"""``corrsource init`` on the six real layouts of issue 14, each rebuilt in ``tmp_path`` the way
the real repository is shaped (its file tree, small stand-in files, the README's command lines
copied as they are): karpathy/makemore, karpathy/nanoGPT, karpathy/llama2.c, karpathy/minGPT,
mlflow/mlflow-example (plus an MLflow model folder) and iterative/example-get-started.

Each test asserts what a maintainer would write for that repository, and a ``TODO`` wherever the
draft cannot know (which then fails CS001 until reviewed), never a guess presented as fact.
"""

from __future__ import annotations

import pickle
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest
from test_init import MIT, comments_near, digest, draft, write

from pytest_corrsource.draft import build_draft

APACHE = "Copyright 2018 Databricks, Inc.  All rights reserved.\n\n" + (
    "                                 Apache License\n"
    "                           Version 2.0, January 2004\n"
)


def readme_line(root: Path, needle: str, start: int = 0) -> int:
    """The 1-based number of the first README.md line at or after ``start`` containing
    ``needle``."""
    lines = (root / "README.md").read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if n > start and needle in line)


def comments_above(text: str, line: str, before: int = 8) -> str:
    """The lines just above (and including) the line equal to ``line``."""
    lines = text.splitlines()
    index = lines.index(line)
    return "\n".join(lines[max(0, index - before) : index + 1])


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(root), *args],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


# --- karpathy/makemore ------------------------------------------------------------------------


def makemore(root: Path) -> Path:
    write(root, "LICENSE", MIT)
    write(root, "names.txt", "emma\nolivia\nava\nisabella\nsophia\n")
    write(
        root,
        "makemore.py",
        """
        import argparse
        import torch.nn as nn

        class Transformer(nn.Module):
            pass

        parser = argparse.ArgumentParser(description="Make More")
        parser.add_argument('--input-file', '-i', type=str, default='names.txt')
        parser.add_argument('--work-dir', '-o', type=str, default='out')
        parser.add_argument('--sample-only', action='store_true')
        """,
    )
    write(
        root,
        "README.md",
        """
        # makemore

        makemore takes one text file as input, where each line is assumed to be one training
        thing, and generates more things like it.

        ```
        emma
        olivia
        ...
        ```

        Let's point the script at it:

        ```bash
        $ python makemore.py -i names.txt -o names
        ```

        Training progress and logs and model will all be saved to the working directory
        `names`. However, if you'd like to sample manually, you can use the `--sample-only`
        flag, e.g. in a separate terminal do:

        ```bash
        $ python makemore.py -i names.txt -o names --sample-only
        ```

        ### License

        MIT
        """,
    )
    return root


def test_makemore_commands_are_chosen_by_their_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = makemore(tmp_path / "makemore")
    manifest, text, _err = draft(repo, capsys)

    # One script does both; `--sample-only` makes the sampling command the run command.
    assert manifest.run is not None
    assert manifest.run.command == "python makemore.py -i names.txt -o names --sample-only"
    line = readme_line(repo, "--sample-only", readme_line(repo, "```bash", 20))
    assert f"# from README.md line {line} (```bash block)" in comments_near(text, "--sample-only")
    assert manifest.training is not None
    # Its work directory (where the model is saved) goes under {outdir}.
    assert manifest.training.command == "python makemore.py -i names.txt -o {outdir}/names"
    assert [c.path for c in manifest.training.code] == ["makemore.py"]
    near = comments_above(text, "  command: python makemore.py -i names.txt -o {outdir}/names")
    assert "the same script without --sample-only (the run command): guessed as training" in near
    assert "TODO: keep it smoke-sized (a few steps)" in near
    # The data file the training command reads is a data source, read as it is.
    assert manifest.data is not None
    [source] = manifest.data.sources
    assert (source.path, source.sha256) == ("names.txt", digest(repo / "names.txt"))
    assert "TODO: license of this data" in comments_near(text, "- path: names.txt")
    assert manifest.data.no_preprocessing is not None
    assert "names.txt" in manifest.data.no_preprocessing
    # The file that defines an nn.Module is the architecture.
    assert [a.path for a in manifest.architecture] == ["makemore.py"]
    assert manifest.licenses.distribution == "MIT"
    assert "TODO: no weights file found" in text


# --- karpathy/nanoGPT -------------------------------------------------------------------------

NANOGPT_README = """
    # nanoGPT

    ## install

    ```
    pip install torch numpy transformers datasets tiktoken wandb tqdm
    ```

    ## quick start

    ```sh
    python data/shakespeare_char/prepare.py
    ```

    **I have a GPU**. Great, we can quickly train a baby GPT with the settings provided in the
    config file:

    ```sh
    python train.py config/train_shakespeare_char.py
    ```

    So once the training finishes we can sample from the best model:

    ```sh
    python sample.py --out_dir=out-shakespeare-char
    ```

    **I only have a macbook** (or other cheap computer). A simple train run could look as follows:

    ```sh
    python train.py config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0
    ```

    it's still good fun:

    ```sh
    python sample.py --out_dir=out-shakespeare-char --device=cpu
    ```

    ## reproducing GPT-2

    ```sh
    python data/openwebtext/prepare.py
    ```

    ```sh
    torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2.py
    ```

    ## baselines

    ```sh
    $ python train.py config/eval_gpt2.py
    $ python train.py config/eval_gpt2_medium.py
    ```

    ## finetuning

    ```sh
    python train.py config/finetune_shakespeare.py
    ```
    """  # noqa: E501 (the README's own line)


def test_nanogpt_prefers_the_cpu_variant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "nanoGPT"
    for rel in ("bench.py", "configurator.py", "sample.py", "train.py"):
        write(repo, rel, "import torch\n")
    write(repo, "model.py", "import torch.nn as nn\nclass GPT(nn.Module):\n    pass\n")
    for name in ("eval_gpt2", "eval_gpt2_medium", "finetune_shakespeare", "train_gpt2",
                 "train_shakespeare_char"):  # fmt: skip
        write(repo, f"config/{name}.py", "out_dir = 'out'\n")
    for data in ("openwebtext", "shakespeare", "shakespeare_char"):
        write(repo, f"data/{data}/prepare.py", "import numpy\n")
        write(repo, f"data/{data}/readme.md", f"# {data}\n")
    (repo / "assets").mkdir()
    (repo / "assets/nanogpt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    write(repo, "scaling_laws.ipynb", "{}\n")
    write(repo, "LICENSE", MIT)
    write(repo, "README.md", NANOGPT_README)
    manifest, text, _err = draft(repo, capsys)

    assert manifest.training is not None
    assert manifest.training.command is not None
    assert manifest.training.command.startswith(
        "python train.py config/train_shakespeare_char.py --device=cpu --compile=False"
    )
    cpu_train = readme_line(repo, "--device=cpu --compile=False")
    gpu_train = readme_line(repo, "python train.py config/train_shakespeare_char.py")
    near = comments_near(text, "--device=cpu --compile=False", 8)
    assert f"# from README.md line {cpu_train} (```sh block)" in near
    assert f"the CPU variant of README.md line {gpu_train}" in near
    assert manifest.run is not None
    assert manifest.run.command == "python sample.py --out_dir=out-shakespeare-char --device=cpu"
    assert manifest.data is not None
    assert manifest.data.preprocessing is not None
    assert manifest.data.preprocessing.command == "python data/shakespeare_char/prepare.py"
    assert manifest.install is not None
    assert manifest.install.commands == (
        "python -m pip install torch numpy transformers datasets tiktoken wandb tqdm",
    )
    assert "TODO: no dependency specification file" in text  # nanoGPT ships none
    assert [a.path for a in manifest.architecture] == ["model.py"]
    assert "TODO: no weights file found" in text


# --- karpathy/llama2.c ------------------------------------------------------------------------


def llama2c_tokenizer(path: Path) -> Path:
    """llama2.c's tokenizer.bin layout: max_token_length, then (score, length, bytes) per token."""
    body = struct.pack("<i", 5)
    for score, piece in ((0.0, b"<unk>"), (-1.0, b"a"), (-2.0, b"the")):
        body += struct.pack("<fi", score, len(piece)) + piece
    path.write_bytes(body)
    return path


LLAMA2C_README = """
    ## feel the magic

    ```bash
    git clone https://github.com/karpathy/llama2.c.git
    ```

    ```bash
    cd llama2.c
    ```

    ```bash
    wget https://huggingface.co/karpathy/tinyllamas/resolve/main/stories15M.bin
    ```

    ```bash
    make run
    ./run stories15M.bin
    ```

    ## Meta's Llama 2 models

    ```bash
    python export.py llama2_7b.bin --meta-llama path/to/llama/model/7B
    ```

    ```bash
    ./run llama2_7b.bin
    ```

    ```bash
    python export.py llama2_7b_chat.bin --meta-llama /path/to/7B-chat
    ```

    ```bash
    python export.py codellama2_7b.bin --meta-llama /path/to/CodeLlama-7b
    python tokenizer.py --tokenizer-model=/path/to/CodeLlama-7b/tokenizer.model
    ./run codellama2_7b.bin -z /path/to/CodeLlama-7b/tokenizer.bin
    ```

    ## training

    ```bash
    python tinystories.py download
    python tinystories.py pretokenize
    ```

    ```bash
    python train.py
    ```

    ```bash
    wget https://huggingface.co/karpathy/tinyllamas/resolve/main/stories15M.pt -P out15M
    python sample.py --checkpoint=out15M/stories15M.pt
    ```
    """


def test_llama2c_invents_no_export_step_and_tokenizers_are_not_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "llama2.c"
    for rel in ("configurator.py", "export.py", "sample.py", "tinystories.py", "tokenizer.py",
                "train.py", "test_all.py"):  # fmt: skip
        write(repo, rel, "import torch\n")
    write(repo, "model.py", "import torch.nn as nn\nclass Transformer(nn.Module):\n    pass\n")
    for rel in ("run.c", "runq.c", "test.c", "win.c"):
        write(repo, rel, "int main(void) { return 0; }\n")
    write(repo, "win.h", "#pragma once\n")
    write(repo, "Makefile", "CC = gcc\nrun: run.c\n\t$(CC) -O3 -o run run.c -lm\n")
    write(repo, "build_msvc.bat", "cl.exe run.c\n")
    write(repo, "run.ipynb", "{}\n")
    write(repo, "doc/stories260K.md", "# stories260K\n")
    write(repo, "requirements.txt", "numpy==1.23.5\ntorch==2.0.1\nsentencepiece==0.1.99\n")
    write(repo, "LICENSE", MIT)
    llama2c_tokenizer(repo / "tokenizer.bin")
    (repo / "tokenizer.model").write_bytes(b"\n\x0e\n\x05<unk>\x15\x00\x00\x00\x00\x18\x02")
    write(repo, "README.md", LLAMA2C_README)
    manifest, text, _err = draft(repo, capsys)

    # tokenizer.bin / tokenizer.model are the tokenizer, not weights; none ships in the repo.
    assert "- path: tokenizer.bin" not in text
    assert "TODO: no weights file found" in text
    assert "not weights: tokenizer.bin, tokenizer.model (tokenizer files)" in text
    # Meta's 7B export, with placeholder paths, is not a step of this release.
    assert manifest.generate == ()
    assert "command: python export.py" not in text
    export_line = readme_line(repo, "python export.py llama2_7b.bin")
    assert (
        f"README.md line {export_line} runs export.py with a placeholder path "
        "(path/to/llama/model/7B): not drafted"
    ) in text
    assert manifest.training is not None
    assert manifest.training.command == "python train.py"
    assert manifest.run is not None
    assert manifest.run.command == "python sample.py --checkpoint=out15M/stories15M.pt"
    assert manifest.install is not None
    assert manifest.install.commands == ("python -m pip install -r requirements.txt",)
    assert [a.path for a in manifest.architecture] == ["model.py"]


# --- karpathy/minGPT --------------------------------------------------------------------------

PROJECT_SCRIPT = """
    import sys
    import torch
    from mingpt.trainer import Trainer

    config.merge_from_args(sys.argv[1:])
    trainer = Trainer(config.trainer, model, train_dataset)
    trainer.run()
    torch.save(model.state_dict(), ckpt_path)
    """


def test_mingpt_projects_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "minGPT"
    write(repo, "mingpt/__init__.py")
    write(repo, "mingpt/bpe.py", "import regex\n")
    write(repo, "mingpt/model.py", "import torch.nn as nn\nclass GPT(nn.Module):\n    pass\n")
    write(repo, "mingpt/trainer.py", "class Trainer:\n    pass\n")
    write(repo, "mingpt/utils.py", "pass\n")
    write(repo, "projects/readme.md", "### minGPT projects\n")
    write(repo, "projects/adder/adder.py", PROJECT_SCRIPT)
    write(repo, "projects/adder/readme.md", "### adder\n\nTrain a GPT model to add numbers\n")
    write(repo, "projects/chargpt/chargpt.py", "text = open('input.txt').read()\n" + PROJECT_SCRIPT)
    write(repo, "projects/chargpt/readme.md", "# chargpt\n\nchargpt trains a char-level LM.\n")
    write(repo, "tests/test_huggingface_import.py", "import unittest\n")
    write(repo, "demo.ipynb", "{}\n")
    write(repo, "generate.ipynb", "{}\n")
    write(
        repo,
        "setup.py",
        "from setuptools import setup\nsetup(name='minGPT', packages=['mingpt'], "
        "install_requires=['torch'])\n",
    )
    write(repo, "LICENSE", MIT)
    write(
        repo,
        "README.md",
        """
        # minGPT

        ```
        git clone https://github.com/karpathy/minGPT.git
        cd minGPT
        pip install -e .
        ```

        ### Unit tests

        ```
        python -m unittest discover tests
        ```
        """,
    )
    manifest, text, _err = draft(repo, capsys)

    assert manifest.training is not None
    assert manifest.training.command == "python projects/adder/adder.py"
    assert [c.path for c in manifest.training.code] == [
        "projects/adder/adder.py",
        "mingpt/model.py",
    ]
    near = comments_near(text, "command: python projects/adder/adder.py", 8)
    assert "projects/adder/adder.py trains and saves a model (trainer.run, torch.save)" in near
    assert "TODO: projects/chargpt/chargpt.py trains too" in near
    assert [a.path for a in manifest.architecture] == ["mingpt/model.py"]
    assert manifest.install is not None
    assert manifest.install.commands == ("python -m pip install .",)
    assert [r.path for r in manifest.install.requirements] == ["setup.py"]
    assert manifest.run is None
    assert "TODO: no inference script found" in text
    assert "test_huggingface_import" not in text


# --- mlflow/mlflow-example --------------------------------------------------------------------


def mlflow_example(root: Path) -> Path:
    write(root, "LICENSE.txt", APACHE)
    write(root, "README.md", "# Example MLflow project\n")
    write(
        root,
        "MLproject",
        """
        name: tutorial

        conda_env: conda.yaml

        entry_points:
          main:
            parameters:
              alpha: {type: float, default: 0.5}
              l1_ratio: {type: float, default: 0.1}
            command: "python train.py {alpha} {l1_ratio}"
        """,
    )
    write(
        root,
        "conda.yaml",
        """
        name: tutorial
        channels:
          - defaults
        dependencies:
          - numpy>=1.14.3
          - pandas>=1.0.0
          - scikit-learn>0.19.1
          - pip
          - pip:
            - mlflow
        """,
    )
    write(
        root,
        "train.py",
        """
        import os, sys
        import pandas as pd
        wine_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wine-quality.csv")
        data = pd.read_csv(wine_path)
        alpha = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5
        """,
    )
    write(
        root,
        "wine-quality.csv",
        '"fixed acidity","volatile acidity","quality"\n7,0.27,6\n6.3,0.3,6\n',
    )
    return root


def test_mlflow_example_csv_is_the_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = mlflow_example(tmp_path / "mlflow-example")
    manifest, text, _err = draft(repo, capsys)

    assert manifest.name == "tutorial"
    assert manifest.training is not None
    assert manifest.training.command == "python train.py 0.5 0.1"
    assert manifest.data is not None
    [source] = manifest.data.sources
    assert (source.path, source.sha256) == ("wine-quality.csv", digest(repo / "wine-quality.csv"))
    assert "train.py names wine-quality.csv" in comments_near(text, "- path: wine-quality.csv")
    assert manifest.data.no_preprocessing is not None
    assert "wine-quality.csv" in manifest.data.no_preprocessing
    assert manifest.install is not None
    assert manifest.install.commands == ("python -m pip install mlflow",)
    assert "conda packages need pip equivalents in install.commands: numpy>=1.14.3" in text
    assert manifest.licenses.distribution == "Apache-2.0"


def mlflow_model_folder(root: Path, flavor: dict[str, str], files: dict[str, bytes]) -> None:
    """What ``mlflow.sklearn.save_model(model, "model")`` writes: MLmodel and its files."""
    lines = ["artifact_path: model", "flavors:", "  python_function:", "    env:",
             "      conda: conda.yaml", "      virtualenv: python_env.yaml",
             "    loader_module: mlflow.sklearn", "    python_version: 3.10.12",
             "  sklearn:"]  # fmt: skip
    lines += [f"    {key}: {value}" for key, value in flavor.items()]
    lines += ["mlflow_version: 2.8.0", "model_uuid: 0c7e0f6a3c1b4b8a9a6c2f1d9e8b7a6c"]
    write(root, "model/MLmodel", "\n".join(lines) + "\n")
    write(root, "model/conda.yaml", "dependencies:\n  - pip:\n    - mlflow\n")
    write(root, "model/python_env.yaml", "python: 3.10.12\n")
    write(root, "model/requirements.txt", "mlflow\nscikit-learn\n")
    for name, data in files.items():
        (root / "model" / name).write_bytes(data)


def skops_bytes() -> bytes:
    """A skops.io.dump-shaped zip: schema.json and one .npy member (nothing is loaded)."""
    import io

    import numpy as np

    array = io.BytesIO()
    np.save(array, np.arange(3, dtype=np.float64), allow_pickle=False)
    schema = (
        '{"__class__": "LinearRegression", "__module__": "sklearn.linear_model", '
        '"__loader__": "ObjectNode", "content": {"coef_": {"__class__": "ndarray", '
        '"__module__": "numpy", "__loader__": "NdArrayNode", "type": "numpy", '
        '"file": "a.npy"}}, "protocol": 1}'
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("schema.json", schema)
        archive.writestr("a.npy", array.getvalue())
    return out.getvalue()


@pytest.mark.parametrize(
    ("flavor", "files", "expected"),
    [
        (
            {"pickled_model": "model.pkl", "serialization_format": "cloudpickle"},
            {"model.pkl": pickle.dumps({"coef": [0.1, 0.2]}, protocol=4)},
            ("model/model.pkl", "pickle"),
        ),
        (
            {"pickled_model": "model.skops", "serialization_format": "skops"},
            {"model.skops": skops_bytes()},
            ("model/model.skops", None),
        ),
    ],
    ids=["cloudpickle", "skops"],
)
def test_mlflow_model_folder_is_weights(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flavor: dict[str, str],
    files: dict[str, bytes],
    expected: tuple[str, str | None],
) -> None:
    repo = mlflow_example(tmp_path / "mlflow-example")
    mlflow_model_folder(repo, flavor, files)
    manifest, text, _err = draft(repo, capsys)

    [weights] = manifest.weights
    assert (weights.path, weights.format) == expected
    assert weights.sha256 == digest(repo / expected[0])
    serialization = flavor["serialization_format"]
    assert (
        f"model file of the MLflow model model/MLmodel (flavor sklearn, "
        f"serialization_format {serialization})"
    ) in comments_near(text, f"- path: {expected[0]}")
    if expected[1] is None:
        assert "a skops file (a zip of schema.json and .npy arrays)" in text
    # The model folder's own environment files are not the repository's install.
    assert manifest.install is not None
    assert manifest.install.commands == ("python -m pip install mlflow",)
    assert "model/requirements.txt" not in text
    assert "mlflow models predict -m model" in text  # the suggested run command, as a TODO


# --- iterative/example-get-started ------------------------------------------------------------

DVC_YAML = """
    stages:
      prepare:
        cmd: python src/prepare.py data/data.xml
        deps:
        - data/data.xml
        - src/prepare.py
        params:
        - prepare.seed
        outs:
        - data/prepared
      featurize:
        cmd: python src/featurization.py data/prepared data/features
        deps:
        - data/prepared
        - src/featurization.py
        outs:
        - data/features
      train:
        cmd: python src/train.py data/features model.pkl
        deps:
        - data/features
        - src/train.py
        outs:
        - model.pkl
      evaluate:
        cmd: python src/evaluate.py model.pkl data/features
        deps:
        - data/features
        - model.pkl
        - src/evaluate.py
        outs:
        - eval
    """
DVC_LOCK = """
    schema: '2.0'
    stages:
      train:
        cmd: python src/train.py data/features model.pkl
        outs:
        - path: model.pkl
          hash: md5
          md5: d1f6e055f7f5e2827fcfae68d9b64d4c
          size: 1958115
    """


def example_get_started(root: Path, *, pulled: bool) -> Path:
    write(root, "README.md", """
        ```console
        $ virtualenv -p python3 .venv
        $ source .venv/bin/activate
        $ pip install -r src/requirements.txt
        ```

        ```console
        $ dvc pull
        ```
        """)  # fmt: skip
    write(root, ".gitignore", "/model.pkl\n")
    write(root, ".dvc/config", "[core]\n    remote = storage\n")
    write(root, ".dvc/.gitignore", "/config.local\n/tmp\n/cache\n")
    write(root, "data/.gitignore", "/data.xml\n/prepared\n/features\n")
    write(root, "data/data.xml.dvc", "outs:\n- md5: 22a1a2931c8370d3aeedd7183606fd7f\n"
          "  size: 14445097\n  hash: md5\n  path: data.xml\n")  # fmt: skip
    write(root, "dvc.yaml", DVC_YAML)
    write(root, "dvc.lock", DVC_LOCK)
    write(root, "params.yaml", "prepare:\n  seed: 20170428\n")
    for rel in ("src/evaluate.py", "src/featurization.py", "src/prepare.py", "src/train.py"):
        write(root, rel, "import sys\n")
    write(root, "src/requirements.txt", "dvclive>=3.0\npandas\nscikit-learn\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "layout")
    if pulled:  # what `dvc pull` puts in the working tree: ignored by git
        write(root, "data/data.xml", "<posts><row Id='1' Body='r'/></posts>\n")
        write(root, "data/prepared/train.tsv", "1\tr\n")
        write(root, "data/features/train.pkl", "")
        (root / "model.pkl").write_bytes(pickle.dumps({"n_est": 50}, protocol=4))
    return root


def test_example_get_started_pulled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = example_get_started(tmp_path / "example-get-started", pulled=True)
    manifest, text, _err = draft(repo, capsys)

    # src/requirements.txt is installed by the README's command, so it is not missing.
    assert manifest.install is not None
    assert [r.path for r in manifest.install.requirements] == ["src/requirements.txt"]
    assert manifest.install.commands == ("python -m pip install -r src/requirements.txt",)
    assert "no dependency specification" not in text
    # The DVC outputs are on disk (ignored by git): declared with their digests, not "pull".
    [weights] = manifest.weights
    assert (weights.path, weights.format) == ("model.pkl", "pickle")
    assert weights.sha256 == digest(repo / "model.pkl")
    near = comments_near(text, "- path: model.pkl")
    assert "not in the repository" not in near
    assert "tracked by DVC (dvc.lock), not by git: a fresh clone needs `dvc pull`" in near
    assert "output of dvc.yaml stage `train` (dvc.lock md5 d1f6e055" in text
    assert manifest.data is not None
    [source] = manifest.data.sources
    assert (source.path, source.sha256) == ("data/data.xml", digest(repo / "data/data.xml"))
    near = comments_near(text, "- path: data/data.xml")
    assert "not in the repository" not in near
    assert "tracked by DVC (data/data.xml.dvc), not by git: a fresh clone needs `dvc pull`" in near
    assert manifest.training is not None
    assert manifest.training.command == "python src/train.py data/features {outdir}/model.pkl"
    assert manifest.evaluation is not None
    assert manifest.evaluation.command == "python src/evaluate.py {weights} data/features"
    assert manifest.data.preprocessing is not None
    assert manifest.data.preprocessing.command == "python src/prepare.py data/data.xml"


def test_example_get_started_not_pulled(tmp_path: Path) -> None:
    repo = example_get_started(tmp_path / "example-get-started", pulled=False)
    found = build_draft(repo)
    [weights] = found.weights
    assert weights.path == "model.pkl"
    assert weights.sha256 is None
    assert any('dvc pull "model.pkl"' in note for note in weights.notes)
    [source] = found.sources
    assert source.path == "data/data.xml"
    assert 'TODO: not in the repository: dvc pull "data/data.xml"' in source.notes
