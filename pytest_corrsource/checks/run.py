"""CS301 generate steps, CS401–CS404: the model runs from its weights, modified weights and
without the network.

CS403 is the freedom-to-modify check (FSF freedom 1, GPLv3 §6 against tivoization): the same
pipeline runs on a copy of the weights whose floating-point values were changed; it must
succeed, and with ``deterministic: true`` its output must differ from the released run's.
"""

from __future__ import annotations

from pathlib import Path

from pytest_corrsource import patterns
from pytest_corrsource.checks.api import (
    CheckContext,
    CheckFailed,
    CheckSkipped,
    CheckUnverifiable,
    Finding,
)
from pytest_corrsource.checks.command_files import analyse_command
from pytest_corrsource.manifest import Run
from pytest_corrsource.safe_io import regular_file_problem, same_content
from pytest_corrsource.sandbox.process import redact
from pytest_corrsource.sandbox.steps import (
    StepRun,
    left_out_note,
    new_dir,
    run_pipeline,
    scratch_base,
)


def _run(ctx: CheckContext) -> Run:
    run = ctx.manifest.run
    assert run is not None  # the plan reports an undeclared run on its own
    return run


def check_generate_step(ctx: CheckContext) -> Finding:
    """CS301: generate step N succeeds and produces its declared outputs."""
    index = int(ctx.subject)
    label = f"generate[{index}]"
    pipeline = run_pipeline(ctx, "released")
    step = pipeline.step(label)
    if step is None:
        failed = pipeline.failed_step
        earlier = failed.step.label if failed else "an earlier step"
        raise CheckFailed(f"{label} did not run because {earlier} failed (see its check)")
    step.require_success(label)
    outputs = ", ".join(sorted(step.step.produces)) or "no declared outputs"
    return Finding(message=f"{label}: {step.result.status()}; wrote {outputs}")


def _built_by_generate(ctx: CheckContext) -> dict[str, str]:
    """Repository-relative paths the generate steps declare they write -> the step's label."""
    built: dict[str, str] = {}
    for index, step in enumerate(ctx.manifest.generate):
        for declared in step.produces:
            rel = declared.removeprefix("{repo}/")
            if "{" not in rel and not rel.startswith("/"):
                built.setdefault(str(Path(rel)), f"generate[{index}]")
    return built


def _named_files(ctx: CheckContext, command: str) -> tuple[list[str], list[str], list[str]]:
    """(present, missing, notes) for the files and modules a command names."""
    try:
        named = analyse_command(command)
    except ValueError as exc:
        raise CheckFailed(f"`run.command` cannot be split: {exc}") from None
    present: list[str] = []
    missing: list[str] = []
    notes = list(named.notes)
    built = _built_by_generate(ctx)
    for rel in named.files:
        if (ctx.root / rel).exists():
            present.append(rel)
        elif str(Path(rel)) in built:
            present.append(f"{rel} (written by {built[str(Path(rel))]})")
        else:
            missing.append(rel)
    for module in named.modules:
        parts = module.split(".")
        candidates = [
            ctx.root.joinpath(*parts).with_suffix(".py"),
            ctx.root.joinpath(*parts, "__init__.py"),
            ctx.root.joinpath(*parts, "__main__.py"),
        ]
        if (ctx.root / parts[0]).exists() or (ctx.root / f"{parts[0]}.py").exists():
            if any(c.is_file() for c in candidates):
                present.append(f"-m {module}")
            else:
                missing.append(f"module {module}")
        else:
            notes.append(f"`-m {module}` is not in the repository (an installed module)")
    return present, missing, notes


def check_run_files(ctx: CheckContext) -> Finding:
    """CS401: the run command's local scripts and files exist in the repository (or are
    declared outputs of a generate step)."""
    present, missing, notes = _named_files(ctx, _run(ctx).command)
    if missing:
        raise CheckFailed(
            f"`run.command` names {', '.join(missing)}, not in the repository",
            fix="commit the scripts and files the run uses (they must ship, not be fetched), "
            "or declare a generate step that `produces` them",
        )
    message = f"uses {', '.join(present)}" if present else "names no repository files"
    return Finding(message=message, warnings=notes)


def _check_expect(ctx: CheckContext, label: str, run_step: StepRun, *, full: bool) -> None:
    """Raise CheckFailed unless the run met ``expect`` (``full``: also the output regexes)."""
    expect = _run(ctx).expect
    result = run_step.result
    if result.timed_out or result.limit_exceeded is not None:
        raise CheckFailed(f"{label} {result.status()}", details=run_step.describe())
    if result.returncode != expect.exit_code:
        raise CheckFailed(
            f"{label} exited with {result.returncode}, expected {expect.exit_code}",
            details=run_step.describe(),
        )
    for stream, pattern, text in (
        ("stdout", expect.stdout, result.stdout),
        ("stderr", expect.stderr, result.stderr),
    ):
        if full and pattern is not None and not _matches(label, stream, pattern, text):
            raise CheckFailed(
                f"{label}: {stream} does not match `run.expect.{stream}` /{pattern}/",
                details=run_step.describe(),
            )
    missing = _missing_files(run_step)
    if missing:
        raise CheckFailed(
            f"{label} did not create {', '.join(missing)} (`run.expect.files`)",
            details=run_step.describe(),
        )
    special = [
        f"{declared} is {problem}"
        for declared, path in run_step.outputs.items()
        if (problem := regular_file_problem(path)) is not None
    ]
    if special:
        raise CheckFailed(
            f"{label}: `run.expect.files` must be regular files: {'; '.join(special)}",
            details=run_step.describe(),
        )
    run_step.require_produced(f"{label} (`run.expect.files`)")


def _matches(label: str, stream: str, pattern: str, text: str) -> bool:
    """Whether the manifest's *pattern* is found in *text*, within a time bound."""
    try:
        return patterns.search(pattern, text) is not None
    except patterns.PatternTimeout as exc:
        raise CheckFailed(
            f"{label}: `run.expect.{stream}` could not be judged: {exc}",
            fix="simplify the pattern (no nested repetition such as `(a+)+`)",
        ) from None


def _missing_files(run_step: StepRun) -> list[str]:
    """``run.expect.files`` the run did not create. ``StepRun.missing_outputs`` only lists them
    after exit code 0, but a run may be expected to end with another code. A FIFO or device
    in their place is not missing: :func:`_check_expect` names it for what it is."""
    return [declared for declared, path in run_step.outputs.items() if not path.exists()]


def _run_of(
    ctx: CheckContext, variant: str, *, replace: dict[str, Path] | None = None, network: bool = True
) -> StepRun:
    pipeline = run_pipeline(ctx, variant, replace=replace, network=network)
    failed = pipeline.failed_step
    if failed is not None and failed.step.label != "run":
        failed.require_success(f"{failed.step.label} (before the run, {variant} weights)")
    run_step = pipeline.step("run")
    assert run_step is not None
    return run_step


def check_released(ctx: CheckContext) -> Finding:
    """CS402: the run succeeds on the released weights and meets ``expect``."""
    run_step = _run_of(ctx, "released")
    left_out = left_out_note(ctx)
    try:
        _check_expect(ctx, "the run on the released weights", run_step, full=True)
    except CheckFailed as exc:
        if left_out is None:
            raise
        # A fresh clone fails the same way: say what this copy lacked compared to the checkout.
        raise CheckFailed(
            exc.message,
            fix=(exc.fix or "make the run work from what the repository ships") + "; " + left_out,
            details=exc.details,
        ) from None
    return Finding(
        message=f"the run on the released weights: {run_step.result.status()}",
        warnings=[left_out] if left_out else [],
    )


def modified_copies(ctx: CheckContext) -> dict[str, Path]:
    """Perturbed copies of every declared weights file: repo-relative path -> copy."""
    return _modified(ctx)[0]


def _modified(ctx: CheckContext) -> tuple[dict[str, Path], list[dict[str, object]]]:
    """(repo-relative path -> copy, one record per declared weights file of what changed)."""
    from pytest_corrsource.perturb import PerturbUnsupported, perturb_weights

    def make() -> tuple[dict[str, Path], list[dict[str, object]]]:
        folder = new_dir(scratch_base(ctx.state, ctx.options), "modified-weights")
        replace: dict[str, Path] = {}
        records: list[dict[str, object]] = []
        for index, entry in enumerate(ctx.manifest.weights):
            src = ctx.root / entry.path
            dst = folder / str(index) / Path(entry.path).name
            dst.parent.mkdir(parents=True)
            try:
                result = perturb_weights(src, dst, seed=index + 1, layout=entry.layout)
            except PerturbUnsupported as exc:
                if exc.format == "corrupt":  # the file's fault, not a limit of the plugin
                    raise CheckFailed(
                        f"{entry.path} is corrupt, so no modified copy can be made: {exc}"
                    ) from None
                # A limit of the plugin, not a fault of the repository: say so.
                raise CheckSkipped(
                    f"{entry.path}: cannot modify ({exc.format}): {exc} — pytest-corrsource "
                    "cannot yet write a modified copy of these weights"
                ) from None
            except OSError as exc:
                raise CheckFailed(f"{entry.path}: cannot be copied: {exc}") from None
            if not result.changed:
                raise CheckSkipped(
                    f"{entry.path} has no floating-point tensors to modify "
                    f"({len(result.unchanged)} integer/bool tensors)"
                )
            records.append(
                {
                    "path": entry.path,
                    "format": result.format,
                    "tensors_changed": len(result.changed),
                    "tensors_unchanged": len(result.unchanged),
                    "share_of_values": round(result.share, 6),
                }
            )
            # An index is written with its shards beside it: replace each one.
            for written in result.files:
                rel = Path(entry.path).parent / written.relative_to(dst.parent)
                replace[str(rel)] = written
        return replace, records

    made: tuple[dict[str, Path], list[dict[str, object]]] = ctx.state.once(
        f"modified-weights:{ctx.manifest.path}", make
    )
    return made


def check_modified(ctx: CheckContext) -> Finding:
    """CS403: the run succeeds on modified weights, and its output depends on them."""
    released = _released_ok(ctx, "modified weights cannot be compared")
    replace, records = _modified(ctx)
    modified = _run_of(ctx, "modified", replace=replace)
    try:
        _check_expect(ctx, "the run on modified weights", modified, full=False)
    except CheckFailed as exc:
        raise CheckFailed(
            exc.message + " — the run refuses or breaks on modified weights (tivoization?)",
            fix="run whatever weights the user gives: do not verify signatures or digests of the "
            "weights before running them",
            details=exc.details,
        ) from None
    if _run(ctx).deterministic and (
        modified.result.stdout == released.result.stdout and _outputs_equal(released, modified)
    ):
        raise CheckFailed(
            "the run's output is identical with modified weights: it does not depend on the "
            "declared weights (are they loaded from somewhere else?)",
            fix="load the weights from the path the manifest declares (`{weights}`); or set "
            "`run.deterministic: false` if the output is random",
            details=redact(f"stdout (both runs):\n{released.result.stdout[-1000:]}"),
        )
    changed = ", ".join(sorted(replace))
    return Finding(
        message=f"ran on modified {changed}; the output changed", data={"modified": records}
    )


def _released_ok(ctx: CheckContext, consequence: str) -> StepRun:
    """The released run, which must have succeeded for a comparison to mean anything."""
    released = _run_of(ctx, "released")
    result = released.result
    # Judged by `run.expect`, not StepRun.ok: a run may be expected to exit non-zero.
    if (
        result.timed_out
        or result.limit_exceeded is not None
        or result.returncode != _run(ctx).expect.exit_code
        or _missing_files(released)
        or released.not_produced
    ):
        raise CheckFailed(f"the run fails on the released weights (see CS402), so {consequence}")
    return released


def _outputs_equal(a: StepRun, b: StepRun) -> bool:
    for declared, path in a.outputs.items():
        other = b.outputs.get(declared)
        if other is None or not path.is_file() or not other.is_file():
            continue
        if not same_content(path, other):  # streamed, regular files only
            return False
    return True


def check_offline(ctx: CheckContext) -> Finding:
    """CS404: the run succeeds with the network cut (in the sandbox's own network namespace)."""
    from pytest_corrsource.sandbox.process import network_isolation
    from pytest_corrsource.sandbox.steps import sandbox_backend

    backend = sandbox_backend(ctx)
    if not backend.cuts_network:
        why = "; ".join(backend.notes) or "no sandbox"
        raise CheckUnverifiable(f"the network cannot be cut: no sandbox is in use here ({why})")
    if backend.name == "unshare":
        available, reason = network_isolation()
        if not available:
            raise CheckUnverifiable(f"the network cannot be cut on this platform: {reason}")
    _released_ok(ctx, "running it offline proves nothing")
    offline = _run_of(ctx, "offline", network=False)
    try:
        _check_expect(ctx, "the run without network", offline, full=True)
    except CheckFailed as exc:
        raise CheckFailed(
            exc.message + " — it works with the network (CS402) but not without it",
            details=exc.details,
        ) from None
    where = (
        "in a bubblewrap sandbox with its own network namespace (loopback only)"
        if backend.name == "bwrap"
        else "in a network namespace with no network (unshare: partial isolation)"
    )
    return Finding(message=f"ran {where}")
