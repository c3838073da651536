"""DVC outputs that are not pulled yet: found from dvc.yaml, dvc.lock and .dvc stubs (never by
running dvc), reported by CS101/CS102/CS701 with the exact command to run, quoted so that a
hostile file name cannot make the pasted hint run anything. Repositories are shaped like
iterative/example-get-started (a dvc.yaml pipeline whose `train` stage writes model.pkl)."""

from __future__ import annotations

import os
import shlex
import textwrap
from pathlib import Path

import pytest
from conftest import RepoFactory
from test_checks_weights import check

from pytest_corrsource.formats.pointers import detect_pointer
from pytest_corrsource.tracking import MAX_OUTPUTS, DvcOutput, dvc_output

MD5 = "0123456789abcdef0123456789abcdef"

PIPELINE = textwrap.dedent(
    """\
    stages:
      prepare:
        cmd: python src/prepare.py data/data.xml
        deps: [data/data.xml, src/prepare.py]
        outs: [data/prepared]
      train:
        cmd: python src/train.py data/features model.pkl
        deps: [data/features, src/train.py]
        outs:
          - model.pkl
        metrics:
          - eval/metrics.json:
              cache: false
    """
)
LOCK = textwrap.dedent(
    f"""\
    schema: '2.0'
    stages:
      prepare:
        cmd: python src/prepare.py data/data.xml
        outs:
        - path: data/prepared
          hash: md5
          md5: 153aad06d376b6595932470e459ef42a.dir
          size: 8437363
          nfiles: 2
      train:
        cmd: python src/train.py data/features model.pkl
        outs:
        - path: model.pkl
          hash: md5
          md5: {MD5}
          size: 1234
    """
)


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


# --------------------------------------------------------------------------- finding outputs


def test_a_pipeline_output_with_its_lock_entry(tmp_path: Path) -> None:
    write(tmp_path, {"dvc.yaml": PIPELINE, "dvc.lock": LOCK})
    assert dvc_output(tmp_path, "model.pkl") == DvcOutput(
        path="model.pkl",
        source="dvc.lock",
        stage="train",
        md5=MD5,
        hash_name="md5",
        folder=False,
        size=1234,
    )


def test_a_pipeline_output_declared_but_never_locked(tmp_path: Path) -> None:
    write(tmp_path, {"dvc.yaml": PIPELINE})
    found = dvc_output(tmp_path, "model.pkl")
    assert found is not None
    assert (found.source, found.stage, found.md5) == ("dvc.yaml", "train", None)
    assert found.fetch_hint("model.pkl") == "dvc pull model.pkl"


def test_a_file_inside_an_output_folder_has_no_file_digest(tmp_path: Path) -> None:
    write(tmp_path, {"dvc.yaml": PIPELINE, "dvc.lock": LOCK})
    found = dvc_output(tmp_path, "data/prepared/train.tsv")
    assert found is not None
    assert (found.path, found.folder, found.md5) == ("data/prepared", True, None)
    assert found.fetch_hint("data/prepared/train.tsv") == "dvc pull data/prepared/train.tsv"


def test_an_uncached_output_is_rebuilt_not_pulled(tmp_path: Path) -> None:
    write(tmp_path, {"dvc.yaml": PIPELINE})
    found = dvc_output(tmp_path, "eval/metrics.json")
    assert found is not None
    assert not found.cached
    assert found.fetch_hint("eval/metrics.json") == "dvc repro train"


def test_stage_wdir_and_a_pipeline_in_a_subfolder(tmp_path: Path) -> None:
    pipeline = "stages:\n  train:\n    wdir: ../models\n    cmd: python t.py\n    outs: [w.pt]\n"
    lock = f"stages:\n  train:\n    outs:\n    - path: w.pt\n      md5: {MD5}\n      hash: md5\n"
    write(tmp_path, {"pipelines/dvc.yaml": pipeline, "pipelines/dvc.lock": lock})
    # Only pipelines above the file are read (DVC would also find this one, from anywhere).
    assert dvc_output(tmp_path, "models/w.pt") is None
    write(
        tmp_path, {"models/dvc.yaml": pipeline.replace("../models", "."), "models/dvc.lock": lock}
    )
    found = dvc_output(tmp_path, "models/w.pt")
    assert found is not None
    assert (found.source, found.md5) == ("models/dvc.lock", MD5)


def test_foreach_stages_are_found_through_the_lock(tmp_path: Path) -> None:
    pipeline = "stages:\n  train:\n    foreach: [small, big]\n    do:\n      cmd: t ${item}\n"
    lock = f"stages:\n  train@small:\n    outs:\n    - path: small.pt\n      md5: {MD5}\n"
    write(tmp_path, {"dvc.yaml": pipeline, "dvc.lock": lock})
    found = dvc_output(tmp_path, "small.pt")
    assert found is not None
    assert (found.stage, found.hash_name) == ("train@small", "md5-dos2unix")  # DVC 2 entry


def test_a_stub_for_the_file_and_a_stub_for_its_folder(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "models/w.pt.dvc": f"outs:\n- md5: {MD5}\n  size: 9\n  hash: md5\n  path: w.pt\n",
            "data.dvc": "outs:\n- md5: " + "a" * 32 + ".dir\n  nfiles: 3\n  path: data\n",
        },
    )
    file_stub = dvc_output(tmp_path, "models/w.pt")
    assert file_stub is not None
    assert (file_stub.source, file_stub.md5, file_stub.size) == ("models/w.pt.dvc", MD5, 9)
    folder_stub = dvc_output(tmp_path, "data/names.txt")
    assert folder_stub is not None
    assert (folder_stub.source, folder_stub.path, folder_stub.folder) == ("data.dvc", "data", True)
    assert dvc_output(tmp_path, "other.txt") is None


def test_a_present_output_is_real_content_and_a_missing_one_a_pointer(tmp_path: Path) -> None:
    write(tmp_path, {"dvc.yaml": PIPELINE, "dvc.lock": LOCK})
    pointer = detect_pointer(tmp_path / "model.pkl", tmp_path)
    assert pointer is not None
    assert (pointer.kind, pointer.oid, pointer.size) == ("dvc", f"md5:{MD5}", 1234)
    assert pointer.tracked_by == "dvc (dvc.lock, stage `train`)"
    assert pointer.fetch_hint == "dvc pull model.pkl"
    (tmp_path / "model.pkl").write_bytes(b"trained")
    assert detect_pointer(tmp_path / "model.pkl", tmp_path) is None


def test_a_dangling_link_into_the_dvc_cache_is_not_pulled(tmp_path: Path) -> None:
    write(tmp_path, {"dvc.yaml": PIPELINE, "dvc.lock": LOCK})
    os.symlink(f".dvc/cache/files/md5/01/{MD5[2:]}", tmp_path / "model.pkl")
    pointer = detect_pointer(tmp_path / "model.pkl", tmp_path)
    assert pointer is not None
    assert pointer.fetch_hint == "dvc pull model.pkl"


# --------------------------------------------------------------------------- hostile files


def test_paths_that_leave_the_repository_or_need_dvc_templating_are_ignored(
    tmp_path: Path,
) -> None:
    lock = (
        "stages:\n  evil:\n    outs:\n"
        f"    - path: ../outside.pt\n      md5: {MD5}\n"
        f"    - path: /etc/passwd\n      md5: {MD5}\n"
        f"    - path: ${{model}}.pt\n      md5: {MD5}\n"
    )
    write(tmp_path, {"dvc.lock": lock})
    assert dvc_output(tmp_path, "outside.pt") is None
    assert dvc_output(tmp_path / "sub", "../outside.pt") is None
    assert dvc_output(tmp_path, "etc/passwd") is None


def test_yaml_tags_are_refused_never_constructed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    lock = f"stages: !!python/object/apply:os.system ['touch {marker}']\n"
    write(tmp_path, {"dvc.lock": lock, "dvc.yaml": lock})
    assert dvc_output(tmp_path, "model.pkl") is None
    assert not marker.exists()


def test_deep_nesting_and_oversized_files_yield_nothing(tmp_path: Path) -> None:
    write(tmp_path, {"dvc.lock": "[" * 100_000 + "]" * 100_000})
    assert dvc_output(tmp_path, "model.pkl") is None
    big = LOCK + "#" * (5 << 20) + "\n"
    write(tmp_path, {"dvc.lock": big})
    assert dvc_output(tmp_path, "model.pkl") is None  # over MAX_DVC_FILE_BYTES: not read


def test_alias_fan_out_stops_at_the_output_budget(tmp_path: Path) -> None:
    # 300 stages each listing the same 1,000 outputs through an alias: 300,000 entries from
    # a few KiB. The walk stops after MAX_OUTPUTS of them instead of visiting all.
    width = 1000
    assert 300 * width > MAX_OUTPUTS
    listing = "".join(f"  - path: f{i}\n" for i in range(width))
    stages = "".join(f"  s{i}: {{outs: *outs}}\n" for i in range(300))
    lock = f"shared: &outs\n{listing}stages:\n{stages}  last:\n    outs: [{{path: target.pt}}]\n"
    write(tmp_path, {"dvc.lock": lock})
    assert dvc_output(tmp_path, "target.pt") is None


def test_a_fifo_or_an_outside_link_in_place_of_the_lock_is_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "dvc.lock")  # opening it for reading would block forever
    assert dvc_output(tmp_path, "model.pkl") is None
    outside = tmp_path.parent / f"{tmp_path.name}-outside.lock"
    outside.write_text(LOCK, encoding="utf-8")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "dvc.lock").symlink_to(outside)
    assert dvc_output(repo, "model.pkl") is None


def test_the_hint_is_shell_quoted_against_hostile_names(tmp_path: Path) -> None:
    name = "$(touch pwned)`id`.pt"
    write(tmp_path, {f"{name}.dvc": f"outs:\n- md5: {MD5}\n  path: '{name}'\n"})
    pointer = detect_pointer(tmp_path / name, tmp_path)
    assert pointer is not None
    # A shell splits the pasted hint into exactly these words: nothing is substituted.
    assert shlex.split(pointer.fetch_hint) == ["dvc", "pull", name]
    assert pointer.fetch_hint == "dvc pull '$(touch pwned)`id`.pt'"


# --------------------------------------------------------------------------- the checks


def dvc_repo(make_repo: RepoFactory, extra: str = "") -> Path:
    manifest = (
        "version: 1\nname: get-started\nlicenses: {distribution: Apache-2.0}\n"
        "weights:\n  - path: model.pkl\n" + extra
    )
    return make_repo(manifest, {"dvc.yaml": PIPELINE, "dvc.lock": LOCK})


def test_cs101_says_what_to_pull_and_cs102_repeats_it(make_repo: RepoFactory) -> None:
    root = dvc_repo(make_repo)
    present = check(root, "CS101", "model.pkl")
    assert present.outcome == "failed"
    assert (
        "found: model.pkl: not found; it is tracked by dvc (dvc.lock, stage `train`), not "
        "fetched yet: run `dvc pull model.pkl`" in present.message
    )
    blocked = check(root, "CS102", "model.pkl")
    assert blocked.outcome == "skipped"
    assert blocked.message.startswith("blocked by CS101 (model.pkl: not found;")
    assert "run `dvc pull model.pkl`" in blocked.message


def test_cs102_names_the_output_when_run_alone(make_repo: RepoFactory) -> None:
    from pytest_corrsource.checks.api import CheckContext, CheckFailed, Options, RunState
    from pytest_corrsource.checks.weights import check_not_a_pointer
    from pytest_corrsource.hashing import DigestCache
    from pytest_corrsource.manifest import load_manifest

    root = dvc_repo(make_repo)
    manifest = load_manifest(root / "corresponding-source.yaml")
    ctx = CheckContext(manifest, "CS102", "model.pkl", Options(), DigestCache(), RunState())
    with pytest.raises(CheckFailed) as failed:
        check_not_a_pointer(ctx)
    assert failed.value.message == (
        "model.pkl is not in the work tree: it is a DVC output (dvc.lock, stage `train`) not "
        "pulled yet: run `dvc pull model.pkl`"
    )


def test_cs101_and_cs102_pass_for_a_pulled_output(make_repo: RepoFactory) -> None:
    root = dvc_repo(make_repo)
    (root / "model.pkl").write_bytes((root / "weights" / "model.safetensors").read_bytes())
    assert check(root, "CS101", "model.pkl").outcome == "passed"
    assert check(root, "CS102", "model.pkl").outcome == "passed"


def test_cs701_says_what_to_pull_for_a_data_source(make_repo: RepoFactory) -> None:
    root = dvc_repo(make_repo, "data:\n  sources:\n    - path: data/data.xml\n")
    write(root, {"data/data.xml.dvc": f"outs:\n- md5: {MD5}\n  hash: md5\n  path: data.xml\n"})
    result = check(root, "CS701", "data/data.xml", component="data", level="open-source-ai")
    assert result.outcome == "failed"
    assert (
        "data/data.xml (line 8) is not in the work tree; it is tracked by dvc "
        "(data/data.xml.dvc), not fetched yet: run `dvc pull data/data.xml`" in result.message
    )
