#!/usr/bin/env python
"""Peak memory and throughput of the ``napari-zarr-tiler convert`` command on large BigTIFFs.

Not a test: a standalone benchmark printing Markdown tables.

1. Inputs (made once, cached under ``benchmarks/_data/cli_memory/``, git-ignored): uint16
   BigTIFFs of ~1 GB and ~8 GB uncompressed, each tiled (512 x 512 tiles) and stripped (64 rows
   per strip). Pixels are ``synthetic_slide(2048, dtype="uint16", seed=k)`` blocks (8 seeds,
   chosen by block position), so the data compresses like a slide. The 1 GB tiled file is
   22,300 x 22,800 (not a multiple of 512: partial edge tiles and odd pyramid levels). Files are
   written streaming (``TiffWriter.write`` of a generator of tiles, or of strips as bytes), never
   holding the image in memory.
2. Each file is converted by the console script as a child process::

       napari-zarr-tiler convert FILE OUT.zarr --compressor blosc-lz4

   (full pyramid, chunks 512), plus ``--compressor zstd --clevel 3`` on the 1 GB tiled file. The
   child's peak RSS is the kernel's ``ru_maxrss`` from ``os.wait4``; its wall time (process start
   to exit, imports included) gives MB/s of level-0 input bytes. Best of 2 runs.
3. Ceilings, measured in the same run: tensorstore (zarr3 driver, 512 x 512 chunks, same codec)
   writing level 0 only of an in-memory slab of the same file (its first 4,096 rows, full width,
   read with tifffile), best of 2; and tifffile's own read speed of each whole file, slab by slab
   (2,048 rows, full width) through ``zarr.open(TiffFile(f).series[0].aszarr(), mode="r")``.
4. One table and the targets: every peak RSS < 256 MB; each 8 GB run's peak within 1.1x of the
   1 GB run's (same layout); ours >= 0.5x tensorstore.
5. Check of one output: level 0 of the 1 GB tiled conversion equals the TIFF (and the generator)
   in random windows and at the bottom-right edge; the store has the expected levels and shapes.

Before every timed run (ours and tensorstore's) the previous output is deleted and
``settle_storage`` flushes the page cache (as root it also drops it and reads the input back):
the state the previous run left behind otherwise changed the next run's kernel time 2-3x. Our
converter then converts a 1024 x 1024 TIFF with the same options (``warm_up_converter``), so its
Python modules are back in the page cache, as tensorstore's are in the timing process. Then
the script waits (up to ``--max-wait`` s) while the 1-minute load average
is above 1.5 -- unless the CPUs were at most 15% busy over the last 2 s, which means the load
average is only the decaying trace of our own previous run.

Usage::

    python benchmarks/cli_memory.py --quick     # small files, smoke run
    python benchmarks/cli_memory.py --output benchmarks/results_cli_memory.md
"""

from __future__ import annotations

import argparse
import datetime
import io
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import (
    dir_bytes,
    log,
    open_tensorstore_level0,
    settle_storage,
    versions,
    wait_for_quiet,
)

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "cli_memory"
CLI = Path(sys.executable).with_name("napari-zarr-tiler")
BLOCK = 2048
SEEDS = 8
CHUNK = 512
TIFF_TILE = 512
ROWS_PER_STRIP = 64
SLAB_ROWS_TS = 4096
SLAB_ROWS_READ = 2048
IDLE_CPU_PERCENT = 15.0
TARGET_RSS_MB = 256.0
TARGET_RSS_GROWTH = 1.1
TARGET_VS_TENSORSTORE = 0.5
#: Timed runs per measurement (ours and tensorstore alike); the best time counts.
RUNS = 2

CODECS: dict[str, dict[str, Any]] = {
    "blosc-lz4": {
        "args": ["--compressor", "blosc-lz4"],
        "label": "blosc-lz4 (clevel 5, shuffle)",
    },
    "zstd": {
        "args": ["--compressor", "zstd", "--clevel", "3"],
        "label": "zstd level 3",
    },
}


@dataclass(frozen=True)
class Case:
    size: str  # "1 GB", "8 GB"
    layout: str  # "tiled", "stripped"
    shape: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * 2

    @property
    def path(self) -> Path:
        return DATA / f"slide_{self.shape[0]}x{self.shape[1]}_{self.layout}.tif"


def cases(quick: bool) -> list[Case]:
    if quick:
        return [
            Case("small", "tiled", (3000, 3100)),
            Case("small", "stripped", (4096, 4096)),
            Case("large", "tiled", (8192, 8192)),
            Case("large", "stripped", (8192, 8192)),
        ]
    return [
        Case("1 GB", "tiled", (22300, 22800)),
        Case("1 GB", "stripped", (22528, 22528)),
        Case("8 GB", "tiled", (65536, 65536)),
        Case("8 GB", "stripped", (65536, 65536)),
    ]


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def expected_levels(shape: tuple[int, int]) -> list[tuple[int, int]]:
    """Level shapes of the default pyramid: halve (rounding up) until one chunk holds it."""
    shapes = [shape]
    while shapes[-1][0] > CHUNK or shapes[-1][1] > CHUNK:
        shapes.append(tuple(math.ceil(s / 2) for s in shapes[-1]))  # type: ignore[misc]
    return shapes


# ---------------------------------------------------------------------------------------------
# Synthetic slide pixels, by window (blocks of synthetic_slide chosen by position)
# ---------------------------------------------------------------------------------------------


class Slide:
    def __init__(self) -> None:
        from napari_zarr_tiler.sources.synthetic import synthetic_slide

        self.blocks = [synthetic_slide(BLOCK, dtype="uint16", seed=s) for s in range(SEEDS)]

    def block(self, by: int, bx: int) -> np.ndarray:
        return self.blocks[(by * 5 + bx * 3 + (by * bx) % 7) % SEEDS]

    def window(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        out = np.empty((y1 - y0, x1 - x0), dtype="uint16")
        for by in range(y0 // BLOCK, (y1 - 1) // BLOCK + 1):
            for bx in range(x0 // BLOCK, (x1 - 1) // BLOCK + 1):
                ys, ye = max(y0, by * BLOCK), min(y1, (by + 1) * BLOCK)
                xs, xe = max(x0, bx * BLOCK), min(x1, (bx + 1) * BLOCK)
                out[ys - y0 : ye - y0, xs - x0 : xe - x0] = self.block(by, bx)[
                    ys - by * BLOCK : ye - by * BLOCK, xs - bx * BLOCK : xe - bx * BLOCK
                ]
        return out


def make_tiff(case: Case, slide: Slide) -> float:
    """Write the case's BigTIFF streaming (if not cached); return seconds spent (0 if cached)."""
    import tifffile

    if case.path.is_file():
        return 0.0
    case.path.parent.mkdir(parents=True, exist_ok=True)
    height, width = case.shape
    partial = case.path.with_suffix(".tif.partial")
    started = time.perf_counter()
    if case.layout == "tiled":

        def tiles():  # full tiles; tifffile zero-pads the edge ones
            for y in range(0, height, TIFF_TILE):
                for x in range(0, width, TIFF_TILE):
                    yield slide.window(y, min(y + TIFF_TILE, height), x, min(x + TIFF_TILE, width))

        data, extra = tiles(), {"tile": (TIFF_TILE, TIFF_TILE)}
    else:

        def strips():  # uncompressed strips, as bytes (tifffile takes no strip ndarrays)
            for y in range(0, height, ROWS_PER_STRIP):
                yield slide.window(y, min(y + ROWS_PER_STRIP, height), 0, width).tobytes()

        data, extra = strips(), {"rowsperstrip": ROWS_PER_STRIP}
    with tifffile.TiffWriter(partial, bigtiff=True) as writer:
        writer.write(data, shape=case.shape, dtype="uint16", photometric="minisblack", **extra)
    partial.rename(case.path)
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


@dataclass
class ChildRun:
    seconds: float
    peak_rss_mb: float
    returncode: int
    stderr: str
    load: float = 0.0


# A lean launcher: Linux carries the pre-exec memory image's high-water RSS into the exec'ed
# program's ru_maxrss (exec_mmap -> setmax_mm_hiwater_rss), and a child forked (or vforked) from
# this benchmark process starts as a copy of it (~250 MB of imports and synthetic blocks). So the
# CLI is started by a tiny Python (``-S -I``, ~9 MB) that runs it and reports ``os.wait4``.
LAUNCHER = """
import json, os, sys, time
started = time.perf_counter()
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "maxrss_kb": usage.ru_maxrss,
                  "code": os.waitstatus_to_exitcode(status)}))
"""


def run_child(command: list[str], *, max_wait: float) -> ChildRun:
    """Run a command; its wall time and the kernel's peak RSS of it (ru_maxrss, KB on Linux)."""
    import json

    load = wait_for_quiet(max_wait, quiet_cpu_percent=IDLE_CPU_PERCENT)
    with tempfile.TemporaryFile() as err:
        done = subprocess.run(
            [sys.executable, "-S", "-I", "-c", LAUNCHER, *command],
            stdout=subprocess.PIPE,
            stderr=err,
            check=True,
        )
        err.seek(0)
        text = err.read().decode(errors="replace")
    result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return ChildRun(result["seconds"], result["maxrss_kb"] / 1024, result["code"], text, load)


def warm_up_converter(codec_args: list[str]) -> None:
    """Convert a small TIFF with the same options, so the converter's program files are cached.

    Dropping the page cache (``settle_storage``) also drops Python's own modules; reading them
    back from disk cost our process another 0.15 s on every timed run, while tensorstore is
    timed in a process that has imported it already. A user's machine that has run the
    converter before has them cached, as here after this warm-up.
    """
    tiny = DATA / "warm_up.tif"
    if not tiny.is_file():
        import tifffile

        tifffile.imwrite(tiny, np.zeros((1024, 1024), np.uint16), tile=(TIFF_TILE, TIFF_TILE))
    out = DATA / "warm_up.zarr"
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run(
        [str(CLI), "convert", str(tiny), str(out), "--quiet", *codec_args],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    shutil.rmtree(out)
    subprocess.run(["sync"], check=False)


def open_tiff_zarr(path: Path) -> tuple[Any, Any, Any]:
    import tifffile
    import zarr

    tiff = tifffile.TiffFile(path)
    store = tiff.series[0].aszarr()
    return tiff, store, zarr.open(store, mode="r")


def tifffile_read_mb_s(case: Case, max_wait: float) -> float:
    wait_for_quiet(max_wait, quiet_cpu_percent=IDLE_CPU_PERCENT)
    tiff, store, array = open_tiff_zarr(case.path)
    try:
        height = case.shape[0]
        started = time.perf_counter()
        for y in range(0, height, SLAB_ROWS_READ):
            slab = array[y : min(y + SLAB_ROWS_READ, height)]
            del slab
        seconds = time.perf_counter() - started
    finally:
        store.close()
        tiff.close()
    return case.nbytes / 1e6 / seconds


def tensorstore_mb_s(
    slab: np.ndarray, codec: str, scratch: Path, max_wait: float, inputs: list[Path]
) -> float:
    """Best of :data:`RUNS`: tensorstore zarr3 writing ``slab`` as level 0 (512 x 512 chunks)."""
    best = math.inf
    for _ in range(RUNS):
        if scratch.exists():
            shutil.rmtree(scratch)
        settle_storage(inputs)
        store = open_tensorstore_level0(scratch, slab.shape, codec, CHUNK)
        wait_for_quiet(max_wait, quiet_cpu_percent=IDLE_CPU_PERCENT)
        started = time.perf_counter()
        store.write(slab).result()
        best = min(best, time.perf_counter() - started)
        del store
    shutil.rmtree(scratch, ignore_errors=True)  # our own scratch copy
    return slab.nbytes / 1e6 / best


def read_slab(case: Case) -> np.ndarray:
    tiff, store, array = open_tiff_zarr(case.path)
    try:
        return np.asarray(array[: min(SLAB_ROWS_TS, case.shape[0])])
    finally:
        store.close()
        tiff.close()


def verify(case: Case, out: Path, slide: Slide, rng: np.random.Generator) -> list[str]:
    """Level 0 == TIFF == generator in random windows (and the bottom-right corner); levels."""
    import json as _json

    import zarr

    lines = []
    meta = _json.loads((out / "zarr.json").read_text())
    datasets = meta["attributes"]["ome"]["multiscales"][0]["datasets"]
    expected = expected_levels(case.shape)
    shapes = [tuple(zarr.open_array(str(out / d["path"]), mode="r").shape) for d in datasets]
    ok_levels = shapes == expected
    lines.append(
        f"- levels: {len(shapes)} (expected {len(expected)}); shapes "
        f"{'match' if ok_levels else 'DIFFER: ' + str(shapes) + ' vs ' + str(expected)} "
        f"({shapes[0]} ... {shapes[-1]})"
    )
    level0 = zarr.open_array(str(out / datasets[0]["path"]), mode="r")
    tiff, store, source = open_tiff_zarr(case.path)
    height, width = case.shape
    windows = []
    for _ in range(6):
        h, w = int(rng.integers(1, 1500)), int(rng.integers(1, 1500))
        y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
        windows.append((y, y + h, x, x + w))
    windows.append((height - 700, height, width - 900, width))  # partial edge chunks
    all_ok = ok_levels
    try:
        for y0, y1, x0, x1 in windows:
            written = level0[y0:y1, x0:x1]
            in_tiff = source[y0:y1, x0:x1]
            generated = slide.window(y0, y1, x0, x1)
            ok = np.array_equal(written, in_tiff) and np.array_equal(in_tiff, generated)
            all_ok &= ok
            lines.append(f"- level 0 [{y0}:{y1}, {x0}:{x1}] == TIFF == generator: {ok}")
        # level 1 is the 2x2 mean (rounded half up) of level 0
        y0, x0 = (windows[0][0] // 2) * 2, (windows[0][2] // 2) * 2
        block = source[y0 : y0 + 512, x0 : x0 + 512].astype(np.uint32)
        mean = (
            (block[0::2, 0::2] + block[1::2, 0::2] + block[0::2, 1::2] + block[1::2, 1::2] + 2)
            // 4
        ).astype(np.uint16)
        level1 = zarr.open_array(str(out / datasets[1]["path"]), mode="r")
        ok = np.array_equal(level1[y0 // 2 : y0 // 2 + 256, x0 // 2 : x0 // 2 + 256], mean)
        all_ok &= ok
        lines.append(f"- level 1 [{y0 // 2}:+256, {x0 // 2}:+256] == 2x2 mean of the TIFF: {ok}")
    finally:
        store.close()
        tiff.close()
    lines.insert(0, f"Output check of {out.name}: {'PASS' if all_ok else 'FAIL'}")
    return lines


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    case: Case
    codec: str
    run: ChildRun  # the fastest of the runs, with the highest peak RSS of them all
    all_seconds: list[float]
    ts_mb_s: float
    read_mb_s: float
    out_bytes: int

    @property
    def direct_io(self) -> bool:
        return "direct I/O" in self.run.stderr

    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ours_mb_s(self) -> float:
        return self.case.nbytes / 1e6 / self.run.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small files (smoke run)")
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    parser.add_argument(
        "--skip-8gb-stripped", action="store_true", help="drop the 8 GB stripped case (disk)"
    )
    parser.add_argument(
        "--max-wait", type=float, default=300.0, help="max seconds to wait per run"
    )
    args = parser.parse_args()

    global DATA
    if args.quick:
        DATA = DATA / "quick"
    all_cases = cases(args.quick)
    if args.skip_8gb_stripped:
        all_cases = [c for c in all_cases if not (c.size == "8 GB" and c.layout == "stripped")]
    out_dir = DATA / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    if not CLI.is_file():
        raise SystemExit(f"console script not found: {CLI}")

    report = io.StringIO()

    def emit(text: str = "") -> None:
        print(text)
        report.write(text + "\n")

    log("generating the synthetic blocks")
    slide = Slide()
    notes = []
    needed = sum(c.nbytes for c in all_cases if not c.path.is_file())
    free = shutil.disk_usage(DATA).free
    if needed > free - 20e9 and not args.skip_8gb_stripped and not args.quick:
        notes.append(
            f"Disk: {gb(free)} free, {gb(needed)} needed for inputs plus outputs: dropped the 8 GB "
            "stripped case."
        )
        all_cases = [c for c in all_cases if not (c.size == "8 GB" and c.layout == "stripped")]
    for case in all_cases:
        if not case.path.is_file():
            log(f"writing {case.path.name} ({gb(case.nbytes)})")
        seconds = make_tiff(case, slide)
        if seconds:
            log(f"  wrote in {seconds:.0f} s ({case.nbytes / 1e6 / seconds:,.0f} MB/s)")

    # Import baseline of the CLI process.
    baseline = run_child([str(CLI), "--version"], max_wait=args.max_wait)

    rows: list[Row] = []
    verification: list[str] = []
    rng = np.random.default_rng(12345)
    for case in all_cases:
        log(f"{case.path.name}: tifffile read")
        read = tifffile_read_mb_s(case, args.max_wait)
        slab = read_slab(case)
        codecs = ["blosc-lz4"] + (
            ["zstd"] if case.layout == "tiled" and case is all_cases[0] else []
        )
        for codec in codecs:
            log(f"{case.path.name}: tensorstore {codec}")
            ts = tensorstore_mb_s(
                slab, codec, DATA / "tensorstore_scratch.zarr", args.max_wait, [case.path]
            )
            suffix = "" if codec == "blosc-lz4" else f".{codec}"
            out = out_dir / f"{case.path.stem}{suffix}.zarr"
            command = [
                str(CLI),
                "convert",
                str(case.path),
                str(out),
                *CODECS[codec]["args"],
            ]  # not --quiet: its last line says whether it wrote with direct I/O
            runs = []
            for attempt in range(RUNS):
                if out.exists():
                    shutil.rmtree(out)
                settled = settle_storage([case.path])
                warm_up_converter(CODECS[codec]["args"])
                log(f"{case.path.name}: convert {codec} ({attempt + 1}/{RUNS})")
                runs.append(run_child(command, max_wait=args.max_wait))
                if runs[-1].returncode != 0:
                    break
            run = min(runs, key=lambda r: (r.returncode != 0, r.seconds))
            run.peak_rss_mb = max(r.peak_rss_mb for r in runs)
            if run.returncode != 0:
                log(f"  FAILED ({run.returncode}): {run.stderr.strip()}")
            else:
                log(
                    f"  {run.seconds:.1f} s, {case.nbytes / 1e6 / run.seconds:,.0f} MB/s, "
                    f"peak RSS {run.peak_rss_mb:,.0f} MB"
                )
            rows.append(
                Row(
                    case,
                    codec,
                    run,
                    [r.seconds for r in runs],
                    ts,
                    read,
                    dir_bytes(out) if out.exists() else 0,
                )
            )
            if case is all_cases[0] and codec == "blosc-lz4" and run.returncode == 0:
                verification = verify(case, out, slide, rng)
            shutil.rmtree(out, ignore_errors=True)  # 11 GB for an 8 GB input: keep the disk free
        del slab

    # ---- report ----
    emit(
        f"# `napari-zarr-tiler convert`: peak memory and throughput{' (quick)' if args.quick else ''}"
    )
    emit()
    cpus = os.cpu_count()
    import psutil

    emit(
        f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; {platform.platform()}; "
        f"Python {platform.python_version()}; {cpus} cores; "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    )
    emit()
    emit(
        "Versions: "
        + ", ".join(
            f"{k} {v}"
            for k, v in versions(
                [
                    "napari-zarr-tiler",
                    "zarr",
                    "zarrs",
                    "tifffile",
                    "tensorstore",
                    "numcodecs",
                    "numpy",
                ]
            ).items()
        )
    )
    emit()
    emit(
        "Command: `napari-zarr-tiler convert FILE OUT.zarr --compressor blosc-lz4` "
        "(full pyramid, 512 x 512 chunks, zarr 3 / OME-Zarr 0.5; zstd rows: `--compressor zstd --clevel 3`). "
        "Peak RSS is the child's `ru_maxrss` (`os.wait4`); MB/s is level-0 bytes / wall time of the "
        f"process (imports included), best of {RUNS} runs (peak RSS: the highest of them). "
        "Tensorstore: zarr3 driver, level 0 only, same chunks and codec, writing an in-memory slab "
        f"of the file's first {SLAB_ROWS_TS:,} rows (full width), best of {RUNS}. "
        "tifffile read: the whole file, slabs of "
        f"{SLAB_ROWS_READ:,} rows, through `zarr.open(TiffFile(f).series[0].aszarr(), mode='r')`. "
        f"Before every timed run, ours and tensorstore's: the previous output is deleted, then {settled}; "
        "before ours, the converter also converts a 1024 x 1024 TIFF with the same options, so that its "
        "program files are cached again as on any machine that has run it before (after the cache drop "
        "they cost about 0.15 s more). "
        "Outputs land in the page cache (no fsync)."
    )
    emit()
    for note in notes:
        emit(f"**{note}**")
        emit()
    emit(
        "| file | layout | size | codec | our MB/s | peak RSS MB | tensorstore L0 MB/s (in-memory slab) "
        "| ratio ours/tensorstore | tifffile read MB/s | wall s (runs) | output | direct I/O |"
    )
    emit("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        c = row.case
        failed = row.run.returncode != 0
        emit(
            f"| {c.path.name} | {c.layout} | {c.shape[0]:,} x {c.shape[1]:,} ({gb(c.nbytes)}) | {row.codec} "
            f"| {'FAILED' if failed else f'{row.ours_mb_s:,.0f}'} | {row.run.peak_rss_mb:,.0f} "
            f"| {row.ts_mb_s:,.0f} | {row.ours_mb_s / row.ts_mb_s:.2f} | {row.read_mb_s:,.0f} "
            f"| {row.run.seconds:,.1f} ({', '.join(f'{s:.1f}' for s in row.all_seconds)}) "
            f"| {gb(row.out_bytes)} | {'yes' if row.direct_io else 'no'} |"
        )
    emit()
    emit(
        f"Import baseline: `napari-zarr-tiler --version` peaks at {baseline.peak_rss_mb:,.0f} MB RSS "
        f"({baseline.seconds:.2f} s)."
    )
    emit()

    # ---- targets ----
    emit("## Targets")
    emit()
    ok_runs = [r for r in rows if r.run.returncode == 0]
    rss_ok = all(r.run.peak_rss_mb < TARGET_RSS_MB for r in rows) and len(ok_runs) == len(rows)
    worst = max(rows, key=lambda r: r.run.peak_rss_mb)
    emit(
        f"- every peak RSS < {TARGET_RSS_MB:.0f} MB: **{'met' if rss_ok else 'MISSED'}** "
        f"(highest {worst.run.peak_rss_mb:,.0f} MB: {worst.case.path.name}, {worst.codec})"
    )
    sizes = sorted(
        {c.size for c in all_cases}, key=lambda s: min(c.nbytes for c in all_cases if c.size == s)
    )
    small, large = sizes[0], sizes[-1]
    for layout in ("tiled", "stripped"):
        pair = [
            next(
                (
                    r
                    for r in rows
                    if r.case.layout == layout and r.case.size == s and r.codec == "blosc-lz4"
                ),
                None,
            )
            for s in (small, large)
        ]
        if None in pair:
            emit(f"- {layout}: {large} vs {small} peak RSS: not measured")
            continue
        a, b = pair
        ratio = b.run.peak_rss_mb / a.run.peak_rss_mb
        emit(
            f"- {layout}: {large} run's peak within {TARGET_RSS_GROWTH}x of the {small} run's: "
            f"**{'met' if ratio <= TARGET_RSS_GROWTH else 'MISSED'}** "
            f"({b.run.peak_rss_mb:,.0f} / {a.run.peak_rss_mb:,.0f} MB = {ratio:.2f}x)"
        )
    for row in rows:
        ratio = row.ours_mb_s / row.ts_mb_s
        emit(
            f"- ours >= {TARGET_VS_TENSORSTORE}x tensorstore, {row.case.path.name} {row.codec}: "
            f"**{'met' if ratio >= TARGET_VS_TENSORSTORE and row.run.returncode == 0 else 'MISSED'}** ({ratio:.2f}x)"
        )
    emit()
    emit("## Output check")
    emit()
    for line in verification or ["(no successful conversion of the first case to check)"]:
        emit(line)
    emit()
    emit("## Disk")
    emit()
    inputs = sum(dir_bytes(c.path) for c in all_cases)
    emit(
        f"Inputs {gb(inputs)} under `{DATA.relative_to(HERE.parent)}` (kept; git-ignored); "
        f"each output was deleted once measured; {gb(shutil.disk_usage(DATA).free)} free on that "
        "disk now."
    )
    for row in rows:
        if row.run.returncode != 0:
            emit()
            emit(
                f"stderr of the failed run ({row.case.path.name}, {row.codec}): `{row.run.stderr.strip()[-500:]}`"
            )
    if args.output:
        args.output.write_text(report.getvalue())
        log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
