"""Cold install of the bundled example's environment with pip and with uv, from local wheels.

    python benchmarks/bench_install.py [--repeat 3] [--example examples/tinychar]
    python benchmarks/bench_install.py --wheel /path/to/torch-….whl   # add a local wheel

Builds the isolated environment of ``examples/tinychar`` (``python -m pip install -r
requirements.txt``: numpy and safetensors) the way CS202 does — venv, then the install commands
in the sandbox — with ``--corrsource-installer=pip`` and ``=uv``:

* cold: a new, empty cache directory (no environment, no downloads);
* warm downloads: a new environment (the cold one deleted, untimed) with the repository's
  download cache kept from the cold build.

The packages come from a local PEP 503 index of this venv's own numpy, safetensors and
setuptools, repacked as wheels (as the test suite does): nothing is downloaded, so the figures
measure the installers, not the network. ``--wheel`` adds wheel files to that index (e.g. a
torch wheel) and a repository that installs them. Prints a Markdown table (median of
``--repeat`` runs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import build_local_index  # noqa: E402 - the test suite's local index

from pytest_corrsource.checks.api import CheckContext, Options, RunState  # noqa: E402
from pytest_corrsource.hashing import DigestCache  # noqa: E402
from pytest_corrsource.manifest import load_manifest  # noqa: E402
from pytest_corrsource.sandbox.installers import find_uv  # noqa: E402
from pytest_corrsource.sandbox.steps import get_environment  # noqa: E402


def build(example: Path, installer: str, cache: Path) -> float:
    """Seconds to make the example's environment (what CS202 does)."""
    manifest = load_manifest(example / "corresponding-source.yaml")
    options = Options(installer=installer, cache_dir=cache)
    ctx = CheckContext(manifest, "CS202", "install", options, DigestCache(), RunState())
    start = time.perf_counter()
    env = get_environment(ctx)
    seconds = time.perf_counter() - start
    if env.installer != installer:
        raise SystemExit(f"asked for {installer}, built with {env.installer}")
    return seconds


def wheel_repository(base: Path, wheels: list[Path]) -> Path:
    """A repository whose install step installs the given wheels' projects by name."""
    repo = base / "wheel-repo"
    shutil.copytree(ROOT / "examples" / "tinychar", repo)
    names = [w.name.split("-")[0].replace("_", "-") for w in wheels]
    (repo / "requirements.txt").write_text("".join(f"{n}\n" for n in names))
    return repo


def add_wheels(simple: Path, wheels: list[Path]) -> None:
    for wheel in wheels:
        project = simple / wheel.name.split("-")[0].replace("_", "-").lower()
        project.mkdir(parents=True, exist_ok=True)
        shutil.copy2(wheel, project / wheel.name)
        links = "".join(f'<a href="{w.name}">{w.name}</a>' for w in project.glob("*.whl"))
        (project / "index.html").write_text(f"<html><body>{links}</body></html>\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--example", type=Path, default=ROOT / "examples" / "tinychar")
    parser.add_argument("--wheel", type=Path, action="append", default=[])
    args = parser.parse_args()
    installers = ["pip"] + (["uv"] if find_uv() is not None else [])
    if len(installers) == 1:
        print("uv is not installed (pip install uv): measuring pip only")
    rows: list[tuple[str, str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="corrsource-bench-install-") as tmp:
        base = Path(tmp)
        simple = build_local_index(base / "index")
        add_wheels(simple, args.wheel)
        os.environ["PIP_INDEX_URL"] = simple.as_uri()
        examples = [("examples/tinychar (numpy, safetensors)", args.example.resolve())]
        if args.wheel:
            first = args.wheel[0].name.split("-")[0]
            more = f" and {len(args.wheel) - 1} more wheels" if len(args.wheel) > 1 else ""
            examples.append((f"{first}{more} (local)", wheel_repository(base, args.wheel)))
        for label, example in examples:
            for installer in installers:
                cold, warm = [], []
                for i in range(args.repeat):
                    cache = base / f"cache-{installer}-{i}"
                    cold.append(build(example, installer, cache))
                    shutil.rmtree(cache / "envs")  # keeps cache/downloads
                    warm.append(build(example, installer, cache))
                    shutil.rmtree(cache, ignore_errors=True)
                rows.append((label, installer, statistics.median(cold), statistics.median(warm)))
                print(f"{label} / {installer}: cold {cold}, warm downloads {warm}", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average {load:.1f}, {os.cpu_count()} cores, median of {args.repeat}\n")
    print("| environment | installer | cold (s) | warm download cache (s) |")
    print("|---|---|---|---|")
    for label, installer, cold_s, warm_s in rows:
        print(f"| {label} | {installer} | {cold_s:.1f} | {warm_s:.1f} |")


if __name__ == "__main__":
    main()
