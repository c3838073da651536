"""How ``corrsource init`` reads one README command line: the option that says what it does,
a stand-in path that makes it someone else's recipe, and the CPU variant."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_init import write

from pytest_corrsource.draft import build_draft, discover, render
from pytest_corrsource.draft.sources import flag_role, is_cpu_variant, placeholder_path


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("python makemore.py -i names.txt -o names --sample-only", ("run", "--sample-only")),
        ("python main.py --predict", ("run", "--predict")),
        ("python train.py --eval_only=True", ("evaluation", "--eval_only")),
        ("python train.py --eval-only", ("evaluation", "--eval-only")),
        ("python train.py config/train_shakespeare_char.py --eval_iters=20", None),
        ("python sample.py --sample=False", None),
        ("python makemore.py -i names.txt -o names", None),
        ("python x.py --sample-only-not", None),
    ],
)
def test_the_option_that_says_what_a_command_does(
    line: str, expected: tuple[str, str] | None
) -> None:
    assert flag_role(line) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("python export.py llama2_7b.bin --meta-llama path/to/llama/model/7B",
         "path/to/llama/model/7B"),
        ("python export.py out.bin --meta-llama /path/to/7B-chat", "/path/to/7B-chat"),
        ("python tokenizer.py --tokenizer-model=/path/to/x/tokenizer.model",
         "/path/to/x/tokenizer.model"),
        ("python run.py --checkpoint <checkpoint>", "<checkpoint>"),
        ("python run.py --ckpt YOUR_CHECKPOINT_DIR/model.pt", "YOUR_CHECKPOINT_DIR/model.pt"),
        ("python sample.py --checkpoint=out15M/stories15M.pt", None),
        ("python train.py config/path_tools.py", None),
        ("python export.py --weights model.safetensors --out model.npz", None),
    ],
)  # fmt: skip
def test_placeholder_paths(line: str, expected: str | None) -> None:
    assert placeholder_path(line) == expected


@pytest.mark.parametrize(
    ("command", "cpu"),
    [
        ("python sample.py --out_dir=out-shakespeare-char --device=cpu", True),
        ("python train.py --device cpu", True),
        ("python train.py --cpu", True),
        ("python train.py --no-cuda", True),
        ("python sample.py --out_dir=out-shakespeare-char", False),
        ("python train.py --device=cuda", False),
        ("python train.py --device=cpu_offload", False),
        ("python train.py --cpus=4", False),
    ],
)
def test_cpu_variant(command: str, cpu: bool) -> None:
    assert is_cpu_variant(command) is cpu


@pytest.mark.parametrize(
    ("source", "defines"),
    [
        ("class GPT(nn.Module):\n", True),
        ("class Net(torch.nn.Module):\n", True),
        ("class M(tf.keras.Model):\n", True),
        ("class User(models.Model):\n", False),  # a Django model is not a network
        ("class Trainer:\n", False),
        ("x = 'class GPT(nn.Module):'\n", False),
    ],
)
def test_a_network_definition_is_recognised(source: str, defines: bool) -> None:
    pattern: re.Pattern[str] = discover._DEFINES_MODULE  # private: tested directly
    assert bool(pattern.search(source)) is defines


def test_an_export_script_is_named_not_invented_as_a_step(tmp_path: Path) -> None:
    write(tmp_path, "export.py", "import torch\n")
    write(tmp_path, "convert_to_gguf.py", "import torch\n")
    found = build_draft(tmp_path)
    assert found.generate == []
    assert found.generate_notes == [
        "found export.py, convert_to_gguf.py: if the released model needs it to run, declare "
        "it under `generate` (not drafted: what it converts is not known)"
    ]
    assert "command: python export.py" not in render(found)


def test_a_configuration_named_by_the_training_command_is_not_data(tmp_path: Path) -> None:
    write(tmp_path, "train.py", "import json\n")
    write(tmp_path, "configs/train.json", '{"lr": 0.1}\n')
    write(tmp_path, "corpus.txt", "some text\n")
    write(tmp_path, "requirements.txt", "numpy\n")
    write(
        tmp_path,
        "README.md",
        "```sh\npython train.py --config configs/train.json --data corpus.txt "
        "--reqs requirements.txt\n```\n",
    )
    found = build_draft(tmp_path)
    assert [s.path for s in found.sources] == ["corpus.txt"]
    assert found.sources[0].notes[0] == "the training command names corpus.txt"
