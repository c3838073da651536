"""Hostile repositories against the sandbox: every escape of issue 10 that the sandbox owns.

Each test writes the attack as the repository's own script would, runs it through the checks
(so through :func:`pytest_corrsource.sandbox.steps.run_in_scratch` and bubblewrap), and then
checks the canary on the host: the secret not seen, the file not written, the process gone.
Under ``CI=true`` these tests fail, never skip, when no bubblewrap can run.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RUNNABLE_FILES, RUNNABLE_MANIFEST, PlannedChecks, RepoFactory, require_bwrap

from pytest_corrsource.checks.api import Options
from pytest_corrsource.sandbox.backends import Backend
from pytest_corrsource.sandbox.steps import StepRun, get_environment, run_pipeline
from pytest_corrsource.vocabulary import Level

LEVEL: Level = "corresponding-source"
OUTPUT = 'print("model output: 00")\n'

pytestmark = pytest.mark.e2e  # every attack runs as a step in the sandbox


@pytest.fixture(scope="module", autouse=True)
def bwrap() -> Backend:
    """The bubblewrap backend; a skip here, a failure under CI=true."""
    return require_bwrap()


class Checks(PlannedChecks):
    """The repository's checks with the sandbox mode ``sandbox``; :meth:`run` is its run step."""

    def __init__(self, root: Path, *, sandbox: str = "auto") -> None:
        super().__init__(root, Options(level=LEVEL, sandbox=sandbox))

    def run(self, variant: str = "released", *, network: bool = True) -> StepRun:
        step = run_pipeline(self.context("CS402"), variant, network=network).step("run")
        assert step is not None
        return step


def hostile(make_repo: RepoFactory, script: str, *, manifest: str = "", **files: str) -> Path:
    """The runnable repository whose run.py is *script*; *manifest* is appended."""
    return make_repo(
        RUNNABLE_MANIFEST + manifest,
        {**RUNNABLE_FILES, "run.py": textwrap.dedent(script), **files},
    )


def tree_state(root: Path) -> dict[str, str]:
    """Digest of every file and the list of every folder, ``.git/`` and caches included."""
    state: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        state[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return state


def with_git_and_cache(root: Path) -> None:
    hooks = root / ".git" / "hooks"
    hooks.mkdir(parents=True)
    (hooks / "pre-commit.sample").write_text("#!/bin/sh\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "run.cpython-311.pyc").write_bytes(b"\x00" * 16)


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            status = (entry / "stat").read_text()
            if status[status.rfind(")") + 2 :].startswith("Z"):
                continue
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


# ------------------------------------------------------------------- /proc/*/environ


def test_no_process_visible_to_a_step_exposes_the_checkers_environment(
    make_repo: RepoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    monkeypatch.setenv("CORRSOURCE_TEST_API_TOKEN", canary)
    monkeypatch.setenv("LANG", "C.UTF-8")  # an allowed variable still reaches the step
    script = """
        import os
        dump = []
        pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        for pid in pids + [os.getppid()]:
            try:
                dump.append(open(f"/proc/{pid}/environ", "rb").read())
            except OSError:
                pass
        print("PIDS", pids)
        print("ENV", b"|".join(dump))
    """
    root = hostile(make_repo, textwrap.dedent(script) + OUTPUT)
    checks = Checks(root)
    for step in (checks.run(), checks.run("offline", network=False)):
        assert step.result.ok, step.describe()
        assert canary not in step.result.stdout
        assert "LANG=C.UTF-8" in step.result.stdout  # the dump did read environments
        pids_line = next(ln for ln in step.result.stdout.splitlines() if ln.startswith("PIDS"))
        # Its own pid namespace: bwrap's init, the step and perhaps prlimit; no host process.
        assert max(eval(pids_line[5:])) < 10, pids_line


# ----------------------------------------------- the checkout, real home and temp dir


def test_the_checkout_the_real_home_and_temp_dir_are_invisible_to_a_step(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host secret")
    tag = uuid.uuid4().hex
    home_canary = Path.home() / f"corrsource-canary-{tag}"
    tmp_canary = Path("/tmp") / f"corrsource-canary-{tag}"
    script = f"""
        import os
        ROOT = {{root!r}}
        for target in ({str(home_canary)!r}, {str(tmp_canary)!r}):
            try:  # may succeed: inside, these are the sandbox's own throw-away folders
                open(target, "w").write("canary")
            except OSError:
                pass
        targets = [
            ROOT + "/.git/hooks/pre-commit",
            ROOT + "/__pycache__/run.cpython-311.pyc",
            ROOT + "/dropped.txt",
        ]
        for target in targets:
            try:
                with open(target, "w") as f:
                    f.write("#!/bin/sh\\necho pwned\\n")
                print("WROTE", target)
            except OSError as exc:
                print("BLOCKED", target, exc.strerror)
        for target in (ROOT + "/run.py", {str(secret)!r}):
            try:
                print("READ", target, open(target).read()[:20])
            except OSError as exc:
                print("BLOCKED", target, exc.strerror)
    """
    root = make_repo(RUNNABLE_MANIFEST, {**RUNNABLE_FILES})
    (root / "run.py").write_text(textwrap.dedent(script.format(root=str(root))) + OUTPUT)
    with_git_and_cache(root)
    before = tree_state(root)
    try:
        step = Checks(root).run()
        assert step.result.ok, step.describe()
        out = step.result.stdout
        assert "WROTE" not in out, out
        assert "READ" not in out, out
        assert out.count("BLOCKED") == 5
        assert tree_state(root) == before
        assert not home_canary.exists()
        assert not tmp_canary.exists()
    finally:
        home_canary.unlink(missing_ok=True)
        tmp_canary.unlink(missing_ok=True)


def test_the_snapshot_still_catches_a_write_to_git_hooks_without_the_sandbox(
    make_repo: RepoFactory,
) -> None:
    """Defence in depth: with --corrsource-sandbox=none the checkout is writable, and the
    snapshot (``.git/`` included) names the changed file."""
    root = make_repo(RUNNABLE_MANIFEST, {**RUNNABLE_FILES})
    with_git_and_cache(root)
    script = f"""
        open({str(root / ".git" / "hooks" / "post-checkout")!r}, "w").write("echo pwned")
    """
    (root / "run.py").write_text(textwrap.dedent(script) + OUTPUT)
    result = Checks(root, sandbox="none")("CS402")
    assert result.outcome == "failed"
    assert "run changed the user's checkout, which must never be written" in result.message
    assert "added: .git/hooks/post-checkout" in result.message
    (root / ".git" / "hooks" / "post-checkout").unlink()


def test_the_snapshot_catches_a_poisoned_pyc_without_the_sandbox(make_repo: RepoFactory) -> None:
    root = make_repo(RUNNABLE_MANIFEST, {**RUNNABLE_FILES})
    with_git_and_cache(root)
    pyc = root / "__pycache__" / "run.cpython-311.pyc"
    (root / "run.py").write_text(f"open({str(pyc)!r}, 'ab').write(b'poison')\n" + OUTPUT)
    result = Checks(root, sandbox="none")("CS402")
    assert result.outcome == "failed"
    assert "modified: __pycache__/run.cpython-311.pyc (size 16 → 22" in result.message


# ------------------------------------------------------------- the cached environment


SITE = "import sysconfig; site = sysconfig.get_paths()['purelib']\n"


def test_the_environment_is_writable_while_built_then_sealed(make_repo: RepoFactory) -> None:
    install = (
        "python -c \"import sysconfig, pathlib; pathlib.Path(sysconfig.get_paths()['purelib'],"
        " 'built-by-install.txt').write_text('ok')\""
    )
    script = (
        SITE
        + textwrap.dedent(
            """
            import os
            print("INSTALLED", os.path.exists(os.path.join(site, "built-by-install.txt")))
            try:
                with open(os.path.join(site, "zz-evil.pth"), "w") as f:
                    f.write("import os; os.system('echo pwned')\\n")
                print("WROTE .pth")
            except OSError as exc:
                print("BLOCKED", exc.strerror)
            """
        )
        + OUTPUT
    )
    root = make_repo(
        RUNNABLE_MANIFEST.replace("""python -c "print('installed')\"""", install),
        {**RUNNABLE_FILES, "run.py": script},
    )
    checks = Checks(root)
    env = get_environment(checks.context("CS202"))
    step = checks.run()
    assert "INSTALLED True" in step.result.stdout
    assert "BLOCKED Read-only file system" in step.result.stdout
    assert "WROTE" not in step.result.stdout
    assert not list(env.root.rglob("zz-evil.pth"))


# --------------------------------------------------------------------- outliving pytest


def test_a_double_forked_setsid_daemon_with_an_empty_environment_does_not_survive(
    make_repo: RepoFactory,
) -> None:
    marker = f"corrsource-daemon-{uuid.uuid4().hex}"
    root = make_repo(RUNNABLE_MANIFEST, {**RUNNABLE_FILES})
    late = root / "late.txt"
    daemon = (
        f"import time; time.sleep(1.5); open({str(late)!r}, 'w').write('late'); "
        f"open('late.txt', 'w').write('late')  # {marker}"
    )
    script = f"""
        import os, sys
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execve(sys.executable, [sys.executable, "-c", {daemon!r}], {{}})
            os._exit(0)
        os.wait()
        print("model output: 00")
    """
    (root / "run.py").write_text(textwrap.dedent(script))
    before = tree_state(root)
    result = Checks(root)("CS402")
    assert result.outcome == "passed", result.message
    assert processes_with(marker) == []
    time.sleep(2.0)  # the daemon's write would have happened by now
    assert processes_with(marker) == []
    assert not late.exists()
    assert tree_state(root) == before


# ----------------------------------------------------------------------- network


@pytest.fixture
def unix_hub(tmp_path: Path) -> Iterator[tuple[str, list[bytes]]]:
    """A path-based and an abstract Unix socket on the host, recording who connects."""
    path = str(tmp_path / "hub.sock")
    abstract = f"\0corrsource-hub-{uuid.uuid4().hex}"
    servers = []
    seen: list[bytes] = []
    for address in (path, abstract):
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(address)
        server.listen(4)
        server.settimeout(0.2)
        servers.append(server)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            for server in servers:
                with contextlib.suppress(OSError):
                    conn, _ = server.accept()
                    seen.append(conn.recv(64))
                    conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield path + "|" + abstract[1:], seen
    finally:
        stop.set()
        thread.join(timeout=5)
        for server in servers:
            server.close()


def test_the_network_cut_run_cannot_reach_host_unix_sockets(
    make_repo: RepoFactory, unix_hub: tuple[str, list[bytes]]
) -> None:
    addresses, seen = unix_hub
    path, abstract = addresses.split("|")
    script = f"""
        import socket
        for address in ({path!r}, "\\0" + {abstract!r}):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(address)
                s.sendall(b"escaped")
                print("CONNECTED", repr(address))
            except OSError as exc:
                print("BLOCKED", exc.strerror)
        print("model output: 00")
    """
    root = hostile(make_repo, script)
    step = Checks(root).run("offline", network=False)
    assert step.result.ok, step.describe()
    assert "CONNECTED" not in step.result.stdout
    assert step.result.stdout.count("BLOCKED") == 2
    time.sleep(0.5)
    assert seen == []


LOOPBACK_MODEL = """
    import socket, threading
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    def answer():
        conn, _ = server.accept()
        conn.sendall(b"00")
        conn.close()
    threading.Thread(target=answer, daemon=True).start()
    reply = socket.create_connection(("127.0.0.1", port), timeout=5).recv(2).decode()
    print("model output: " + reply)
"""


def test_cs404_passes_a_model_that_talks_to_itself_over_localhost(
    make_repo: RepoFactory,
) -> None:
    checks = Checks(hostile(make_repo, LOOPBACK_MODEL))
    assert checks("CS402").outcome == "passed"
    result = checks("CS404")
    assert result.outcome == "passed", result.message
    assert "bubblewrap sandbox with its own network namespace" in result.message


@pytest.fixture
def host_port() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0), backlog=16)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def _generate_reaching(port: int, network_key: str) -> str:
    return (
        RUNNABLE_MANIFEST
        + "generate:\n"
        + f"  - command: python fetch.py {port}\n"
        + "    produces: [fetched.txt]\n"
        + network_key
    )


FETCH = """
import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5).close()
open("fetched.txt", "w").write("ok")
"""


def test_a_step_marked_network_false_runs_with_the_network_cut(
    make_repo: RepoFactory, host_port: int
) -> None:
    cut = make_repo(
        _generate_reaching(host_port, "    network: false\n"),
        {**RUNNABLE_FILES, "fetch.py": FETCH},
    )
    result = Checks(cut)("CS301", "0")
    assert result.outcome == "failed"
    assert "generate[0] failed: exit code 1" in result.message


def test_a_step_with_the_network_reaches_the_host(make_repo: RepoFactory, host_port: int) -> None:
    online = make_repo(_generate_reaching(host_port, ""), {**RUNNABLE_FILES, "fetch.py": FETCH})
    result = Checks(online)("CS301", "0")
    assert result.outcome == "passed", result.message


# ------------------------------------------------------------------------ limits


FORK_BOMB = """
    import os, sys, time
    children = 0
    try:
        while True:
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            children += 1
    except OSError as exc:
        print(f"fork refused after {children}: {exc}", file=sys.stderr)
    print("model output: 00")
"""


def test_a_fork_bomb_is_bounded_and_fails_naming_the_limit(make_repo: RepoFactory) -> None:
    marker_free = hostile(make_repo, FORK_BOMB, manifest="limits:\n  processes: 64\n")
    result = Checks(marker_free)("CS402")
    assert result.outcome == "failed"
    assert "exceeded the sandbox limit `processes` (64 processes and threads)" in result.message
    assert "raise it under the manifest's `limits:`" in result.message


def test_a_memory_bomb_fails_naming_the_limit(make_repo: RepoFactory) -> None:
    script = "data = bytearray(1 << 30)\n" + OUTPUT
    root = hostile(make_repo, script, manifest="limits:\n  memory: 256MiB\n")
    result = Checks(root)("CS402")
    assert result.outcome == "failed"
    assert "exceeded the sandbox limit `memory` (256 MiB per process)" in result.message


def test_a_write_bomb_fails_naming_the_limit(make_repo: RepoFactory) -> None:
    script = """
        with open("big.bin", "wb") as f:
            for _ in range(64):
                f.write(b"\\0" * (1 << 20))
    """
    root = hostile(
        make_repo, textwrap.dedent(script) + OUTPUT, manifest="limits:\n  file-size: 4MiB\n"
    )
    result = Checks(root)("CS402")
    assert result.outcome == "failed"
    assert "exceeded the sandbox limit `file-size` (4 MiB per file)" in result.message
    assert "File too large" in result.message


def test_limits_wall_time_caps_a_step(make_repo: RepoFactory) -> None:
    root = hostile(make_repo, "import time; time.sleep(30)\n", manifest="limits:\n  wall-time: 1\n")
    result = Checks(root)("CS402")
    assert result.outcome == "failed"
    assert "timed out after 1 s; the whole process tree was killed" in result.message


def test_a_step_within_its_limits_passes(make_repo: RepoFactory) -> None:
    script = """
        import os
        for _ in range(8):
            if os.fork() == 0:
                os._exit(0)
            os.wait()
        data = bytearray(16 << 20)
        open("ok.bin", "wb").write(b"\\0" * (1 << 20))
    """
    manifest = "limits:\n  processes: 64\n  memory: 256MiB\n  file-size: 4MiB\n"
    result = Checks(hostile(make_repo, textwrap.dedent(script) + OUTPUT, manifest=manifest))(
        "CS402"
    )
    assert result.outcome == "passed", result.message


def test_an_unusable_limit_fails_with_its_reason(make_repo: RepoFactory) -> None:
    root = hostile(make_repo, OUTPUT, manifest="limits:\n  memory: 0MiB\n")
    checks = Checks(root)
    # The first step under the limits is the install: CS202 fails with the reason, and the
    # run, which needs the environment, is blocked by it (never a second failure).
    install = checks("CS202")
    assert install.outcome == "failed"
    assert "`limits:` '0MiB' is not a positive size" in install.message
    result = checks("CS402")
    assert result.outcome == "skipped"
    assert result.data["blocked_by"] == "CS202"
    assert "`limits:` '0MiB' is not a positive size" in result.message


# ------------------------------------------------------------ the partial-isolation fallback


def _only_unshare(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a machine where bubblewrap is denied and `unshare --net` works (else a skip)."""
    from pytest_corrsource.sandbox import backends
    from pytest_corrsource.sandbox.process import network_isolation

    available, reason = network_isolation()
    if not available:
        pytest.skip(f"unshare --net does not work here either: {reason}")
    unshare = Backend("unshare", "/usr/bin/unshare", "unshare --net", ("bwrap: denied",))
    found = (unshare, Backend("none"))
    monkeypatch.setattr(backends, "probe_backends", lambda path=None, use_wheel=True: found)


def test_without_bubblewrap_cs404_falls_back_to_unshare_and_says_partial(
    make_repo: RepoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    _only_unshare(monkeypatch)
    checks = Checks(hostile(make_repo, LOOPBACK_MODEL.replace("127.0.0.1", "localhost")))
    assert checks("CS402").outcome == "passed"
    result = checks("CS404")
    # unshare's loopback is down: even talking to itself fails there; bubblewrap's is up.
    assert result.outcome == "failed"
    assert "it works with the network (CS402) but not without it" in result.message


def test_without_bubblewrap_the_plain_run_passes_cs404_with_partial_isolation(
    make_repo: RepoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    _only_unshare(monkeypatch)
    result = Checks(hostile(make_repo, OUTPUT))("CS404")
    assert result.outcome == "passed", result.message
    assert result.message == (
        "ran in a network namespace with no network (unshare: partial isolation)"
    )


def test_install_steps_see_a_local_file_index_read_only(tmp_path: Path) -> None:
    # A wheelhouse or file:// index named in pip's settings is shown to install steps (read
    # only): the sandbox hides the real temp dir and home, where such folders usually live.
    from pytest_corrsource.sandbox.process import package_sources

    index = tmp_path / "simple"
    index.mkdir()
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    env = {
        "PIP_INDEX_URL": index.as_uri(),
        "PIP_FIND_LINKS": f"{wheels} https://example.invalid/links",
        "PIP_EXTRA_INDEX_URL": "https://pypi.example.invalid/simple",
        "PIP_CONSTRAINT": str(tmp_path / "missing.txt"),
    }
    assert package_sources(env) == (index, wheels)
