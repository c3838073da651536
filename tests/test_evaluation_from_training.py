"""CS801 with `evaluation.from-training: true`: the training run evaluates the model itself
(makemore prints its test loss; mlflow-example prints its RMSE), and CS801 checks that run's
output, quoting the metric line. Uses the stdlib-only runnable repository of
test_checks_training_data (same install spec: the environment is built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import MINIMAL_MANIFEST, RepoFactory
from test_checks_training_data import TRAIN_SCRIPT, TRAINING, Checks, failure, passed, runnable

from pytest_corrsource.checks.training import training_run
from pytest_corrsource.manifest import ManifestError, load_manifest

# makemore's training loop prints its test loss; this one also logs to stderr.
TRAIN_AND_EVALUATE = (
    TRAIN_SCRIPT
    + "print('step 3 | train loss 2.3124 | test loss 2.0831')\n"
    + "print('INFO rmse=0.79', file=sys.stderr)\n"
)
FROM_TRAINING = """\
evaluation:
  code: [train.py]
  from-training: true
  expect: {stdout: "test loss ([0-9.]+)"}
"""


def repo(
    make_repo: RepoFactory,
    evaluation: str = FROM_TRAINING,
    *,
    files: dict[str, str | bytes] | None = None,
    replace: dict[str, str] | None = None,
) -> Path:
    scripts: dict[str, str | bytes] = {"train.py": TRAIN_AND_EVALUATE, **(files or {})}
    return runnable(make_repo, TRAINING + evaluation, files=scripts, replace=replace)


# --------------------------------------------------------------------------- the manifest


def manifest_error(make_repo: RepoFactory, evaluation: str, name: str = "repo") -> str:
    root = make_repo(MINIMAL_MANIFEST + evaluation, name=name)
    with pytest.raises(ManifestError) as error:
        load_manifest(root / "corresponding-source.yaml")
    return str(error.value)


def test_the_manifest_reads_from_training(make_repo: RepoFactory) -> None:
    root = make_repo(MINIMAL_MANIFEST + FROM_TRAINING)
    evaluation = load_manifest(root / "corresponding-source.yaml").evaluation
    assert evaluation is not None
    assert evaluation.from_training
    assert evaluation.command is None
    assert evaluation.expect.stdout == "test loss ([0-9.]+)"


def test_from_training_refuses_a_command_of_its_own(make_repo: RepoFactory) -> None:
    message = manifest_error(make_repo, FROM_TRAINING + "  command: python eval.py\n")
    assert message == (
        "corresponding-source.yaml:11:12: evaluation.command: `command` does not go with "
        "`from-training: true` (the training command is the evaluation)"
    )


def test_from_training_needs_a_pattern(make_repo: RepoFactory) -> None:
    message = manifest_error(make_repo, "evaluation:\n  from-training: true\n")
    assert "evaluation.from-training: `from-training: true` needs `expect.stdout` or" in message
    message = manifest_error(
        make_repo,
        'evaluation:\n  from-training: true\n  expect: {files: ["{outdir}/m.json"]}\n',
        name="files",
    )
    assert "evaluation.expect.files: `files` does not go with `from-training: true`" in message


def test_from_training_false_is_the_ordinary_evaluation(make_repo: RepoFactory) -> None:
    root = make_repo(MINIMAL_MANIFEST + "evaluation:\n  from-training: false\n")
    evaluation = load_manifest(root / "corresponding-source.yaml").evaluation
    assert evaluation is not None
    assert not evaluation.from_training


# --------------------------------------------------------------------------- CS801


def test_cs801_passes_quoting_the_metric_line(make_repo: RepoFactory) -> None:
    result = passed(Checks(repo(make_repo))("CS801"))
    assert result.message == (
        "evaluated by the training run; stdout: `step 3 | train loss 2.3124 | test loss 2.0831`"
    )
    assert result.data == {
        "metric": "2.0831",
        "line": "step 3 | train loss 2.3124 | test loss 2.0831",
        "from": "training",
    }


def test_cs801_reads_stderr_too(make_repo: RepoFactory) -> None:
    root = repo(
        make_repo, FROM_TRAINING.replace('{stdout: "test loss ([0-9.]+)"}', '{stderr: "rmse="}')
    )
    result = passed(Checks(root)("CS801"))
    assert result.message == "evaluated by the training run; stderr: `INFO rmse=0.79`"
    assert result.data["metric"] == "rmse="


def test_cs801_fails_when_the_training_run_prints_no_evaluation(make_repo: RepoFactory) -> None:
    root = repo(make_repo, FROM_TRAINING.replace("test loss", "val accuracy"))
    message = failure(Checks(root)("CS801"))
    assert (
        "the training run's stdout does not match `evaluation.expect.stdout` "
        "/val accuracy ([0-9.]+)/: it printed no evaluation" in message
    )
    assert "test loss 2.0831" in message  # what it printed instead


def test_cs801_fails_when_training_fails(make_repo: RepoFactory) -> None:
    # The script prints its "evaluation" and then fails: a failed run counts for nothing.
    failing = "print('test loss 0.01')\n" + TRAIN_AND_EVALUATE
    root = repo(
        make_repo,
        files={"train.py": failing},
        replace={
            "--out {outdir}/model.safetensors\n": "--out {outdir}/model.safetensors --mode crash\n"
        },
    )
    message = failure(Checks(root)("CS801"))
    assert "the training run failed (exit code 1 after" in message
    assert "see CS602), so nothing it printed counts as an evaluation" in message


def test_cs801_fails_without_a_training_command(make_repo: RepoFactory) -> None:
    root = runnable(make_repo, "training:\n  code: [train.py]\n" + FROM_TRAINING)
    message = failure(Checks(root)("CS801"))
    assert (
        "`evaluation.from-training: true` says the training run evaluates the model, but no "
        "`training.command` is declared" in message
    )


def test_cs801_uses_the_run_cs602_made_never_a_second_one(make_repo: RepoFactory) -> None:
    checks = Checks(repo(make_repo))
    passed(checks("CS602"))
    passed(checks("CS801"))

    def second_run() -> None:
        pytest.fail("CS801 started a second training run")

    memo = checks.state.once(f"training:{checks.manifest.path}", second_run)
    assert memo is not None
    assert memo.result.ok


def test_cs801_runs_the_training_when_cs602_has_not(make_repo: RepoFactory) -> None:
    # Selected alone (e.g. `-k CS801`), it starts the run itself, and CS602 then reuses it.
    checks = Checks(repo(make_repo))
    passed(checks("CS801"))
    run = checks.state.once(f"training:{checks.manifest.path}", lambda: None)
    assert run is not None
    assert "test loss 2.0831" in run.result.stdout
    passed(checks("CS602"))


def test_training_run_is_what_cs801_reads(make_repo: RepoFactory) -> None:
    checks = Checks(repo(make_repo))
    from pytest_corrsource.checks.api import CheckContext, Options
    from pytest_corrsource.hashing import DigestCache

    ctx = CheckContext(checks.manifest, "CS801", "", Options(), DigestCache(), checks.state)
    assert "test loss 2.0831" in training_run(ctx).result.stdout
