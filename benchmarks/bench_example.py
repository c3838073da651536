"""First and second full run of the complete example (environment cached the second time).

    python benchmarks/bench_example.py [--level open-source-ai]

Runs ``pytest --corresponding-source examples/tinychar`` twice with a new, empty environment
cache, and prints both wall times and their ratio (target: the second takes at most 20 % of the
first). The first run builds the isolated environment (numpy and safetensors from the package
index); the second reuses it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(level: str, cache: Path) -> float:
    env = dict(os.environ, CORRSOURCE_CACHE_DIR=str(cache))
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--corresponding-source", str(ROOT / "examples/tinychar"),
         "--corrsource-level", level, "-q", "-p", "no:cacheprovider"],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-2000:])
        raise SystemExit(f"the example run failed (exit {proc.returncode})")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", default="open-source-ai")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="corrsource-bench-") as tmp:
        first = run(args.level, Path(tmp))
        second = run(args.level, Path(tmp))
    print(f"| run | seconds |\n|---|---|\n| first (builds the environment) | {first:.1f} |")
    print(f"| second (environment cached) | {second:.1f} |")
    print(f"\nsecond / first = {second / first:.0%} (target <= 20%)")


if __name__ == "__main__":
    main()
