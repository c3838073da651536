"""Benchmark writing a modified torch checkpoint against copying the file.

    python benchmarks/bench_perturb.py [--size-mib 1024] [--repeat 7] [--dir DIR] [--keep]

Writes a torch zip checkpoint of about --size-mib MiB with torch.save (64 float32 tensors of
equal size, plus an integer step counter), then times, in --repeat rounds that each run all
three in turn (so a slow spell of the machine hits all three alike):
  (a) shutil.copyfile of the checkpoint (the baseline; on Linux an in-kernel
      copy_file_range/sendfile, page cache warm);
  (a') a streaming copy through user space: read 1 MiB into a buffer, write it (what any
      program that must look at every byte, like (b), cannot do faster);
  (b) pytest_corrsource.perturb.perturb_weights on it: parse data.pkl without unpickling,
      transform every float storage on worker threads, patch the CRCs, verify the schema;
and prints the median and the fastest run of each, MB/s (10**6 bytes per second) of the
median, and the speed ratios b/a and b/a' of the medians (target >= 0.5). The destination is
deleted and the page cache written back (os.sync) before every timed run, so no figure pays
for freeing or flushing the previous one.

On a virtual machine the same run can take several times as long when the host has to hand
back memory the guest freed (the deleted destination's pages); medians over interleaved
rounds keep such spells from favouring either side.

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


def timed_rounds(
    runs: dict[str, Callable[[], object]], repeat: int, dst: Path
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(repeat):
        for label, run in runs.items():
            dst.unlink(missing_ok=True)
            # Write back what earlier runs (and torch.save) left dirty, untimed: otherwise
            # whichever figure comes next pays for the kernel flushing a previous gigabyte.
            os.sync()
            start = time.perf_counter()
            run()
            times[label].append(time.perf_counter() - start)
    dst.unlink(missing_ok=True)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=7)
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
        out = folder / "out.pt"
        result = perturb_weights(src, out)
        print(f"changed {len(result.changed)} tensors, {result.share:.1%} of values")
        times = timed_rounds(
            {
                "(a) shutil.copyfile (in-kernel)": lambda: shutil.copyfile(src, out),
                "(a') streaming copy in user space": lambda: stream_copy(src, out),
                "(b) perturb_weights": lambda: perturb_weights(src, out),
            },
            args.repeat,
            out,
        )
        median = {label: statistics.median(runs) for label, runs in times.items()}
        print()
        print(f"| median of {args.repeat} (fastest) | seconds | MB/s |")
        print("|---|---|---|")
        for label, runs in times.items():
            seconds = median[label]
            print(f"| {label} | {seconds:.2f} ({min(runs):.2f}) | {size / seconds / 1e6:.0f} |")
        for label, runs in times.items():
            print(f"<!-- {label}: {' '.join(f'{t:.2f}' for t in runs)} -->")
        copy, streamed, modify = median.values()
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
