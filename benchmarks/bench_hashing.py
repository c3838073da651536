"""Benchmark pytest_corrsource.hashing against plain hashlib, and a warm pytest run.

    python benchmarks/bench_hashing.py [--size-mib 2048] [--repeat 3] [--dir DIR] [--no-pytest]

Measures (MB/s = 10**6 bytes per second, each figure the median of --repeat runs):
  (a) hashlib.file_digest on one big file (baseline);
  (b) pytest_corrsource.hashing.sha256_file on the same file, and the ratio b/a;
  (c) two shards of half the size: sequential hashlib vs hash_files([s1, s2]) in parallel;
  (d) hash_files on all three files with a filled DigestCache (the warm path, in ms);
  (e) end-to-end: `pytest --corresponding-source REPO` cold and warm, vs plugin disabled.

The files are written just before being read, so they are in the page cache: this measures
hashing (CPU), not the disk. A cold read from disk will be slower and limited by the device.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pytest_corrsource.hashing import CACHE_KEY, DigestCache, hash_files, sha256_file

MIB = 1 << 20
CHUNK = 16 * MIB
DAY_NS = 86_400 * 10**9

MANIFEST = """\
version: 1
name: bench
licenses: {{distribution: MIT}}
weights:
  - path: weights/a.safetensors
    sha256: {digest}
"""


def write_random(path: Path, nbytes: int, prefix: bytes = b"") -> None:
    """Write ``prefix`` then ``nbytes`` random bytes, in chunks (never all in memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(prefix)
        left = nbytes
        while left:
            n = min(CHUNK, left)
            f.write(os.urandom(n))
            left -= n
    backdate(path)


def backdate(path: Path) -> None:
    # hashing.py does not cache digests of files modified in the last ~2 s (same-tick rewrites
    # would go unnoticed); a day-old mtime simulates a settled checkout.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - DAY_NS))


def safetensors_prefix(n: int) -> bytes:
    """Header of a safetensors file holding one U8 tensor of ``n`` bytes."""
    header = json.dumps(
        {"w": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}, separators=(",", ":")
    ).encode()
    header += b" " * (-len(header) % 8)  # pad to a multiple of 8, as the reference writer does
    return struct.pack("<Q", len(header)) + header


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn()`` in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def baseline_digest(path: Path) -> str:
    with path.open("rb") as f:
        if sys.version_info >= (3, 11):
            return hashlib.file_digest(f, "sha256").hexdigest()
        h = hashlib.sha256()  # Python 3.10: no file_digest; plain 1 MiB reads
        while chunk := f.read(MIB):
            h.update(chunk)
        return h.hexdigest()


def loadavg() -> str:
    # Other processes on a 2-core box halve any parallel speed-up: show the load.
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def mbps(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e6


def run(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=1800)
    return time.perf_counter() - t0, proc


def tail(proc: subprocess.CompletedProcess[str], lines: int = 25) -> str:
    out = (proc.stdout + proc.stderr).rstrip().splitlines()
    return "\n".join("    | " + line for line in out[-lines:])


def bench_pytest(work: Path, repo: Path, repeat: int) -> list[tuple[str, str, str]]:
    base = [sys.executable, "-m", "pytest"]
    cmd = [
        *base,
        "--corresponding-source",
        str(repo),
        "--corrsource-level",
        "open-weights",
        "-q",
        "-p",
        "no:randomly",
        "-o",
        f"cache_dir={work / 'cache'}",
    ]
    print("\n(e) end-to-end pytest run (cwd = temp dir)")
    print("    " + " ".join(cmd))
    # The baseline is pytest itself on the same repository with our plugin disabled: start-up,
    # other plugins' imports and collection, so the difference is what pytest-corrsource adds.
    baseline = [*base, str(repo), "-q", "-p", "no:randomly", "-p", "no:corrsource",
                "-o", f"cache_dir={work / 'cache-baseline'}"]  # fmt: skip
    startup = statistics.median(run(baseline, work)[0] for _ in range(repeat))
    print(f"    pytest start-up (same repo, plugin disabled): {startup:.3f} s")

    cold, proc = run(cmd, work)
    print(f"    cold (empty digest cache):    {cold:.3f} s  exit {proc.returncode}")
    if proc.returncode != 0:
        print("    non-zero exit; output tail:")
        print(tail(proc))
    crashed = "INTERNALERROR" in proc.stdout + proc.stderr or "Traceback" in proc.stderr
    # 1 = checks failed but ran; 2+ (or a crash) = the plugin did not run properly.
    if proc.returncode not in (0, 1) or crashed:
        print("    not timing warm runs (is the plugin providing --corresponding-source in?)")
        return [("pytest start-up (plugin disabled)", f"{startup:.3f} s", "")]
    # pytest's config.cache.set(CACHE_KEY, ...) lands in <cache_dir>/v/<CACHE_KEY>.
    cached = work / "cache" / "v" / CACHE_KEY
    try:
        entries = len(DigestCache.from_json(json.loads(cached.read_text())))
    except (OSError, ValueError):
        entries = 0
    print(f"    digest cache after cold run: {cached} -> {entries} entries")
    warm_runs = [run(cmd, work) for _ in range(repeat)]
    warm = statistics.median(t for t, _ in warm_runs)
    codes = ",".join(str(c) for c in sorted({p.returncode for _, p in warm_runs}))
    print(f"    warm (median of {repeat}):          {warm:.3f} s  exit {codes}")
    print(f"    warm - start-up:              {warm - startup:+.3f} s  (target <= 0.25 s)")
    print(tail(warm_runs[-1][1], 5))
    return [
        ("pytest start-up (plugin disabled)", f"{startup:.3f} s", ""),
        ("pytest run, cold cache", f"{cold:.3f} s (exit {proc.returncode})", ""),
        (
            f"pytest run, warm cache ({entries} cached digests)",
            f"{warm:.3f} s ({warm - startup:+.3f} s, exit {codes})",
            "<= +0.25 s",
        ),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=2048, help="big file size (default 2048)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure, median (default 3)")
    ap.add_argument("--dir", type=Path, help="where to create the temp dir (default: system tmp)")
    ap.add_argument("--keep", action="store_true", help="do not delete the temp dir")
    ap.add_argument("--no-pytest", action="store_true", help="skip (e), the pytest runs")
    args = ap.parse_args()

    size = args.size_mib * MIB
    work = Path(tempfile.mkdtemp(prefix="corrsource-bench-", dir=args.dir))
    try:
        print(
            f"python {platform.python_version()}, os.cpu_count() = {os.cpu_count()}, "
            f"{platform.machine()}, repeat = {args.repeat} (median), load average {loadavg()}"
        )
        print(
            f"temp dir {work}: writing {args.size_mib} MiB + 2 x {args.size_mib // 2} MiB "
            "of os.urandom data..."
        )
        t0 = time.perf_counter()
        repo = work / "repo"
        big = repo / "weights" / "a.safetensors"  # the big file is a real safetensors file
        write_random(big, size, safetensors_prefix(size))
        shards = [work / "s1.bin", work / "s2.bin"]
        for s in shards:
            write_random(s, size // 2)
        print(
            f"  written in {time.perf_counter() - t0:.1f} s. Nothing is dropped from the page "
            "cache: all figures are in-memory hashing speed, not disk speed."
        )
        nbig = big.stat().st_size
        nshards = sum(s.stat().st_size for s in shards)
        rows: list[tuple[str, str, str]] = []

        print("\n(a)/(b) one file")
        digest = baseline_digest(big)
        assert sha256_file(big) == digest
        ta = timed(lambda: baseline_digest(big), args.repeat)
        tb = timed(lambda: sha256_file(big), args.repeat)
        a, b = mbps(nbig, ta), mbps(nbig, tb)
        label = "hashlib.file_digest" if hasattr(hashlib, "file_digest") else "hashlib 1 MiB read"
        print(f"    (a) {label}:  {a:7.0f} MB/s")
        print(f"    (b) sha256_file:          {b:7.0f} MB/s   b/a = {b / a:.2f} (target >= 0.90)")
        rows += [
            (f"{label}, 1 x {args.size_mib} MiB", f"{a:.0f} MB/s", ""),
            ("sha256_file, same file", f"{b:.0f} MB/s ({b / a:.2f}x)", ">= 0.90x"),
        ]

        print(f"\n(c) two shards of {args.size_mib // 2} MiB (load average {loadavg()})")
        expected = {s: baseline_digest(s) for s in shards}
        assert hash_files(shards) == expected
        tseq = timed(lambda: [baseline_digest(s) for s in shards], args.repeat)
        tpar = timed(lambda: hash_files(shards), args.repeat)
        seq, par = mbps(nshards, tseq), mbps(nshards, tpar)
        print(f"    sequential hashlib:       {seq:7.0f} MB/s")
        print(
            f"    hash_files (2 threads):   {par:7.0f} MB/s   speed-up {tseq / tpar:.2f}x "
            f"(target >= 1.8x; os.cpu_count() = {os.cpu_count()})"
        )
        rows += [
            ("2 shards, sequential hashlib", f"{seq:.0f} MB/s", ""),
            (
                f"2 shards, hash_files parallel ({os.cpu_count()} CPUs)",
                f"{par:.0f} MB/s ({tseq / tpar:.2f}x)",
                ">= 1.8x",
            ),
        ]

        print("\n(d) warm: hash_files with a filled DigestCache")
        files = [big, *shards]
        cache = DigestCache()
        hash_files(files, cache)
        assert len(cache) == len(files), "digests were not cached (mtime too recent?)"
        reads = []
        tw = timed(lambda: reads.append(hash_files(files, cache)), args.repeat)
        assert reads[-1] == {big: digest, **expected}
        print(f"    3 files, {(nbig + nshards) / 1e9:.1f} GB, all cache hits: {tw * 1e3:.3f} ms")
        rows.append(("hash_files warm (3 files, cache hits)", f"{tw * 1e3:.3f} ms", "~ms"))

        if args.no_pytest:
            print("\n(e) skipped (--no-pytest)")
        else:
            (repo / "corresponding-source.yaml").write_text(MANIFEST.format(digest=digest))
            (repo / "LICENSE").write_text("MIT License\n")
            rows += bench_pytest(work, repo, args.repeat)

        print("\n| measurement | result | target |\n|---|---|---|")
        for name, result, target in rows:
            print(f"| {name} | {result} | {target} |")
        return 0
    finally:
        if args.keep:
            print(f"\nkept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
