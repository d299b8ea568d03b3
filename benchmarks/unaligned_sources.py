#!/usr/bin/env python
"""Dask sources whose blocks do not match the converter's regions, against aligned ones.

Not a test: a standalone benchmark printing a Markdown table.

The source is a lazily generated 8192 x 8192 uint16 dask array (or a 4 x 4096 x 4096 z-stack) (``da.map_blocks`` over the
block's pixel coordinates: a few trigonometric terms per pixel, so computing a block costs CPU,
as decoding or generating does in a real reader). The same pixels are offered in four block
shapes: aligned to the regions (2048 x 4096, what the engine picks for this image), 4096 x 4096
(larger than a region, as in issue 13), 1000 x 3000 (smaller and crossing region edges), and one
8192 x 8192 block (a whole plane, as readers that chunk by plane give); and the z-stack in
region-aligned blocks or one block per plane. "vs aligned" compares with the aligned source of
the same image. Each is converted by
``convert(source, dest)`` (default options: zstd, chunks 512, full pyramid) in a child process,
whose wall time (conversion only) gives MB/s of level-0 bytes and whose peak RSS is the kernel's
``ru_maxrss``. ``--before`` adds the same runs with every region read straight from dask
(``array[region].compute()``, the engine's behaviour before the block cache) for comparison.
Runs alternate between shapes; best of ``--repeat``.

Usage::

    python benchmarks/unaligned_sources.py [--repeat 2] [--before] [--size 8192]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: name: ((1, 1): size x size, or (planes, d, d): planes x size/d x size/d; source blocks, -1: a
#: whole axis).
SHAPES = {
    "aligned 2048 x 4096": ((1, 1), (2048, 4096)),
    "4096 x 4096": ((1, 1), (4096, 4096)),
    "1000 x 3000": ((1, 1), (1000, 3000)),
    "one plane (8192 x 8192)": ((1, 1), (-1, -1)),
    "z-stack, aligned 1 x 2048 x 4096": ((4, 2, 2), (1, 2048, 4096)),
    "z-stack, plane blocks 1 x 4096 x 4096": ((4, 2, 2), (1, -1, -1)),
}

CHILD = r"""
import sys, time
import numpy as np
import dask.array as da
from napari_zarr_tiler.converter import convert
from napari_zarr_tiler.converter import level_zero

size, dest, before = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
divisors = [int(v) for v in sys.argv[4].split(",")]
blocks = [int(v) for v in sys.argv[5].split(",")]
shape = (divisors[0], size // divisors[1], size // divisors[2]) if len(divisors) == 3 else (size, size)
chunks = tuple(s if b < 0 else b for s, b in zip(shape, blocks))

def generate(block, block_info=None):
    # Computed in strips of 256 rows (as a decoder fills its output): temporaries stay small.
    *lead, (y0, y1), (x0, x1) = block_info[None]["array-location"]
    z = float(lead[0][0]) if lead else 0.0
    out = np.empty(block.shape, np.uint16)
    x = np.arange(x0, x1, dtype=np.float32)[None, :]
    for top in range(y0, y1, 256):
        y = np.arange(top, min(top + 256, y1), dtype=np.float32)[:, None]
        value = 9000 + 4000 * np.sin(y / 97.0 + z) * np.cos(x / 131.0)
        value += 2000 * np.sin((x + y) / 53.0) + 500 * np.cos(np.hypot(x - 4000, y - 3000) / 41.0)
        out[..., top - y0 : top - y0 + value.shape[0], :] = value.astype(np.uint16)
    return out

source = da.zeros(shape, dtype=np.uint16, chunks=chunks).map_blocks(
    generate, dtype=np.uint16, meta=np.empty((0,) * len(shape), np.uint16)
)
if before:
    level_zero.LevelZero._block_cache = lambda self: level_zero.BlockCache(self.array, None)
started = time.perf_counter()
convert(source, dest)
print(time.perf_counter() - started)
"""


def run_child(
    size: int, shape: tuple[int, ...], blocks: tuple[int, ...], dest: Path, before: bool
) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one conversion in a child process."""
    shutil.rmtree(dest, ignore_errors=True)
    arguments = [str(size), str(dest), str(int(before)), ",".join(map(str, shape))]
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, *arguments, ",".join(map(str, blocks))],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        msg = f"child failed with status {status}"
        raise RuntimeError(msg)
    return float(output.strip().splitlines()[-1]), usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--before", action="store_true", help="also time reads without the cache")
    args = parser.parse_args()
    modes = [False, True] if args.before else [False]
    best: dict[tuple[str, bool], tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="unaligned-", dir=Path.cwd()) as folder:
        run_child(
            1024, (1, 1), (512, 512), Path(folder) / "warm.zarr", False
        )  # warm the page cache
        for _ in range(args.repeat):
            for before in modes:
                for name, (shape, blocks) in SHAPES.items():
                    out = Path(folder) / "out.zarr"
                    seconds, rss = run_child(args.size, shape, blocks, out, before)
                    key = (name, before)
                    old = best.get(key, (float("inf"), 0.0))
                    best[key] = (min(old[0], seconds), max(old[1], rss))
                    print(
                        f"[{time.strftime('%H:%M:%S')}] {name} before={before}: {seconds:.2f} s, {rss:.0f} MB",
                        file=sys.stderr,
                        flush=True,
                    )
    megabytes = args.size * args.size * 2 / 1e6
    aligned = {
        False: megabytes / best[("aligned 2048 x 4096", False)][0],
        True: megabytes / best[("z-stack, aligned 1 x 2048 x 4096", False)][0],
    }
    print(
        f"\n{args.size} x {args.size} uint16 ({megabytes:.0f} MB), generated dask source, "
        f"full pyramid, zstd; {os.cpu_count()} CPUs; best of {args.repeat}\n"
    )
    print("| source blocks | reads | seconds | MB/s | vs aligned | peak RSS MB |")
    print("|---|---|---:|---:|---:|---:|")
    for (name, before), (seconds, rss) in best.items():
        speed = megabytes / seconds
        reads = "per region (before)" if before else "block cache"
        print(
            f"| {name} | {reads} | {seconds:.2f} | {speed:.0f} | {speed / aligned[name.startswith('z-stack')]:.2f}x | {rss:.0f} |"
        )


if __name__ == "__main__":
    main()
