"""Benchmark the safetensors header reader on a 10,000-tensor header, small file vs big file.

    python benchmarks/bench_headers.py [--tensors 10000] [--tensor-kib 64] [--repeat 7] [--dense]

Times pytest_corrsource.formats.safetensors.read_safetensors_header(path) (median of --repeat
calls, after one untimed warm-up call whose time is printed separately) on:
  small: safetensors.numpy.save_file of N float32 tensors of shape (4,);
  big:   the same N names as float32 tensors of --tensor-kib KiB each (N x 64 KiB ~ 640 MiB),
         written by hand: header, then a sparse truncate() to the full size (data read as
         zeros; --dense writes random bytes instead).
A header-only reader should take the same time for both (target <= 50 ms). safe_open().keys()
from the safetensors package is timed too, as a reference. Files are in the page cache.
Exit status 2 if the reader cannot be imported.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MIB = 1 << 20


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(first call, median of ``repeat`` further calls), in milliseconds."""
    t0 = time.perf_counter()
    fn()
    first = (time.perf_counter() - t0) * 1e3
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return first, statistics.median(times)


def write_small(path: Path, n: int) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    save_file({f"layer.{i:05d}.weight": np.zeros(4, dtype=np.float32) for i in range(n)}, path)


def write_big(path: Path, n: int, tensor_bytes: int, *, dense: bool) -> None:
    """A valid safetensors file of ``n`` F32 tensors of ``tensor_bytes`` each, never held in
    memory: the header, then either a sparse extension or random chunks."""
    header_obj = {
        f"layer.{i:05d}.weight": {
            "dtype": "F32",
            "shape": [tensor_bytes // 4],
            "data_offsets": [i * tensor_bytes, (i + 1) * tensor_bytes],
        }
        for i in range(n)
    }
    header = json.dumps(header_obj, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    data_len = n * tensor_bytes
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        if dense:
            left = data_len
            while left:
                k = min(16 * MIB, left)
                f.write(os.urandom(k))
                left -= k
        else:
            f.truncate(8 + len(header) + data_len)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tensors", type=int, default=10_000, help="tensor count (default 10000)")
    ap.add_argument("--tensor-kib", type=int, default=64, help="big-file tensor size (default 64)")
    ap.add_argument("--repeat", type=int, default=7, help="timed calls, median (default 7)")
    ap.add_argument("--dense", action="store_true", help="write real bytes, not a sparse file")
    ap.add_argument("--dir", type=Path, help="where to create the temp dir (default: system tmp)")
    ap.add_argument("--keep", action="store_true", help="do not delete the temp dir")
    args = ap.parse_args()

    try:
        from pytest_corrsource.formats.safetensors import read_safetensors_header
    except ImportError as exc:
        print(
            "cannot import pytest_corrsource.formats.safetensors.read_safetensors_header "
            f"({exc}); the header reader has not landed yet.",
            file=sys.stderr,
        )
        return 2
    from safetensors import safe_open

    work = Path(tempfile.mkdtemp(prefix="corrsource-bench-headers-", dir=args.dir))
    try:
        small, big = work / "small.safetensors", work / "big.safetensors"
        write_small(small, args.tensors)
        write_big(big, args.tensors, args.tensor_kib * 1024, dense=args.dense)
        print(f"temp dir {work} ({'dense' if args.dense else 'sparse'} big file; page cache)")

        rows = []
        for label, path in (("small", small), ("big", big)):
            size = path.stat().st_size
            (hlen,) = struct.unpack("<Q", _head(path))
            with safe_open(str(path), framework="numpy") as f:  # cross-check: valid file
                assert len(f.keys()) == args.tensors
            result = read_safetensors_header(path)
            tensors = getattr(result, "tensors", None)
            found = len(tensors) if tensors is not None else "?"
            first, median = timed(functools.partial(read_safetensors_header, path), args.repeat)

            def st_keys(p: Path = path) -> object:
                with safe_open(str(p), framework="numpy") as f:
                    return f.keys()

            _, ref = timed(st_keys, args.repeat)
            print(
                f"  {label:5} {size / MIB:9.1f} MiB, header {hlen / 1e3:6.0f} kB, {found} tensors: "
                f"read_safetensors_header {median:7.2f} ms (first call {first:.2f} ms); "
                f"safe_open().keys() {ref:.2f} ms"
            )
            rows.append((label, size, hlen, found, median, first, ref))

        ratio = rows[1][4] / rows[0][4]
        print(f"  big/small time ratio: {ratio:.2f} (a header-only reader should be ~1)")
        print(
            "\n| file | size | header | tensors | read_safetensors_header (median) | first call "
            "| safe_open().keys() | target |\n|---|---|---|---|---|---|---|---|"
        )
        for label, size, hlen, found, median, first, ref in rows:
            print(
                f"| {label} | {size / MIB:.1f} MiB | {hlen / 1e3:.0f} kB | {found} "
                f"| {median:.2f} ms | {first:.2f} ms | {ref:.2f} ms | <= 50 ms |"
            )
        return 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(8)


if __name__ == "__main__":
    sys.exit(main())
