"""Benchmark how fast hostile manifests are refused (the speed claim the tests do not make).

    python benchmarks/bench_manifest.py [--repeat 7]

Times pytest_corrsource.manifest.load_manifest (median of --repeat calls) on the two documents
of tests/test_manifest.py::test_billion_laughs_is_refused_without_expanding: the billion laughs
(nine levels of nine aliases) and an accepted alias fan-out of 60,000 nodes. Both must be refused
with a ManifestError; target: under 2 s each on a busy 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_manifest import alias_fan_out, billion_laughs  # noqa: E402

from pytest_corrsource.manifest import MANIFEST_NAME, ManifestError, load_manifest  # noqa: E402


def refuse_ms(text: str, repeat: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / MANIFEST_NAME
        path.write_text(text)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            try:
                load_manifest(path)
            except ManifestError:
                pass
            else:
                raise SystemExit("the manifest was accepted: it must be refused")
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print("| document | median ms | target |\n|---|---|---|")
    for name, text in (("billion laughs", billion_laughs()), ("fan-out", alias_fan_out())):
        print(f"| {name} | {refuse_ms(text, args.repeat):.1f} | < 2000 |")


if __name__ == "__main__":
    main()
