"""Shared fixtures: small real model repositories built in tmp folders.

A test session runs as on a fresh machine (``pytest_configure`` below, on the controller; xdist
workers and every subprocess inherit its environment):

* one temporary folder per session holds the environment cache (``CORRSOURCE_CACHE_DIR``), the
  XDG cache and pip's cache, shared by all xdist workers so identical install specs build once,
  and removed at the end: the user's ``~/.cache`` is never read or written;
* pip installs only from a local index (``PIP_INDEX_URL``) of wheels repacked from this test
  venv's own numpy and safetensors (what the bundled examples need): nothing is downloaded;
* at the end of the session no process started by a check of this session may survive.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import os
import shutil
import signal
import sys
import tempfile
import textwrap
import types
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from pytest_corrsource.checks.api import CheckContext, Options, RunState
from pytest_corrsource.hashing import DigestCache
from pytest_corrsource.manifest import load_manifest
from pytest_corrsource.plan import PlannedCheck, build_plan
from pytest_corrsource.results import CheckResult, run_planned
from pytest_corrsource.sandbox.backends import Backend, probe_backends

#: Set by the controller to its session folder; xdist workers and subprocess runs inherit it.
SESSION_ROOT_VARIABLE = "CORRSOURCE_TEST_SESSION_ROOT"
#: What the test environments may install: the test venv's own copies, repacked as wheels.
LOCAL_INDEX_PACKAGES = ("numpy", "safetensors", "setuptools")  # setuptools: `pip install .`
#: Every command a check starts carries this variable (pytest_corrsource's runner,
#: ``STEP_MARKER_VARIABLE``); hard-coded so this conftest does not depend on where it lives.
STEP_MARKER_VARIABLE = "PYTEST_CORRSOURCE_STEP"
_SESSION_VARIABLES = ("CORRSOURCE_CACHE_DIR", "XDG_CACHE_HOME", "PIP_CACHE_DIR", "PIP_INDEX_URL")


def repack_installed_wheel(name: str, wheelhouse: Path) -> Path:
    """Write the installed distribution ``name`` back into a wheel file in ``wheelhouse``.

    The files are the ones its RECORD lists (scripts outside site-packages and byte code are
    left out: pip regenerates both); the RECORD is rewritten with fresh digests, as pip checks.
    """
    dist = metadata.distribution(name)
    wheel_meta = dist.read_text("WHEEL") or ""
    tag = next(line.split(":", 1)[1].strip() for line in wheel_meta.splitlines()
               if line.startswith("Tag:"))  # fmt: skip
    stem = f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}"
    target = wheelhouse / f"{stem}-{tag}.whl"
    dist_info = f"{stem}.dist-info"
    skip = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    records: list[tuple[str, str, str]] = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as wheel:
        for file in dist.files or ():
            parts = file.parts
            if ".." in parts or "__pycache__" in parts or file.suffix == ".pyc":
                continue
            if parts[0].endswith(".dist-info"):
                if parts[-1] in skip:
                    continue
                arcname = "/".join((dist_info, *parts[1:]))
            else:
                arcname = "/".join(parts)
            data = Path(str(dist.locate_file(file))).read_bytes()
            wheel.writestr(arcname, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            records.append((arcname, f"sha256={digest.decode()}", str(len(data))))
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(
            [*records, (f"{dist_info}/RECORD", "", "")]
        )
        wheel.writestr(f"{dist_info}/RECORD", buffer.getvalue())
    return target


def build_local_index(root: Path, names: tuple[str, ...] = LOCAL_INDEX_PACKAGES) -> Path:
    """A PEP 503 "simple" index on disk serving the repacked wheels of ``names``.

    Self-contained (each wheel beside its project page): install steps run in the sandbox,
    which shows them the index folder a ``file://`` index URL names, and nothing around it."""
    simple = root / "simple"
    for name in names:
        project = simple / name.lower()
        project.mkdir(parents=True)
        wheel = repack_installed_wheel(name, project)
        link = f'<a href="{wheel.name}">{wheel.name}</a>'
        (project / "index.html").write_text(f"<!DOCTYPE html><html><body>{link}</body></html>\n")
    (simple / "index.html").write_text(
        "<!DOCTYPE html><html><body>"
        + "".join(f'<a href="{n.lower()}/">{n}</a>' for n in names)
        + "</body></html>\n"
    )
    return simple


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: it inherited the controller's setup
        return
    root = Path(tempfile.mkdtemp(prefix="corrsource-tests-")).resolve()
    config.stash[_session_root_key] = root
    simple = build_local_index(root / "index")
    os.environ[SESSION_ROOT_VARIABLE] = str(root)
    os.environ["CORRSOURCE_CACHE_DIR"] = str(root / "corrsource-cache")
    os.environ["XDG_CACHE_HOME"] = str(root / "xdg-cache")
    os.environ["PIP_CACHE_DIR"] = str(root / "pip-cache")
    # Passed on to install commands (runner.scrubbed_environment keeps PIP_INDEX_URL); it also
    # names this session in every step's environment, for the survivor scan below.
    os.environ["PIP_INDEX_URL"] = simple.as_uri()


_session_root_key = pytest.StashKey[Path]()


def session_steps(root: Path, proc: Path = Path("/proc")) -> list[tuple[int, str]]:
    """(pid, command line) of every live process started by a check of the session at ``root``:
    it carries the step marker and this session's index URL in its environment."""
    found: list[tuple[int, str]] = []
    ours = f"PIP_INDEX_URL={(root / 'index' / 'simple').as_uri()}".encode()
    marker = f"{STEP_MARKER_VARIABLE}=".encode()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            variables = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if ours in variables and any(v.startswith(marker) for v in variables):
            found.append((int(entry.name), cmdline.strip()))
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    root = session.config.stash.get(_session_root_key, None)
    if root is None or not Path("/proc/self/environ").exists():
        return
    survivors = session_steps(root)
    if not survivors:
        return
    for pid, _cmdline in survivors:
        # Ours by the session's own index URL in their environment; a leak is reported, and
        # the process is not left running.
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"  pid {pid}: {cmdline}" for pid, cmdline in survivors]
    message = "processes started by checks of this session survived it:\n" + "\n".join(lines)
    if reporter is not None:
        reporter.write_sep("=", "leftover processes", red=True)
        reporter.write_line(message)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    root = config.stash.get(_session_root_key, None)
    if root is None:
        return
    for name in (SESSION_ROOT_VARIABLE, *_SESSION_VARIABLES):
        os.environ.pop(name, None)
    shutil.rmtree(root, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # `slow` was this marker's name: a test marked so on another branch is still end to end.
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _scrub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    kept = (SESSION_ROOT_VARIABLE, *_SESSION_VARIABLES)
    session = {name: os.environ[name] for name in kept if name in os.environ}
    for name in list(os.environ):
        if name.startswith(("GITHUB_", "CORRSOURCE_")) or name == "CI":
            monkeypatch.delenv(name, raising=False)
    for name, value in session.items():
        monkeypatch.setenv(name, value)


@dataclass(frozen=True)
class StandInTorch:
    """What :func:`stand_in_torch` installed: the objects torch.save pickles by reference."""

    rebuild_tensor_v2: Callable[..., None]
    float_storage: type


def stand_in_torch(monkeypatch: pytest.MonkeyPatch) -> StandInTorch:
    """Install modules named ``torch`` and ``torch._utils`` holding only what a torch.save
    pickle names (``_rebuild_tensor_v2``, ``FloatStorage``), for as long as ``monkeypatch``
    lasts: torch is not in the test extra, and pickle only writes references to objects that
    can be imported from where they claim to live. Nothing here is ever called."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args: object) -> None:  # pragma: no cover - never called
        raise AssertionError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    float_storage = type("FloatStorage", (), {"__module__": "torch"})
    torch.FloatStorage = float_storage  # type: ignore[attr-defined]
    torch._utils = utils  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return StandInTorch(_rebuild_tensor_v2, float_storage)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_weights(path: Path, seed: int = 0) -> Path:
    """A small real safetensors file with float and integer tensors."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        {
            "layer.weight": rng.standard_normal((4, 3)).astype(np.float32),
            "layer.bias": rng.standard_normal(3).astype(np.float32),
            "position_ids": np.arange(4, dtype=np.int64),
        },
        str(path),
    )
    return path


# A model "run" script that needs only the standard library: it reads the safetensors header
# and data of the weights it is given and prints a digest of the float bytes, so its output
# depends on the weights' values exactly as a real model's would.
RUN_SCRIPT = textwrap.dedent(
    """
    import argparse, hashlib, json, struct, sys
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", required=True)
    args = parser.parse_args()
    with open(args.weights, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    digest = hashlib.sha256()
    for name, info in sorted(header.items()):
        if name != "__metadata__" and info["dtype"].startswith("F"):
            begin, end = info["data_offsets"]
            digest.update(data[begin:end])
    print("model output:", digest.hexdigest()[:16])
    """
)

RepoFactory = Callable[..., Path]


@pytest.fixture
def make_repo(tmp_path: Path) -> RepoFactory:
    """Build a model repository: ``make_repo(manifest_yaml, files={path: text})``.

    ``weights/model.safetensors`` is always written; ``{sha}`` in the manifest text is replaced
    by its digest. ``files`` values may be str (text) or bytes.
    """

    def make(
        manifest: str, files: dict[str, str | bytes] | None = None, name: str = "repo"
    ) -> Path:
        root = tmp_path / name
        root.mkdir()
        weights = write_weights(root / "weights" / "model.safetensors")
        for rel, content in (files or {}).items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        text = textwrap.dedent(manifest).replace("{sha}", sha256(weights))
        (root / "corresponding-source.yaml").write_text(text)
        return root

    return make


MINIMAL_MANIFEST = """\
version: 1
name: tiny
licenses: {distribution: MIT}
weights:
  - path: weights/model.safetensors
    sha256: {sha}
"""

# A complete, runnable repository that needs nothing from PyPI.
RUNNABLE_MANIFEST = """\
version: 1
name: tiny
licenses: {distribution: MIT, weights: CC-BY-4.0}
weights:
  - path: weights/model.safetensors
    sha256: {sha}
architecture: [run.py]
install:
  requirements: [requirements.txt]
  commands:
    - python -c "print('installed')"
run:
  command: python run.py --weights {weights}
  timeout: 60
  expect:
    stdout: "model output: [0-9a-f]+"
"""

RUNNABLE_FILES: dict[str, str | bytes] = {
    "run.py": RUN_SCRIPT,
    "requirements.txt": "# the run needs only the standard library\n",
    "LICENSE": "MIT License\n",
    "README.md": "---\nlicense: cc-by-4.0\n---\n# tiny\n",
}


class PlannedChecks:
    """The planned checks of the repository at ``root``, run one by one as a pytest session runs
    its items (``collect.CheckItem.runtest``) but without pytest's plugin machinery.

    One plan and one :class:`RunState` serve every check, so a prerequisite (or a built
    environment, or a run) is done once, as in a session; each check runs at ``options.level``.
    ``PlannedChecks(root)("CS101", "weights/model.safetensors")`` is that check's result.
    """

    def __init__(self, root: Path, options: Options | None = None) -> None:
        self.root = root
        self.manifest = load_manifest(root / "corresponding-source.yaml")
        self.plan = build_plan(self.manifest)
        self.options = options or Options()
        self.state = RunState()

    def find(
        self, check_id: str, subject: str | None = None, component: str | None = None
    ) -> PlannedCheck:
        """The one planned check with this id (and this subject and component, where given)."""
        found = [
            p
            for p in self.plan
            if p.spec.id == check_id
            and subject in (None, p.subject)
            and component in (None, p.component)
        ]
        assert len(found) == 1, f"{check_id} {subject!r} planned {len(found)} times: {found}"
        return found[0]

    def _context(self, planned: PlannedCheck) -> CheckContext:
        # A fresh digest cache for each check: tests rewrite files between checks, and a
        # cache keyed by file identity may miss a same-size rewrite within one mtime tick.
        return CheckContext(
            self.manifest, planned.spec.id, planned.subject, self.options, DigestCache(),
            self.state, planned.component,
        )  # fmt: skip

    def context(
        self, check_id: str, subject: str | None = None, component: str | None = None
    ) -> CheckContext:
        """What the check ``check_id`` is given (to call a step function as it would)."""
        return self._context(self.find(check_id, subject, component))

    def run_planned(self, planned: PlannedCheck) -> CheckResult:
        return run_planned(planned, self._context(planned), self.options.level)

    def __call__(
        self, check_id: str, subject: str | None = None, *, component: str | None = None
    ) -> CheckResult:
        return self.run_planned(self.find(check_id, subject, component))

    def run_all(self) -> dict[str, CheckResult]:
        """Every planned check in plan order, keyed by ``PlannedCheck.key``."""
        return {planned.key: self.run_planned(planned) for planned in self.plan}


# Read at import: the autouse fixture above removes CI from each test's environment.
IN_CI = os.environ.get("CI") == "true"


def require_bwrap() -> Backend:
    """The working bubblewrap backend; without one a sandbox test skips, and under CI=true it
    fails (CI must exercise the sandbox, never pass by skipping it)."""
    best = probe_backends()[0]
    if best.name != "bwrap":
        message = "no bubblewrap can run here: " + "; ".join(best.notes)
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return best
