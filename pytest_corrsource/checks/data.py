"""CS701 data sources, CS702 data card, CS703 preprocessing, CS801 evaluation.

The OSI Open Source AI Definition's "Data Information": the provenance, scope and
characteristics of the training data, how it was obtained and selected, the labelling
procedures and the processing and filtering methods, plus a listing of the data and where to
obtain it; and the code that processed it.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from pytest_corrsource import patterns
from pytest_corrsource.checks.api import CheckContext, CheckFailed, Finding
from pytest_corrsource.manifest import DataSource
from pytest_corrsource.safe_io import MAX_DOCUMENT_BYTES, read_text_bounded, regular_file_problem
from pytest_corrsource.sandbox.steps import PipelineStep, run_step

# Each required topic of a data card, and the words a heading or label may use for it.
CARD_TOPICS: dict[str, tuple[str, ...]] = {
    "provenance": ("provenance", "origin", "source"),
    "scope": ("scope", "characteristic"),
    "selection": ("selection", "collection", "obtained", "sampling"),
    "labelling": ("label",),
    "processing": ("processing", "filtering", "cleaning"),
}
DOWNLOAD_CAP_BYTES = 50 * 1024**3  # a remote source without a declared size may use this much
_CHUNK = 1 << 20


def _source(ctx: CheckContext) -> DataSource:
    data = ctx.manifest.data
    assert data is not None
    for source in data.sources:
        if (source.path or source.url or "") == ctx.subject:
            return source
    raise CheckFailed("`data.sources` lists no data")


def _download(ctx: CheckContext, source: DataSource) -> str:
    """Fetch a remote source into the user cache (never the checkout); return its sha256."""
    from pytest_corrsource.sandbox.environments import default_cache_dir

    assert source.url
    assert source.sha256
    folder = (ctx.options.cache_dir or default_cache_dir()) / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / source.sha256
    if final.is_file():
        return source.sha256  # only a verified download is ever renamed to its digest
    cap = source.size if source.size is not None else DOWNLOAD_CAP_BYTES
    partial = folder / f"{source.sha256}.{os.getpid()}.part"
    digest = hashlib.sha256()
    size = 0
    try:
        with urllib.request.urlopen(source.url, timeout=60) as response, partial.open("wb") as out:
            while chunk := response.read(_CHUNK):
                size += len(chunk)
                if size > cap:
                    raise CheckFailed(
                        f"{source.url}: more than {cap} bytes"
                        + (" (its declared `size`)" if source.size is not None else "")
                    )
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise CheckFailed(f"{source.url} cannot be downloaded: {reason}") from None
    except CheckFailed:
        partial.unlink(missing_ok=True)
        raise
    actual = digest.hexdigest()
    if actual != source.sha256:
        partial.unlink(missing_ok=True)
    else:
        os.replace(partial, final)
    return actual


def check_sources(ctx: CheckContext) -> Finding:
    """CS701: a local source exists and matches its digest; a remote one is fully declared (and
    verified with --corrsource-fetch)."""
    from pytest_corrsource.hashing import hash_files

    source = _source(ctx)
    if source.path is not None:
        from pytest_corrsource.formats.pointers import detect_pointer

        path = ctx.root / source.path
        pointer = detect_pointer(path, ctx.root)
        if pointer is not None:  # a DVC output not pulled, an LFS pointer: say what to run
            where = "is not in the work tree" if not path.exists() else "is a pointer file"
            raise CheckFailed(
                f"{source.path} (line {source.line}) {where}; it is tracked by "
                f"{pointer.tracked_by}, not fetched yet: run `{pointer.fetch_hint}`"
            )
        if not path.is_file():
            raise CheckFailed(f"{source.path} (line {source.line}) is not in the repository")
        (actual,) = hash_files([path], ctx.digests).values()
        if source.sha256 is None:
            return Finding(warnings=[f"no sha256 declared for {source.path}; it is {actual}"])
        if actual != source.sha256:
            raise CheckFailed(
                f"{source.path} has sha256 {actual}, the manifest declares {source.sha256}"
            )
        return Finding(message=f"{source.path} matches its digest")
    missing = [key for key, value in (("sha256", source.sha256), ("license", source.license))
               if not value]  # fmt: skip
    if missing:
        raise CheckFailed(
            f"remote source {source.url} declares no {' and no '.join(missing)}",
            fix="declare `sha256` and `license` for every remote source, so users can obtain "
            "exactly this data and know their rights to it",
        )
    if not ctx.options.fetch:
        return Finding(
            message="declared, not downloaded",
            warnings=[f"{source.url} is declared but not verified (use --corrsource-fetch)"],
        )
    actual = _download(ctx, source)
    if actual != source.sha256:
        raise CheckFailed(
            f"{source.url} downloaded with sha256 {actual}, the manifest declares {source.sha256}"
        )
    return Finding(message=f"{source.url} downloaded and verified")


def card_topics(text: str) -> list[str]:
    """The data-card topics that ``text`` covers in a heading or a labelled paragraph."""
    labels = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            labels.append(stripped.lstrip("#").strip().lower())
        # `Provenance: …`, `**Provenance:** …`, also as a list item (`- **Provenance**: …`)
        elif m := re.match(
            r"^(?:(?:[-*+]|\d+[.)])\s+)?(?:\*\*|__)?([^*_:]{1,60}?)(?:\*\*|__)?\s*:", stripped
        ):
            labels.append(m.group(1).lower())
    return [
        topic for topic, words in CARD_TOPICS.items()
        if any(word in label for label in labels for word in words)
    ]  # fmt: skip


def check_card(ctx: CheckContext) -> Finding:
    """CS702: the data card exists and covers the five topics."""
    data = ctx.manifest.data
    assert data is not None
    if data.card is None:
        raise CheckFailed("the manifest declares no `data.card`")
    path = ctx.root / data.card.path
    special = regular_file_problem(path)
    if special is not None:
        raise CheckFailed(f"{data.card.path} (line {data.card.line}) is {special}")
    if not path.is_file():
        raise CheckFailed(f"{data.card.path} (line {data.card.line}) does not exist")
    try:
        covered = card_topics(read_text_bounded(path, MAX_DOCUMENT_BYTES))
    except OSError as exc:
        raise CheckFailed(f"{data.card.path} cannot be read: {exc.strerror}") from None
    missing = [t for t in CARD_TOPICS if t not in covered]
    if missing:
        raise CheckFailed(
            f"{data.card.path} does not cover: {', '.join(missing)}",
            fix="add a heading (or a `Topic:` label) for each: provenance, scope, selection, "
            "labelling, processing",
        )
    return Finding(message=f"{data.card.path} covers {', '.join(covered)}")


def _reads_sources_directly(ctx: CheckContext, reason: str) -> Finding:
    """CS703 without a preprocessing step: the training command, or its code, must name a
    declared local data source (makemore reads names.txt; mlflow-example reads its CSV)."""
    data = ctx.manifest.data
    training = ctx.manifest.training
    assert data is not None
    sources = [s.path for s in data.sources if s.path]
    if training is None or not training.command:
        raise CheckFailed(
            f"`data.no-preprocessing` says the training reads the sources directly ({reason}), "
            "but no `training.command` is declared"
        )
    texts = {"`training.command`": training.command}
    for ref in training.code:
        try:
            texts[ref.path] = read_text_bounded(ctx.root / ref.path, MAX_DOCUMENT_BYTES)
        except OSError:
            continue  # CS601 reports missing or unreadable training code
    for source in sources:
        for where, text in texts.items():
            if source in text or Path(source).name in text:
                return Finding(
                    message=f"no preprocessing ({reason}): {where} reads {source} directly"
                )
    raise CheckFailed(
        f"`data.no-preprocessing` says the training reads the sources directly ({reason}), "
        f"but neither `training.command` nor the training code names one of "
        f"{', '.join(sources) or 'the declared sources (none is local)'}",
        fix="declare the preprocessing step that turns the sources into the training input",
    )


def check_preprocessing(ctx: CheckContext) -> Finding:
    """CS703: the preprocessing command succeeds and produces its outputs."""
    data = ctx.manifest.data
    assert data is not None
    pre = data.preprocessing
    if pre is None and data.no_preprocessing:
        return _reads_sources_directly(ctx, data.no_preprocessing)
    if pre is None:
        raise CheckFailed(
            "the manifest declares no `data.preprocessing`",
            fix="declare the preprocessing command, or `data.no-preprocessing: <why>` when the "
            "training reads the declared sources as they are",
        )
    missing_code = [r.path for r in pre.code if not (ctx.root / r.path).is_file()]
    if missing_code:
        raise CheckFailed(f"preprocessing code not in the repository: {', '.join(missing_code)}")
    run = run_step(
        ctx, PipelineStep("preprocessing", pre.command, pre.timeout, pre.produces, pre.network)
    )
    run.require_success("preprocessing")
    return Finding(message=f"wrote {', '.join(pre.produces) or 'nothing declared'}")


#: Longest matched line quoted in a CS801 message.
_MAX_QUOTED_LINE = 200


def _line_of(text: str, start: int, end: int) -> str:
    """The whole line(s) of ``text`` holding ``text[start:end]``, trimmed for a message."""
    first = text.rfind("\n", 0, start) + 1
    last = text.find("\n", end)
    line = text[first : last if last != -1 else len(text)].strip()
    return line if len(line) <= _MAX_QUOTED_LINE else line[: _MAX_QUOTED_LINE - 1] + "…"


def _evaluated_by_training(ctx: CheckContext) -> Finding:
    """CS801 with `evaluation.from-training: true`: the training run (the one CS602 judges,
    memoised per process; started here if it has not run yet) exited 0 and printed what
    `evaluation.expect` describes. A run that failed or never started satisfies nothing."""
    from pytest_corrsource.checks.training import training_run
    from pytest_corrsource.secrets import redact

    evaluation = ctx.manifest.evaluation
    assert evaluation is not None
    training = ctx.manifest.training
    if training is None or not training.command:
        raise CheckFailed(
            "`evaluation.from-training: true` says the training run evaluates the model, but "
            "no `training.command` is declared: there is no run whose output could count",
            fix="declare `training.command`, or an `evaluation.command` of its own",
        )
    run = training_run(ctx)
    if not run.result.ok:
        raise CheckFailed(
            f"the training run failed ({run.result.status()}; see CS602), so nothing it "
            "printed counts as an evaluation",
            details=run.describe(),
        )
    expect = evaluation.expect
    quoted: list[str] = []
    metric: dict[str, str] = {}
    for stream, pattern in (("stdout", expect.stdout), ("stderr", expect.stderr)):
        if pattern is None:
            continue
        output: str = getattr(run.result, stream)
        try:
            match = patterns.search(pattern, output)
        except patterns.PatternTimeout as exc:
            raise CheckFailed(
                f"`evaluation.expect.{stream}` could not be judged: {exc}",
                fix="simplify the pattern (no nested repetition such as `(a+)+`)",
            ) from None
        if match is None:
            kept = (
                " (only the end of a long output is kept)"
                if getattr(run.result, f"{stream}_truncated")
                else ""
            )
            raise CheckFailed(
                f"the training run's {stream} does not match `evaluation.expect.{stream}` "
                f"/{pattern}/{kept}: it printed no evaluation",
                fix="make the training script print its evaluation metric, or declare an "
                "`evaluation.command`",
                details=run.describe(),
            )
        line = redact(_line_of(output, match.start(), match.end()))
        quoted.append(f"{stream}: `{line}`")
        metric.setdefault("metric", redact(match.group(1) if match.groups() else match.group(0)))
        metric.setdefault("line", line)
    return Finding(
        message=f"evaluated by the training run; {'; '.join(quoted)}",
        data={**metric, "from": "training"},
    )


def check_evaluation(ctx: CheckContext) -> Finding:
    """CS801: evaluation code and data exist and the command succeeds, meeting ``expect`` (or,
    with ``from-training``, the training run's output meets it)."""
    evaluation = ctx.manifest.evaluation
    assert evaluation is not None
    missing = [
        r.path for r in (*evaluation.code, *evaluation.data) if not (ctx.root / r.path).is_file()
    ]
    if missing:
        raise CheckFailed(f"not in the repository: {', '.join(missing)}")
    if evaluation.from_training:
        return _evaluated_by_training(ctx)
    if not evaluation.command:
        raise CheckFailed("`evaluation.command` is not declared: nothing says how to evaluate")
    run = run_step(
        ctx,
        PipelineStep(
            "evaluation",
            evaluation.command,
            evaluation.timeout,
            evaluation.expect.files,
            evaluation.network,
        ),
    )
    expect = evaluation.expect
    limited = run.result.limit_exceeded is not None  # a sandbox limit: failed whatever the code
    if run.result.timed_out or limited or run.result.returncode != expect.exit_code:
        raise CheckFailed(f"the evaluation failed: {run.result.status()}", details=run.describe())
    metric: dict[str, str] = {}
    try:
        stdout_match = (
            patterns.search(expect.stdout, run.result.stdout) if expect.stdout is not None else None
        )
        stderr_ok = expect.stderr is None or patterns.search(expect.stderr, run.result.stderr)
    except patterns.PatternTimeout as exc:
        raise CheckFailed(
            f"the evaluation's `evaluation.expect` could not be judged: {exc}",
            fix="simplify the pattern (no nested repetition such as `(a+)+`)",
        ) from None
    if expect.stdout is not None:
        match = stdout_match
        if match is None:
            raise CheckFailed(
                f"the evaluation's stdout does not match `evaluation.expect.stdout` "
                f"/{expect.stdout}/",
                details=run.describe(),
            )
        metric["metric"] = match.group(1) if match.groups() else match.group(0)
    if not stderr_ok:
        raise CheckFailed(
            f"the evaluation's stderr does not match `evaluation.expect.stderr` /{expect.stderr}/",
            details=run.describe(),
        )
    if run.missing_outputs:
        raise CheckFailed(f"the evaluation did not write {', '.join(run.missing_outputs)}")
    run.require_produced("the evaluation (`evaluation.expect.files`)")
    message = f"evaluation: {metric['metric']}" if metric else "evaluation succeeded"
    return Finding(message=message, data=metric)
