"""Issue 12 §1: evidence must be produced by the step that claims it.

The attack: a manifest whose every command does nothing, with ``produces:`` pointing at files
that already exist (the released weights, a file under ``{repo}``, a file outside the sandbox),
met `open-source-ai` (CS602 "wrote 3 tensors", CS603 "values reproduced (exact)"). Paths outside
the step's ``{outdir}`` / scratch copy are refused when the manifest loads; paths inside that
existed before the step with the same content, or that are links, fail the step.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from conftest import RUNNABLE_FILES, RUNNABLE_MANIFEST, RepoFactory
from test_checks_training_data import FULL_CARD, Checks, runnable

from pytest_corrsource import evidence
from pytest_corrsource.levels import judge_levels
from pytest_corrsource.manifest import ManifestError, load_manifest

NOT_PRODUCED = "not produced by this step"

# --------------------------------------------------------------------------- evidence.py


def test_a_new_file_is_produced(tmp_path: Path) -> None:
    out = {"o": tmp_path / "o.bin"}
    before = evidence.record(out)
    assert before == {"o": None}
    (tmp_path / "o.bin").write_bytes(b"x")
    assert evidence.not_produced(out, before) == {}


def test_an_unchanged_file_is_not_produced_and_a_rewritten_one_is(tmp_path: Path) -> None:
    path = tmp_path / "o.bin"
    path.write_bytes(b"released")
    out = {"{repo}/o.bin": path}
    before = evidence.record(out)
    # Rewritten with the same bytes (even with a new mtime): still not evidence.
    path.write_bytes(b"released")
    os.utime(path, (1, 1))
    assert evidence.not_produced(out, before) == {
        "{repo}/o.bin": "`{repo}/o.bin` existed before the step with the same content"
    }
    path.write_bytes(b"retrained")
    assert evidence.not_produced(out, before) == {}


def test_a_directory_output_must_change_inside(tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.bin").write_bytes(b"a")
    out = {"ckpt": folder}
    before = evidence.record(out)
    assert before["ckpt"] is not None
    assert before["ckpt"].kind == "directory"
    assert "ckpt" in evidence.not_produced(out, before)
    (folder / "sub" / "b.bin").write_bytes(b"b")
    assert evidence.not_produced(out, before) == {}


def test_files_beyond_the_hashed_ones_still_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(evidence, "MAX_HASHED_FILES", 1)
    folder = tmp_path / "many"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"a")
    (folder / "b.bin").write_bytes(b"b")
    out = {"many": folder}
    before = evidence.record(out)
    assert "many" in evidence.not_produced(out, before)
    (folder / "b.bin").write_bytes(b"bb")  # not hashed: seen by its size and mtime
    assert evidence.not_produced(out, before) == {}


def test_a_directory_with_a_link_loop_is_digested(tmp_path: Path) -> None:
    folder = tmp_path / "loop"
    folder.mkdir()
    (folder / "self").symlink_to(folder)  # followed, this would never end
    (folder / "dangling").symlink_to(tmp_path / "nowhere")
    digest = evidence.digest_output(folder)
    assert digest is not None
    assert digest.kind == "directory"


def test_links_are_not_produced_outputs(tmp_path: Path) -> None:
    released = tmp_path / "model.safetensors"
    released.write_bytes(b"weights")
    soft, hard = tmp_path / "out" / "soft", tmp_path / "out" / "hard"
    out = {"soft": soft, "hard": hard}
    before = evidence.record(out)
    soft.parent.mkdir()
    soft.symlink_to(released)
    os.link(released, hard)
    reasons = evidence.not_produced(out, before)
    assert reasons["soft"] == f"`soft` is a symbolic link (to {released})"
    assert reasons["hard"] == "`hard` is a hard link to another file (2 names)"


# --------------------------------------------------------------------------- manifest load

STEP = "generate:\n  - command: python -c pass\n    produces: [{output}]\n"


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        ("/etc/passwd", "`/etc/passwd` is an absolute path"),
        ("C:/model.bin", "`C:/model.bin` is an absolute path"),
        ("'{outdir}/../../weights/model.safetensors'", "leaves the step's output folder"),
        ("../outside.bin", "`../outside.bin` leaves the step's output folder"),
        ("'{weights}'", "no other placeholder may name it"),
        ("'{python}'", "no other placeholder may name it"),
        ("'{outdir}x.bin'", "a placeholder must be a whole path component"),
        ("'{repo}'", "names the whole repository copy"),
        ("'x/{weights[0]}'", "no other placeholder may name it"),
    ],
)
def test_outputs_outside_the_sandbox_are_refused_at_load(
    make_repo: RepoFactory, output: str, problem: str
) -> None:
    root = make_repo(RUNNABLE_MANIFEST + STEP.format(output=output), RUNNABLE_FILES)
    with pytest.raises(ManifestError) as info:
        load_manifest(root / "corresponding-source.yaml")
    line = RUNNABLE_MANIFEST.count("\n") + 3
    assert (info.value.line, info.value.keypath) == (line, "generate[0].produces[0]")
    assert problem in info.value.message
    assert str(info.value).startswith(f"corresponding-source.yaml:{line}:")


def test_an_output_through_a_symlink_out_of_the_repository_is_refused(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    root = make_repo(RUNNABLE_MANIFEST + STEP.format(output="out/x.bin"), RUNNABLE_FILES)
    (root / "out").symlink_to(tmp_path)
    with pytest.raises(ManifestError, match="outside the repository"):
        load_manifest(root / "corresponding-source.yaml")


@pytest.mark.parametrize(
    "where",
    [
        "run:\n  command: python run.py\n  expect: {files: [/tmp/x]}\n",
        "evaluation:\n  command: python e.py\n  expect: {files: ['{weights}']}\n",
        "training:\n  command: python t.py\n  produces: /home/me/model.safetensors\n",
        "modify:\n  command: python f.py\n  produces: ../w.bin\n",
        "data:\n  preprocessing:\n    command: python p.py\n    produces: ['{python}']\n",
    ],
)
def test_every_kind_of_output_is_confined(make_repo: RepoFactory, where: str) -> None:
    text = "version: 1\nname: t\nweights: [{path: weights/model.safetensors}]\n" + where
    root = make_repo(text)
    with pytest.raises(ManifestError, match=r"produces|files"):
        load_manifest(root / "corresponding-source.yaml")


@pytest.mark.parametrize(
    "output", ["'{outdir}'", "'{outdir}/m.npz'", "'{repo}/build/m.npz'", "build/m.npz"]
)
def test_outputs_inside_the_sandbox_load(make_repo: RepoFactory, output: str) -> None:
    root = make_repo(RUNNABLE_MANIFEST + STEP.format(output=output), RUNNABLE_FILES)
    manifest = load_manifest(root / "corresponding-source.yaml")
    assert manifest.generate[0].produces == (output.strip("'"),)


# --------------------------------------------------------------------------- the attack, run

# Every step does nothing and points at what is already there.
FAKE = textwrap.dedent(
    """\
    generate:
      - command: "true"
        produces: ["{repo}/weights/model.safetensors"]
    modify:
      command: "true"
      produces: ["weights/model.safetensors"]
    training:
      code: [train.py]
      command: "true"
      produces: "{repo}/weights/model.safetensors"
      reproduce: exact
    data:
      sources:
        - path: data/corpus.txt
      preprocessing:
        code: [prepare.py]
        command: "true"
        produces: ["data/corpus.txt"]
      card: DATA_CARD.md
    evaluation:
      code: [eval.py]
      data: [data/val.txt]
      command: python eval.py --weights {weights}
      expect: {stdout: "loss", files: ["{repo}/eval.py"]}
    """
)


def fake_repo(make_repo: RepoFactory, sections: str = FAKE) -> Path:
    root = runnable(
        make_repo,
        sections,
        replace={
            "  expect:\n": '  expect:\n    files: ["{repo}/run.py"]\n',
            "architecture: [run.py]": "architecture: [run.py, train.py]",
        },
        files={"DATA_CARD.md": FULL_CARD},
    )
    return root


@pytest.mark.e2e
def test_a_manifest_of_do_nothing_steps_meets_no_level_above_open_weights(
    make_repo: RepoFactory,
) -> None:
    checks = Checks(fake_repo(make_repo))
    results = checks.run_all()
    by_id = {r.id: r for r in results.values()}
    for check_id, claim in [
        ("CS301", "generate[0]"),
        ("CS602", "the training command"),
        ("CS703", "preprocessing"),
        ("CS801", "the evaluation (`evaluation.expect.files`)"),
    ]:
        result = by_id[check_id]
        assert result.outcome == "failed", (check_id, result.message)
        assert f"{claim}: {NOT_PRODUCED}: `" in result.message
        assert "existed before the step with the same content" in result.message
    assert by_id["CS402"].message.startswith("blocked by CS301 (generate[0]: not produced")
    assert by_id["CS405"].outcome == "not-required"  # informational, but still refused
    assert NOT_PRODUCED in by_id["CS405"].message
    # CS603 never compares the released file with itself.
    assert by_id["CS603"].outcome == "skipped"
    assert by_id["CS603"].message.startswith("blocked by CS602 (the training command: not produced")
    met = [v.level for v in judge_levels(checks.plan, results) if v.met]
    assert met == ["open-weights"]


@pytest.mark.e2e
def test_the_honest_variant_of_the_same_repository_meets_open_source_ai(
    make_repo: RepoFactory,
) -> None:
    """The control: the same repository, with steps that write their outputs, meets every
    level, so the failures above are the evidence rule and nothing else."""
    honest = (
        FAKE.replace(
            '    produces: ["{repo}/weights/model.safetensors"]',
            '    produces: ["{outdir}/m.safetensors"]',
        )
        .replace('  command: "true"\n  produces: ["weights/model.safetensors"]',
                 "  command: python train.py --out {outdir}/ft.safetensors\n"
                 '  produces: ["{outdir}/ft.safetensors"]')
        .replace('  command: "true"\n  produces: "{repo}/weights/model.safetensors"',
                 "  command: python train.py --out {outdir}/model.safetensors\n"
                 '  produces: "{outdir}/model.safetensors"')
        .replace('    command: "true"\n    produces: ["data/corpus.txt"]',
                 "    command: python prepare.py --out {outdir}/train.txt\n"
                 '    produces: ["{outdir}/train.txt"]')
        .replace('expect: {stdout: "loss", files: ["{repo}/eval.py"]}',
                 'expect: {stdout: "loss"}')
    )  # fmt: skip
    honest = honest.replace(
        '  - command: "true"\n',
        "  - command: python train.py --out {outdir}/m.safetensors\n",
    )
    root = runnable(make_repo, honest, files={"DATA_CARD.md": FULL_CARD})
    checks = Checks(root)
    results = checks.run_all()
    not_passed = {r.id: r.message for r in results.values() if r.outcome != "passed"}
    assert not_passed == {}
    assert results["CS603:training:"].message == "values reproduced (exact)"


@pytest.mark.e2e
def test_run_expect_files_must_be_written_by_the_run(make_repo: RepoFactory) -> None:
    root = runnable(
        make_repo, "", replace={"  expect:\n": '  expect:\n    files: ["{repo}/run.py"]\n'}
    )
    checks = Checks(root)
    message = checks("CS402").message
    assert checks("CS402").outcome == "failed"
    assert (
        f"the run on the released weights (`run.expect.files`): {NOT_PRODUCED}: "
        "`{repo}/run.py` existed before the step with the same content"
    ) in message
    assert checks("CS403").message.startswith("blocked by CS402")


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("ln -s {weights} {outdir}/model.safetensors", "is a symbolic link (to "),
        ("ln {weights} {outdir}/model.safetensors", "is a hard link to another file (2 names)"),
    ],
)
def test_training_that_links_the_released_weights_did_not_produce_them(
    make_repo: RepoFactory, command: str, reason: str
) -> None:
    training = textwrap.dedent(
        f"""\
        training:
          code: [train.py]
          command: {command}
          produces: "{{outdir}}/model.safetensors"
          reproduce: exact
        """
    )
    checks = Checks(runnable(make_repo, training))
    message = checks("CS602").message
    assert checks("CS602").outcome == "failed"
    evidence_rule = f"the training command: {NOT_PRODUCED}: `{{outdir}}/model.safetensors` {reason}"
    if command.startswith("ln {"):
        # In the bubblewrap sandbox the scratch copy and {outdir} are separate mounts: the hard
        # link cannot even be made (the step fails). Without a sandbox the evidence rule
        # catches it (see the unit tests of evidence.not_produced).
        assert evidence_rule in message or "Invalid cross-device link" in message, message
    else:
        assert evidence_rule in message
    assert checks("CS603").message.startswith("blocked by CS602")


@pytest.mark.e2e
@pytest.mark.parametrize(
    "command",
    [
        "cp {weights} {outdir}/model.safetensors",
        "cp weights/model.safetensors {outdir}/model.safetensors",
        "cp {repo}/weights/model.safetensors {outdir}/model.safetensors",
    ],
)
def test_training_that_copies_the_released_weights_copies_nothing(
    make_repo: RepoFactory, command: str
) -> None:
    """A copy made during the step is new content at a new path: the released weights are
    withheld from the training's scratch copy (an empty file in their place) instead."""
    training = textwrap.dedent(
        f"""\
        training:
          code: [train.py]
          command: {command}
          produces: "{{outdir}}/model.safetensors"
          reproduce: exact
        """
    )
    checks = Checks(runnable(make_repo, training))
    cs602 = checks("CS602")
    assert cs602.outcome == "failed"
    assert (
        "found: the training command wrote an empty model.safetensors: the released weights are "
        "withheld from training"
    ) in cs602.message
    assert checks("CS603").message.startswith("blocked by CS602 (the training command wrote an")
    # The user's checkout still has its weights: only the scratch copy was changed.
    assert (checks.root / "weights" / "model.safetensors").stat().st_size > 0
