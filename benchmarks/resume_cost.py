#!/usr/bin/env python
"""What an interrupted conversion plus ``--resume`` costs against one uninterrupted run.

Not a test: a standalone benchmark printing a Markdown table.

1. Input (made once, cached under ``benchmarks/_data/resume_cost/``, git-ignored): a uint16
   BigTIFF of ~1 GB uncompressed (22,528 x 22,528), tiled 512 x 512 and deflate-compressed
   (``tifffile`` ``compression="zlib"``), as slide scanners write: re-reading it costs the
   decoding of every tile. Pixels are ``synthetic_slide(2048, seed=k)`` tiles, streamed.
2. Fresh: ``napari-zarr-tiler convert FILE OUT.zarr`` (default options), wall time of the child.
3. Interrupted: the same command, killed with SIGKILL once its journal lists half of the regions
   of the first pass; then ``convert FILE OUT.zarr --resume``. Both wall times, their sum and the
   ratio to the fresh run (target: <= 1.25x), the regions the resume kept, and whether the
   resumed store is byte-identical to the fresh one (every file compared).

Each run's previous output is removed first and ``settle_storage`` flushes the page cache.
Runs alternate fresh / interrupted; best of ``--repeat``.

Usage::

    python benchmarks/resume_cost.py [--repeat 2] [--side 22528]
"""

from __future__ import annotations

import argparse
import filecmp
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import log, settle_storage

from napari_zarr_tiler.converter.plan import plan_conversion
from napari_zarr_tiler.sources import synthetic_slide
from napari_zarr_tiler.zarr_names import JOURNAL, staging_path

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "resume_cost"
EXE = (
    shutil.which("napari-zarr-tiler", path=str(Path(sys.executable).parent)) or "napari-zarr-tiler"
)


def make_tiff(side: int) -> Path:
    """The deflate-compressed tiled BigTIFF, written tile by tile once and cached."""
    path = DATA / f"deflate_{side}.tif"
    if path.is_file():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    tiles = [synthetic_slide(2048, dtype="uint16", seed=k) for k in range(8)]

    def generate():
        for y in range(0, side, 512):
            for x in range(0, side, 512):
                tile = tiles[(y // 2048 * 7 + x // 2048) % 8]
                ty, tx = y % 2048, x % 2048
                yield tile[ty : ty + 512, tx : tx + 512]

    log(f"writing {path.name} ({side * side * 2 / 1e9:.2f} GB uncompressed)")
    partial = path.with_suffix(".partial")
    tifffile.imwrite(
        partial,
        generate(),
        shape=(side, side),
        dtype=np.uint16,
        tile=(512, 512),
        compression="zlib",
        bigtiff=True,
    )
    partial.rename(path)
    return path


def first_pass_regions(side: int) -> int:
    """How many regions the first pass of the default conversion has."""
    plan = plan_conversion((side, side), np.uint16)
    return math.prod(math.ceil(s / r) for s, r in zip((side, side), plan.region_yx, strict=True))


def fresh_run(src: Path, dest: Path) -> float:
    """Seconds of one uninterrupted conversion."""
    shutil.rmtree(dest, ignore_errors=True)
    settle_storage([src])
    started = time.perf_counter()
    subprocess.run([EXE, "convert", str(src), str(dest), "--quiet"], check=True)
    return time.perf_counter() - started


def interrupted_run(src: Path, dest: Path, half: int) -> tuple[float, float, str]:
    """(seconds until SIGKILL at half the first pass, seconds of --resume, its summary line)."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.rmtree(staging_path(dest), ignore_errors=True)
    settle_storage([src])
    journal = staging_path(dest) / JOURNAL
    started = time.perf_counter()
    process = subprocess.Popen([EXE, "convert", str(src), str(dest), "--quiet"])
    while process.poll() is None:
        if journal.is_file() and len(journal.read_text().splitlines()) - 1 >= half:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed = time.perf_counter() - started
    started = time.perf_counter()
    result = subprocess.run(
        [EXE, "convert", str(src), str(dest), "--resume"],
        check=True,
        capture_output=True,
        text=True,
    )
    resumed = time.perf_counter() - started
    summary = next((line for line in result.stderr.splitlines() if "resumed:" in line), "")
    return killed, resumed, summary


def same_tree(a: Path, b: Path) -> bool:
    """Whether two folders hold the same files with the same bytes."""
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    if files_a != files_b:
        return False
    return all(filecmp.cmp(a / f, b / f, shallow=False) for f in files_a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, default=22528)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    src = make_tiff(args.side)
    half = first_pass_regions(args.side) // 2
    work = DATA / "out"
    work.mkdir(exist_ok=True)
    fresh_dest, resumed_dest = work / "fresh.zarr", work / "resumed.zarr"
    fresh, rows = [], []
    for attempt in range(args.repeat):
        fresh.append(fresh_run(src, fresh_dest))
        log(f"fresh {attempt + 1}: {fresh[-1]:.1f} s")
        killed, resumed, summary = interrupted_run(src, resumed_dest, half)
        log(f"interrupted {attempt + 1}: {killed:.1f} s + resume {resumed:.1f} s ({summary})")
        rows.append((killed, resumed, summary, same_tree(fresh_dest, resumed_dest)))
    best = min(fresh)
    print(
        f"\n{src.name}: {args.side} x {args.side} uint16 ({args.side**2 * 2 / 1e9:.2f} GB), tiled "
        f"512, deflate; default options; SIGKILL after {half} of {2 * half} first-pass regions; "
        f"{os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| run | fresh s | killed at s | resume s | interrupted + resume s | ratio | identical |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for index, (killed, resumed, _, identical) in enumerate(rows, 1):
        total = killed + resumed
        print(
            f"| {index} | {fresh[index - 1]:.1f} | {killed:.1f} | {resumed:.1f} | {total:.1f} | "
            f"{total / best:.2f}x | {'yes' if identical else 'NO'} |"
        )
    print(f"\nbest fresh: {best:.1f} s; {rows[-1][2]}")


if __name__ == "__main__":
    main()
