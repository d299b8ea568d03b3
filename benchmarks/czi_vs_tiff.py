#!/usr/bin/env python
"""Converting a Zeiss CZI mosaic against the same pixels in an uncompressed tiled BigTIFF.

Not a test: a standalone benchmark printing a Markdown table.

1. Inputs (made once, cached under ``benchmarks/_data/czi_vs_tiff/``, git-ignored): a 2-channel
   uint16 mosaic of SIDE x SIDE pixels per channel (``--sides``, default 8192 and 16384: 0.27 GB
   and 1.07 GB), written by pylibCZIrw's own writer as 2048 x 2048 tiles (sub-blocks,
   uncompressed), and the same pixels as a BigTIFF ``(2, SIDE, SIDE)`` with 512 x 512 tiles,
   uncompressed, written by tifffile from a generator of tiles. Tile pixels are
   ``synthetic_slide(2048, dtype="uint16", seed=k)`` blocks, so the data compress like a slide.
   Neither file is ever held whole in memory while written.
2. Each file is converted by the console script as a child process::

       napari-zarr-tiler convert FILE OUT.zarr --compressor CODEC --quiet

   (full pyramid, chunks 512), for each codec of ``--codecs`` (default zstd and blosc-lz4). The
   child's peak RSS is the kernel's ``ru_maxrss`` from ``os.wait4``; its wall time (process start
   to exit) gives MB/s of level-0 bytes. Best of ``--repeat`` runs (default 2).
3. A check of the CZI output: random windows of level 0 equal pylibCZIrw's own read.

Targets (issue 14): CZI peak RSS < 400 MB and about the same for both sizes; CZI speed >= 0.5x
the TIFF's with the same options.

Usage::

    python benchmarks/czi_vs_tiff.py --sides 4096 --repeat 1   # smoke run
    python benchmarks/czi_vs_tiff.py
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import log, versions, wait_for_quiet

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "czi_vs_tiff"
CLI = Path(sys.executable).with_name("napari-zarr-tiler")
BLOCK = 2048
SEEDS = 8
CHANNELS = 2


def blocks(seeds: int = SEEDS) -> list[np.ndarray]:
    """The tile contents (a few synthetic slides, reused by position)."""
    from napari_zarr_tiler.sources import synthetic_slide

    return [np.asarray(synthetic_slide(BLOCK, dtype="uint16", seed=k)) for k in range(seeds)]


def block_at(tiles: list[np.ndarray], channel: int, row: int, column: int) -> np.ndarray:
    """The block at a tile position of a channel (channel 1 is a shifted copy)."""
    block = tiles[(row * 3 + column * 5 + channel) % len(tiles)]
    return block if channel == 0 else block // 2 + np.uint16(channel * 100)


def write_czi(path: Path, side: int, tiles: list[np.ndarray]) -> None:
    """The mosaic as CZI sub-blocks of BLOCK x BLOCK (pylibCZIrw's writer), calibrated."""
    from pylibCZIrw import czi as pyczi

    count = side // BLOCK
    with pyczi.create_czi(str(path), exist_ok=True) as writer:
        for channel in range(CHANNELS):
            for row in range(count):
                for column in range(count):
                    writer.write(
                        block_at(tiles, channel, row, column),
                        location=(column * BLOCK, row * BLOCK),
                        plane={"C": channel},
                    )
        writer.write_metadata(
            document_name=path.stem,
            channel_names={0: "DAPI", 1: "GFP"},
            scale_x=0.25e-6,
            scale_y=0.25e-6,
        )


def write_tiff(path: Path, side: int, tiles: list[np.ndarray]) -> None:
    """The same pixels as an uncompressed BigTIFF with 512 x 512 tiles, streamed from blocks."""
    import tifffile

    tile = 512
    per_block = BLOCK // tile

    def tile_stream():
        for channel in range(CHANNELS):
            for tile_row in range(side // tile):
                for tile_column in range(side // tile):
                    block = block_at(
                        tiles, channel, tile_row // per_block, tile_column // per_block
                    )
                    y, x = (tile_row % per_block) * tile, (tile_column % per_block) * tile
                    yield block[y : y + tile, x : x + tile]

    tifffile.imwrite(
        path,
        tile_stream(),
        shape=(CHANNELS, side, side),
        dtype="uint16",
        tile=(tile, tile),
        bigtiff=True,
        photometric="minisblack",
        metadata={"axes": "CYX"},
    )


def inputs(side: int, tiles: list[np.ndarray]) -> tuple[Path, Path]:
    """The CZI and TIFF of ``side``, written once."""
    DATA.mkdir(parents=True, exist_ok=True)
    czi, tiff = DATA / f"mosaic_{side}.czi", DATA / f"mosaic_{side}.tif"
    for path, write in ((czi, write_czi), (tiff, write_tiff)):
        if not path.exists():
            log(f"writing {path.name}")
            partial = path.with_suffix(".partial" + path.suffix)
            write(partial, side, tiles)
            partial.rename(path)
    return czi, tiff


def convert(source: Path, codec: str, out: Path) -> tuple[float, float]:
    """Convert in a child process; its wall seconds and peak RSS in MB."""
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(CLI), "convert", str(source), str(out), "--compressor", codec, "--quiet"],
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    stderr = process.stderr.read().decode() if process.stderr else ""
    if status != 0:
        raise RuntimeError(f"conversion of {source} failed: {stderr}")
    return seconds, usage.ru_maxrss / 1024


def check_output(czi: Path, out: Path, seed: int = 0) -> None:
    """Random windows of level 0 equal pylibCZIrw's own read."""
    import zarr
    from pylibCZIrw import czi as pyczi

    level0 = zarr.open_group(str(out), mode="r")["0"]
    rng = np.random.default_rng(seed)
    with pyczi.open_czi(str(czi)) as reader:
        for _ in range(5):
            c = int(rng.integers(CHANNELS))
            y, x = (int(v) for v in rng.integers(0, level0.shape[1] - 600, 2))
            expected = reader.read(roi=(x, y, 600, 500), plane={"C": c})[..., 0]
            np.testing.assert_array_equal(level0[c, y : y + 500, x : x + 600], expected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[8192, 16384])
    parser.add_argument("--codecs", nargs="+", default=["zstd", "blosc-lz4"])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--max-wait", type=float, default=120.0)
    args = parser.parse_args()
    tiles = blocks()
    rows = []
    with tempfile.TemporaryDirectory(dir=DATA.parent if DATA.parent.exists() else None) as tmp:
        for side in args.sides:
            czi, tiff = inputs(side, tiles)
            nbytes = CHANNELS * side * side * 2
            for codec in args.codecs:
                results = {}
                for kind, source in (("CZI", czi), ("TIFF", tiff)):
                    best = (float("inf"), 0.0)
                    for _ in range(args.repeat):
                        wait_for_quiet(args.max_wait, quiet_cpu_percent=15)
                        seconds, rss = convert(source, codec, Path(tmp) / "out.zarr")
                        log(f"{kind} {side} {codec}: {seconds:.1f} s, peak RSS {rss:.0f} MB")
                        best = min(best, (seconds, rss))
                    if kind == "CZI":
                        check_output(czi, Path(tmp) / "out.zarr")
                    results[kind] = best
                (czi_s, czi_rss), (tiff_s, tiff_rss) = results["CZI"], results["TIFF"]
                rows.append(
                    f"| {nbytes / 1e9:.2f} GB ({side}²x{CHANNELS}) | {codec} | "
                    f"{czi_s:.1f} s ({nbytes / 1e6 / czi_s:,.0f} MB/s) | {czi_rss:.0f} MB | "
                    f"{tiff_s:.1f} s ({nbytes / 1e6 / tiff_s:,.0f} MB/s) | {tiff_rss:.0f} MB | "
                    f"{tiff_s / czi_s:.2f}x |"
                )
    print(f"Machine: {os.cpu_count()} CPUs; load at end {os.getloadavg()[0]:.2f}")
    print(f"Versions: {versions(['pylibCZIrw', 'tifffile', 'zarr', 'zarrs', 'numcodecs'])}")
    print()
    print(
        "| level 0 | codec | CZI time | CZI peak RSS | TIFF time | TIFF peak RSS | CZI speed / TIFF |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
