"""What the fixtures and markers do, for test suites that join in.

Stage: a second front end to the same machinery the manifest checks use (manifest, formats,
environments, runner). Imported only when a test asks for one of the fixtures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_corrsource.checks.api import CheckContext, CheckFailed, CheckSkipped, Options, RunState
from pytest_corrsource.hashing import DigestCache
from pytest_corrsource.manifest import Manifest, ManifestError, load_manifest

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from pytest_corrsource.sandbox.steps import StepRun
    from pytest_corrsource.verification import Verification


@dataclass
class Corrsource:
    """The ``corrsource`` fixture: the parsed manifest and where the repository is."""

    manifest: Manifest
    options: Options
    state: RunState = field(default_factory=RunState)
    digests: DigestCache = field(default_factory=DigestCache)

    @property
    def root(self) -> Path:
        return self.manifest.root

    def context(self, check_id: str = "fixture", subject: str = "") -> CheckContext:
        return CheckContext(
            self.manifest, check_id, subject, self.options, self.digests, self.state
        )


def corrsource_for(config: pytest.Config, session: Verification | None) -> Corrsource:
    """``session``: the enabled plugin object, or None without ``--corresponding-source``."""
    from pytest_corrsource.settings import resolve_level, resolve_manifests

    if session is not None:
        path, options, state = session.manifests[0], session.options, session.state
    else:
        path = _nearest_manifest(config) or resolve_manifests(config)[0]
        options, state = Options(level=resolve_level(config)), RunState()
    if not path.is_file():
        pytest.fail(f"corrsource fixture: no manifest at {path}", pytrace=False)
    try:
        manifest = load_manifest(path)
    except ManifestError as exc:
        pytest.fail(str(exc), pytrace=False)
    return Corrsource(manifest, options, state)


def _nearest_manifest(config: pytest.Config) -> Path | None:
    """The manifest in or above the first argument's folder: a model repository's own tests
    (``pytest path/to/repo/tests``) find their repository's manifest."""
    from pytest_corrsource.manifest import MANIFEST_NAME
    from pytest_corrsource.settings import arg_paths

    for arg in arg_paths(config):
        folder = arg if arg.is_dir() else arg.parent
        for candidate in (folder, *folder.parents):
            if (candidate / MANIFEST_NAME).is_file():
                return candidate / MANIFEST_NAME
            if candidate == config.rootpath:
                break
    return None


class Weights(Mapping[str, "NDArray[Any]"]):
    """Read-only mapping of tensor name -> numpy array; tensors are read on first access."""

    def __init__(
        self, path: Path, names: Sequence[str], load: Callable[[str], NDArray[Any]]
    ) -> None:
        self.path = path
        self._names = list(names)
        self._load = load
        self._cache: dict[str, NDArray[Any]] = {}

    def __getitem__(self, name: str) -> NDArray[Any]:
        if name not in self._cache:
            if name not in self._names:
                raise KeyError(f"{name!r} is not a tensor of {self.path.name}")
            array = self._load(name)
            array.setflags(write=False)
            self._cache[name] = array
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"<Weights {self.path.name}: {len(self)} tensors>"


def open_weights(path: Path, root: Path) -> Weights:
    """Validate the file (never loading code), then give lazy access to the tensors, read by
    :mod:`pytest_corrsource.formats.tensors` (so every format the checks read works here)."""
    from pytest_corrsource.formats import FormatError
    from pytest_corrsource.formats.tensors import UnreadableTensors, open_tensors

    try:
        tensors = open_tensors(path, root)
    except UnreadableTensors as exc:
        raise CheckFailed(f"{path}: {exc}") from None
    except (FormatError, OSError) as exc:
        raise CheckFailed(f"{path}: invalid weights: {exc}") from None
    return Weights(path, list(tensors.entries), tensors.values)


def model_weights_for(request: pytest.FixtureRequest, cs: Corrsource) -> Weights:
    marker = request.node.get_closest_marker("requires_weights")
    if marker is not None:
        if not marker.args:
            pytest.fail("@pytest.mark.requires_weights needs a path", pytrace=False)
        path = cs.root / str(marker.args[0])
    else:  # a valid manifest declares at least one weights file
        path = cs.root / cs.manifest.weights[0].path
    if not path.is_file():
        pytest.fail(f"model_weights: {path.relative_to(cs.root)} does not exist", pytrace=False)
    try:
        return open_weights(path, cs.root)
    except CheckFailed as exc:
        pytest.fail(f"model_weights: {exc.message}", pytrace=False)


@dataclass
class IsolatedEnvironment:
    """The ``corrsource_env`` fixture: the manifest's isolated environment."""

    python: Path
    bin_dir: Path
    root: Path
    _cs: Corrsource

    def run(self, command: str, *, timeout: float = 600.0) -> RunOutput:
        """Run ``command`` (placeholders allowed) in a scratch copy inside this environment."""
        from pytest_corrsource.sandbox.steps import PipelineStep, run_in_scratch

        try:
            step = run_in_scratch(
                self._cs.context(),
                PipelineStep("command", command, timeout),
                python=self.python,
                bin_dir=self.bin_dir,
            )
        except CheckFailed as exc:
            pytest.fail(exc.message, pytrace=False)
        return RunOutput.of(step)


def _unwrap(cs: Corrsource, what: Callable[[], Any]) -> Any:
    try:
        return what()
    except CheckSkipped as exc:
        pytest.skip(str(exc))
    except CheckFailed as exc:
        pytest.fail(f"{exc.message}\n{exc.details}".rstrip(), pytrace=False)


def environment_for(cs: Corrsource) -> IsolatedEnvironment:
    from pytest_corrsource.sandbox.steps import get_environment

    env = _unwrap(cs, lambda: get_environment(cs.context("CS202")))
    return IsolatedEnvironment(env.python, env.bin_dir, env.root, cs)


@dataclass
class RunOutput:
    exit_code: int | None
    stdout: str
    stderr: str
    files: dict[str, Path]
    timed_out: bool = False

    @classmethod
    def of(cls, step: StepRun) -> RunOutput:
        return cls(
            exit_code=step.result.returncode,
            stdout=step.result.stdout,
            stderr=step.result.stderr,
            files={k: v for k, v in step.outputs.items() if v.exists()},
            timed_out=step.result.timed_out,
        )


def run_model_for(
    cs: Corrsource, env: IsolatedEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., RunOutput]:
    from pytest_corrsource.sandbox.steps import PipelineStep, run_in_scratch

    run = cs.manifest.run
    if run is None:
        pytest.fail("run_model: the manifest declares no `run`", pytrace=False)

    def run_model(
        weights: Path | str | None = None,
        extra_args: Sequence[str] = (),
        timeout: float | None = None,
    ) -> RunOutput:
        import shlex

        replace = {}
        if weights is not None:
            replace[cs.manifest.weights[0].path] = Path(weights).resolve()
        command = run.command + "".join(" " + shlex.quote(a) for a in extra_args)
        step = PipelineStep("run", command, timeout or run.timeout, run.expect.files, run.network)
        return RunOutput.of(
            _unwrap(
                cs,
                lambda: run_in_scratch(
                    cs.context("CS402"),
                    step,
                    python=env.python,
                    bin_dir=env.bin_dir,
                    replace=replace,
                ),
            )
        )

    return run_model


def modified_weights_for(cs: Corrsource, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pytest_corrsource.perturb import PerturbUnsupported, perturb_weights

    if not cs.manifest.weights:
        pytest.fail("modified_weights: the manifest declares no weights", pytrace=False)
    entry = cs.manifest.weights[0]
    dst = tmp_path_factory.mktemp("modified-weights") / Path(entry.path).name
    try:
        perturb_weights(cs.root / entry.path, dst)
    except PerturbUnsupported as exc:
        pytest.skip(f"modified_weights: {exc}")
    return dst


def regenerated_weights_for(cs: Corrsource) -> Path:
    from pytest_corrsource.checks.training import training_run

    if cs.manifest.training is None:
        pytest.skip("regenerated_weights: the manifest declares no `training`")

    def train() -> Path:
        run = training_run(cs.context("CS602"))
        run.require_success("the training command")
        (path,) = run.outputs.values()
        return path

    path: Path = _unwrap(cs, train)
    return path


def apply_training_markers(item: pytest.Item, session: Verification | None) -> None:
    """Skip (or, when the level requires them, fail) tests whose training parts are missing."""
    cs = corrsource_for(item.config, session)
    required = cs.options.level == "open-source-ai"
    training = cs.manifest.training
    data = cs.manifest.data
    missing = []
    if item.get_closest_marker("training_code") and (training is None or not training.code):
        missing.append("training code (`training.code`)")
    if item.get_closest_marker("training_data") and (data is None or not data.sources):
        missing.append("training data (`data.sources`)")
    if not missing:
        return
    message = f"the manifest declares no {' and no '.join(missing)}"
    if required:
        pytest.fail(f"{message}; required at level open-source-ai (OSAID 1.0)", pytrace=False)
    pytest.skip(message)
