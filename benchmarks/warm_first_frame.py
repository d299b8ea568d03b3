#!/usr/bin/env python
"""First frame in a warm process: how long napari takes to show a huge pyramid once imports are done.

``first_frame.py`` times a fresh process, where imports and napari's start-up dominate. This
script opens one shown viewer, warms every reader up (each opens the small and the huge store
once, untimed), then opens the 65,536 x 65,536 store ``--repeats`` times per reader, alternating
the readers' order from one round to the next, and times ``viewer.open(path, plugin=...)`` to the
first canvas draw with every layer loaded whose screenshot shows data (>1% of pixels differ from
the empty canvas). Between opens the layers are removed and Qt events processed for 0.3 s.

With ``--profile``, one extra open per reader runs under cProfile and the functions with the
largest cumulative time inside ``viewer.open`` are printed (where the time goes: metadata
probing, containment checks, contrast limits, layer set-up).

The stores are those of ``first_frame.py`` (created once under ``benchmarks/_data/``). Run with a
display, e.g.::

    xvfb-run -a -s "-screen 0 1600x1200x24" python benchmarks/warm_first_frame.py --repeats 15
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import io
import os
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from first_frame import (
    DEFAULT_DATA_DIR,
    HUGE_SIZE,
    SMALL_SIZE,
    ensure_stores,
    store_path,
    versions,
)

READERS = ("napari-zarr-tiler", "napari-ome-zarr")
SETTLE_S = 0.3
TIMEOUT_S = 60.0


class FrameClock:
    """A shown viewer, and the time from ``viewer.open`` to its first frame showing data."""

    def __init__(self) -> None:
        import numpy as np
        from qtpy.QtWidgets import QApplication

        import napari

        self.np = np
        self.viewer = napari.Viewer(show=True)
        self.viewer.window._qt_window.resize(1200, 800)
        self.app = QApplication.instance()
        self.loaded_draws: list[float] = []
        canvas = self.viewer.window._qt_viewer.canvas._scene_canvas
        canvas.events.draw.connect(self._on_draw, position="last")
        self.pump(1.0)
        empty = self.viewer.screenshot(canvas_only=True, flash=False)[..., :3].reshape(-1, 3)
        colors, counts = np.unique(empty, axis=0, return_counts=True)
        self.background = colors[np.argmax(counts)]

    def _on_draw(self, event: Any = None) -> None:
        layers = self.viewer.layers
        if len(layers) and all(layer.loaded for layer in layers):
            self.loaded_draws.append(time.perf_counter())

    def pump(self, seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            self.app.processEvents()
            time.sleep(0.001)

    def clear(self) -> None:
        self.viewer.layers.clear()
        self.pump(SETTLE_S)

    def open(self, path: Path, plugin: str) -> dict[str, float]:
        """Open ``path`` with ``plugin``; seconds to ``open()`` returning and to the first frame."""
        self.loaded_draws.clear()
        start = time.perf_counter()
        self.viewer.open(str(path), plugin=plugin)
        opened = time.perf_counter()
        checked = 0
        while time.perf_counter() < start + TIMEOUT_S:
            self.app.processEvents()
            if len(self.loaded_draws) > checked:
                frame = self.loaded_draws[checked]
                checked = len(self.loaded_draws)
                if self._shows_data():
                    return {"open_s": opened - start, "frame_s": frame - start}
            time.sleep(0.0005)
        raise TimeoutError(f"{plugin}: no frame showing data within {TIMEOUT_S:.0f} s")

    def _shows_data(self) -> bool:
        shot = self.viewer.screenshot(canvas_only=True, flash=False)[..., :3]
        return float(self.np.any(shot != self.background, axis=-1).mean()) > 0.01


def profile_open(clock: FrameClock, path: Path, plugin: str, top: int) -> str:
    """cProfile of one warm ``viewer.open`` (the synchronous part) with ``plugin``."""
    clock.clear()
    profiler = cProfile.Profile()
    profiler.enable()
    clock.viewer.open(str(path), plugin=plugin)
    profiler.disable()
    clock.pump(0.5)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(top)
    return text.getvalue()


def measure(clock: FrameClock, huge: Path, small: Path, repeats: int) -> dict[str, list]:
    """Warm every reader up, then ``repeats`` timed opens of ``huge`` per reader."""
    for plugin in READERS:
        for path in (small, huge):
            clock.clear()
            clock.open(path, plugin)
    runs: dict[str, list[dict[str, float]]] = {plugin: [] for plugin in READERS}
    for round_index in range(repeats):
        order = READERS if round_index % 2 == 0 else READERS[::-1]
        for plugin in order:
            clock.clear()
            runs[plugin].append(clock.open(huge, plugin))
    return runs


def report(runs: dict[str, list[dict[str, float]]], repeats: int) -> str:
    lines = [
        "# First frame in a warm process",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}; Xvfb + Mesa (software OpenGL)",
        f"- versions: {versions()}",
        f"- load average (1 min) at the end: {os.getloadavg()[0]:.2f}",
        f"- command: `python benchmarks/warm_first_frame.py {' '.join(sys.argv[1:])}`",
        f"- store: {HUGE_SIZE:,} x {HUGE_SIZE:,} uint16 OME-Zarr 0.5, 512 x 512 zstd chunks, "
        f"8 levels; {repeats} timed opens per reader after one untimed open of each store, "
        "readers alternating",
        "",
        "| reader | first frame, median (ms) | min (ms) | max (ms) | viewer.open returns, median (ms) |",
        "|---|---:|---:|---:|---:|",
    ]
    medians = {}
    for plugin, results in runs.items():
        frames = [1000 * r["frame_s"] for r in results]
        opens = [1000 * r["open_s"] for r in results]
        medians[plugin] = statistics.median(frames)
        lines.append(
            f"| {plugin} | {medians[plugin]:.0f} | {min(frames):.0f} | {max(frames):.0f} | "
            f"{statistics.median(opens):.0f} |"
        )
    ours, theirs = medians["napari-zarr-tiler"], medians["napari-ome-zarr"]
    met = "met" if ours <= theirs else "**not met**"
    lines += [
        "",
        f"napari-zarr-tiler / napari-ome-zarr = {ours / theirs:.2f}x (target <= 1.0x: {met})",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--profile", action="store_true", help="also profile one open per reader")
    parser.add_argument("--output", type=Path, help="also write the report to this Markdown file")
    args = parser.parse_args(argv)
    ensure_stores(args.data_dir, quick=False)
    huge, small = store_path(args.data_dir, HUGE_SIZE), store_path(args.data_dir, SMALL_SIZE)
    clock = FrameClock()
    runs = measure(clock, huge, small, args.repeats)
    text = report(runs, args.repeats)
    print(text)
    if args.output:
        args.output.write_text(text)
    if args.profile:
        for plugin in READERS:
            print(f"## cProfile of one warm viewer.open with {plugin}\n")
            print(profile_open(clock, huge, plugin, top=40))
    clock.viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
