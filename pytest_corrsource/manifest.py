"""Load ``corresponding-source.yaml`` into frozen dataclasses whose values remember their line.

Stage: the first on the line (YAML -> Manifest). Nothing here runs, hashes or opens weights;
the only file-system access is resolving declared paths to refuse those that leave the
repository. Errors are :class:`ManifestError`: one readable message naming file:line:column.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pytest_corrsource.errors import CorrsourceError
from pytest_corrsource.plain_yaml import MAX_NESTING, TooDeep, depth_limited_loader
from pytest_corrsource.schema.spec import Located, SpecError

MANIFEST_NAME = "corresponding-source.yaml"
# A manifest is a few KiB; refusing huge files keeps a hostile one from eating memory.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


class ManifestError(CorrsourceError):
    """The manifest cannot be used. ``str()`` is ``file:line:col: keypath: what was expected``."""

    def __init__(
        self, path: Path | str, line: int, column: int, message: str, keypath: str = ""
    ) -> None:
        self.path = str(path)
        self.line = line
        self.column = column
        self.keypath = keypath
        self.message = message
        where = f"{self.path}:{line}:{column}"
        super().__init__(f"{where}: {keypath}: {message}" if keypath else f"{where}: {message}")


@dataclass(frozen=True)
class PathRef:
    """A path inside the repository, as written, and the line that declared it."""

    path: str
    line: int


@dataclass(frozen=True)
class WeightsEntry:
    path: str
    line: int
    sha256: str | None = None
    format: str | None = None
    allow_unsafe: bool = False
    license: str | None = None
    shards: dict[str, str] = field(default_factory=dict)  # shard file name -> sha256
    layout: RawLayout | None = None


@dataclass(frozen=True)
class RawRange:
    offset: int
    length: int | None  # None: to the end of the file
    dtype: str  # "float32" | "float16" | "bfloat16" | "float64"


@dataclass(frozen=True)
class RawLayout:
    """``weights[].layout``: which bytes of a raw/custom weights file are floats."""

    ranges: tuple[RawRange, ...]


@dataclass(frozen=True)
class LicenseRefEntry:
    """``licenses.refs.<LicenseRef-…>``: a licence that is not on the SPDX list, its text in the
    repository and the manifest's own verdict on its openness (never SPDX's or the OSI's)."""

    id: str
    text: PathRef
    open: bool
    kinds: tuple[str, ...] = ()  # component kinds it is written for: code, weights, data, docs
    name: str | None = None
    line: int = 0


@dataclass(frozen=True)
class Licenses:
    distribution: str | None = None
    code: str | None = None
    weights: str | None = None
    data: str | None = None
    docs: str | None = None
    line: int = 0
    lines: dict[str, int] = field(default_factory=dict)
    refs: dict[str, LicenseRefEntry] = field(default_factory=dict)


@dataclass(frozen=True)
class Expect:
    exit_code: int = 0
    stdout: str | None = None
    stderr: str | None = None
    files: tuple[str, ...] = ()


#: The one default for every step's ``timeout:`` (seconds), and for ``install.timeout``, which
#: builds a whole environment. The JSON schema, docs/manifest.md and the README quote these.
DEFAULT_TIMEOUT = 600.0
INSTALL_TIMEOUT = 1800.0


@dataclass(frozen=True)
class DeclaredStep:
    """A command with declared outputs: a generate step, `modify`, data preprocessing."""

    command: str
    line: int
    produces: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    code: tuple[PathRef, ...] = ()
    network: bool = True  # `network: false`: run with the network cut


@dataclass(frozen=True)
class Install:
    line: int
    requirements: tuple[PathRef, ...] = ()
    commands: tuple[str, ...] = ()
    python: str | None = None
    timeout: float = INSTALL_TIMEOUT
    system: tuple[str, ...] = ()  # programs needed from the system (`install.system`)


@dataclass(frozen=True)
class Run:
    command: str
    line: int
    timeout: float = DEFAULT_TIMEOUT
    deterministic: bool = True
    expect: Expect = Expect()
    network: bool = True


@dataclass(frozen=True)
class Training:
    line: int
    code: tuple[PathRef, ...] = ()
    command: str | None = None
    produces: str | None = None
    reproduce: str = "schema"
    tolerance: float = 0.0
    timeout: float = DEFAULT_TIMEOUT
    network: bool = True


@dataclass(frozen=True)
class DataSource:
    line: int
    path: str | None = None
    url: str | None = None
    sha256: str | None = None
    license: str | None = None
    description: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Data:
    line: int
    sources: tuple[DataSource, ...] = ()
    preprocessing: DeclaredStep | None = None
    card: PathRef | None = None
    no_preprocessing: str | None = None  # `data.no-preprocessing`: why none is needed


@dataclass(frozen=True)
class Evaluation:
    line: int
    code: tuple[PathRef, ...] = ()
    data: tuple[PathRef, ...] = ()
    command: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    expect: Expect = Expect()
    network: bool = True
    # `from-training: true`: the training run (CS602's) evaluates; `expect` matches its output.
    from_training: bool = False


@dataclass(frozen=True)
class Docs:
    line: int
    model_card: PathRef | None = None
    paper: PathRef | None = None
    technical_report: PathRef | None = None
    results: PathRef | None = None


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest. ``root`` is the repository root: the manifest's folder."""

    path: Path
    root: Path
    version: int
    name: str
    weights: tuple[WeightsEntry, ...]
    licenses: Licenses = Licenses()
    architecture: tuple[PathRef, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    install: Install | None = None
    generate: tuple[DeclaredStep, ...] = ()
    run: Run | None = None
    modify: DeclaredStep | None = None
    training: Training | None = None
    data: Data | None = None
    evaluation: Evaluation | None = None
    checkpoints: tuple[WeightsEntry, ...] = ()
    docs: Docs | None = None
    source_form_allow: tuple[PathRef, ...] = ()
    # Checks waived because they cannot run where the manifest is verified: id -> reason.
    waive: dict[str, str] = field(default_factory=dict)
    waive_lines: dict[str, int] = field(default_factory=dict)  # id -> line
    display: str = ""  # how errors name the file
    # `limits:` as written (keys processes, memory, file-size, wall-time); defaults elsewhere.
    limits: dict[str, Any] = field(default_factory=dict)
    # The line of each top-level key, for reports about a whole component.
    lines: dict[str, int] = field(default_factory=dict)

    def declares(self, component: str) -> bool:
        """Whether the manifest has a top-level section for ``component``."""
        return component in self.lines

    def line_of(self, component: str) -> int:
        return self.lines.get(component, 1)


def load_manifest(path: Path | str, *, display: str | None = None) -> Manifest:
    """Parse and validate a manifest file. Raises :class:`ManifestError`.

    ``display`` is how errors name the file (default: its name).
    """
    import yaml  # deferred: pytest start-up must not pay for it when the plugin is off

    from pytest_corrsource.schema.spec import check_document

    manifest_path = Path(path)
    display = display or manifest_path.name
    try:
        size = manifest_path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise ManifestError(display, 1, 1, f"the manifest is {size} bytes; the limit is 4 MiB")
        raw = manifest_path.read_bytes()
    except OSError as exc:
        raise ManifestError(display, 1, 1, f"cannot read the manifest: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ManifestError(
            display, line, column, f"the manifest is not UTF-8: {exc.reason}"
        ) from None

    try:
        # The reader refuses control characters (NUL, ESC …) as soon as it is built.
        loader = depth_limited_loader(text)
    except yaml.reader.ReaderError as exc:
        line, column = _line_col(text, exc.position)
        raise ManifestError(
            display, line, column, f"YAML syntax error: {exc.reason} (#x{exc.character:04x})"
        ) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise ManifestError(display, 1, 1, "the manifest is empty")
        tree = check_document(loader, node)
    except SpecError as exc:
        raise ManifestError(display, exc.line, exc.column, exc.message, exc.keypath) from None
    except TooDeep as exc:
        message = f"lists and mappings are nested more than {MAX_NESTING} levels deep"
        raise ManifestError(display, exc.line, exc.column, message) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and problem.startswith("but "):
            # e.g. "expected a single document in the stream" + "but found another document"
            problem = f"{exc.context}, {problem}"
        raise ManifestError(display, line, column, f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(display, 1, 1, f"YAML error: {exc}") from None
    finally:
        loader.dispose()

    root = manifest_path.resolve().parent
    return _build(tree, manifest_path, root, display)


def _line_col(text: str, position: int) -> tuple[int, int]:
    """1-based line and column of the character at ``position``."""
    before = text[:position]
    return before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1


# --- from the located tree to dataclasses -----------------------------------------------------


class _Builder:
    def __init__(self, root: Path, display: str) -> None:
        self.root = root
        self.display = display

    def repo_path(self, loc: Located, keypath: str) -> str:
        """A declared path, refused when it leaves the repository."""
        value: str = loc.value
        posix = PurePosixPath(value.replace("\\", "/"))
        problem = None
        if not value.strip():
            problem = "an empty path"
        elif posix.is_absolute() or (len(value) > 1 and value[1] == ":"):
            problem = f"`{value}` is an absolute path; paths must be relative to the repository"
        elif ".." in posix.parts:
            problem = f"`{value}` leaves the repository (`..`)"
        elif "\x00" in value:  # os.path.realpath raises ValueError on it
            problem = f"{value!r} contains a NUL character"
        else:
            resolved = Path(os.path.realpath(self.root / posix))
            if resolved != self.root and self.root not in resolved.parents:
                problem = f"`{value}` resolves to {resolved}, outside the repository (a symlink?)"
        if problem:
            raise ManifestError(self.display, loc.line, loc.column, problem, keypath)
        return str(posix)

    def output(self, loc: Located, keypath: str) -> str:
        """A declared output (``produces``, ``expect.files``), refused unless it stays inside the
        step's ``{outdir}`` or its scratch copy of the repository (``{repo}/…`` or relative).

        Evidence only counts when the step wrote it where nothing else can have put it: an
        output elsewhere (the released weights' folder, the user's home, another placeholder)
        could be any file that already existed.
        """
        value: str = loc.value
        rest, base, glued = value, "repo", False
        for placeholder, name in (("{outdir}", "outdir"), ("{repo}", "repo")):
            if value.startswith(placeholder):
                rest, base = value[len(placeholder) :], name
                glued = bool(rest) and not rest.startswith("/")  # `{outdir}x`
                rest = rest.lstrip("/")
                break
        posix = PurePosixPath(rest.replace("\\", "/"))
        unescaped = rest.replace("{{", "").replace("}}", "")
        problem = None
        if not value.strip():
            problem = "an empty path"
        elif glued:
            problem = f"`{value}`: a placeholder must be a whole path component (`{{outdir}}/…`)"
        elif "{" in unescaped or "}" in unescaped:
            problem = (
                f"`{value}`: an output must be under `{{outdir}}` or the repository copy "
                "(`{repo}/…` or a relative path); no other placeholder may name it"
            )
        elif posix.is_absolute() or (len(rest) > 1 and rest[1] == ":"):
            problem = (
                f"`{value}` is an absolute path: a step's outputs must be written under "
                "`{outdir}` (or its scratch copy of the repository)"
            )
        elif ".." in posix.parts:
            problem = f"`{value}` leaves the step's output folder or scratch copy (`..`)"
        elif base == "repo" and not rest.strip("/."):
            problem = f"`{value}` names the whole repository copy, not an output"
        elif base == "repo":
            resolved = Path(os.path.realpath(self.root / posix))
            if resolved != self.root and self.root not in resolved.parents:
                problem = f"`{value}` resolves to {resolved}, outside the repository (a symlink?)"
        if problem:
            raise ManifestError(self.display, loc.line, loc.column, problem, keypath)
        return value

    def outputs(self, loc: Located | None, keypath: str) -> tuple[str, ...]:
        if loc is None:
            return ()
        return tuple(self.output(item, f"{keypath}[{i}]") for i, item in enumerate(loc.value))

    def expect(self, loc: Located | None, keypath: str) -> Expect:
        if loc is None:
            return Expect()
        return Expect(
            exit_code=int(_opt(loc, "exit-code", 0)),
            stdout=_opt(loc, "stdout"),
            stderr=_opt(loc, "stderr"),
            files=self.outputs(loc.get("files"), f"{keypath}.files"),
        )

    def ref(self, loc: Located, keypath: str) -> PathRef:
        return PathRef(self.repo_path(loc, keypath), loc.line)

    def refs(self, loc: Located | None, keypath: str) -> tuple[PathRef, ...]:
        if loc is None:
            return ()
        return tuple(self.ref(item, f"{keypath}[{i}]") for i, item in enumerate(loc.value))

    def license_refs(self, loc: Located | None) -> dict[str, LicenseRefEntry]:
        """``licenses.refs``; a text path that leaves the repository is refused here."""
        if loc is None:
            return {}
        refs: dict[str, LicenseRefEntry] = {}
        seen: dict[str, str] = {}
        for ref, entry in loc.value.items():
            keypath = f"licenses.refs.{ref}"
            # LicenseRef ids match case-insensitively, as the expressions that use them do.
            if ref.lower() in seen:
                raise ManifestError(
                    self.display,
                    entry.line,
                    entry.column,
                    f"`{ref}` is declared twice (also as `{seen[ref.lower()]}`)",
                    keypath,
                )
            seen[ref.lower()] = ref
            text = entry.get("text")
            assert text is not None  # required by the spec
            refs[ref] = LicenseRefEntry(
                id=ref,
                text=self.ref(text, f"{keypath}.text"),
                open=bool(_req(entry, "open")),
                kinds=tuple(_strings(entry.get("kinds"))),
                name=_opt(entry, "name"),
                line=entry.line,
            )
        return refs

    def weights(self, loc: Located | None, keypath: str) -> tuple[WeightsEntry, ...]:
        if loc is None:
            return ()
        entries = []
        seen: dict[str, int] = {}
        for i, item in enumerate(loc.value):
            path_loc = item.get("path")
            assert path_loc is not None
            path = self.repo_path(path_loc, f"{keypath}[{i}].path")
            if path in seen:
                raise ManifestError(
                    self.display,
                    path_loc.line,
                    path_loc.column,
                    f"`{path}` is already declared on line {seen[path]}",
                    f"{keypath}[{i}].path",
                )
            seen[path] = item.line
            entries.append(
                WeightsEntry(
                    path=path,
                    line=item.line,
                    sha256=_opt(item, "sha256"),
                    format=_opt(item, "format"),
                    allow_unsafe=bool(_opt(item, "allow-unsafe", False)),
                    license=_opt(item, "license"),
                    shards=_plain_dict(item.get("shards")),
                    layout=_layout(item.get("layout")),
                )
            )
        return tuple(entries)

    def step(
        self, loc: Located, keypath: str, default_timeout: float = DEFAULT_TIMEOUT
    ) -> DeclaredStep:
        return DeclaredStep(
            command=_req(loc, "command"),
            line=loc.line,
            produces=self.outputs(loc.get("produces"), f"{keypath}.produces"),
            timeout=float(_opt(loc, "timeout", default_timeout)),
            code=self.refs(loc.get("code"), f"{keypath}.code"),
            network=bool(_opt(loc, "network", True)),
        )


def _layout(loc: Located | None) -> RawLayout | None:
    if loc is None:
        return None
    dtype = _opt(loc, "dtype", "float32")
    ranges = loc.get("ranges")
    if ranges is not None:
        return RawLayout(
            tuple(
                RawRange(_req(r, "offset"), _req(r, "length"), _opt(r, "dtype", dtype))
                for r in ranges.value
            )
        )
    return RawLayout((RawRange(_opt(loc, "offset", 0), _opt(loc, "length"), dtype),))


def _opt(loc: Located, key: str, default: Any = None) -> Any:
    child = loc.get(key)
    return default if child is None else child.value


def _req(loc: Located, key: str) -> Any:
    child = loc.get(key)
    assert child is not None, key  # the spec made it required
    return child.value


def _strings(loc: Located | None) -> list[str]:
    return [] if loc is None else [item.value for item in loc.value]


def _build(tree: Located, path: Path, root: Path, display: str) -> Manifest:
    b = _Builder(root, display)
    lines = dict(tree.key_lines or {})

    licenses = Licenses()
    if (lic := tree.get("licenses")) is not None:
        licenses = Licenses(
            distribution=_opt(lic, "distribution"),
            code=_opt(lic, "code"),
            weights=_opt(lic, "weights"),
            data=_opt(lic, "data"),
            docs=_opt(lic, "docs"),
            line=lic.line,
            lines=dict(lic.key_lines or {}),
            refs=b.license_refs(lic.get("refs")),
        )

    install = None
    if (inst := tree.get("install")) is not None:
        install = Install(
            line=inst.line,
            requirements=b.refs(inst.get("requirements"), "install.requirements"),
            commands=tuple(_strings(inst.get("commands"))),
            python=None if inst.get("python") is None else str(_req(inst, "python")),
            timeout=float(_opt(inst, "timeout", INSTALL_TIMEOUT)),
            system=tuple(_strings(inst.get("system"))),
        )

    generate: tuple[DeclaredStep, ...] = ()
    if (gen := tree.get("generate")) is not None:
        generate = tuple(b.step(s, f"generate[{i}]") for i, s in enumerate(gen.value))

    run = None
    if (r := tree.get("run")) is not None:
        run = Run(
            command=_req(r, "command"),
            line=r.line,
            timeout=float(_opt(r, "timeout", DEFAULT_TIMEOUT)),
            deterministic=bool(_opt(r, "deterministic", True)),
            expect=b.expect(r.get("expect"), "run.expect"),
            network=bool(_opt(r, "network", True)),
        )

    modify = None
    if (m := tree.get("modify")) is not None:
        modify = b.step(m, "modify")

    training = None
    if (t := tree.get("training")) is not None:
        training = Training(
            line=t.line,
            code=b.refs(t.get("code"), "training.code"),
            command=_opt(t, "command"),
            produces=None
            if (produces := t.get("produces")) is None
            else b.output(produces, "training.produces"),
            reproduce=_opt(t, "reproduce", "schema"),
            tolerance=float(_opt(t, "tolerance", 0.0)),
            timeout=float(_opt(t, "timeout", DEFAULT_TIMEOUT)),
            network=bool(_opt(t, "network", True)),
        )

    data = None
    if (d := tree.get("data")) is not None:
        sources = []
        for i, s in enumerate(_list(d.get("sources"))):
            src_path = s.get("path")
            sources.append(
                DataSource(
                    line=s.line,
                    path=None
                    if src_path is None
                    else b.repo_path(src_path, f"data.sources[{i}].path"),
                    url=_opt(s, "url"),
                    sha256=_opt(s, "sha256"),
                    license=_opt(s, "license"),
                    description=_opt(s, "description"),
                    size=_opt(s, "size"),
                )
            )
        pre = d.get("preprocessing")
        card = d.get("card")
        data = Data(
            line=d.line,
            sources=tuple(sources),
            preprocessing=None if pre is None else b.step(pre, "data.preprocessing"),
            card=None if card is None else b.ref(card, "data.card"),
            no_preprocessing=_opt(d, "no-preprocessing"),
        )

    evaluation = None
    if (e := tree.get("evaluation")) is not None:
        _check_from_training(e, display)
        evaluation = Evaluation(
            line=e.line,
            code=b.refs(e.get("code"), "evaluation.code"),
            data=b.refs(e.get("data"), "evaluation.data"),
            command=_opt(e, "command"),
            timeout=float(_opt(e, "timeout", DEFAULT_TIMEOUT)),
            expect=b.expect(e.get("expect"), "evaluation.expect"),
            network=bool(_opt(e, "network", True)),
            from_training=bool(_opt(e, "from-training", False)),
        )

    docs = None
    if (dc := tree.get("docs")) is not None:

        def doc(key: str) -> PathRef | None:
            loc = dc.get(key)
            return None if loc is None else b.ref(loc, f"docs.{key}")

        docs = Docs(
            line=dc.line,
            model_card=doc("model-card"),
            paper=doc("paper"),
            technical_report=doc("technical-report"),
            results=doc("results"),
        )

    allow: tuple[PathRef, ...] = ()
    if (sf := tree.get("source-form")) is not None:
        allow = b.refs(sf.get("allow"), "source-form.allow")

    env = tree.get("env")
    waive: dict[str, str] = {}
    waive_lines: dict[str, int] = {}
    if (wv := tree.get("waive")) is not None:
        # Which ids exist is the check registry's to say, once plugins have added theirs
        # (results.refuse_unknown_waivers); the schema has checked the shape of each key.
        for check_id, reason in wv.value.items():
            waive_lines[check_id] = reason.line
            waive[check_id] = str(reason.value or "").strip()
    limits = tree.get("limits")
    return Manifest(
        path=path,
        root=root,
        display=display,
        version=int(_req(tree, "version")),
        name=str(_req(tree, "name")),
        weights=b.weights(tree.get("weights"), "weights"),
        licenses=licenses,
        architecture=b.refs(tree.get("architecture"), "architecture"),
        env={} if env is None else {k: v.value for k, v in env.value.items()},
        limits={} if limits is None else {k: v.value for k, v in limits.value.items()},
        install=install,
        generate=generate,
        run=run,
        modify=modify,
        training=training,
        data=data,
        evaluation=evaluation,
        checkpoints=b.weights(tree.get("checkpoints"), "checkpoints"),
        docs=docs,
        source_form_allow=allow,
        waive=waive,
        waive_lines=waive_lines,
        lines=lines,
    )


#: What `evaluation.from-training: true` leaves no room for: the training step has its own.
_NOT_WITH_FROM_TRAINING = {
    "command": "the training command is the evaluation",
    "timeout": "`training.timeout` applies",
    "network": "`training.network` applies",
}


def _check_from_training(e: Located, display: str) -> None:
    """`evaluation.from-training: true` reads the training run's output: it has no command of
    its own, and `expect` must say (by stdout or stderr) which output is the evaluation."""
    flag = e.get("from-training")
    if flag is None or flag.value is not True:
        return
    for key, why in _NOT_WITH_FROM_TRAINING.items():
        if (loc := e.get(key)) is not None:
            raise ManifestError(
                display,
                loc.line,
                loc.column,
                f"`{key}` does not go with `from-training: true` ({why})",
                f"evaluation.{key}",
            )
    expect = e.get("expect")
    for key, why in (("exit-code", "CS602 requires exit code 0"), ("files", "use stdout/stderr")):
        if expect is not None and (loc := expect.get(key)) is not None:
            raise ManifestError(
                display,
                loc.line,
                loc.column,
                f"`{key}` does not go with `from-training: true` ({why})",
                f"evaluation.expect.{key}",
            )
    if expect is None or (expect.get("stdout") is None and expect.get("stderr") is None):
        raise ManifestError(
            display,
            flag.line,
            flag.column,
            "`from-training: true` needs `expect.stdout` or `expect.stderr`: the pattern of the "
            "metric line the training run prints (e.g. `test loss ([0-9.]+)`)",
            "evaluation.from-training",
        )


def _plain_dict(loc: Located | None) -> dict[str, Any]:
    return {} if loc is None else dict(loc.plain())


def _list(loc: Located | None) -> list[Located]:
    return [] if loc is None else list(loc.value)
