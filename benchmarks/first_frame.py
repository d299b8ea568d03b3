#!/usr/bin/env python
"""Time to first frame: how long napari takes to show an OME-Zarr pyramid, per reader.

Creates (once, cached under ``benchmarks/_data/``) two OME-Zarr 0.5 (zarr v3) uint16 image
pyramids -- 65,536 x 65,536 and 1,024 x 1,024, chunks 512 x 512 -- then, for each store and each
reader (this plugin, napari-ome-zarr, napari's builtin reader), starts a fresh Python process that
opens a shown napari viewer, calls ``viewer.open(path, plugin=...)`` and processes Qt events until
the layers report ``loaded`` and a canvas draw has happened; a canvas screenshot then checks that
the frame shows data (>1% of pixels differ from the empty canvas colour). The wall time from ``viewer.open`` to that
draw, and the process's peak RSS at that point, are reported as a Markdown table.

Run with a display, e.g.::

    xvfb-run -a -s "-screen 0 1600x1200x24" python benchmarks/first_frame.py

Options: ``--quick`` skips the huge store when it has not been created yet; ``--data-dir``
chooses where the stores are cached; ``--output`` also writes the report to a Markdown file.
Each measurement runs in its own process (so no dask/zarr/napari cache carries over), with a
timeout and a resident-memory limit; the operating system's page cache is *not* dropped, so the
numbers are for a warm disk cache.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_DATA_DIR = HERE / "_data"

HUGE_SIZE = 65_536
SMALL_SIZE = 1_024
CHUNK = 512
TILE = 4_096  # side of one synthetic_slide() tile of level-0 content
PIXEL_SIZE_UM = 0.25  # a 40x whole-slide scan

READERS = ("napari-zarr-tiler", "napari-ome-zarr", "napari")
OURS = "napari-zarr-tiler"


# ---------------------------------------------------------------------------------------------
# Store creation
# ---------------------------------------------------------------------------------------------


def store_path(data_dir: Path, size: int) -> Path:
    return data_dir / f"slide_{size}.ome.zarr"


def level_shapes(size: int) -> list[int]:
    """Level sides, halving until the smallest level fits in one chunk."""
    sides = [size]
    while sides[-1] > CHUNK:
        sides.append(math.ceil(sides[-1] / 2))
    return sides


def mean2x2(image: Any) -> Any:
    """2 x 2 mean (rounded) of a uint16 image with even sides."""
    import numpy as np

    total = image[0::2, 0::2].astype(np.uint32)
    total += image[1::2, 0::2]
    total += image[0::2, 1::2]
    total += image[1::2, 1::2]
    total += 2
    total //= 4
    return total.astype(image.dtype)


def create_group(path: Path, size: int) -> list[Any]:
    """Create the OME-Zarr 0.5 group and its (empty) level arrays; return the arrays."""
    import zarr

    sides = level_shapes(size)
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    arrays = []
    datasets = []
    for index, side in enumerate(sides):
        arrays.append(
            group.create_array(
                str(index),
                shape=(side, side),
                dtype="uint16",
                chunks=(CHUNK, CHUNK),
                fill_value=0,
                dimension_names=["y", "x"],
            )
        )
        factor = 2**index
        datasets.append(
            {
                "path": str(index),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [PIXEL_SIZE_UM * factor] * 2},
                ],
            }
        )
    group.attrs.put(
        {
            "ome": {
                "version": "0.5",
                "multiscales": [
                    {
                        "name": path.name.removesuffix(".partial").removesuffix(".ome.zarr"),
                        "axes": [
                            {"name": "y", "type": "space", "unit": "micrometer"},
                            {"name": "x", "type": "space", "unit": "micrometer"},
                        ],
                        "datasets": datasets,
                    }
                ],
            }
        }
    )
    return arrays


def downsample_level(source: Any, target: Any, region: int = 4 * TILE) -> None:
    """Fill ``target`` with the 2 x 2 mean of ``source``, one region of the target at a time."""
    import numpy as np

    side = target.shape[0]
    for y0 in range(0, side, region):
        for x0 in range(0, side, region):
            y1, x1 = min(y0 + region, side), min(x0 + region, side)
            block = source[2 * y0 : 2 * y1, 2 * x0 : 2 * x1]
            if not block.any():
                continue  # never written: stays fill value
            if block.shape[0] % 2 or block.shape[1] % 2:
                block = np.pad(block, ((0, block.shape[0] % 2), (0, block.shape[1] % 2)), "edge")
            target[y0:y1, x0:x1] = mean2x2(block)


def tissue_tiles(n_tiles: int) -> list[tuple[int, int]]:
    """Which TILE x TILE tiles of a huge slide hold tissue: three elliptical tissue sections.

    The rest of the slide is left unwritten (fill value 0), which keeps creation time and disk
    use bounded (the content is noisy 16-bit data that compresses only ~10%).
    """
    sections = [  # centre row, centre col, radius rows, radius cols (in tiles)
        (4.0, 4.5, 3.2, 3.4),
        (11.0, 4.0, 3.4, 2.8),
        (8.0, 11.5, 4.6, 3.3),
    ]
    tiles = []
    for row in range(n_tiles):
        for col in range(n_tiles):
            cy, cx = row + 0.5, col + 0.5
            if any(((cy - r) / ry) ** 2 + ((cx - c) / rx) ** 2 <= 1 for r, c, ry, rx in sections):
                tiles.append((row, col))
    return tiles


def tile_content(row: int, col: int, cache: dict[int, Any]) -> Any:
    """Level-0 content of one tile: one of a few synthetic slides, flipped/rotated per tile."""
    import numpy as np

    from napari_zarr_tiler.sources.synthetic import synthetic_slide

    n_seeds = 8
    index = (row * 7 + col * 3) % (n_seeds * 8)
    seed, orientation = index % n_seeds, index // n_seeds
    if seed not in cache:
        cache[seed] = synthetic_slide(TILE, dtype="uint16", seed=seed)
    image = np.rot90(cache[seed], orientation % 4)
    if orientation >= 4:
        image = image[:, ::-1]
    return np.ascontiguousarray(image)


def create_huge(path: Path) -> None:
    import numpy as np

    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    arrays = create_group(partial, HUGE_SIZE)
    tiles = tissue_tiles(HUGE_SIZE // TILE)
    print(
        f"  level 0: writing {len(tiles)} of {(HUGE_SIZE // TILE) ** 2} {TILE}x{TILE} tiles "
        "(the rest is background left at fill value 0)",
        flush=True,
    )
    cache: dict[int, np.ndarray] = {}
    in_tile_levels = int(math.log2(TILE // CHUNK))  # levels 1..3 stay chunk-aligned per tile
    start = time.perf_counter()
    for number, (row, col) in enumerate(tiles, 1):
        level = tile_content(row, col, cache)
        side = TILE
        for index in range(in_tile_levels + 1):
            y0, x0 = row * side, col * side
            arrays[index][y0 : y0 + side, x0 : x0 + side] = level
            if index < in_tile_levels:
                level = mean2x2(level)  # next level from this level's region
                side //= 2
        if number % 10 == 0 or number == len(tiles):
            print(
                f"    {number}/{len(tiles)} tiles, {time.perf_counter() - start:.0f} s",
                flush=True,
            )
    del cache
    for index in range(in_tile_levels + 1, len(arrays)):
        print(f"  level {index} from level {index - 1}", flush=True)
        downsample_level(arrays[index - 1], arrays[index])
    partial.rename(path)


def create_small(path: Path) -> None:
    from napari_zarr_tiler.sources.synthetic import synthetic_slide

    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    arrays = create_group(partial, SMALL_SIZE)
    tile = synthetic_slide(TILE, dtype="uint16", seed=0)
    # the SMALL_SIZE crop with the most tissue, on a SMALL_SIZE grid
    best = max(
        ((y, x) for y in range(0, TILE, SMALL_SIZE) for x in range(0, TILE, SMALL_SIZE)),
        key=lambda yx: tile[yx[0] : yx[0] + SMALL_SIZE, yx[1] : yx[1] + SMALL_SIZE].mean(),
    )
    arrays[0][...] = tile[best[0] : best[0] + SMALL_SIZE, best[1] : best[1] + SMALL_SIZE]
    for index in range(1, len(arrays)):
        downsample_level(arrays[index - 1], arrays[index])
    partial.rename(path)


def du_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def ensure_stores(data_dir: Path, quick: bool) -> list[Path]:
    data_dir.mkdir(parents=True, exist_ok=True)
    stores = []
    for size, create in ((HUGE_SIZE, create_huge), (SMALL_SIZE, create_small)):
        path = store_path(data_dir, size)
        if path.exists():
            print(f"{path.name}: cached ({du_bytes(path) / 2**30:.2f} GiB on disk)", flush=True)
        elif quick and size == HUGE_SIZE:
            print(f"{path.name}: missing, skipped (--quick)", flush=True)
            continue
        else:
            print(f"{path.name}: creating...", flush=True)
            start = time.perf_counter()
            create(path)
            print(
                f"{path.name}: created in {time.perf_counter() - start:.1f} s "
                f"({du_bytes(path) / 2**30:.2f} GiB on disk)",
                flush=True,
            )
        stores.append(path)
    return stores


# ---------------------------------------------------------------------------------------------
# One measurement (runs in a fresh process)
# ---------------------------------------------------------------------------------------------


def worker(path: str, plugin: str, timeout: float) -> dict[str, Any]:
    """Open ``path`` with ``plugin`` in a shown viewer; time to the first frame showing data."""
    import napari
    import numpy as np
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1200, 800)
    app = QApplication.instance()
    canvas = viewer.window._qt_viewer.canvas._scene_canvas

    draws: list[float] = []  # every draw
    loaded_draws: list[float] = []  # draws with layers in the viewer, all of them loaded

    def on_draw(event: Any = None) -> None:
        now = time.perf_counter()
        draws.append(now)
        if len(viewer.layers) and all(layer.loaded for layer in viewer.layers):
            loaded_draws.append(now)

    # after vispy's scene rendering and napari's own draw handler
    canvas.events.draw.connect(on_draw, position="last")

    def pump(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.001)

    settle_end = time.perf_counter() + 10
    while not draws and time.perf_counter() < settle_end:
        pump(0.05)
    pump(0.3)
    empty = viewer.screenshot(canvas_only=True, flash=False)[..., :3].reshape(-1, 3)
    colors, counts = np.unique(empty, axis=0, return_counts=True)
    background = colors[np.argmax(counts)]  # the empty canvas's colour
    result: dict[str, Any] = {"rss_before_open_mb": _peak_rss_mb()}

    draws.clear()
    loaded_draws.clear()
    start = time.perf_counter()
    try:
        layers = viewer.open(path, plugin=plugin)
    except Exception as error:
        result.update(status="cannot open", error=f"{type(error).__name__}: {error}"[:300])
        return result
    opened = time.perf_counter()
    result["open_s"] = opened - start
    result["layers"] = [
        {
            "name": layer.name,
            "reader_plugin": getattr(layer.source, "reader_plugin", None),
            "type": type(layer).__name__,
            "multiscale": getattr(layer, "multiscale", None),
            "levels": len(layer.data) if getattr(layer, "multiscale", False) else 1,
            "shape": [int(s) for s in layer.data[0].shape]
            if getattr(layer, "multiscale", False)
            else [int(s) for s in layer.data.shape],
        }
        for layer in layers
    ]
    if not layers:
        result.update(status="cannot open", error="viewer.open returned no layers")
        return result

    deadline = start + timeout
    checked_draws = 0
    loaded_at = None
    while time.perf_counter() < deadline:
        app.processEvents()
        if loaded_at is None and all(layer.loaded for layer in layers):
            loaded_at = time.perf_counter()
        if len(loaded_draws) > checked_draws:
            # a draw happened with every layer loaded (possibly already inside viewer.open,
            # which processes Qt events): is data on screen?
            frame_time = loaded_draws[checked_draws]
            checked_draws = len(loaded_draws)
            peak = _peak_rss_mb()
            shot = viewer.screenshot(canvas_only=True, flash=False)
            changed = np.any(shot[..., :3] != background, axis=-1)
            fraction = float(changed.mean())
            if fraction > 0.01:
                result.update(
                    status="ok",
                    first_frame_s=frame_time - start,
                    loaded_s=loaded_at - start,
                    peak_rss_mb=peak,
                    data_pixels=fraction,
                    data_level=[getattr(layer, "data_level", None) for layer in layers],
                    draws_before=checked_draws,
                )
                break
        time.sleep(0.001)
    else:
        result.update(
            status="timeout",
            loaded=loaded_at is not None,
            draws=len(draws),
            peak_rss_mb=_peak_rss_mb(),
        )
        return result

    # Let the view settle (napari may pick a finer level after the first draw), for the record.
    settle_deadline = time.perf_counter() + 15
    while time.perf_counter() < settle_deadline:
        before = len(draws)
        pump(0.5)
        if len(draws) == before and all(layer.loaded for layer in layers):
            break
    result["settled_s"] = (draws[-1] if draws else time.perf_counter()) - start
    result["settled_level"] = [getattr(layer, "data_level", None) for layer in layers]
    result["settled_peak_rss_mb"] = _peak_rss_mb()
    return result


def _peak_rss_mb() -> float:
    """This process's peak resident memory, in MiB.

    On Linux ``getrusage(RUSAGE_SELF).ru_maxrss`` survives ``exec``: a child spawned by a
    process that once used 600 MB reports at least 600 MB. ``VmHWM`` (the high-water mark of
    this process's own address space) does not, so it is preferred when available.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def measure(path: Path, plugin: str, timeout: float, mem_limit_gb: float) -> dict[str, Any]:
    """Run :func:`worker` in a fresh process with a timeout and a resident-memory limit."""
    import psutil

    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        str(path),
        plugin,
        "--timeout",
        str(timeout),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    watched = psutil.Process(process.pid)
    peak_seen = 0.0
    killed = None
    # the worker's own timeout covers open -> first frame; allow for start-up and settling
    hard_deadline = started + timeout + 60
    while process.poll() is None:
        try:
            rss = watched.memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            break
        peak_seen = max(peak_seen, rss)
        if rss > mem_limit_gb * 1024:
            killed = f"killed: RSS above {mem_limit_gb:g} GB"
        elif time.perf_counter() > hard_deadline:
            killed = "timeout (killed)"
        if killed:
            process.kill()
            break
        time.sleep(0.1)
    stdout, stderr = process.communicate()
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line.removeprefix("RESULT "))
            break
    else:
        tail = stderr.strip().splitlines()[-3:]
        result = {
            "status": killed or f"failed (exit {process.returncode})",
            "error": " | ".join(tail)[:300],
            "peak_rss_mb": peak_seen,
        }
    result["wall_s"] = time.perf_counter() - started
    return result


def fmt_store(path: Path) -> str:
    size = int(path.name.split("_")[1].split(".")[0])
    return f"{size:,}²"


def summarize(runs: list[dict[str, Any]]) -> tuple[str, str, str, float | None]:
    """(first frame, peak RSS, note, median seconds) for one store x reader."""
    ok = [run for run in runs if run.get("status") == "ok"]
    if not ok:
        run = runs[0]
        note = run.get("status", "failed")
        if run.get("error"):
            note += f": {run['error']}"
        if run.get("status") == "timeout":
            note += f" (layers loaded: {run.get('loaded')}, draws: {run.get('draws')})"
        rss = run.get("peak_rss_mb")
        return run.get("status", "failed"), f"{rss:.0f}" if rss else "-", note, None
    times = [run["first_frame_s"] for run in ok]
    rss = statistics.median(run["peak_rss_mb"] for run in ok)
    median = statistics.median(times)
    first = ok[0]
    layer = first["layers"][0]
    notes = [
        f"median of {len(ok)}"
        + (f" ({', '.join(f'{t:.2f}' for t in times)})" if len(ok) > 1 else ""),
        f"{len(first['layers'])} layer(s), {layer['type']}, {layer['levels']} level(s)",
        f"open() {statistics.median(run['open_s'] for run in ok):.2f} s",
        f"first frame at level {first['data_level'][0]}",
        f"settled {statistics.median(run['settled_s'] for run in ok):.2f} s at level "
        f"{first['settled_level'][0]}",
    ]
    if len(ok) < len(runs):
        notes.append(f"{len(runs) - len(ok)} run(s) failed: {runs[-1].get('status')}")
    return f"{median:.2f}", f"{rss:.0f}", "; ".join(notes), median


def versions() -> str:
    from importlib.metadata import version

    parts = []
    for package in ("napari", "zarr", "napari-ome-zarr", "ome-zarr", "dask", "napari-zarr-tiler"):
        try:
            parts.append(f"{package} {version(package)}")
        except Exception:
            parts.append(f"{package} ?")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip the huge store if missing")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--repeats", type=int, default=3, help="runs per store x reader")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per measurement")
    parser.add_argument(
        "--mem-limit-gb", type=float, default=8, help="kill a measurement above this RSS"
    )
    parser.add_argument("--readers", nargs="+", default=list(READERS), choices=READERS)
    parser.add_argument("--output", type=Path, help="also write the report to this Markdown file")
    parser.add_argument("--json", type=Path, help="write all raw measurements to this file")
    parser.add_argument("--worker", nargs=2, metavar=("PATH", "PLUGIN"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        result = worker(args.worker[0], args.worker[1], args.timeout)
        print("RESULT " + json.dumps(result), flush=True)
        # skip Qt/napari teardown: it can hang or crash at exit and is not what we measure
        os._exit(0)

    load_before = os.getloadavg()
    start = time.perf_counter()
    stores = ensure_stores(args.data_dir, args.quick)
    print(f"stores ready in {time.perf_counter() - start:.1f} s", flush=True)

    rows = []
    medians: dict[tuple[str, str], float | None] = {}
    raw: dict[str, Any] = {}
    for path in stores:
        for reader in args.readers:
            runs = []
            for repeat in range(args.repeats):
                result = measure(path, reader, args.timeout, args.mem_limit_gb)
                runs.append(result)
                shown = result.get("first_frame_s")
                print(
                    f"{path.name} | {reader} | run {repeat + 1}: {result['status']}"
                    + (f", first frame {shown:.2f} s" if shown is not None else "")
                    + (
                        f", peak RSS {result['peak_rss_mb']:.0f} MB"
                        if result.get("peak_rss_mb")
                        else ""
                    )
                    + (f" [{result['error']}]" if result.get("error") else ""),
                    flush=True,
                )
                if result["status"] != "ok":
                    break  # don't repeat a failure or a timeout
            first, rss, note, median = summarize(runs)
            medians[(path.name, reader)] = median
            rows.append(f"| {fmt_store(path)} | {reader} | {first} | {rss} | {note} |")
            raw[f"{path.name} {reader}"] = runs

    lines = [
        "| store | reader | first frame (s) | peak RSS (MB) | note |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]
    huge, small = (
        store_path(args.data_dir, HUGE_SIZE).name,
        store_path(args.data_dir, SMALL_SIZE).name,
    )
    ours_huge, ours_small = medians.get((huge, OURS)), medians.get((small, OURS))
    theirs_huge = medians.get((huge, "napari-ome-zarr"))
    if ours_huge and ours_small:
        ratio = ours_huge / ours_small
        lines.append(
            f"- {OURS}: 65,536² / 1,024² first-frame time = {ours_huge:.2f} s / {ours_small:.2f} s "
            f"= **{ratio:.2f}** (target <= 1.2: {'met' if ratio <= 1.2 else 'NOT met'})"
        )
    if ours_huge and theirs_huge:
        ratio = ours_huge / theirs_huge
        lines.append(
            f"- 65,536²: {OURS} {ours_huge:.2f} s vs napari-ome-zarr {theirs_huge:.2f} s "
            f"= **{ratio:.2f}x** (target: ours no slower: {'met' if ratio <= 1.0 else 'NOT met'})"
        )
    elif ours_huge:
        lines.append("- 65,536²: napari-ome-zarr has no successful measurement to compare with")
    report = "\n".join(lines)
    print()
    print(report)

    if args.output:
        header = [
            "# First frame benchmark",
            "",
            f"- date: {datetime.date.today().isoformat()}",
            f"- machine: {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}; Xvfb + Mesa (software OpenGL)",
            f"- versions: {versions()}",
            f"- load average (1 min) before / after the measurements: {load_before[0]:.2f} / "
            f"{os.getloadavg()[0]:.2f} (other processes compete for the 2 cores when high)",
            "- command: `"
            + " ".join(
                [
                    "python",
                    f"benchmarks/{Path(__file__).name}",
                    *(argv if argv is not None else sys.argv[1:]),
                ]
            )
            + "`",
            "- each measurement: a fresh process with a shown `napari.Viewer`; time from "
            "`viewer.open(path, plugin=...)` to the first canvas draw with every layer `loaded`, "
            "checked by a canvas screenshot in which >1% of pixels differ from the empty canvas colour; peak RSS is the "
            "process's peak resident memory (`VmHWM`; `ru_maxrss` would include the parent's "
            "peak, as it survives exec) at that point (napari + Qt start-up included). The OS page "
            "cache is warm (not dropped between runs).",
            "- stores: OME-Zarr 0.5 (zarr v3), uint16, chunks 512 x 512, zstd, 2x2-mean levels "
            "down to one chunk; the 65,536² store has tissue tiles written and background left "
            "at fill value 0.",
            "",
            "",
        ]
        args.output.write_text("\n".join(header) + report + "\n")
        print(f"\nwritten to {args.output}")
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
