"""``corrsource init`` on hostile repositories: what it reads is bounded and stays inside the
repository. A FIFO named like a script never blocks the draft; a DVC output or an MLflow model
file that points outside the repository is neither hashed nor declared as present; a malformed
``MLmodel`` or YAML is a TODO, never a crash."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from test_checker_reads import returns
from test_draft_layouts import example_get_started, git, mlflow_example
from test_init import digest, write

from pytest_corrsource.draft import build_draft, render
from pytest_corrsource.draft.files import dvc_tracked_note
from pytest_corrsource.draft.sources import read_text

TRAINS = "trainer.run()\ntorch.save(model.state_dict(), 'model.pt')\n"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs need a POSIX system")
def test_fifos_named_like_repository_files_are_never_opened(tmp_path: Path) -> None:
    repo = tmp_path / "fifos"
    write(repo, "projects/real/real.py", TRAINS)
    for rel in ("README.md", "projects/a/a.py", "data/corpus.csv", "model/MLmodel", "train.py"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(repo / rel)
    found = returns(lambda: build_draft(repo))
    assert found.training is not None
    assert found.training.command == "python projects/real/real.py"  # not the FIFO a.py
    assert found.sources == []
    assert found.mlflow_models == []
    text = render(found)
    for rel in ("projects/a/a.py", "data/corpus.csv", "model/MLmodel"):
        assert rel not in text
    assert "model-card: README.md" not in text
    assert "TODO: no model card (README.md): write one" in text


def test_read_text_is_bounded(tmp_path: Path) -> None:
    big = write(tmp_path, "projects/big/big.py", "# x\n" * (600 * 1024) + TRAINS)
    assert big.stat().st_size > 2 * 1024 * 1024
    assert read_text(big) is None
    # so the draft does not read it to decide that it trains
    assert build_draft(tmp_path).training is None


def test_dvc_output_linked_outside_is_not_declared_present(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "elsewhere.pkl"
    outside.write_bytes(pickle.dumps({"secret": 1}, protocol=4))
    repo = example_get_started(tmp_path / "example-get-started", pulled=False)
    (repo / "model.pkl").symlink_to(outside)
    (repo / "data/data.xml").symlink_to(outside)
    found = build_draft(repo)
    [weights] = found.weights
    assert weights.path == "model.pkl"
    assert weights.sha256 is None  # the outside file is never hashed
    assert any('not in the repository: dvc pull "model.pkl"' in n for n in weights.notes)
    [source] = found.sources
    assert source.sha256 is None
    assert 'TODO: not in the repository: dvc pull "data/data.xml"' in source.notes


@pytest.mark.parametrize(
    "mlmodel",
    [
        "flavors:\n  sklearn:\n    pickled_model: ../../elsewhere.pkl\n",
        "flavors:\n  sklearn:\n    pickled_model: /etc/passwd\n",
        "flavors:\n  sklearn:\n    pickled_model: [model.pkl]\n",
    ],
    ids=["parent", "absolute", "not-a-string"],
)
def test_mlmodel_names_nothing_outside_its_folder(tmp_path: Path, mlmodel: str) -> None:
    (tmp_path / "elsewhere.pkl").write_bytes(pickle.dumps({"secret": 1}, protocol=4))
    repo = mlflow_example(tmp_path / "repo")
    write(repo, "model/MLmodel", mlmodel)
    found = build_draft(repo)
    assert found.weights == []
    assert found.mlflow_models == ["model"]
    assert "elsewhere" not in render(found)
    assert "passwd" not in render(found)


@pytest.mark.parametrize(
    "mlmodel",
    ["flavors: [1, 2]\n", "{{{{ not yaml", "[" * 5000 + "]" * 5000, ""],
    ids=["flavors-a-list", "broken", "deeply-nested", "empty"],
)
def test_unreadable_mlmodel_is_a_todo(tmp_path: Path, mlmodel: str) -> None:
    repo = mlflow_example(tmp_path / "repo")
    write(repo, "model/MLmodel", mlmodel)
    found = build_draft(repo)
    assert found.weights == []
    assert "TODO: model/MLmodel names no readable `flavors`" in found.weights_notes


def dvc_stub_repo(root: Path) -> Path:
    """Weights tracked by a `.dvc` stub, git-ignored as `dvc add` leaves them."""
    write(root, "models/.gitignore", "/model.safetensors\n")
    write(root, "models/model.safetensors.dvc", "outs:\n- md5: 0123\n  path: model.safetensors\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "stub")
    return root


def test_dvc_stub_weights_pulled_not_pulled_and_linked_outside(tmp_path: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    pulled = dvc_stub_repo(tmp_path / "pulled")
    save_file({"w": np.ones(2, dtype=np.float32)}, str(pulled / "models/model.safetensors"))
    [weights] = build_draft(pulled).weights
    assert (weights.path, weights.format) == ("models/model.safetensors", "safetensors")
    assert weights.sha256 == digest(pulled / "models/model.safetensors")
    assert dvc_tracked_note("models/model.safetensors.dvc") in weights.notes

    missing = dvc_stub_repo(tmp_path / "missing")
    [weights] = build_draft(missing).weights
    assert weights.sha256 is None
    assert (
        'TODO: tracked by DVC, not in the repository: dvc pull "models/model.safetensors.dvc"'
        in weights.notes
    )

    linked = dvc_stub_repo(tmp_path / "linked")
    outside = tmp_path / "outside.safetensors"
    save_file({"secret": np.zeros(2, dtype=np.float32)}, str(outside))
    (linked / "models/model.safetensors").symlink_to(outside)
    [weights] = build_draft(linked).weights
    assert weights.sha256 is None  # the file outside the repository is never hashed
    assert weights.format is None


def test_a_deeply_nested_config_json_is_ignored_not_a_crash(tmp_path: Path) -> None:
    """json recurses on nesting: 100,000 `[` were a RecursionError out of ``corrsource init``."""
    write(tmp_path, "train.py", TRAINS)
    write(tmp_path, "config.json", "[" * 100_000 + "]" * 100_000)
    text = render(returns(lambda: build_draft(tmp_path)))
    assert "config.json names" not in text
