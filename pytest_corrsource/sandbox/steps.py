"""Running a manifest's commands: the isolated environment, scratch copies, pipelines.

Stage: shared machinery for the execution checks (install, generate, run, modify, training,
data, evaluation) and the fixtures. Every command runs through :func:`run_in_scratch`: in a
scratch copy of the repository, inside the isolated environment, with a scrubbed environment,
in the sandbox of :mod:`.backends` (bubblewrap where it works: the checkout, the real home and
temp dir and the cache are invisible; the environment is writable only while the install
commands build it) and within the manifest's :mod:`.limits`. The user's checkout is
snapshotted around each step, ``.git/`` and caches included, as defence in depth.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import posixpath
import re
import shlex
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_corrsource import evidence, progress
from pytest_corrsource.checks.api import (
    CheckContext,
    CheckFailed,
    CheckUnverifiable,
    Options,
    RunState,
)
from pytest_corrsource.hashing import sha256_file
from pytest_corrsource.manifest import Manifest
from pytest_corrsource.sandbox.backends import (
    Backend,
    Mounts,
    SandboxUnavailable,
    python_installations,
    select_backend,
)
from pytest_corrsource.sandbox.conda import (
    CondaFile,
    CondaFileError,
    conda_command_kind,
    conda_tool,
    is_conda_file,
    pip_requirement_lines,
    python_request,
    read_conda_file,
)
from pytest_corrsource.sandbox.environments import (
    Environment,
    EnvironmentBuildError,
    EnvironmentSpec,
    InstallOutcome,
    default_cache_dir,
    download_cache,
    ensure_environment,
    environment_root,
    find_interpreter,
    repository_identity,
)
from pytest_corrsource.sandbox.installers import (
    GLOBAL_PIP_CONFIGS,
    InstallerUnavailable,
    RequirementFilesUnreadable,
    requirement_lines,
    select_installer,
    uv_argv,
    uv_environment,
)
from pytest_corrsource.sandbox.limits import Limits
from pytest_corrsource.sandbox.placeholders import (
    PlaceholderError,
    PlaceholderValues,
    expand_command,
    expand_path,
)
from pytest_corrsource.sandbox.process import (
    CommandResult,
    Confinement,
    IsolationUnavailable,
    package_sources,
    redact,
    run_command,
    scrubbed_environment,
)
from pytest_corrsource.sandbox.scratch import TreeSnapshot, create_scratch_copy, diff
from pytest_corrsource.shipping import GitListingError, ShippedTree, shipped_tree

# Nothing of the user's checkout is skipped: `.git/hooks` and `__pycache__/*.pyc` are where
# code left behind would run later. (pytest writes its own caches at collection and at the
# end of the session, never while a step runs.)
_USER_TREE_SKIP: tuple[str, ...] = ()


@dataclass
class PipelineStep:
    """One command of a pipeline, ready to run."""

    label: str  # "generate[0]", "run", "training" … for messages
    command: str
    timeout: float
    produces: tuple[str, ...] = ()
    network: bool = True  # False: the manifest marks the step `network: false`


@dataclass
class StepRun:
    step: PipelineStep
    argv: list[str]
    result: CommandResult
    outdir: Path
    repo: Path  # the scratch copy the step ran in
    outputs: dict[str, Path] = field(default_factory=dict)  # declared output -> resolved path
    missing_outputs: list[str] = field(default_factory=list)
    # Declared outputs that were already there, unchanged, before the step (evidence.py).
    not_produced: dict[str, str] = field(default_factory=dict)
    # The command as written, expanded; ``argv`` differs when an install ran it with uv.
    requested_argv: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.result.ok and not self.missing_outputs and not self.not_produced

    def describe(self) -> str:
        """What happened, trimmed and redacted, for a failure message."""
        return redact(self.result.describe())

    def require_success(self, label: str) -> None:
        """Raise CheckFailed unless the step exited 0 in time and wrote what it declares."""
        if not self.result.ok:
            raise CheckFailed(f"{label} failed: {self.result.status()}", details=self.describe())
        if self.missing_outputs:
            raise CheckFailed(
                f"{label} exited 0 but did not write {', '.join(self.missing_outputs)}",
                details=self.describe(),
            )
        self.require_produced(label)

    def require_produced(self, label: str) -> None:
        """Raise CheckFailed when a declared output was there, unchanged, before the step."""
        if self.not_produced:
            raise CheckFailed(
                evidence.not_produced_message(label, self.not_produced),
                fix="write every declared output in the step itself, under `{outdir}` (a file "
                "that was already there is not evidence that the step works)",
                details=self.describe(),
            )


def sandbox_backend(ctx: CheckContext) -> Backend:
    """The backend of ``--corrsource-sandbox`` (probed once per process)."""

    def choose() -> Backend:
        try:
            return select_backend(ctx.options.sandbox)
        except SandboxUnavailable as exc:
            raise CheckFailed(str(exc)) from None

    backend: Backend = ctx.state.once("sandbox-backend", choose)
    return backend


def step_limits(manifest: Manifest) -> Limits:
    """The manifest's ``limits:`` over the defaults; CheckFailed if a value is unusable."""
    try:
        return Limits.from_manifest(manifest.limits)
    except ValueError as exc:
        raise CheckFailed(f"`limits:` {exc}") from None


def scratch_base(state: RunState, options: Options) -> Path:
    """This process's folder for scratch copies, removed when the process exits."""

    def make() -> Path:
        parent = options.scratch_dir
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix="corrsource-", dir=parent))
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        return path

    base: Path = state.once("scratch-base", make)
    return base


def new_dir(base: Path, name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=re.sub(r"[^A-Za-z0-9]+", "-", name) + "-", dir=base))


_INSTALLERS = ("pip", "pip3", "uv")


def installs_repository(command: str, root: Path) -> bool:
    """Whether an install command installs the repository's own code: ``pip install .``,
    ``pip install -e .``, ``uv pip install ./pkg``, ``python setup.py install|develop``."""
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    if "setup.py" in (Path(w).name for w in words) and {"install", "develop"} & set(words):
        return True
    if "install" not in words or not any(Path(w).name in _INSTALLERS for w in words):
        return False
    targets = words[words.index("install") + 1 :]
    for i, word in enumerate(targets):
        if word.startswith("-") and word not in ("-e", "--editable"):
            continue
        if i and targets[i - 1] in ("-r", "--requirement", "-c", "--constraint"):
            continue
        local = word.removeprefix("{repo}").lstrip("/") or "."
        if word.startswith(("{repo}", ".", "/")) or (root / local).is_dir():
            candidate = (root / local).resolve() if not word.startswith("/") else Path(word)
            if candidate == root.resolve() or root.resolve() in candidate.parents:
                return True
    return False


def requirements_install_repository(files: Sequence[Path], root: Path) -> bool:
    """Whether a requirements file installs the repository's own code: a line ``.``,
    ``-e .``, ``./pkg``, ``file:.`` or ``-e file:./pkg`` naming a folder inside ``root``,
    here or in a file it includes (only includes inside ``root`` are followed). Files that
    cannot be read through install nothing we can see."""
    resolved_root = root.resolve()
    try:
        for path, words in requirement_lines(files, inside=resolved_root):
            editable = words[0] in ("-e", "--editable") and len(words) > 1
            target = words[1] if editable else words[0].removeprefix("--editable=")
            target = target.removeprefix("file:").split("#", 1)[0].split("[", 1)[0]
            if not target.startswith((".", "/")):
                continue
            # pip reads a local path from the working directory (the repository); read it
            # from the file's folder too: a wrong "yes" only keys the environment on the code.
            for base in (root, path.parent):
                folder = (base / target).resolve()
                if folder.is_dir() and (folder == resolved_root or resolved_root in folder.parents):
                    return True
    except RequirementFilesUnreadable:
        return False
    return False


def source_digest(ctx: CheckContext) -> str:
    """sha256 over the names and contents of the repository files that ship (see
    :func:`shipped_files`), declared weights, checkpoints and data excluded: the code an
    install of the repository itself puts into the environment."""
    manifest = ctx.manifest
    shipped = shipped_files(ctx)
    heavy = {posixpath.normpath(e.path) for e in (*manifest.weights, *manifest.checkpoints)}
    if manifest.data is not None:
        heavy |= {posixpath.normpath(s.path) for s in manifest.data.sources if s.path}
    digest = hashlib.sha256()
    root = manifest.root
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.split("/", 1)[0] in (".git",) or rel in heavy or path.is_symlink():
            continue
        if not path.is_file() or (shipped is not None and not shipped.ships(rel)):
            continue
        digest.update(rel.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(sha256_file(path).encode() + b"\0")
    return digest.hexdigest()


def cache_dir(ctx: CheckContext) -> Path:
    """Where environments and download caches live (--corrsource-cache-dir, else the default)."""
    return ctx.options.cache_dir or default_cache_dir()


def installer(ctx: CheckContext) -> tuple[str, Path | None]:
    """``("uv", executable)`` or ``("pip", None)`` for --corrsource-installer (once per
    process); CheckUnverifiable when uv is required and not installed."""

    def choose() -> tuple[str, Path | None]:
        try:
            return select_installer(ctx.options.installer)
        except InstallerUnavailable as exc:
            raise CheckUnverifiable(str(exc)) from None

    chosen: tuple[str, Path | None] = ctx.state.once("installer", choose)
    return chosen


def conda_file(ctx: CheckContext) -> CondaFile | None:
    """The conda environment file among ``install.requirements`` (the first), if any;
    CheckFailed when it cannot be read as one."""
    install = ctx.manifest.install
    for ref in install.requirements if install is not None else ():
        path = ctx.manifest.root / ref.path
        if path.is_file() and is_conda_file(path):
            try:
                return read_conda_file(path)
            except CondaFileError as exc:
                raise CheckFailed(f"`install.requirements`: {exc}") from None
    return None


def environment_spec(ctx: CheckContext) -> EnvironmentSpec:
    manifest = ctx.manifest
    install = manifest.install
    chosen, uv = installer(ctx)
    if install is None:
        return EnvironmentSpec(env=tuple(sorted(manifest.env.items())), installer=chosen, uv=uv)
    requirement_files = [manifest.root / r.path for r in install.requirements]
    own_code = any(
        installs_repository(c, manifest.root) for c in install.commands
    ) or requirements_install_repository(requirement_files, manifest.root)
    python = install.python
    conda = conda_file(ctx)
    builder = None
    if conda is not None:
        tool = conda_tool()
        builder = tool.name if tool is not None else "pip-section"
        if tool is None and python is None:
            try:
                python = python_request(conda)
            except CondaFileError as exc:
                raise CheckUnverifiable(str(exc)) from None
    return EnvironmentSpec(
        python=python,
        commands=install.commands,
        files=tuple(manifest.root / r.path for r in install.requirements),
        env=tuple(sorted(manifest.env.items())),
        source=source_digest(ctx) if own_code else None,
        installer=chosen,
        uv=uv,
        conda=builder,
        repository=repository_identity(manifest.root),
    )


def _conda_steps(
    ctx: CheckContext, conda: CondaFile | None, prefix: Path, timeout: float
) -> tuple[list[PipelineStep], list[str], list[str]]:
    """The steps that make the environment from the conda file (before the manifest's
    commands), the manifest's conda commands that the builder does or skips, and warnings."""
    if conda is None:
        return [], [], []
    rel = conda.path.relative_to(ctx.manifest.root).as_posix()
    tool = conda_tool()
    install = ctx.manifest.install
    commands = install.commands if install is not None else ()
    kinds = {c: conda_command_kind(c) for c in commands}
    if tool is not None:
        # The real path: the sandbox shows the tool's installation, not a symlink to it.
        program, where = shlex.quote(os.path.realpath(tool)), shlex.quote(str(prefix))
        if tool.name == "conda":
            create = f"{program} env create -p {where} -f {{repo}}/{shlex.quote(rel)}"
        else:
            create = f"{program} create -y -p {where} -f {{repo}}/{shlex.quote(rel)}"
        handled = [c for c, k in kinds.items() if k in ("create", "activate")]
        return [PipelineStep("install", create, timeout)], handled, []
    steps = []
    lines = pip_requirement_lines(conda)
    if lines:
        generated = posixpath.join(posixpath.dirname(rel), ".corrsource-conda-pip.txt")
        steps.append(
            PipelineStep("install", f"python -m pip install -r {{repo}}/{generated}", timeout)
        )
    handled = [c for c, k in kinds.items() if k is not None]
    skipped_commands = [c for c, k in kinds.items() if k == "other"]
    pin = f"and its `{conda.python}` " if conda.python else ""
    warnings = []
    if conda.conda_packages or skipped_commands:
        what = []
        if conda.conda_packages:
            what.append(f"the conda packages {', '.join(conda.conda_packages)} of {rel}")
        if skipped_commands:
            what.append(f"the install commands {'; '.join(skipped_commands)}")
        warnings.append(
            "no conda, mamba or micromamba here: not installed were "
            + " and ".join(what)
            + f" (only its `pip:` section {pin}were used; install micromamba to build it whole)"
        )
    return steps, handled, warnings


def get_environment(ctx: CheckContext) -> Environment:
    """The isolated environment, built at most once per process (and cached across runs).

    Raises CheckUnverifiable when the requested Python is not on this machine and CheckFailed when
    the install commands fail.
    """
    manifest = ctx.manifest
    spec = environment_spec(ctx)

    def build() -> Environment:
        install = manifest.install
        conda = conda_file(ctx)
        if find_interpreter(spec.python) is None:
            asked = f"install.python asks for Python {spec.python}"
            if conda is not None and conda.python and (install is None or not install.python):
                asked = f"{conda.path.name} pins `{conda.python}`"
            raise CheckUnverifiable(f"{asked}, which is not installed here")
        timeout = install.timeout if install else 1800.0

        def run_install(python: Path) -> InstallOutcome:
            logs = [f"installer: {spec.installer}" + (f" ({spec.uv})" if spec.uv else "")]
            prefix = python.parent.parent
            env_root = prefix.parent if spec.conda not in (None, "pip-section") else prefix
            source = None
            if spec.source is not None:
                # The repository installs itself: its copy lives inside the environment, so an
                # editable install (`pip install -e .`) still points at it in every later step
                # and session, read-only like the rest of the environment; the key holds the
                # digest of that code, so a change to it builds a new environment.
                source = create_scratch_copy(
                    manifest.root, env_root / "src", shipped=shipped_files(ctx)
                ).root
            conda_steps, handled, warnings = _conda_steps(ctx, conda, prefix, timeout)
            if conda_steps and source is None:
                # One copy for the conda steps: the pip section is written into it, beside
                # the conda file, so its relative `-r` and `-e` lines mean what they say.
                source = create_scratch_copy(
                    manifest.root, new_dir(scratch_base(ctx.state, ctx.options), "conda") / "repo",
                    shipped=shipped_files(ctx),
                ).root  # fmt: skip
            if conda is not None and source is not None and spec.conda == "pip-section":
                rel = conda.path.relative_to(manifest.root)
                (source / rel.parent / ".corrsource-conda-pip.txt").write_text(
                    "\n".join(pip_requirement_lines(conda)) + "\n", encoding="utf-8"
                )
            steps = conda_steps + [
                PipelineStep("install", command, timeout)
                for command in spec.commands
                if command not in handled
            ]
            for command in handled:
                logs.append(f"$ {command}\n(done by the environment builder from the conda file)")
            for step in steps:
                run = run_in_scratch(
                    ctx,
                    step,
                    python=python,
                    bin_dir=python.parent,
                    repo=source,
                    building_environment=True,
                    env_root=env_root,
                    uv=spec.uv if spec.installer == "uv" else None,
                )
                how = " (run as uv pip install)" if run.argv != run.requested_argv else ""
                logs.append(f"$ {step.command}{how}\n{run.result.describe(max_lines=40)}")
                if not run.ok:
                    return InstallOutcome(False, "\n".join(logs), tuple(warnings))
            return InstallOutcome(True, "\n".join(logs), tuple(warnings))

        try:
            return ensure_environment(
                spec, cache_dir=cache_dir(ctx), fresh=ctx.options.fresh_env,
                run_install=run_install,
            )  # fmt: skip
        except EnvironmentBuildError as exc:
            raise CheckFailed(
                f"the install commands failed in a fresh environment: {exc}",
                details=redact(exc.log[-4000:]),
            ) from None

    env: Environment = ctx.state.once(f"environment:{manifest.path}", build)
    return env


def placeholder_values(
    manifest: Manifest, repo: Path, outdir: Path | None, python: Path | None
) -> PlaceholderValues:
    return PlaceholderValues(
        weights=tuple(str(repo / w.path) for w in manifest.weights),
        outdir=None if outdir is None else str(outdir),
        repo=str(repo),
        python=None if python is None else str(python),
    )


def run_in_scratch(
    ctx: CheckContext,
    step: PipelineStep,
    *,
    python: Path,
    bin_dir: Path,
    repo: Path | None = None,
    replace: Mapping[str, Path] | None = None,
    network: bool = True,
    building_environment: bool = False,
    env_root: Path | None = None,
    uv: Path | None = None,
) -> StepRun:
    """Run one step in a scratch copy (a new one unless ``repo`` is given), sandboxed.

    The environment at ``bin_dir.parent`` is writable only with ``building_environment``
    (the install commands); every other step sees it read-only. ``env_root``: the environment's
    folder when it is not ``bin_dir.parent`` (a conda prefix inside it). Install steps also get
    the repository's download cache, read-write (see :func:`.environments.download_cache`), and
    with ``uv`` their pip install commands run as ``uv pip install`` (:mod:`.installers`).
    ``network=False`` or a step marked ``network: false`` runs with the network cut.
    Raises CheckFailed for a bad command or when the user's checkout changed.
    """
    manifest = ctx.manifest
    base = scratch_base(ctx.state, ctx.options)
    work = new_dir(base, step.label)
    if repo is None:
        repo = create_scratch_copy(
            manifest.root, work / "repo", replace=replace or {}, shipped=shipped_files(ctx)
        ).root
    outdir = work / "out"
    home = work / "home"
    tmp = work / "tmp"
    for folder in (outdir, home, tmp):
        folder.mkdir()
    values = placeholder_values(manifest, repo, outdir, python)
    try:
        argv = expand_command(step.command, values)
    except PlaceholderError as exc:
        raise CheckFailed(f"{step.label}: the command cannot be expanded: {exc}") from None
    if not argv:
        raise CheckFailed(f"{step.label}: the command is empty")
    env = scrubbed_environment(path_prefix=[bin_dir], home=home, tmpdir=tmp, extra=manifest.env)
    prefix = bin_dir.parent
    env_root = env_root or environment_root(bin_dir)
    if env_root != prefix:
        env["CONDA_PREFIX"] = str(prefix)  # conda and micromamba install into it
    else:
        env["VIRTUAL_ENV"] = str(env_root)
    limits = step_limits(manifest)
    environment = (env_root,)
    requested = list(argv)
    tools: tuple[Path, ...] = ()
    downloads: tuple[Path, ...] = ()
    if building_environment:
        downloads = (_install_caches(ctx, env, uv),)
        tools = _tool_paths(uv)
        if uv is not None:
            argv = uv_argv(argv, uv=uv, python=python, cwd=repo) or argv
    mounts = Mounts(
        read_only=python_installations(python)
        + (
            package_sources(env, GLOBAL_PIP_CONFIGS) + tools
            if building_environment
            else environment
        ),
        writable=(work, repo) + (environment + downloads if building_environment else ()),
    )
    confinement = Confinement(sandbox_backend(ctx), mounts, limits)
    outputs = _resolve_outputs(step, values, repo)
    produced_before = evidence.record(outputs)  # "not produced by this step" (issue 12)
    before = TreeSnapshot.take(manifest.root, skip=_USER_TREE_SKIP)
    try:
        with progress.step(step.label):
            result = run_command(
                argv,
                cwd=repo,
                env=env,
                timeout=limits.timeout(step.timeout),
                network=network and step.network,
                confinement=confinement,
            )
    except IsolationUnavailable as exc:
        reason = f"the network cannot be cut on this platform: {exc.reason}"
        raise CheckUnverifiable(reason) from None
    changes = diff(before, TreeSnapshot.take(manifest.root, skip=_USER_TREE_SKIP))
    if changes:
        raise CheckFailed(
            f"{step.label} changed the user's checkout, which must never be written: "
            + "; ".join(changes[:10]),
            fix="report this: the scratch copy should have isolated the command",
        )
    run = StepRun(step, argv, result, outdir, repo, outputs, requested_argv=requested)
    if result.returncode == 0:
        run.missing_outputs = [d for d, p in outputs.items() if not p.exists()]
    run.not_produced = evidence.not_produced(outputs, produced_before)
    return run


def _install_caches(ctx: CheckContext, env: dict[str, str], uv: Path | None) -> Path:
    """Point the install step's pip, uv and conda at the repository's download cache (made
    here) and return it: the only folder outside the step's own that it may write."""
    cache = download_cache(cache_dir(ctx), ctx.manifest.root)
    for name in ("pip", "uv", "conda-pkgs", "mamba"):
        folder = cache / name
        # An earlier install step of this repository could write here: a symlink or a file in
        # place of a folder is removed, never followed by the checker.
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            folder.unlink()
        folder.mkdir(exist_ok=True)
    env["PIP_CACHE_DIR"] = str(cache / "pip")
    env["CONDA_PKGS_DIRS"] = str(cache / "conda-pkgs")
    env["MAMBA_ROOT_PREFIX"] = str(cache / "mamba")
    env["CONDA_ALWAYS_YES"] = "true"
    if uv is not None:
        env.update(uv_environment(env, cache=cache / "uv"))
    return cache


def _tool_paths(uv: Path | None) -> tuple[Path, ...]:
    """The installers outside the system folders that an install step runs: uv's binary, and
    the conda tool's installation (its base prefix for conda and mamba)."""
    found: list[Path] = []
    if uv is not None:
        found.append(Path(os.path.realpath(uv)))
    tool = conda_tool()
    if tool is not None:
        real = Path(os.path.realpath(tool))
        found.append(real if real.name == "micromamba" else real.parent.parent)
    return tuple(p for p in found if not str(p).startswith(_SYSTEM_PREFIXES))


# Shown to every step already (backends._SYSTEM_PATHS).
_SYSTEM_PREFIXES = ("/usr/", "/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/etc/", "/opt/")


def _resolve_outputs(step: PipelineStep, values: PlaceholderValues, repo: Path) -> dict[str, Path]:
    """Each declared output -> its path (relative ones are inside the scratch copy)."""
    outputs = {}
    for declared in step.produces:
        try:
            path = Path(expand_path(declared, values))
        except PlaceholderError as exc:
            raise CheckFailed(f"{step.label}: `produces: {declared}`: {exc}") from None
        outputs[declared] = path if path.is_absolute() else repo / path
    return outputs


def environment_warnings(ctx: CheckContext) -> list[str]:
    """Why variables of the checker's environment are kept from every step (a credential in an
    allowed variable): the same for all steps, so CS202 says it once, built or reused."""
    dropped: list[str] = []
    scratch = Path(tempfile.gettempdir())
    scrubbed_environment(
        path_prefix=[], home=scratch, tmpdir=scratch, extra=ctx.manifest.env, warnings=dropped
    )
    return dropped


def shipped_files(ctx: CheckContext) -> ShippedTree | None:
    """What the repository ships (git-tracked files plus the files the manifest declares), or
    None to copy the whole working tree (not a git checkout, or --corrsource-working-tree)."""
    if ctx.options.working_tree:
        return None
    manifest = ctx.manifest

    def compute() -> ShippedTree | None:
        try:
            tree = shipped_tree(manifest.root)
        except GitListingError as exc:
            raise CheckFailed(
                f"what the repository ships cannot be listed: {exc}",
                fix="check the git checkout, or verify the working tree as it is with "
                "--corrsource-working-tree",
            ) from None
        if tree is None:
            return None
        files: list[str] = []
        folders: list[str] = []
        for entry in (*manifest.weights, *manifest.checkpoints):
            files.append(entry.path)
            parent = posixpath.dirname(entry.path)
            files += [posixpath.join(parent, name) for name in entry.shards]
            if entry.path.endswith(".index.json") and not entry.shards:
                folders.append(parent or ".")  # shards named only inside the index
        if manifest.data is not None:
            files += [source.path for source in manifest.data.sources if source.path]
        return tree.with_declared(files, [f for f in folders if f != "."])

    shipped: ShippedTree | None = ctx.state.once(f"shipped:{manifest.path}", compute)
    return shipped


def left_out_note(ctx: CheckContext) -> str | None:
    """A warning naming what the scratch copies left out (untracked or ignored), if anything."""
    shipped = shipped_files(ctx)
    if shipped is None or not shipped.left_out:
        return None
    shown = ", ".join(shipped.left_out[:10])
    more = f" and {len(shipped.left_out) - 10} more" if len(shipped.left_out) > 10 else ""
    return (
        f"the steps ran on what git tracks (and the declared weights and data); left out as "
        f"untracked or ignored: {shown}{more} (--corrsource-working-tree copies everything)"
    )


def run_step(ctx: CheckContext, step: PipelineStep) -> StepRun:
    """Run one step in a fresh scratch copy inside the isolated environment."""
    env = get_environment(ctx)
    return run_in_scratch(ctx, step, python=env.python, bin_dir=env.bin_dir)


@dataclass
class Pipeline:
    """The generate steps then the run, in one scratch copy, for one variant of the weights."""

    steps: list[StepRun]

    @property
    def failed_step(self) -> StepRun | None:
        return next((s for s in self.steps if not s.ok), None)

    def step(self, label: str) -> StepRun | None:
        return next((s for s in self.steps if s.step.label == label), None)


def run_pipeline(
    ctx: CheckContext,
    variant: str,
    *,
    replace: Mapping[str, Path] | None = None,
    network: bool = True,
) -> Pipeline:
    """Generate steps, then the run; stops at the first failing step. Memoised per variant."""
    manifest = ctx.manifest

    def compute() -> Pipeline:
        env = get_environment(ctx)
        base = scratch_base(ctx.state, ctx.options)
        repo = create_scratch_copy(
            manifest.root,
            new_dir(base, f"pipeline-{variant}") / "repo",
            replace=replace or {},
            shipped=shipped_files(ctx),
        ).root
        steps: list[StepRun] = []
        todo = [
            PipelineStep(f"generate[{i}]", g.command, g.timeout, g.produces, g.network)
            for i, g in enumerate(manifest.generate)
        ]
        if manifest.run is not None:
            cmd = manifest.run
            todo.append(
                PipelineStep("run", cmd.command, cmd.timeout, cmd.expect.files, cmd.network)
            )
        for step in todo:
            run = run_in_scratch(
                ctx, step, python=env.python, bin_dir=env.bin_dir, repo=repo, network=network
            )
            steps.append(run)
            if not run.ok:
                break
        return Pipeline(steps)

    pipeline: Pipeline = ctx.state.once(f"pipeline:{manifest.path}:{variant}", compute)
    return pipeline
