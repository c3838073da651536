"""CS601–CS603 training, CS405 modify: the weights can be regenerated and changed the way
their makers change them.

The OSI Open Source AI Definition asks for "the complete source code used to train and run
the system"; CS602 runs the declared (smoke-sized) training command, in a scratch copy where
the released weights are withheld, and CS603 compares what it writes with the released
weights, reporting differences the way transformers does when it loads a checkpoint: missing,
unexpected, dtype mismatch, shape mismatch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_corrsource.checks.api import CheckContext, CheckFailed, Finding
from pytest_corrsource.formats import WeightsHeader
from pytest_corrsource.safe_io import read_head, same_content
from pytest_corrsource.sandbox.steps import (
    PipelineStep,
    StepRun,
    get_environment,
    new_dir,
    run_in_scratch,
    run_step,
    scratch_base,
)

if TYPE_CHECKING:
    from pytest_corrsource.formats.tensors import TensorFile

MAX_LISTED = 8


def _released_header(ctx: CheckContext) -> tuple[str, WeightsHeader]:
    from pytest_corrsource.formats import FormatError
    from pytest_corrsource.formats.detect import read_weights_header

    entry = ctx.manifest.weights[0]
    try:
        return entry.path, read_weights_header(ctx.root / entry.path, ctx.root)
    except (FormatError, OSError) as exc:
        raise CheckFailed(
            f"the released weights {entry.path} cannot be read (see CS103): {exc}"
        ) from None


def _header_of(ctx: CheckContext, path: Path, label: str) -> WeightsHeader:
    from pytest_corrsource.formats import FormatError
    from pytest_corrsource.formats.detect import detect_format, read_weights_header

    try:
        header = read_weights_header(path, path.parent)
    except (FormatError, OSError) as exc:
        raise CheckFailed(f"{label} wrote {path.name}, which is not valid weights: {exc}") from None
    if header.format == "opaque":
        # Any file reads as "opaque": it only counts as weights when the released ones do too.
        try:
            released_opaque = detect_format(ctx.root / ctx.manifest.weights[0].path) == "opaque"
        except FormatError:
            released_opaque = False
        if not released_opaque:
            raise CheckFailed(
                f"{label} wrote {path.name}, which is not valid weights: its format is not "
                "recognised (not safetensors, a safetensors index, GGUF, npy/npz or a pickle)"
            )
    return header


def _listed(items: list[str]) -> str:
    more = f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return ", ".join(items[:MAX_LISTED]) + more


def tensor_schema(
    path: Path, root: Path, label: str, layout: object = None
) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The real tensor names, dtypes and shapes of ``path``; a format whose tensors cannot be
    read fails the comparison instead of passing it with zero tensors."""
    from pytest_corrsource.formats import FormatError
    from pytest_corrsource.formats.tensors import UnreadableTensors, read_schema

    try:
        return read_schema(path, root=root, layout=layout)
    except UnreadableTensors as exc:
        raise CheckFailed(
            f"{label} {path.name}: {exc} — a limit of pytest-corrsource, so nothing was compared",
            fix="ship the weights as safetensors, npz, GGUF or a torch.save checkpoint, which "
            "the plugin can read",
        ) from None
    except (FormatError, OSError) as exc:
        raise CheckFailed(f"{label} {path.name} cannot be read as tensors: {exc}") from None


def schema_differences(
    want: dict[str, tuple[str, tuple[int, ...]]], got: dict[str, tuple[str, tuple[int, ...]]]
) -> list[str]:
    """Differences in tensor names, dtypes and shapes, grouped like a loading report."""
    missing = sorted(set(want) - set(got))
    unexpected = sorted(set(got) - set(want))
    both = sorted(set(want) & set(got))
    dtype = [
        f"{n} ({want[n][0]} released, {got[n][0]} regenerated)"
        for n in both
        if want[n][0] != got[n][0]
    ]
    shape = [
        f"{n} ({list(want[n][1])} released, {list(got[n][1])} regenerated)"
        for n in both
        if want[n][1] != got[n][1]
    ]
    lines = []
    if missing:
        lines.append(f"missing tensors: {_listed(missing)}")
    if unexpected:
        lines.append(f"unexpected tensors: {_listed(unexpected)}")
    if dtype:
        lines.append(f"dtype mismatch: {_listed(dtype)}")
    if shape:
        lines.append(f"shape mismatch: {_listed(shape)}")
    return lines


def _run_step(ctx: CheckContext, key: str, step: PipelineStep) -> StepRun:
    """``run_step`` memoised per process (the modify step)."""
    run: StepRun = ctx.state.once(f"{key}:{ctx.manifest.path}", lambda: run_step(ctx, step))
    return run


def withheld_weights(ctx: CheckContext) -> dict[str, Path]:
    """Each declared weights file -> an empty file put in its place in the training's scratch
    copy. Training builds weights; a training command that copies the released ones
    (``cp {weights} {outdir}/model.safetensors``) then copies nothing, and CS603 can only
    compare weights the command really wrote."""

    def make() -> dict[str, Path]:
        empty = new_dir(scratch_base(ctx.state, ctx.options), "withheld-weights") / "empty"
        empty.write_bytes(b"")
        return {entry.path: empty for entry in ctx.manifest.weights}

    withheld: dict[str, Path] = ctx.state.once(f"withheld-weights:{ctx.manifest.path}", make)
    return withheld


def _run_training(ctx: CheckContext, key: str, step: PipelineStep) -> StepRun:
    """The training step, memoised per process, in a scratch copy without the released
    weights (:func:`withheld_weights`)."""

    def compute() -> StepRun:
        env = get_environment(ctx)
        return run_in_scratch(
            ctx, step, python=env.python, bin_dir=env.bin_dir, replace=withheld_weights(ctx)
        )

    run: StepRun = ctx.state.once(f"{key}:{ctx.manifest.path}", compute)
    return run


def check_training_code(ctx: CheckContext) -> Finding:
    """CS601: the declared training code exists (and is text)."""
    training = ctx.manifest.training
    assert training is not None
    if not training.code:
        raise CheckFailed("`training.code` lists no files")
    missing = [r.path for r in training.code if not (ctx.root / r.path).is_file()]
    if missing:
        raise CheckFailed(f"training code not in the repository: {', '.join(missing)}")
    binary = [r.path for r in training.code if b"\0" in read_head(ctx.root / r.path, 65536)]
    if binary:
        raise CheckFailed(f"training code is binary, not source: {', '.join(binary)}")
    return Finding(message=", ".join(r.path for r in training.code))


def training_run(ctx: CheckContext) -> StepRun:
    training = ctx.manifest.training
    assert training is not None
    if not training.command:
        raise CheckFailed("`training.command` is not declared: nothing says how to train")
    if not training.produces:
        raise CheckFailed("`training.produces` is not declared: where do the weights go?")
    step = PipelineStep(
        "training",
        training.command,
        training.timeout,
        (training.produces,),
        training.network,
    )
    return _run_training(ctx, "training", step)


def check_training_run(ctx: CheckContext) -> Finding:
    """CS602: the training command succeeds and writes weights."""
    run = training_run(ctx)
    run.require_success("the training command")
    (path,) = run.outputs.values()
    if path.is_file() and path.stat().st_size == 0:
        raise CheckFailed(
            f"the training command wrote an empty {path.name}: the released weights are "
            "withheld from training (an empty file in their place), so copying them is not "
            "training",
            fix="make the training command build the weights (a smoke-sized run is enough)",
            details=run.describe(),
        )
    header = _header_of(ctx, path, "the training command")
    finding = Finding(
        message=f"trained in {run.result.seconds:.1f} s; wrote {len(header.tensors)} tensors",
        data={"seconds": run.result.seconds},
    )
    if ctx.options.twice:
        # reprotest-style: the same command once more, in an independent scratch copy.
        again = _run_training(
            ctx, "training-again", dataclasses.replace(run.step, label="training (again)")
        )
        again.require_success("the second training run")
        (second,) = again.outputs.values()
        try:
            same = same_content(path, second)  # streamed: trained weights can be large
        except OSError as exc:  # e.g. a FIFO where the second run's weights should be
            raise CheckFailed(f"the second training run's output cannot be read: {exc}") from None
        finding.data["deterministic"] = same
        if not same:
            finding.warnings.append(
                "training is not deterministic: two runs wrote different weights, so exact "
                "reproduction cannot be expected"
            )
    return finding


def _compare_values(
    released: Path,
    regenerated: Path,
    names: list[str],
    mode: str,
    tolerance: float,
    layout: object = None,
) -> list[tuple[float, str]]:
    """(max |Δ| or inf, name) of every tensor that differs; one tensor of each file in memory
    at a time."""

    from pytest_corrsource.formats import FormatError
    from pytest_corrsource.formats.tensors import open_tensors

    try:
        a_file = open_tensors(released, released.parent, layout=layout)
        b_file = open_tensors(regenerated, regenerated.parent, layout=layout)
    except FormatError as exc:
        raise CheckFailed(f"the tensors cannot be read for comparison: {exc}") from None
    with a_file, b_file:
        return _differing(a_file, b_file, names, mode, tolerance)


def _differing(
    a_file: TensorFile, b_file: TensorFile, names: list[str], mode: str, tolerance: float
) -> list[tuple[float, str]]:
    import numpy as np

    from pytest_corrsource.formats import FormatError

    worst: list[tuple[float, str]] = []
    for name in names:
        try:
            if mode == "exact":
                if a_file.raw(name).tobytes() != b_file.raw(name).tobytes():
                    worst.append((float("inf"), name))
                continue
            a, b = a_file.values(name), b_file.values(name)
        except (FormatError, OSError, ValueError, TypeError) as exc:
            raise CheckFailed(f"{name} cannot be compared: {exc}") from None
        with np.errstate(all="ignore"):
            diff = (
                float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
                if a.size
                else 0.0
            )
        if not diff <= tolerance:
            worst.append((diff, name))
    return worst


def check_reproduce(ctx: CheckContext) -> Finding:
    """CS603: the regenerated weights match the released ones (schema, exact or tolerance)."""
    training = ctx.manifest.training
    assert training is not None
    run = training_run(ctx)
    if not run.ok:
        raise CheckFailed("the training command failed (see CS602): nothing to compare")
    (path,) = run.outputs.values()
    released_name, _ = _released_header(ctx)
    _header_of(ctx, path, "the training command")
    layout = ctx.manifest.weights[0].layout  # a raw file: the same declared float ranges
    released = tensor_schema(ctx.root / released_name, ctx.root, "the released weights", layout)
    regenerated = tensor_schema(path, path.parent, "the training command wrote", layout)
    differences = schema_differences(released, regenerated)
    if differences:
        raise CheckFailed(
            f"the regenerated weights do not have the schema of {released_name}: "
            + "; ".join(differences),
            fix="make the training code build the released architecture (same configuration)",
        )
    if training.reproduce == "schema":
        return Finding(message=f"same {len(released)} tensor names, dtypes and shapes")
    worst = _compare_values(
        ctx.root / released_name,
        path,
        sorted(released),
        training.reproduce,
        training.tolerance,
        layout,
    )
    if worst:
        worst.sort(reverse=True)
        if training.reproduce == "exact":
            names = _listed([n for _, n in worst])
            raise CheckFailed(f"{len(worst)} tensor(s) are not byte-identical: {names}")
        shown = _listed([f"{n} (max |Δ| {d:.3g})" for d, n in worst])
        raise CheckFailed(
            f"{len(worst)} tensor(s) differ by more than the tolerance {training.tolerance:g}: "
            f"{shown}"
        )
    return Finding(message=f"values reproduced ({training.reproduce})")


def check_modify(ctx: CheckContext) -> Finding:
    """CS405: the modify command runs from the released weights and writes released-schema
    weights."""
    modify = ctx.manifest.modify
    assert modify is not None
    run = _run_step(
        ctx,
        "modify",
        PipelineStep("modify", modify.command, modify.timeout, modify.produces, modify.network),
    )
    run.require_success("the modify command")
    released_name, _ = _released_header(ctx)
    released = tensor_schema(ctx.root / released_name, ctx.root, "the released weights")
    for declared, path in sorted(run.outputs.items()):
        _header_of(ctx, path, "the modify command")
        modified = tensor_schema(path, path.parent, "the modify command wrote")
        differences = schema_differences(released, modified)
        if differences:
            raise CheckFailed(
                f"{declared} does not have the schema of {released_name}: " + "; ".join(differences)
            )
    return Finding(message=f"wrote {', '.join(sorted(run.outputs)) or 'nothing declared'}")
