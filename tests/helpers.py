"""Plain helpers the tests share (the fixtures are in ``conftest.py``).

- the console script run for real in a subprocess, and its one-line errors;
- OME-Zarr written by hand, following the OME-NGFF 0.4 / 0.5 specifications literally and
  independently of this package's own writer, so that the reader is tested against the spec and
  not against itself; an independent 2x2 mean; damaged metadata;
- TIFFs of every layout the converter meets, written by tifffile;
- a conversion slow enough to interrupt, and killed once it has written some regions;
- the peak memory of a block of code.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import zarr

from napari_zarr_tiler.sources import synthetic_slide
from napari_zarr_tiler.zarr_names import JOURNAL, staging_path

# -- the console script ------------------------------------------------------------------------

EXE = (
    shutil.which("napari-zarr-tiler", path=str(Path(sys.executable).parent)) or "napari-zarr-tiler"
)


def run(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the console script with ``args``; with ``check``, assert that it succeeded."""
    result = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300, check=False)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def assert_one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    """Assert a non-zero exit with one error line holding ``fragment``, and no traceback."""
    assert result.returncode != 0
    lines = [
        line for line in result.stderr.splitlines() if line.startswith("napari-zarr-tiler: error")
    ]
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root``, by relative path, with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# -- OME-Zarr by hand --------------------------------------------------------------------------


def reference_mean(image: np.ndarray) -> np.ndarray:
    """2x2 mean rounding half up, odd edges averaged with themselves (independent reference)."""
    pad = [(0, 0)] * (image.ndim - 2) + [(0, image.shape[-2] % 2), (0, image.shape[-1] % 2)]
    padded = np.pad(image, pad, mode="edge").astype(np.float64)
    mean = (
        padded[..., ::2, ::2]
        + padded[..., 1::2, ::2]
        + padded[..., ::2, 1::2]
        + padded[..., 1::2, 1::2]
    ) / 4
    if np.dtype(image.dtype).kind in "iu":
        return np.floor(mean + 0.5).astype(image.dtype)
    return mean.astype(image.dtype)


def write_ome_image(
    path: Path,
    levels: list[np.ndarray],
    *,
    version: str = "0.5",
    axes: list[dict[str, Any]] | None = None,
    level_scales: list[list[float]] | None = None,
    level_translations: list[list[float]] | None = None,
    global_transforms: list[dict[str, Any]] | None = None,
    omero: dict[str, Any] | None = None,
    image_label: dict[str, Any] | None = None,
    chunks: tuple[int, ...] | None = None,
    shards: tuple[int, ...] | None = None,
) -> zarr.Group:
    """Write an OME-Zarr image group by hand (0.4: zarr v2, 0.5: zarr v3)."""
    ndim = levels[0].ndim
    if axes is None:
        axes = [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"[-ndim:]]
    zarr_format = 3 if version == "0.5" else 2
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    datasets = []
    for index, level in enumerate(levels):
        level_chunks = chunks or tuple(min(64, s) for s in level.shape)
        kwargs: dict[str, Any] = {}
        if zarr_format == 3:
            kwargs["dimension_names"] = [axis["name"] for axis in axes]
            if shards is not None:
                kwargs["shards"] = shards
        array = group.create_array(
            str(index), shape=level.shape, dtype=level.dtype, chunks=level_chunks, **kwargs
        )
        array[...] = level
        scale = level_scales[index] if level_scales else [float(2**index)] * ndim
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": scale}]
        if level_translations:
            transforms.append({"type": "translation", "translation": level_translations[index]})
        datasets.append({"path": str(index), "coordinateTransformations": transforms})
    multiscale: dict[str, Any] = {"axes": axes, "datasets": datasets, "name": path.name}
    if global_transforms:
        multiscale["coordinateTransformations"] = global_transforms
    block: dict[str, Any] = {"multiscales": [multiscale]}
    if omero is not None:
        block["omero"] = omero
    if image_label is not None:
        block["image-label"] = image_label
    if version == "0.5":
        group.attrs.put({"ome": {"version": "0.5", **block}})
    else:
        multiscale["version"] = version
        group.attrs.put(block)
    return group


def add_labels(
    image_path: Path, name: str, levels: list[np.ndarray], *, version: str, **transforms: Any
) -> None:
    """Add a label image under ``labels/name`` of an OME-Zarr image, per the spec."""
    zarr_format = 3 if version == "0.5" else 2
    labels = zarr.open_group(str(image_path / "labels"), mode="a", zarr_format=zarr_format)
    if version == "0.5":
        labels.attrs.put({"ome": {"version": "0.5", "labels": [name]}})
    else:
        labels.attrs.put({"labels": [name]})
    write_ome_image(
        image_path / "labels" / name,
        levels,
        version=version,
        image_label={"version": version, "colors": [{"label-value": 1, "rgba": [255, 0, 0, 255]}]},
        **transforms,
    )


def corrupt_json(path: Path) -> None:
    """Truncate a JSON metadata file in the middle."""
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


def read_json(path: Path) -> dict[str, Any]:
    """The JSON document in ``path``."""
    return json.loads(path.read_text())


# -- TIFFs -------------------------------------------------------------------------------------


def write_tiff_layouts(folder: Path, image: np.ndarray) -> dict[str, Path]:
    """Write ``image`` as a stripped TIFF, a tiled BigTIFF, a 3-channel OME-TIFF pyramid and an RGB
    TIFF (its first 500 x 700 pixels) into ``folder``; return their paths by layout."""
    paths = {
        "stripped": folder / "stripped.tif",
        "tiled": folder / "tiled_bigtiff.tif",
        "ome": folder / "pyramid.ome.tif",
        "rgb": folder / "rgb.tif",
    }
    tifffile.imwrite(paths["stripped"], image, rowsperstrip=37)
    tifffile.imwrite(paths["tiled"], image, tile=(256, 256), compression="zlib", bigtiff=True)
    channels = np.stack([image, image[::-1], image[:, ::-1]])
    with tifffile.TiffWriter(paths["ome"], ome=True, bigtiff=True) as writer:
        writer.write(
            channels,
            tile=(256, 256),
            subifds=2,
            metadata={
                "axes": "CYX",
                "PhysicalSizeX": 0.25,
                "PhysicalSizeXUnit": "µm",
                "PhysicalSizeY": 0.5,
                "PhysicalSizeYUnit": "µm",
                "Channel": {"Name": ["DAPI", "GFP", "RFP"]},
            },
        )
        writer.write(channels[:, ::2, ::2], tile=(256, 256), subfiletype=1)
        writer.write(channels[:, ::4, ::4], tile=(256, 256), subfiletype=1)
    rgb = (np.stack([image, image[::-1], image[:, ::-1]], axis=-1) // 256).astype(np.uint8)
    tifffile.imwrite(paths["rgb"], rgb[:500, :700], photometric="rgb")
    return paths


def write_big_tiff(path: Path) -> Path:
    """Write an 8192 x 12288 uint16 tiled TIFF (201 MB): 12 regions in the first pass, so that an
    interrupt sent after the second one is journaled always lands mid-way."""
    tile = synthetic_slide(2048, dtype="uint16", seed=4)
    tifffile.imwrite(path, np.tile(tile, (4, 6)), tile=(512, 512))
    return path


# -- a conversion to interrupt -----------------------------------------------------------------

#: gzip at level 9: slow enough to interrupt mid-way; the reference and resumed runs use the same.
SLOW_OPTIONS = ("--chunks", "256", "--compressor", "gzip", "--clevel", "9")

#: Run the command as a terminal would: a shell that started pytest in the background (`cmd &`)
#: hands its children SIGINT ignored, and Python then never raises KeyboardInterrupt. A tiny
#: exec wrapper restores the default (preexec_fn is unsafe in a process with threads).
INTERRUPTIBLE = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def start_slow_conversion(src: Path, dest: Path) -> subprocess.Popen[str]:
    """Start converting ``src`` to ``dest`` with :data:`SLOW_OPTIONS`, interruptible by SIGINT."""
    return subprocess.Popen(
        [sys.executable, "-c", INTERRUPTIBLE, EXE, "convert", str(src), str(dest), *SLOW_OPTIONS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_journal(dest: Path, regions: int, process: subprocess.Popen[str]) -> None:
    """Wait until the journal of the conversion to ``dest`` lists more than ``regions`` regions."""
    journal = staging_path(dest) / JOURNAL
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if journal.is_file() and len(journal.read_text().splitlines()) > regions:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    pytest.fail("the conversion wrote no region in time")


def killed_conversion(src: Path, dest: Path, *, after_regions: int) -> None:
    """Start the slow conversion and SIGKILL it once the journal lists ``after_regions``+ regions."""
    process = start_slow_conversion(src, dest)
    wait_for_journal(dest, after_regions, process)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)


# -- memory ------------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split(f"{field}:")[1].split()[0])


class PeakMemoryGrowth:
    """How far this process's resident memory peaked above its level at the start of the block.

    Resets the kernel's high-water mark first (``/proc/self/clear_refs``, Linux), so that a peak
    an earlier test reached cannot hide this block's (``ru_maxrss`` never goes down).
    """

    grown_mb: float = 0.0

    def __enter__(self) -> PeakMemoryGrowth:
        Path("/proc/self/clear_refs").write_text("5")
        self._before_kb = _status_kb("VmRSS")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.grown_mb = (_status_kb("VmHWM") - self._before_kb) / 1024
