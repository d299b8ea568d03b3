#!/usr/bin/env python
"""Conversion throughput and memory: ``napari_zarr_tiler.convert`` against other zarr writers.

Case A (throughput). One uint16 image with slide-like structure (``synthetic_slide`` tiles of
2,048 x 2,048 laid side by side; 8,192 x 8,192 = 134 MB by default) is held in memory as numpy
and written, for two codecs (zstd level 3; blosc-lz4 clevel 5 with byte shuffle), by:

1. the classic recipe: ``zarr.open(path, mode="w", shape, chunks=(100, 100), dtype, codecs)``
   then ``z[:] = image`` (zarr-python's own codec pipeline);
2. ``dask.array.to_zarr`` of ``da.from_array(image, chunks=(512, 512))``;
3. ome-zarr-py ``ome_zarr.writer.write_image`` (its default pyramid: scale factors 2, 4, 8, 16,
   ``resize`` downsampling; zarr chunks 512 and the codec via ``storage_options``);
4. ngff-zarr ``to_multiscales`` (default pyramid and method, ``chunks=512``) + ``to_ngff_zarr``
   (OME-Zarr 0.5, ``compressors=[...]``);
5. bioio-ome-zarr ``OMEZarrWriter(...).write_full_volume`` (the writer bioio-conversion drives),
   with the same five levels as ours (its nearest-neighbour ``resize`` through dask);
6. tensorstore, zarr3 driver, level 0 only, 512 x 512 chunks; and tensorstore writing the same
   levels as ours at once, the levels downsampled (with our kernel) before the timed write: the
   cost of encoding the pyramid, without downsampling, for the fastest writer;
7. ours, ``convert(image, path, chunks=512, compressor=..., clevel=...)``, full pyramid;
8. ours again in a subprocess with ``NAPARI_ZARR_TILER_PIPELINE=default`` (zarr-python's codec
   pipeline instead of zarrs).

Each writer first writes a 1,024^2 crop (untimed warm-up: imports, thread pools). Each write goes to a fresh folder of a temporary directory (same disk), is timed ``--repeats``
times (median reported), and is checked afterwards (untimed): level 0 must read back equal to
the input, and the codec and chunk shape stored in level 0's metadata are reported. Throughput is
``image.nbytes / seconds`` (level-0 input bytes, whatever the writer also wrote), and "ours x" is
our throughput divided by that writer's. Writes land in the page cache (no fsync), for every
writer alike. Before every timed write, ``settle_storage`` flushes the page cache (as root it
also drops it): without it, the files a writer had just deleted and the dirty pages it had just
left slowed whichever writer came next.

Case B (memory). A fresh subprocess converts a lazily built dask array of 49,152 x 49,152 uint16
(4.8 GB; every 2,048 x 2,048 block is one of 8 ``synthetic_slide`` tiles chosen by its position,
so the source costs ~64 MB however large the image) with blosc-lz4 and the full pyramid, and
reports its peak RSS (the child's VmHWM, see ``vm_hwm_mb``) and throughput.

Before every timed run the script waits (up to 3 minutes) until the 1-minute load average is at
most 1.5 -- or, since that average lags our own previous run by a minute, until the CPUs were at
most 20% busy over the last second -- so another benchmark on the machine does not skew results; and a timed run during which other
processes used more than 0.25 cores (machine CPU time minus this process's, from psutil) is
discarded and redone (up to 3 times).

Usage::

    python benchmarks/convert_throughput.py --quick      # smoke run: 4,096^2, 1 repeat
    python benchmarks/convert_throughput.py --output benchmarks/results_convert.md
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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

TILE = 2048
CHUNK = 512
QUIET_CPU_PERCENT = 20.0
MAX_WAIT_S = 180.0
#: A timed run during which other processes used more than this many cores is discarded and redone.
OTHERS_LIMIT_CORES = 0.25
MAX_ATTEMPTS = 4

CODECS: dict[str, dict[str, Any]] = {
    "zstd": {"label": "zstd level 3", "compressor": "zstd", "clevel": 3},
    "blosc-lz4": {
        "label": "blosc-lz4 clevel 5, byte shuffle",
        "compressor": "blosc-lz4",
        "clevel": 5,
    },
}
TARGETS_VS_TENSORSTORE = {"zstd": 0.7, "blosc-lz4": 0.9}
TARGET_VS_CLASSIC = 3.0
#: Python OME-Zarr writers that write a whole pyramid; ours must be this many times the fastest.
PYRAMID_PEERS = ("ome-zarr", "ngff-zarr", "bioio")
TARGET_VS_PYRAMID_PEERS = 2.0
TARGET_PEAK_RSS_MB = 500.0


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _busy_snapshot() -> tuple[float, float]:
    """(CPU seconds busy on the whole machine, CPU seconds used by this process)."""
    import psutil

    total = psutil.cpu_times()
    busy = total.user + total.nice + total.system + total.irq + total.softirq
    own = psutil.Process().cpu_times()
    return busy, own.user + own.system


def _others_cores(before: tuple[float, float], elapsed: float) -> float:
    """Average number of cores used by other processes since ``before``."""
    busy, own = _busy_snapshot()
    return max(0.0, (busy - before[0]) - (own - before[1])) / max(elapsed, 1e-6)


def engine_identity() -> str:
    """The git commit of the checkout plus a hash of the package's sources as imported now."""
    import hashlib

    import napari_zarr_tiler

    package = Path(napari_zarr_tiler.__file__).parent
    digest = hashlib.sha256()
    for source in sorted(package.rglob("*.py")):
        digest.update(source.read_bytes())
    commit = "unknown"
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "-C", str(package), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(package), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if dirty:
            commit += " + uncommitted changes"
    return f"commit {commit}, sources sha256 {digest.hexdigest()[:12]}"


def make_image(size: int) -> np.ndarray:
    """``size`` x ``size`` uint16 of synthetic_slide tiles (seed = tile index)."""
    from napari_zarr_tiler.sources.synthetic import synthetic_slide

    if size % TILE:
        msg = f"size must be a multiple of {TILE}"
        raise SystemExit(msg)
    n = size // TILE
    image = np.empty((size, size), dtype="uint16")
    for i in range(n):
        for j in range(n):
            image[i * TILE : (i + 1) * TILE, j * TILE : (j + 1) * TILE] = synthetic_slide(
                TILE, dtype="uint16", seed=i * n + j
            )
    return image


def zarr_codecs(codec: str, *, with_bytes: bool = False) -> list[Any]:
    from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec

    compressor: Any = (
        ZstdCodec(level=3)
        if codec == "zstd"
        else BloscCodec(cname="lz4", clevel=5, shuffle="shuffle", typesize=2)
    )
    return [BytesCodec(), compressor] if with_bytes else [compressor]


def multiscale_paths(path: Path) -> list[str]:
    """Dataset paths of an OME-Zarr image (0.4 or 0.5), or [""] for a bare array."""
    meta_v3 = path / "zarr.json"
    if meta_v3.is_file():
        meta = json.loads(meta_v3.read_text())
        if meta.get("node_type") == "array":
            return [""]
        attributes = meta.get("attributes", {})
    else:
        attributes = json.loads((path / ".zattrs").read_text())
    multiscales = attributes.get("ome", attributes).get("multiscales")
    return [d["path"] for d in multiscales[0]["datasets"]]


def describe_codecs(meta: dict[str, Any]) -> str:
    parts = []
    for codec in meta.get("codecs", []):
        name, config = codec["name"], codec.get("configuration", {})
        if name == "bytes":
            continue
        if name == "zstd":
            parts.append(f"zstd({config.get('level')})")
        elif name == "blosc":
            parts.append(
                f"blosc-{config.get('cname')}({config.get('clevel')}, {config.get('shuffle')})"
            )
        elif name == "sharding_indexed":
            parts.append("sharded")
        else:
            parts.append(name)
    return "+".join(parts) or "none"


def check_store(path: Path, image: np.ndarray) -> dict[str, Any]:
    """Untimed: level count, level-0 codec and chunks, and level 0 == input."""
    import zarr

    paths = multiscale_paths(path)
    level0 = path / paths[0] if paths[0] else path
    meta = json.loads((level0 / "zarr.json").read_text())
    chunks = meta["chunk_grid"]["configuration"]["chunk_shape"]
    array = zarr.open_array(str(level0), mode="r")
    equal = array.shape == image.shape and np.array_equal(array[...], image)
    return {
        "levels": len(paths),
        "codec": describe_codecs(meta),
        "chunks": "x".join(map(str, chunks)),
        "equal": bool(equal),
        "stored_mb": dir_bytes(path) / 1e6,
    }


# ---------------------------------------------------------------------------------------------
# Writers (each writes ``image`` into the new store ``path``)
# ---------------------------------------------------------------------------------------------


def write_classic(image: np.ndarray, path: Path, codec: str) -> None:
    import zarr

    z = zarr.open(
        str(path),
        mode="w",
        shape=image.shape,
        chunks=(100, 100),
        dtype=image.dtype,
        codecs=zarr_codecs(codec, with_bytes=True),
    )
    z[:] = image


def write_dask(image: np.ndarray, path: Path, codec: str) -> None:
    import dask.array as da

    da.to_zarr(
        da.from_array(image, chunks=(CHUNK, CHUNK)),
        str(path),
        compressors=zarr_codecs(codec),
        zarr_format=3,
    )


def write_ome_zarr(image: np.ndarray, path: Path, codec: str) -> None:
    from ome_zarr.writer import write_image

    write_image(
        image,
        str(path),
        axes="yx",
        storage_options={"chunks": (CHUNK, CHUNK), "compressor": zarr_codecs(codec)[0]},
    )


def write_ngff_zarr(image: np.ndarray, path: Path, codec: str) -> None:
    import ngff_zarr

    multiscales = ngff_zarr.to_multiscales(
        ngff_zarr.to_ngff_image(image, dims=("y", "x")), chunks=CHUNK
    )
    ngff_zarr.to_ngff_zarr(str(path), multiscales, version="0.5", compressors=zarr_codecs(codec))


def write_bioio(image: np.ndarray, path: Path, codec: str) -> None:
    from bioio_ome_zarr.writers import OMEZarrWriter

    shapes = [image.shape]
    while max(shapes[-1]) > CHUNK:
        shapes.append(tuple((n + 1) // 2 for n in shapes[-1]))
    writer = OMEZarrWriter(
        str(path),
        level_shapes=shapes,
        dtype=image.dtype,
        chunk_shape=(CHUNK, CHUNK),
        compressor=zarr_codecs(codec)[0],
        axes_names=["y", "x"],
    )
    writer.write_full_volume(image)


def write_tensorstore(image: np.ndarray, path: Path, codec: str) -> None:
    open_tensorstore_level0(path, image.shape, codec, CHUNK).write(image).result()


#: Levels 1.. of the case-A image, downsampled before tensorstore's timed pyramid write.
_PRECOMPUTED_LEVELS: dict[int, list[np.ndarray]] = {}


def pyramid_levels(image: np.ndarray) -> list[np.ndarray]:
    """The image and the levels ours writes (2x2 means until a level fits in one chunk)."""
    from napari_zarr_tiler.converter.pyramid import auto_level_count, downsample_2x

    levels = [image]
    for _ in range(auto_level_count(image.shape, (CHUNK, CHUNK)) - 1):
        levels.append(downsample_2x(levels[-1]))
    return levels


def write_tensorstore_pyramid(image: np.ndarray, path: Path, codec: str) -> None:
    """tensorstore writing the same levels as ours, all at once, downsampled beforehand
    (untimed, see ``main``): what the pyramid's encoding costs the fastest writer, downsampling
    left out."""
    levels = _PRECOMPUTED_LEVELS.get(id(image)) or pyramid_levels(image)
    writes = [
        open_tensorstore_level0(path / str(index), level.shape, codec, CHUNK).write(level)
        for index, level in enumerate(levels)
    ]
    for write in writes:
        write.result()
    datasets = [{"path": str(index)} for index in range(len(levels))]
    group = {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": {"ome": {"version": "0.5", "multiscales": [{"datasets": datasets}]}},
    }
    (path / "zarr.json").write_text(json.dumps(group))


def write_ours(image: Any, path: Path, codec: str) -> dict[str, Any]:
    from napari_zarr_tiler import convert

    spec = CODECS[codec]
    result = convert(
        image, path, chunks=CHUNK, compressor=spec["compressor"], clevel=spec["clevel"]
    )
    return {"codec_pipeline": result.codec_pipeline, "direct_io": result.direct_io}


WRITERS: list[tuple[str, Callable[[np.ndarray, Path, str], Any], str]] = [
    ("classic zarr.open + z[:] (chunks 100)", write_classic, "classic"),
    ("dask.array.to_zarr (chunks 512)", write_dask, "dask"),
    ("ome-zarr-py write_image", write_ome_zarr, "ome-zarr"),
    ("ngff-zarr to_ngff_zarr", write_ngff_zarr, "ngff-zarr"),
    ("bioio-ome-zarr OMEZarrWriter", write_bioio, "bioio"),
    ("tensorstore zarr3 (level 0 only)", write_tensorstore, "tensorstore"),
    (
        "tensorstore zarr3, our levels (downsampled untimed)",
        write_tensorstore_pyramid,
        "ts-pyramid",
    ),
    ("**ours** convert (full pyramid)", write_ours, "ours"),
]
PEER_NOTES = {
    "classic": "zarr-python default pipeline; level 0 only",
    "dask": "level 0 only; dask threaded scheduler",
    "ome-zarr": "default scale_factors (2,4,8,16) + skimage `resize`; codec via storage_options",
    "ngff-zarr": "default pyramid to >=chunk, itkwasm gaussian; OME-Zarr 0.5",
    "bioio": "the writer bioio-conversion drives; same levels as ours, nearest resize, dask",
    "tensorstore": "level 0 only",
    "ts-pyramid": "the levels of ours, downsampled before timing: the pyramid's encoding alone",
    "ours": "2x2 mean pyramid, zarrs pipeline",
}


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


def time_writer(
    name: str,
    write: Callable[[np.ndarray, Path, str], Any],
    image: np.ndarray,
    codec: str,
    root: Path,
    repeats: int,
) -> dict[str, Any]:
    seconds: list[float] = []
    loads: list[float] = []
    check: dict[str, Any] = {}
    error = None
    # Untimed warm-up on a small crop: imports, thread pools and first-call costs are not timed.
    warm = root / f"{name}-{codec}-warmup.zarr"
    with contextlib.suppress(Exception):
        write(np.ascontiguousarray(image[:1024, :1024]), warm, codec)
    shutil.rmtree(warm, ignore_errors=True)
    discarded = 0
    for repeat in range(repeats):
        path = root / f"{name}-{codec}-{repeat}.zarr"
        for attempt in range(MAX_ATTEMPTS):
            shutil.rmtree(path, ignore_errors=True)
            settle_storage([])  # the same page cache and filesystem state for every writer
            loads.append(wait_for_quiet(MAX_WAIT_S, quiet_cpu_percent=QUIET_CPU_PERCENT))
            before = _busy_snapshot()
            started = time.perf_counter()
            try:
                write(image, path, codec)
            except Exception as exc:  # a peer that cannot do this codec/option
                error = f"{type(exc).__name__}: {exc}"[:160]
                log(f"{name} {codec}: FAILED {error}")
                shutil.rmtree(path, ignore_errors=True)
                break
            elapsed = time.perf_counter() - started
            others = _others_cores(before, elapsed)
            if others > OTHERS_LIMIT_CORES and attempt < MAX_ATTEMPTS - 1:
                discarded += 1
                log(
                    f"{name} {codec} #{repeat}: {elapsed:.2f} s DISCARDED (other processes used {others:.2f} cores)"
                )
                continue
            break
        if error:
            break
        seconds.append(elapsed)
        check = check_store(path, image)  # untimed
        if not check["equal"]:
            log(f"{name} {codec}: level 0 differs from the input!")
        shutil.rmtree(path, ignore_errors=True)
        log(f"{name} {codec} #{repeat}: {seconds[-1]:.2f} s (others {others:.2f} cores)")
    return {
        "name": name,
        "seconds": seconds,
        "median": statistics.median(seconds) if seconds else None,
        "loads": loads,
        "discarded": discarded,
        "error": error,
        **check,
    }


def run_default_pipeline_child(npy: Path, codec: str, root: Path, repeats: int) -> dict[str, Any]:
    """Time ours with NAPARI_ZARR_TILER_PIPELINE=default in a fresh subprocess."""
    env = {**os.environ, "NAPARI_ZARR_TILER_PIPELINE": "default"}
    command = [
        sys.executable,
        __file__,
        "--child",
        "pipeline",
        "--npy",
        str(npy),
        "--codec",
        codec,
        "--tmp",
        str(root),
        "--repeats",
        str(repeats),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        return {
            "name": "ours, default pipeline",
            "seconds": [],
            "median": None,
            "error": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}",
        }
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_pipeline(args: argparse.Namespace) -> None:
    image = np.load(args.npy)
    result = time_writer(
        "ours-default-pipeline", write_ours, image, args.codec, Path(args.tmp), args.repeats
    )
    path = Path(args.tmp) / "pipeline-probe.zarr"
    extra = write_ours(image[:CHUNK, :CHUNK], path, args.codec)
    shutil.rmtree(path, ignore_errors=True)
    result["name"] = "ours, NAPARI_ZARR_TILER_PIPELINE=default"
    result["pipeline"] = extra.get("codec_pipeline")
    print(json.dumps(result))


# ---------------------------------------------------------------------------------------------
# Case B: memory
# ---------------------------------------------------------------------------------------------

_TILES: list[np.ndarray] = []


def _tile_block(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
    """One 2048 x 2048 block: one of 8 synthetic_slide tiles, picked by the block's position."""
    from napari_zarr_tiler.sources.synthetic import synthetic_slide

    if not _TILES:
        _TILES.extend(synthetic_slide(TILE, dtype="uint16", seed=s) for s in range(8))
    i, j = block_info[None]["chunk-location"]
    tile = _TILES[(i * 5 + j * 3) % len(_TILES)]
    shape = block_info[None]["chunk-shape"]
    return tile[: shape[0], : shape[1]]


def vm_hwm_mb() -> float:
    """Peak RSS of this process's address space (VmHWM), in MiB.

    Unlike ``ru_maxrss``, it is not inherited from the parent: Linux carries the pre-exec peak
    of a forked child (a copy of the parent, whose RSS holds case A's image) into ``ru_maxrss``.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child_memory(args: argparse.Namespace) -> None:
    import dask.array as da

    size = args.memory_size
    if args.memory_source == "random":
        source = da.random.default_rng(0).integers(
            0, 4000, size=(size, size), dtype="uint16", chunks=(TILE, TILE)
        )
    else:
        source = da.map_blocks(
            _tile_block,
            da.empty((size, size), dtype="uint16", chunks=(TILE, TILE)),
            dtype="uint16",
            meta=np.empty((0, 0), dtype="uint16"),
        )
    if args.memory_source == "tiles":
        _tile_block(
            np.empty((1, 1), "uint16"), {None: {"chunk-location": (0, 0), "chunk-shape": (1, 1)}}
        )
    # Reset the peak-RSS mark so that it measures the conversion, not imports or tile generation.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    hwm_before = vm_hwm_mb()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    path = Path(args.tmp) / "memory.zarr"
    started = time.perf_counter()
    extra = write_ours(source, path, "blosc-lz4")
    seconds = time.perf_counter() - started
    peak = vm_hwm_mb()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    levels = len(multiscale_paths(path))
    # Untimed spot check: a few level-0 blocks equal the source.
    import zarr

    level0 = zarr.open_array(str(path / multiscale_paths(path)[0]), mode="r")
    spots = [(0, 0), (size // 2 - 700, size // 3), (size - 1500, size - 1500)]
    equal = all(
        np.array_equal(
            level0[y : y + 1500, x : x + 1500], source[y : y + 1500, x : x + 1500].compute()
        )
        for y, x in spots
    )
    stored = dir_bytes(path) / 1e6
    shutil.rmtree(path, ignore_errors=True)
    print(
        json.dumps(
            {
                "shape": [size, size],
                "source": args.memory_source,
                "gb": size * size * 2 / 1e9,
                "seconds": seconds,
                "mb_s": size * size * 2 / 1e6 / seconds,
                "peak_rss_mb": peak,
                "rss_before_mb": hwm_before,
                "ru_maxrss_mb": maxrss,
                "ru_maxrss_before_mb": maxrss_before,
                "levels": levels,
                "spot_check_equal": equal,
                "stored_mb": stored,
                "pipeline": extra.get("codec_pipeline"),
            }
        )
    )


def run_memory_case(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--child",
        "memory",
        "--memory-size",
        str(args.memory_size),
        "--memory-source",
        args.memory_source,
        "--tmp",
        str(root),
    ]
    wait_for_quiet(MAX_WAIT_S, quiet_cpu_percent=QUIET_CPU_PERCENT)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        msg = f"memory child failed ({done.returncode}): {done.stderr[-2000:]}"
        raise SystemExit(msg)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def fmt_s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def codec_table(codec: str, rows: list[dict[str, Any]], nbytes: int, ours_median: float) -> str:
    lines = [
        f"### {CODECS[codec]['label']}",
        "",
        "| writer | median s | runs (s) | MB/s (level-0 input) | levels | ours x | level-0 codec, chunks | stored MB | level 0 == input | note |",
        "|---|---:|---|---:|---:|---:|---|---:|---|---|",
    ]
    for row in rows:
        median = row.get("median")
        mb_s = nbytes / 1e6 / median if median else None
        ratio = median / ours_median if median else None
        runs = ", ".join(f"{s:.2f}" for s in row.get("seconds", []))
        note = row.get("note", "")
        if row.get("error"):
            note = f"FAILED: {row['error']}"
        lines.append(
            f"| {row['name']} | {fmt_s(median)} | {runs} | {'—' if mb_s is None else f'{mb_s:,.0f}'} | "
            f"{row.get('levels', '—')} | {'—' if ratio is None else f'{ratio:.2f}x'} | "
            f"{row.get('codec', '—')}, {row.get('chunks', '—')} | "
            f"{_stored(row)} | "
            f"{'yes' if row.get('equal') else ('—' if 'equal' not in row else '**NO**')} | {note} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 4096^2, 1 repeat, 8192^2 memory case"
    )
    parser.add_argument(
        "--size", type=int, default=None, help="side of the case-A image (multiple of 2048)"
    )
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--memory-size", type=int, default=None, help="side of the case-B image")
    parser.add_argument("--memory-source", choices=("tiles", "random"), default="tiles")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument(
        "--only", default=None, help="comma-separated writer keys to run (default all)"
    )
    parser.add_argument("--output", type=Path, default=None, help="also write the report here")
    parser.add_argument("--tmp", default=None, help="temporary directory (default: system temp)")
    parser.add_argument(
        "--child", choices=("pipeline", "memory"), default=None, help=argparse.SUPPRESS
    )
    parser.add_argument("--npy", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--codec", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.size = args.size or (4096 if args.quick else 8192)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.memory_size = args.memory_size or (8192 if args.quick else 49152)

    if args.child == "pipeline":
        child_pipeline(args)
        return
    if args.child == "memory":
        child_memory(args)
        return

    only = set(args.only.split(",")) if args.only else None
    out = io.StringIO()

    def emit(text: str = "") -> None:
        print(text, flush=True)
        out.write(text + "\n")

    root = Path(tempfile.mkdtemp(prefix="convert-bench-", dir=args.tmp))
    try:
        log(f"building the {args.size}^2 image")
        image = make_image(args.size)
        npy = root / "image.npy"
        np.save(npy, image)
        meta = versions(
            [
                "zarr",
                "zarrs",
                "tensorstore",
                "dask",
                "ome-zarr",
                "ngff-zarr",
                "bioio-ome-zarr",
                "bioio-conversion",
                "numcodecs",
                "numpy",
            ]
        )
        emit("# Conversion throughput and memory")
        emit()
        emit(
            f"Date: {datetime.date.today().isoformat()}; machine: {platform.machine()}, "
            f"{os.cpu_count()} cores, {_total_gb():.0f} GB RAM, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}; temp dir {root.parent} "
            f"(same disk as /work)."
        )
        emit()
        emit("Versions: " + ", ".join(f"{k} {v}" for k, v in meta.items()) + ".")
        emit()
        emit(f"Engine (napari_zarr_tiler): {engine_identity()}.")
        emit()
        emit(f"Command: `python benchmarks/convert_throughput.py {' '.join(sys.argv[1:])}`")
        emit()
        emit(
            f"## Case A: {args.size:,} x {args.size:,} uint16 in memory "
            f"({image.nbytes / 1e6:.0f} MB), median of {args.repeats} run(s)"
        )
        emit()
        emit(
            "MB/s = level-0 input bytes / seconds, whatever else the writer wrote (pyramid levels). "
            '"ours x" = our MB/s / that writer\'s MB/s (>1: we are faster). Level 0 is read back '
            "and compared with the input after every run (untimed)."
        )
        emit()
        summary: dict[str, dict[str, float | None]] = {}
        if not only or "ts-pyramid" in only:
            _PRECOMPUTED_LEVELS[id(image)] = pyramid_levels(image)
        for codec in CODECS:
            rows = []
            for name, write, key in WRITERS:
                if only and key not in only:
                    continue
                log(f"--- {codec}: {name}")
                row = time_writer(key, write, image, codec, root, args.repeats)
                row["name"], row["key"], row["note"] = name, key, PEER_NOTES[key]
                rows.append(row)
            if not only or "ours" in only:
                log(f"--- {codec}: ours with the default pipeline (subprocess)")
                row = run_default_pipeline_child(npy, codec, root, args.repeats)
                row["key"] = "ours-default"
                row["note"] = f"subprocess; pipeline used: {row.get('pipeline')}"
                rows.append(row)
            ours = next((r for r in rows if r.get("key") == "ours"), None)
            ours_median = ours["median"] if ours and ours["median"] else float("nan")
            emit(codec_table(codec, rows, image.nbytes, ours_median))
            emit()
            loads = [x for r in rows for x in r.get("loads", [])]
            if loads:
                discarded = sum(r.get("discarded", 0) for r in rows)
                emit(
                    f"1-minute load average at the start of the timed runs: {min(loads):.2f} to "
                    f"{max(loads):.2f} (the runs themselves raise it; see the module docstring). "
                    f"Runs discarded and redone because other processes used > "
                    f"{OTHERS_LIMIT_CORES} cores meanwhile: {discarded}."
                )
                emit()
            by_key = {r["key"]: r.get("median") for r in rows}
            summary[codec] = {
                "vs_tensorstore": by_key["tensorstore"] / ours_median
                if by_key.get("tensorstore")
                else None,
                "vs_classic": by_key["classic"] / ours_median if by_key.get("classic") else None,
                "vs_peers": _vs_fastest_peer(by_key, ours_median),
                "ts_pyramid_vs_ts": by_key["tensorstore"] / by_key["ts-pyramid"]
                if by_key.get("tensorstore") and by_key.get("ts-pyramid")
                else None,
                "vs_ts_pyramid": by_key["ts-pyramid"] / ours_median
                if by_key.get("ts-pyramid")
                else None,
            }
        _PRECOMPUTED_LEVELS.clear()
        emit("### Targets (case A)")
        emit()
        emit(
            "| codec | ours vs tensorstore | target | met | ours vs fastest pyramid peer | target "
            "| met | ours vs classic | target | met |"
        )
        emit("|---|---:|---:|---|---:|---:|---|---:|---:|---|")
        for codec, values in summary.items():
            ts_ratio, classic_ratio = values["vs_tensorstore"], values["vs_classic"]
            peer_ratio = values["vs_peers"]
            ts_target = TARGETS_VS_TENSORSTORE[codec]
            emit(
                f"| {codec} | {_ratio(ts_ratio)} | >= {ts_target}x | {_met(ts_ratio, ts_target)} | "
                f"{_ratio(peer_ratio)} | >= {TARGET_VS_PYRAMID_PEERS}x | "
                f"{_met(peer_ratio, TARGET_VS_PYRAMID_PEERS)} | "
                f"{_ratio(classic_ratio)} | >= {TARGET_VS_CLASSIC}x | {_met(classic_ratio, TARGET_VS_CLASSIC)} |"
            )
        emit()
        emit(
            "The pyramid's encoding alone, as tensorstore does it (its level-0 time over its "
            "time for the same levels as ours, downsampled beforehand and untimed), and ours "
            "(downsampling included) against that:"
        )
        emit()
        emit(
            "| codec | tensorstore, same levels vs its level 0 | ours vs tensorstore, same levels |"
        )
        emit("|---|---:|---:|")
        for codec, values in summary.items():
            emit(
                f"| {codec} | {_ratio(values['ts_pyramid_vs_ts'])} | "
                f"{_ratio(values['vs_ts_pyramid'])} |"
            )
        emit()
        del image
        if not args.skip_memory:
            log(f"--- case B: {args.memory_size}^2 lazy dask source, blosc-lz4, subprocess")
            memory = run_memory_case(args, root)
            emit(
                f"## Case B: memory, {args.memory_size:,} x {args.memory_size:,} uint16 lazy dask "
                f"source ({memory['gb']:.1f} GB), blosc-lz4, full pyramid, fresh subprocess"
            )
            emit()
            source_text = (
                "`da.random.default_rng(0).integers(0, 4000, ..., chunks=2048)`"
                if memory["source"] == "random"
                else "`da.map_blocks`: each 2048^2 block one of 8 `synthetic_slide` tiles"
            )
            emit(f"Source: {source_text}.")
            emit()
            emit(
                "| seconds | MB/s (level-0) | levels | peak RSS (child VmHWM) | before convert "
                "(VmHWM) | child ru_maxrss | target | met | level-0 spot check | stored MB |"
            )
            emit("|---:|---:|---:|---:|---:|---:|---:|---|---|---:|")
            peak = memory["peak_rss_mb"]
            emit(
                f"| {memory['seconds']:.1f} | {memory['mb_s']:,.0f} | {memory['levels']} | "
                f"{peak:,.0f} MB | {memory['rss_before_mb']:,.0f} MB | "
                f"{memory['ru_maxrss_mb']:,.0f} MB | < {TARGET_PEAK_RSS_MB:.0f} MB | "
                f"{'yes' if peak < TARGET_PEAK_RSS_MB else '**no**'} | "
                f"{'equal' if memory['spot_check_equal'] else '**DIFFERS**'} | {memory['stored_mb']:,.0f} |"
            )
            emit()
            emit(
                "Peak RSS is the child's VmHWM (/proc/self/status) read right after `convert` "
                "returns. `ru_maxrss` is shown for reference only: on Linux it keeps the peak of "
                "the forked child *before* exec, i.e. of this (parent) process holding case A's "
                f"image (it read {memory['ru_maxrss_before_mb']:,.0f} MB before `convert` started); "
                "RUSAGE_CHILDREN in the parent has the same flaw."
            )
            emit()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.output:
        args.output.write_text(out.getvalue())
        log(f"wrote {args.output}")


def _vs_fastest_peer(by_key: dict[str, float | None], ours_median: float) -> float | None:
    """The fastest pyramid peer's seconds over ours (None when no peer ran)."""
    peers = [by_key[key] for key in PYRAMID_PEERS if by_key.get(key)]
    return min(peers) / ours_median if peers else None


def _stored(row: dict[str, Any]) -> str:
    return "—" if "stored_mb" not in row else f"{row['stored_mb']:.1f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _met(value: float | None, target: float) -> str:
    if value is None:
        return "n/a"
    return "yes" if value >= target else "**no**"


def _total_gb() -> float:
    with contextlib.suppress(Exception):
        import psutil

        return psutil.virtual_memory().total / 1e9
    return float("nan")


if __name__ == "__main__":
    main()
