from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_corrsource.sandbox import process as runner
from pytest_corrsource.sandbox.process import (
    STEP_MARKER_VARIABLE,
    CommandResult,
    IsolationUnavailable,
    network_isolation,
    redact,
    run_command,
    scrubbed_environment,
)
from pytest_corrsource.secrets import looks_secret

posix_only = pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX-only")
linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="escaped descendants are found via /proc"
)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return scrubbed_environment(path_prefix=[], home=home, tmpdir=tmp_path)


def py(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code), *args]


def process_gone(pid: int, wait: float = 5.0) -> bool:
    """True once *pid* no longer exists or is a zombie (init may be slow to reap it)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        status = Path(f"/proc/{pid}/status")
        try:
            states = [ln for ln in status.read_text().splitlines() if ln.startswith("State:")]
        except OSError:
            return True
        if states and "Z" in states[0].split()[1]:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def read_pid(path: Path, wait: float = 5.0) -> int:
    deadline = time.monotonic() + wait
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} was never written"
        time.sleep(0.02)
    return int(path.read_text())


def test_exit_codes(tmp_path: Path, env: dict[str, str]) -> None:
    ok = run_command(py("pass"), cwd=tmp_path, env=env, timeout=30)
    assert ok.returncode == 0
    assert ok.ok
    assert not ok.timed_out
    failed = run_command(py("import sys; sys.exit(3)"), cwd=tmp_path, env=env, timeout=30)
    assert failed.returncode == 3
    assert not failed.ok
    assert failed.argv[1:] == ("-c", "import sys; sys.exit(3)")


@posix_only
def test_killed_by_signal_is_described(tmp_path: Path, env: dict[str, str]) -> None:
    result = run_command(
        py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"),
        cwd=tmp_path,
        env=env,
        timeout=30,
    )
    assert result.returncode == -signal.SIGKILL
    assert result.describe().startswith("killed by SIGKILL (exit code -9) after ")


def test_stdout_and_stderr_are_captured(tmp_path: Path, env: dict[str, str]) -> None:
    code = """
        import os, sys
        print("out: héllo")
        print("err line", file=sys.stderr)
        sys.stdout.flush()
        os.write(1, b"bad \\xff byte\\n")
        print(os.getcwd())
    """
    result = run_command(py(code), cwd=tmp_path, env=env, timeout=30)
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "out: héllo",
        "bad \ufffd byte",
        str(tmp_path),
    ]
    assert result.stderr == "err line\n"
    assert not result.stdout_truncated
    assert not result.stderr_truncated


def test_env_is_exactly_what_was_given(tmp_path: Path) -> None:
    given = {"PATH": os.environ.get("PATH", os.defpath), "ONLY_THIS": "1"}
    result = run_command(
        py("import json, os; print(json.dumps(dict(os.environ)))"),
        cwd=tmp_path,
        env=given,
        timeout=30,
    )
    seen = json.loads(result.stdout)
    seen.pop("LC_CTYPE", None)  # some Pythons coerce the C locale on start-up
    assert seen.pop(STEP_MARKER_VARIABLE)
    assert seen == given


def test_truncation_keeps_the_tail(tmp_path: Path, env: dict[str, str]) -> None:
    code = """
        import sys
        for stream in (sys.stdout, sys.stderr):
            stream.write("x" * 300_000 + "é" * 10 + "END")
            stream.flush()
    """
    result = run_command(py(code), cwd=tmp_path, env=env, timeout=30, max_output_bytes=1001)
    for text in (result.stdout, result.stderr):
        assert text.endswith("x" * 900 + "é" * 10 + "END")
        assert len(text.encode()) <= 1001
    assert result.stdout_truncated
    assert result.stderr_truncated


def test_stdin_data_is_fed(tmp_path: Path, env: dict[str, str]) -> None:
    data = bytes(range(256)) * 8192  # 2 MiB: more than any pipe buffer, in both directions
    code = """
        import hashlib, sys
        payload = sys.stdin.buffer.read()
        sys.stdout.buffer.write(payload)
        print(hashlib.sha256(payload).hexdigest(), len(payload), file=sys.stderr)
    """
    result = run_command(
        py(code), cwd=tmp_path, env=env, timeout=30, stdin_data=data, max_output_bytes=100
    )
    assert result.returncode == 0
    assert result.stderr.split() == [hashlib.sha256(data).hexdigest(), str(len(data))]
    assert result.stdout_truncated


def test_stdin_closed_early_by_child_does_not_fail(tmp_path: Path, env: dict[str, str]) -> None:
    result = run_command(
        py("import os; os.close(0); print('done')"),
        cwd=tmp_path,
        env=env,
        timeout=30,
        stdin_data=b"y" * (1 << 20),
    )
    assert result.returncode == 0
    assert result.stdout == "done\n"


def test_missing_executable_is_127(tmp_path: Path, env: dict[str, str]) -> None:
    result = run_command(["no-such-program-corrsource"], cwd=tmp_path, env=env, timeout=5)
    assert result.returncode == 127
    assert "command not found: no-such-program-corrsource" in result.stderr
    assert not result.timed_out
    relative = run_command(["./missing.sh", "x"], cwd=tmp_path, env=env, timeout=5)
    assert relative.returncode == 127
    assert "command not found: ./missing.sh" in relative.describe()


@posix_only
def test_not_executable_is_126(tmp_path: Path, env: dict[str, str]) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    result = run_command(["./script.sh"], cwd=tmp_path, env=env, timeout=5)
    if os.geteuid() == 0 and result.returncode == 0:  # pragma: no cover - root may exec anyway
        pytest.skip("root can execute files without an x bit here")
    assert result.returncode == 126
    assert "script.sh" in result.stderr


def test_empty_argv_is_a_programming_error(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        run_command([], cwd=tmp_path, env=env, timeout=5)


@posix_only
@linux_only
def test_timeout_kills_the_whole_tree(tmp_path: Path, env: dict[str, str]) -> None:
    pidfile = tmp_path / "grandchild.pid"
    code = """
        import os, signal, sys, time
        pidfile = sys.argv[1]
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                with open(pidfile + ".tmp", "w") as f:
                    f.write(str(os.getpid()))
                os.rename(pidfile + ".tmp", pidfile)
                print("grandchild running", flush=True)
                while True:
                    time.sleep(0.05)
            os._exit(0)  # the grandchild is re-parented: no PPid link back to us any more
        time.sleep(60)
    """
    result = run_command(py(code, str(pidfile)), cwd=tmp_path, env=env, timeout=1.5)
    assert result.timed_out  # killed at 1.5 s: the child's 60 s sleep did not run out
    assert result.returncode is None
    grandchild = read_pid(pidfile)
    assert process_gone(grandchild), f"grandchild {grandchild} survived the timeout"
    assert "grandchild running" in result.stdout
    assert result.describe().startswith("timed out after 1.5 s; the whole process tree was killed")


@posix_only
@linux_only
def test_daemonized_grandchild_does_not_survive_a_normal_exit(
    tmp_path: Path, env: dict[str, str]
) -> None:
    pidfile = tmp_path / "daemon.pid"
    code = """
        import os, sys, time
        pidfile = sys.argv[1]
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                devnull = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(devnull, fd)
                with open(pidfile + ".tmp", "w") as f:
                    f.write(str(os.getpid()))
                os.rename(pidfile + ".tmp", pidfile)
                while True:
                    time.sleep(0.05)
            os._exit(0)
        while not os.path.exists(pidfile):
            time.sleep(0.01)
        print("parent done")
    """
    result = run_command(py(code, str(pidfile)), cwd=tmp_path, env=env, timeout=30)
    assert result.returncode == 0
    assert result.stdout == "parent done\n"
    daemon = read_pid(pidfile)
    assert process_gone(daemon), f"daemon {daemon} survived the step"


@posix_only
def test_grandchild_holding_the_pipe_does_not_hang(tmp_path: Path, env: dict[str, str]) -> None:
    pidfile = tmp_path / "holder.pid"
    # The holder keeps stdout/stderr open, leaves the process group, and drops the marker
    # variable, so it may well escape every way of finding it: the call must still return.
    code = """
        import os, subprocess, sys
        if os.fork() == 0:
            holder = subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(30)"],
                env={"PATH": os.environ["PATH"]},
                start_new_session=True,
            )
            with open(sys.argv[1] + ".tmp", "w") as f:
                f.write(str(holder.pid))
            os.rename(sys.argv[1] + ".tmp", sys.argv[1])
            os._exit(0)
        os.wait()
        print("child exiting", flush=True)
    """
    try:
        result = run_command(py(code, str(pidfile)), cwd=tmp_path, env=env, timeout=20)
        # Returned when the child exited, not at the timeout waiting for the pipe's holder.
        assert not result.timed_out
        assert result.returncode == 0
        assert "child exiting" in result.stdout
    finally:
        if pidfile.exists():
            holder = int(pidfile.read_text())
            if not process_gone(holder, wait=0):
                os.kill(holder, signal.SIGKILL)


def test_credentials_never_reach_the_child(tmp_path: Path) -> None:
    canaries = {
        "AWS_SECRET_ACCESS_KEY": "canary-aws-wJalrXUtnFEMI",
        "GITHUB_TOKEN": "canary-ghp-0123456789abcdef",
        "HF_TOKEN": "canary-hf-ZZZZZZZZZZZZ",
        "OPENAI_API_KEY": "canary-sk-openai-1234",
        "MY_PASSWORD": "canary-hunter2-pw",
        "PIP_EXTRA_INDEX_URL": "https://canary-user:canary-pass@pypi.example/simple",
        "HTTPS_PROXY": "http://canaryuser@proxy.example:3128",
    }
    base = {
        **canaries,
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "xterm",
        "USER": "someone",
        "PIP_INDEX_URL": "https://mirror.example/simple",
        "https_proxy": "http://proxy.example:3128",
        "SOURCE_DATE_EPOCH": "1700000000",
    }
    home = tmp_path / "home"
    child_env = scrubbed_environment(
        path_prefix=[tmp_path / "venv" / "bin"],
        home=home,
        tmpdir=tmp_path / "tmp",
        extra={"MODEL_SEED": "7"},
        base=base,
    )
    result = run_command(
        py("import json, os; print(json.dumps(dict(os.environ)))"),
        cwd=tmp_path,
        env=child_env,
        timeout=30,
    )
    assert result.returncode == 0, result.describe()
    for name, value in canaries.items():
        assert name not in result.stdout
        assert value not in result.stdout
    assert "canary" not in result.stdout
    seen = json.loads(result.stdout)
    assert seen["PATH"].split(os.pathsep)[0] == str(tmp_path / "venv" / "bin")
    assert seen["PATH"].split(os.pathsep)[1:] == base["PATH"].split(os.pathsep)
    assert seen["HOME"] == str(home)
    assert seen["TMPDIR"] == seen["TMP"] == seen["TEMP"] == str(tmp_path / "tmp")
    assert seen["PYTHONHASHSEED"] == "0"
    assert seen["PYTHONDONTWRITEBYTECODE"] == "1"
    assert seen["PIP_DISABLE_PIP_VERSION_CHECK"] == "1"
    assert seen["PIP_INDEX_URL"] == "https://mirror.example/simple"
    assert seen["https_proxy"] == "http://proxy.example:3128"
    assert seen["LANG"] == seen["LC_ALL"] == "C.UTF-8"
    assert seen["TERM"] == "xterm"
    assert seen["SOURCE_DATE_EPOCH"] == "1700000000"
    assert seen["MODEL_SEED"] == "7"
    assert "USER" not in seen


def test_scrubbed_environment_defaults_to_os_environ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "canary-token-value")
    monkeypatch.setenv("TZ", "UTC")
    env = scrubbed_environment(path_prefix=[], home=tmp_path, tmpdir=tmp_path)
    assert "GITHUB_TOKEN" not in env
    assert env["TZ"] == "UTC"


def test_redact() -> None:
    env = {
        "GITHUB_TOKEN": "ghp_abcdefgh",
        "aws_secret_access_key": "AKIA-secret-value",
        "HF_TOKEN": "short",  # below the length threshold: left alone
        "SESSION_ID": "sess-1234567",
        "HOME": "/home/someone-with-long-name",
    }
    text = (
        "cloning with ghp_abcdefgh from https://user:pa55word@host/x; key AKIA-secret-value; "
        "short stays; session sess-1234567; home /home/someone-with-long-name; "
        "ssh://git@github.com/x stays"
    )
    assert redact(text, env) == (
        "cloning with *** from https://***@host/x; key ***; "
        "short stays; session ***; home /home/someone-with-long-name; "
        "ssh://git@github.com/x stays"
    )
    assert looks_secret("MY_API_KEY")
    assert not looks_secret("PATH")


@pytest.fixture
def tcp_server() -> Iterator[int]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


CONNECT = """
    import socket, sys
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3).close()
    except OSError as exc:
        print("connect failed:", exc, file=sys.stderr)
        sys.exit(1)
    print("connected")
"""


def test_network_false_blocks_connections(
    tmp_path: Path, env: dict[str, str], tcp_server: int
) -> None:
    online = run_command(py(CONNECT, str(tcp_server)), cwd=tmp_path, env=env, timeout=30)
    assert online.returncode == 0, online.describe()
    assert online.stdout == "connected\n"
    available, reason = network_isolation()
    if not available:
        pytest.skip(f"network isolation unavailable: {reason}")
    offline = run_command(
        py(CONNECT, str(tcp_server)), cwd=tmp_path, env=env, timeout=30, network=False
    )
    assert offline.returncode == 1, offline.describe()
    assert "connect failed" in offline.stderr
    assert offline.argv[0] == sys.executable  # the unshare prefix is not part of argv


def test_network_false_missing_executable_is_still_127(tmp_path: Path, env: dict[str, str]) -> None:
    if not network_isolation()[0]:
        pytest.skip(f"network isolation unavailable: {network_isolation()[1]}")
    result = run_command(["no-such-program-x"], cwd=tmp_path, env=env, timeout=5, network=False)
    assert result.returncode == 127


def test_isolation_unavailable_raises(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "_isolation_probe", lambda: (False, "no namespaces here", ()))
    assert network_isolation() == (False, "no namespaces here")
    with pytest.raises(IsolationUnavailable, match="no namespaces here") as info:
        run_command(py("pass"), cwd=tmp_path, env=env, timeout=5, network=False)
    assert info.value.reason == "no namespaces here"


def test_network_isolation_is_cached() -> None:
    first = network_isolation()
    assert network_isolation() is first or network_isolation() == first
    available, reason = first
    assert isinstance(available, bool)
    assert bool(reason) != available


def test_describe_trims_to_the_last_lines(tmp_path: Path, env: dict[str, str]) -> None:
    code = """
        import sys
        for i in range(50):
            print(f"out {i}")
            print(f"err {i}", file=sys.stderr)
        sys.exit(3)
    """
    result = run_command(py(code), cwd=tmp_path, env=env, timeout=30)
    text = result.describe(max_lines=5)
    lines = text.splitlines()
    assert lines[0].startswith("exit code 3 after ")
    assert lines[0].endswith(" s")
    assert lines[1:] == [
        "--- stderr (last 5 lines) ---",
        *(f"err {i}" for i in range(45, 50)),
        "--- stdout (last 5 lines) ---",
        *(f"out {i}" for i in range(45, 50)),
    ]


def test_describe_formats() -> None:
    base = CommandResult(
        argv=("python", "x.py"),
        returncode=3,
        stdout="",
        stderr="Traceback...\nValueError: bad\n",
        seconds=0.43,
        timed_out=False,
    )
    assert (
        base.describe() == "exit code 3 after 0.4 s\n--- stderr ---\nTraceback...\nValueError: bad"
    )
    quiet = CommandResult(("x",), 0, "", "", 12.3, False)
    assert quiet.describe() == "exit code 0 after 12 s\n(no output)"
    timed = CommandResult(("x",), None, "partial\n", "", 5.02, True, timeout=5)
    assert timed.describe() == (
        "timed out after 5 s; the whole process tree was killed\n--- stdout ---\npartial"
    )
    truncated = CommandResult(("x",), 1, "a\nb\n", "", 1.0, False, stdout_truncated=True)
    assert "--- stdout (last 2 lines) ---" in truncated.describe()
