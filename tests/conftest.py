"""Shared fixtures: a small image, stores written from it, and helpers that write OME-Zarr by hand.

The hand-written stores follow the OME-NGFF 0.4 / 0.5 specifications literally, independently of
this package's own writer, so that the reader is tested against the spec and not against itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from napari_zarr_tiler.sources.synthetic import synthetic_slide


@pytest.fixture(scope="session")
def small_image() -> np.ndarray:
    """A 256 x 256 uint16 slide-like image."""
    return synthetic_slide(256, dtype="uint16", seed=1)


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
    return json.loads(path.read_text())


@pytest.fixture
def ome_pyramid(tmp_path: Path, small_image: np.ndarray, request: pytest.FixtureRequest) -> Path:
    """A three-level OME-Zarr image with a label image; version from indirect param (default 0.5)."""
    version = getattr(request, "param", "0.5")
    levels = [
        small_image,
        reference_mean(small_image),
        reference_mean(reference_mean(small_image)),
    ]
    path = tmp_path / f"image_{version}.zarr"
    write_ome_image(
        path,
        levels,
        version=version,
        axes=[
            {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"},
        ],
        level_scales=[[0.5 * 2**i, 0.25 * 2**i] for i in range(3)],
        level_translations=[[10.0, 20.0]] * 3,
    )
    mask = (small_image > np.percentile(small_image, 80)).astype(np.uint8)
    add_labels(
        path,
        "cells",
        [mask, mask[::2, ::2], mask[::4, ::4]],
        version=version,
        level_scales=[[0.5 * 2**i, 0.25 * 2**i] for i in range(3)],
        level_translations=[[10.0, 20.0]] * 3,
    )
    return path
