"""An existing test suite joining in: pytest-corrsource's fixtures and markers.

Run from the repository root: ``pytest examples/tinychar/tests`` (add
``--corrsource-level open-source-ai`` to make the training markers fail instead of skip).
"""

import pytest

pytestmark = pytest.mark.corresponding_source


def test_vocabulary_ships_inside_the_weights(model_weights):
    codepoints = model_weights["vocab.codepoints"]
    assert codepoints.dtype.kind == "i"
    assert len(codepoints) == model_weights["embed.weight"].shape[0]


@pytest.mark.requires_weights("ckpt/step-100.safetensors")
def test_checkpoint_has_the_release_schema(model_weights, corrsource):
    from pytest_corrsource.fixtures import open_weights

    release = open_weights(corrsource.root / "weights/model.safetensors", corrsource.root)
    assert {n: model_weights[n].shape for n in model_weights} == {
        n: release[n].shape for n in release
    }


def test_generation_depends_on_the_weights(run_model, modified_weights):
    released = run_model()
    modified = run_model(weights=modified_weights)
    assert released.exit_code == 0, released.stderr
    assert modified.exit_code == 0, modified.stderr
    assert released.stdout != modified.stdout


def test_more_tokens_on_request(run_model):
    out = run_model(extra_args=["--tokens", "80"])
    assert len(out.stdout.strip()) >= 80


@pytest.mark.training_code
def test_training_code_is_declared(corrsource):
    assert corrsource.manifest.training.command


@pytest.mark.training_code
def test_smoke_training_builds_the_released_architecture(regenerated_weights, model_weights):
    from pytest_corrsource.fixtures import open_weights

    trained = open_weights(regenerated_weights, regenerated_weights.parent)
    assert {n: trained[n].shape for n in trained} == {
        n: model_weights[n].shape for n in model_weights
    }
