"""What the sandbox costs: start-up per step, and the example's warm full run with and without it.

    python benchmarks/bench_sandbox.py [--repeat 30] [--runs 3] [--no-example]

(a) start-up per step: ``true`` started with plain ``subprocess.Popen``; through
    ``run_command`` without a sandbox; the bare ``bwrap ... true`` command line a step gets;
    and ``run_command`` with the bubblewrap confinement a step gets (pids cgroup when root,
    prlimit, mounts). Median of ``--repeat`` runs each; the target is <= 50 ms over plain Popen.
(b) ``pytest --corresponding-source examples/tinychar`` at level open-source-ai with a warm
    environment cache: the code *before* the sandbox (``--before-commit``, extracted with
    ``git archive`` and put first on ``PYTHONPATH``; CS404 there uses ``unshare --net``)
    against this code with bubblewrap (``auto``), and ``--corrsource-sandbox=none`` (which skips
    CS404, one run fewer); median of ``--runs`` runs each; the target is <= 10 % slower.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_corrsource.sandbox.backends import (  # noqa: E402
    Mounts,
    bwrap_command,
    python_installations,
    select_backend,
)
from pytest_corrsource.sandbox.limits import Limits  # noqa: E402
from pytest_corrsource.sandbox.process import Confinement, run_command  # noqa: E402


def median_ms(repeat: int, action: Callable[[], object]) -> float:
    action()  # warm up (page cache, the backend probe)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def startup(repeat: int) -> list[tuple[str, float]]:
    backend = select_backend("auto")
    if backend.name != "bwrap" or backend.executable is None:
        raise SystemExit(f"no bubblewrap here: {backend.summary()}")
    true = shutil.which("true") or "/usr/bin/true"
    env = {"PATH": "/usr/bin:/bin"}
    with tempfile.TemporaryDirectory(prefix="corrsource-bench-") as tmp:
        work = Path(tmp)
        mounts = Mounts(read_only=python_installations(Path(sys.executable)), writable=(work,))
        confinement = Confinement(backend, mounts, Limits())
        raw = bwrap_command(
            backend.executable, [true], cwd=work, mounts=mounts, network=False, limits=Limits()
        )
        rows = [
            ("plain subprocess.Popen(['true'])", lambda: subprocess.run([true], check=True)),
            (
                "run_command(['true']) without a sandbox",
                lambda: run_command([true], cwd=work, env=env, timeout=30),
            ),
            ("bwrap ... true (the step's command line)", lambda: subprocess.run(raw, check=True)),
            (
                "run_command(['true']) in the bubblewrap confinement",
                lambda: run_command(
                    [true], cwd=work, env=env, timeout=30, network=False, confinement=confinement
                ),
            ),
        ]
        return [(label, median_ms(repeat, action)) for label, action in rows]


def example(runs: int, before_commit: str) -> list[tuple[str, float]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="corrsource-bench-") as tmp:
        before = Path(tmp) / "before"
        before.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", before_commit, "pytest_corrsource"],
            capture_output=True, check=True,
        )  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
        env = dict(os.environ, CORRSOURCE_CACHE_DIR=str(Path(tmp) / "cache"))
        argv = [
            sys.executable, "-m", "pytest", "--corresponding-source",
            str(ROOT / "examples" / "tinychar"), "--corrsource-level", "open-source-ai",
            "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
        ]  # fmt: skip

        def once(mode: str) -> float:
            extra = [] if mode == "before" else [f"--corrsource-sandbox={mode}"]
            run_env = dict(env, PYTHONPATH=str(before)) if mode == "before" else env
            start = time.perf_counter()
            proc = subprocess.run(
                [*argv, *extra], capture_output=True, text=True, env=run_env, cwd=ROOT,
                check=False,
            )  # fmt: skip
            seconds = time.perf_counter() - start
            # "none" cannot run CS404: the level is then not met (exit 1), by design.
            if proc.returncode not in ((0, 1) if mode == "none" else (0,)):
                print(proc.stdout[-3000:], proc.stderr[-2000:])
                raise SystemExit(f"the example run failed (exit {proc.returncode}, {mode})")
            return seconds

        once("before")  # builds the environment (same key before and after): not timed
        once("auto")
        for mode in ("before", "auto", "none"):
            results.append((mode, statistics.median(once(mode) for _ in range(runs))))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-example", action="store_true")
    parser.add_argument(
        "--before-commit", default="25395c6", help="the commit before the sandbox (issue 10)"
    )
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs, euid {os.geteuid()}")
    rows = startup(args.repeat)
    print("\n| start-up of one step (median) | ms |\n|---|---|")
    for label, ms in rows:
        print(f"| {label} | {ms:.1f} |")
    overhead = rows[3][1] - rows[0][1]
    print(f"\nsandbox start-up overhead per step: {overhead:.1f} ms (target <= 50 ms)")
    if args.no_example:
        return
    before, auto, none = (seconds for _, seconds in example(args.runs, args.before_commit))
    print("\n| tinychar, open-source-ai, warm cache (median) | seconds |\n|---|---|")
    print(f"| before the sandbox ({args.before_commit}) | {before:.2f} |")
    print(f"| bubblewrap (--corrsource-sandbox=auto) | {auto:.2f} |")
    print(f"| --corrsource-sandbox=none (CS404 not run) | {none:.2f} |")
    print(f"\nbubblewrap / before = {auto / before:.0%} (target <= 110%)")


if __name__ == "__main__":
    main()
