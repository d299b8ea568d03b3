#!/usr/bin/env python
"""Remote first frame: requests and bytes, and the longest event-loop stall, per reader, over HTTP.

Creates (once, cached under ``benchmarks/_data/``) a real pyramid with this package's
``convert()`` from a cheap synthetic dask source (uint8, default options: OME-Zarr 0.5, 512 x 512
chunks, 2x2-mean levels), then serves it with the tests' threaded HTTP server
(``tests/reader/servers.py``, Range requests, a request log) and, for each reader (this plugin,
napari-ome-zarr), starts a fresh process that opens a shown napari viewer on the store's URL:

- *first frame*: ``viewer.open(url, plugin=...)``, then Qt events until the layer is loaded and
  a canvas draw has happened; the server's log gives the requests and body bytes that took;
- *stall*: with 100 ms of latency per request, a 10 ms ``QTimer`` runs while the viewer opens
  the store and then zooms in twice and pans four times (each step followed by 1.5 s of
  ``processEvents``); the longest gap between two timer ticks is the longest time the event
  loop was blocked.

Run with a display::

    xvfb-run -a -s "-screen 0 1600x1200x24" python benchmarks/remote_first_frame.py \
        --output benchmarks/results_remote.md

``--size`` chooses the image side (default 16,384: a 65,536 x 65,536 store takes ~4 GB and
too long to create on a 2-core machine; the request count of a first frame depends on the
viewer's size and the number of levels, not on the side).
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_DATA_DIR = HERE / "_data" / "remote"
READERS = ("napari-zarr-tiler", "napari-ome-zarr")
LATENCY_S = 0.1


def synthetic_source(size: int) -> Any:
    """A cheap uint8 dask image: smooth tissue-like blobs plus a fine pattern, per 4096 block."""
    import dask.array as da
    import numpy as np

    def block(block_info: dict[Any, Any] | None = None) -> np.ndarray:
        (y0, y1), (x0, x1) = block_info[None]["array-location"]
        yy = np.arange(y0, y1, dtype=np.float32)[:, None]
        xx = np.arange(x0, x1, dtype=np.float32)[None, :]
        blobs = np.sin(yy / 900.0) * np.cos(xx / 700.0) + np.sin((yy + xx) / 2500.0)
        fine = ((yy.astype(np.int64) * 7 + xx.astype(np.int64) * 13) % 31).astype(np.float32)
        return np.clip(100 + 60 * blobs + fine, 0, 255).astype(np.uint8)

    return da.map_blocks(block, dtype=np.uint8, chunks=((4096,) * (size // 4096),) * 2)


def ensure_store(data_dir: Path, size: int) -> Path:
    """The cached pyramid of side ``size`` (created by ``convert()`` if missing)."""
    path = data_dir / f"remote_{size}.ome.zarr"
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    from napari_zarr_tiler import convert

    start = time.perf_counter()
    print(f"creating {path.name} with convert() ...", flush=True)
    convert(synthetic_source(size), path)
    print(f"created in {time.perf_counter() - start:.0f} s", flush=True)
    return path


# -- one measurement, in a fresh process -------------------------------------------------------


def worker(url: str, plugin: str, browse: bool) -> dict[str, Any]:
    """Open ``url`` in a shown viewer; report the first frame time, and the longest stall."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    import napari

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1200, 800)
    app = QApplication.instance()
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    drawn: list[float] = []
    canvas.events.draw.connect(
        lambda event=None: (
            drawn.append(time.perf_counter())
            if len(viewer.layers) and all(layer.loaded for layer in viewer.layers)
            else None
        ),
        position="last",
    )
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))

    def pump(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.002)

    pump(1.0)
    result: dict[str, Any] = {}
    timer.start(10)
    pump(0.2)
    start = time.perf_counter()
    try:
        layers = viewer.open(url, plugin=plugin)
    except Exception as error:  # the report says why
        return {"status": "cannot open", "error": f"{type(error).__name__}: {error}"[:300]}
    result["open_s"] = time.perf_counter() - start
    result["levels"] = len(layers[0].data) if layers and layers[0].multiscale else 1
    deadline = time.perf_counter() + 120
    while not drawn and time.perf_counter() < deadline:
        pump(0.01)
    result["first_frame_s"] = (drawn[0] - start) if drawn else None
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    result["open_stall_ms"] = 1000 * max(gaps) if gaps else None
    print("FIRST_FRAME_DONE", flush=True)
    sys.stdin.readline()  # the parent reads the server's counters for the first frame here
    pump(0.2)
    ticks.clear()
    if browse:
        steps = [
            ("zoom", 2.0),
            ("zoom", 2.0),
            ("pan", (1, 0)),
            ("pan", (0, 1)),
            ("pan", (-1, 0)),
            ("pan", (0, -1)),
        ]
        for kind, value in steps:
            camera = viewer.scene.camera
            if kind == "zoom":
                camera.zoom = camera.zoom * value
            else:
                extent = 600 / camera.zoom  # about half the canvas, in world units
                center = list(camera.center)
                center[-2] += value[0] * extent
                center[-1] += value[1] * extent
                camera.center = tuple(center)
            pump(1.5)
    timer.stop()
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    result["longest_stall_ms"] = 1000 * max(gaps) if gaps else None
    result["status"] = "ok"
    viewer.close()
    return result


def measure(url: str, plugin: str, *, browse: bool, log: Any) -> dict[str, Any]:
    """Run :func:`worker` in a fresh process; counts of the server's log for the first frame."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, __file__, "--worker", url, plugin, *(["--browse"] if browse else [])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None and process.stdin is not None
    log.clear()
    first: dict[str, Any] = {}
    for line in process.stdout:
        if line.startswith("FIRST_FRAME_DONE"):
            first = {"requests": log.count, "bytes": log.nbytes, "paths": log.paths()}
            process.stdin.write("\n")
            process.stdin.flush()
        elif line.startswith("RESULT "):
            return {**json.loads(line[len("RESULT ") :]), **first}
    process.wait(30)
    return {"status": f"worker exited {process.returncode}", **first}


def level_of(path: str) -> str:
    """The level a chunk request was for (the path component after the store's name)."""
    parts = path.split("/")
    if "/c/" not in path:
        return "metadata"
    for index, part in enumerate(parts):
        if part.endswith(".zarr") and index + 1 < len(parts):
            return parts[index + 1] if parts[index + 1].isdigit() else "metadata"
    return "?"


def _cell(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def report(args: argparse.Namespace, store: Path, rows: list[tuple[str, str, dict]]) -> str:
    import zarr

    import napari

    lines = [
        "# Remote first frame and event-loop stalls (HTTP)",
        "",
        f"- date: {datetime.date.today()}; machine: {os.cpu_count()} cores, "
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}; "
        f"napari {napari.__version__}, zarr {zarr.__version__}",
        f"- load average (1 min) at the end: {os.getloadavg()[0]:.2f} (7 helpers share the cores)",
        f"- store: {args.size:,} x {args.size:,} uint8, written by `convert()` (defaults: "
        "OME-Zarr 0.5, chunks 512 x 512, zstd), served by `tests/reader/servers.py` "
        "(threaded HTTP server, Range requests; requests and body bytes counted by the server)",
        "- first frame: fresh process, shown viewer (1200 x 800), `viewer.open(url, plugin=...)` "
        "until the layer is loaded and drawn; no latency",
        f"- stall: a 10 ms QTimer; 'stall in open' is the longest gap between its ticks from "
        "`viewer.open` to the first frame (napari calls the reader in the event loop, so this "
        "includes importing the reader and opening the store); 'browsing' is the longest gap "
        f"during 2 zoom-ins and 4 pans (1.5 s of processEvents each) with "
        f"{int(LATENCY_S * 1000)} ms latency per request",
        f"- command: `{' '.join(['python', 'benchmarks/remote_first_frame.py', *sys.argv[1:]])}`",
        "",
        "| measurement | reader | requests | bytes | first frame (s) | stall in open (ms) | "
        "longest stall browsing (ms) | levels read | status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, reader, row in rows:
        levels = ", ".join(sorted({level_of(p) for p in row.get("paths", [])}))
        status = f"{row.get('status')} {row.get('error', '')}".strip()
        lines.append(
            f"| {kind} | {reader} | {_cell(row.get('requests'), 'd')} | "
            f"{_cell(row.get('bytes'), ',')} | {_cell(row.get('first_frame_s'), '.2f')} | "
            f"{_cell(row.get('open_stall_ms'), '.0f')} | "
            f"{_cell(row.get('longest_stall_ms'), '.0f')} | {levels} | {status} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=16_384)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--worker", nargs=2, metavar=("URL", "PLUGIN"))
    parser.add_argument("--browse", action="store_true")
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(*args.worker, browse=args.browse)), flush=True)
        return
    sys.path.insert(0, str(ROOT))
    from tests.reader.servers import http_file_server

    store = ensure_store(args.data_dir, args.size)
    rows = []
    with http_file_server(store.parent) as server:
        for reader in READERS:
            row = measure(f"{server.url}/{store.name}", reader, browse=False, log=server.log)
            rows.append(("first frame", reader, row))
            print(reader, {k: v for k, v in row.items() if k != "paths"}, flush=True)
    with http_file_server(store.parent, latency=LATENCY_S) as server:
        for reader in READERS:
            row = measure(f"{server.url}/{store.name}", reader, browse=True, log=server.log)
            rows.append(("browse, 100 ms latency", reader, row))
            print(reader, {k: v for k, v in row.items() if k != "paths"}, flush=True)
    text = report(args, store, rows)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
