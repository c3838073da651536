"""Benchmark writing a modified torch checkpoint against copying the file.

    python benchmarks/bench_perturb.py [--size-mib 1024] [--repeat 3] [--dir DIR] [--keep]

Writes a torch zip checkpoint of about --size-mib MiB with torch.save (64 float32 tensors of
equal size, plus an integer step counter), then times, each the median of --repeat runs:
  (a) shutil.copyfile of the checkpoint (the baseline; on Linux an in-kernel
      copy_file_range/sendfile, page cache warm);
  (a') a streaming copy through user space: read 1 MiB into a buffer, write it (what any
      program that must look at every byte, like (b), cannot do faster);
  (b) pytest_corrsource.perturb.perturb_weights on it: parse data.pkl without unpickling, stream
      every float storage through the perturbation, patch the CRCs, verify the schema;
and prints MB/s (10**6 bytes per second) and the ratios b/a and b/a' (target >= 0.5). The
destination is deleted and the page cache written back (os.sync) before every timed run, so no
figure pays for freeing or flushing the previous one.

Needs torch (the `real` extra) to write the checkpoint, and about 3x --size-mib of free disk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MIB = 1 << 20


def write_checkpoint(path: Path, size_mib: int) -> None:
    import torch

    per_tensor = size_mib * MIB // 64 // 4
    state = {f"layers.{i}.weight": torch.randn(per_tensor) for i in range(64)}
    state["step"] = torch.tensor(1000)
    torch.save({"model": state}, path)


def stream_copy(src: Path, dst: Path) -> None:
    buf = bytearray(MIB)
    view = memoryview(buf)
    with src.open("rb") as fin, dst.open("wb") as fout:
        while got := fin.readinto(buf):
            fout.write(view[:got])


def timed(run: Callable[[], object], repeat: int, dst: Path) -> float:
    times = []
    for _ in range(repeat):
        dst.unlink(missing_ok=True)
        # Write back what earlier runs (and torch.save) left dirty, untimed: otherwise whichever
        # figure comes next pays for the kernel flushing a previous gigabyte, not for its work.
        os.sync()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    try:
        import torch  # noqa: F401
    except ImportError:
        print("torch is needed to write the checkpoint (pip install '.[real]')", file=sys.stderr)
        return 2
    from pytest_corrsource.perturb import perturb_weights

    folder = Path(tempfile.mkdtemp(prefix="bench-perturb-", dir=args.dir))
    try:
        src = folder / "ck.pt"
        write_checkpoint(src, args.size_mib)
        size = src.stat().st_size
        load = os.getloadavg()[0]
        print(f"checkpoint: {size / MIB:.0f} MiB, load {load:.2f}, {os.cpu_count()} CPUs")
        copied, modified = folder / "copy.pt", folder / "modified.pt"
        copy = timed(lambda: shutil.copyfile(src, copied), args.repeat, copied)
        streamed = timed(lambda: stream_copy(src, copied), args.repeat, copied)
        result = perturb_weights(src, modified)
        modify = timed(lambda: perturb_weights(src, modified), args.repeat, modified)
        print(f"changed {len(result.changed)} tensors, {result.share:.1%} of values")
        print()
        print("| | seconds | MB/s |")
        print("|---|---|---|")
        print(f"| (a) shutil.copyfile (in-kernel) | {copy:.2f} | {size / copy / 1e6:.0f} |")
        print(
            f"| (a') streaming copy in user space | {streamed:.2f} | {size / streamed / 1e6:.0f} |"
        )
        print(f"| (b) perturb_weights | {modify:.2f} | {size / modify / 1e6:.0f} |")
        print(f"| b/a speed ratio | | {copy / modify:.2f} (target >= 0.5) |")
        print(f"| b/a' speed ratio | | {streamed / modify:.2f} (target >= 0.5) |")
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
