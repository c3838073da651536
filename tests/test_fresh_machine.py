"""The test suite runs as on a fresh machine (see conftest.py): a temporary cache per session,
nothing from the package index, no user cache touched, no process left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    RUNNABLE_FILES,
    RUNNABLE_MANIFEST,
    SESSION_ROOT_VARIABLE,
    STEP_MARKER_VARIABLE,
    RepoFactory,
    session_steps,
)

ROOT = Path(__file__).parents[1]


def test_the_session_uses_its_own_temporary_caches() -> None:
    root = Path(os.environ[SESSION_ROOT_VARIABLE])
    assert root.is_dir()
    assert Path(os.environ["CORRSOURCE_CACHE_DIR"]).parent == root
    assert Path(os.environ["XDG_CACHE_HOME"]).parent == root
    assert Path(os.environ["PIP_CACHE_DIR"]).parent == root
    assert os.environ["PIP_INDEX_URL"] == (root / "index" / "simple").as_uri()
    home_cache = Path.home() / ".cache"
    for name in ("CORRSOURCE_CACHE_DIR", "XDG_CACHE_HOME", "PIP_CACHE_DIR"):
        assert not Path(os.environ[name]).is_relative_to(home_cache)


def test_the_local_index_serves_the_test_venvs_own_wheels() -> None:
    root = Path(os.environ[SESSION_ROOT_VARIABLE])
    wheels = sorted(p.name for p in (root / "index" / "simple").glob("*/*.whl"))
    import numpy
    import safetensors

    assert wheels[0].startswith(f"numpy-{numpy.__version__}-")
    assert wheels[1].startswith(f"safetensors-{safetensors.__version__}-")
    assert (root / "index" / "simple" / "numpy" / "index.html").read_text().count(".whl") == 2


@pytest.mark.e2e
def test_a_check_builds_its_environment_in_the_session_cache(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """Also the inner test of the next one, which runs it with HOME in a temp folder."""
    repo = make_repo(RUNNABLE_MANIFEST, RUNNABLE_FILES)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--corresponding-source",
         f"{repo / 'corresponding-source.yaml'}::install", "-p", "no:cacheprovider", "-q"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    envs = Path(os.environ["CORRSOURCE_CACHE_DIR"]) / "envs"
    assert any(p.is_dir() for p in envs.iterdir())


@pytest.mark.e2e
def test_the_user_cache_is_never_touched(tmp_path: Path) -> None:
    """Run a test that builds an environment as a fresh user would: HOME empty, no cache
    variables. Nothing may appear under HOME/.cache, and the session folder is removed."""
    home = tmp_path / "home"
    home.mkdir()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (SESSION_ROOT_VARIABLE, "CORRSOURCE_CACHE_DIR", "XDG_CACHE_HOME")
        and not k.startswith(("PIP_", "PYTEST_"))
    }
    env.update(HOME=str(home), TMPDIR=str(tmp))
    node = f"{Path(__file__).name}::test_a_check_builds_its_environment_in_the_session_cache"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", node, "-p", "no:cacheprovider", "-p", "no:randomly",
         "-q"],
        capture_output=True, text=True, timeout=900, cwd=Path(__file__).parent, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "1 passed" in proc.stdout
    assert not (home / ".cache").exists(), sorted(p for p in home.rglob("*"))
    assert list(tmp.glob("corrsource-tests-*")) == []


@pytest.mark.e2e
def test_a_leftover_step_of_this_session_is_found(tmp_path: Path) -> None:
    root = Path(os.environ[SESSION_ROOT_VARIABLE])
    env = dict(os.environ)
    env[STEP_MARKER_VARIABLE] = "test-leftover"
    other = dict(env, PIP_INDEX_URL=(tmp_path / "simple").as_uri())  # another session's step
    ours = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=env)
    theirs = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=other)
    try:
        found = [pid for pid, _cmdline in session_steps(root)]
        assert ours.pid in found
        assert theirs.pid not in found
    finally:
        for proc in (ours, theirs):
            proc.kill()
            proc.wait(timeout=60)
    assert ours.pid not in [pid for pid, _cmdline in session_steps(root)]
