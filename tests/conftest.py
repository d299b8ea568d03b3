"""Shared fixtures, chained: an image, then a store or file written from it, then a viewer with it.

- ``small_image`` (256 x 256) -> ``ome_pyramid`` (written by hand, per the spec) and
  ``converted_store`` (written by :func:`napari_zarr_tiler.convert`) -> ``viewer_with_store``
  (a real napari viewer with that store open) or ``viewer_with_slide`` (the image added);
- ``slide_image`` (2048 x 3072) -> ``tiffs`` (one TIFF per layout);
- ``big_tiff`` (201 MB) -> ``reference_store`` (its uninterrupted conversion, which interrupted
  and resumed ones must equal).

Tests that use a viewer (``make_napari_viewer`` or ``qtbot``) get the ``viewer`` marker here;
plain helper functions are in ``helpers.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_zarr_tiler.sources import synthetic_slide

from .helpers import (
    SLOW_OPTIONS,
    add_labels,
    reference_mean,
    run,
    write_big_tiff,
    write_ome_image,
    write_tiff_layouts,
)

#: A test that asks for one of these fixtures (directly or through another) needs a display.
VIEWER_FIXTURES = frozenset({"make_napari_viewer", "qtbot"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a napari viewer or Qt with ``viewer``."""
    for item in items:
        if VIEWER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.viewer)


# -- a small image, a store written from it, a viewer with it open -----------------------------


@pytest.fixture(scope="session")
def small_image() -> np.ndarray:
    """A 256 x 256 uint16 slide-like image."""
    return synthetic_slide(256, dtype="uint16", seed=1)


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


@pytest.fixture
def converted_store(tmp_path: Path, small_image: np.ndarray) -> Path:
    """``small_image`` converted by this package into ``opened.zarr`` (64 x 64 chunks)."""
    from napari_zarr_tiler import convert

    store = tmp_path / "opened.zarr"
    convert(small_image, store, chunks=64)
    return store


@pytest.fixture
def viewer_with_store(make_napari_viewer, converted_store: Path):
    """A napari viewer with ``converted_store`` opened by this plugin (one image layer)."""
    viewer = make_napari_viewer()
    viewer.open(str(converted_store), plugin="napari-zarr-tiler")
    return viewer


@pytest.fixture
def viewer_with_slide(make_napari_viewer, small_image: np.ndarray):
    """A napari viewer showing ``small_image`` as the layer "slide" (0.5 µm pixels)."""
    viewer = make_napari_viewer()
    viewer.add_image(
        small_image, name="slide", scale=(0.5, 0.5), units=("micrometer", "micrometer")
    )
    return viewer


# -- a larger image and the TIFFs written from it ----------------------------------------------


@pytest.fixture(scope="session")
def slide_image() -> np.ndarray:
    """A 2048 x 3072 uint16 slide-like image."""
    return np.tile(synthetic_slide(1024, dtype="uint16", seed=2), (2, 3))


@pytest.fixture(scope="session")
def tiffs(tmp_path_factory: pytest.TempPathFactory, slide_image: np.ndarray) -> dict[str, Path]:
    """``slide_image`` as TIFFs: "stripped", "tiled" (BigTIFF, zlib), "ome" (3-channel pyramid)
    and "rgb" (500 x 700)."""
    return write_tiff_layouts(tmp_path_factory.mktemp("tiffs"), slide_image)


# -- a big TIFF and its reference conversion ---------------------------------------------------


@pytest.fixture(scope="session")
def big_tiff(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8192 x 12288 uint16 tiled TIFF (201 MB), long enough to convert to interrupt."""
    return write_big_tiff(tmp_path_factory.mktemp("big") / "big.tif")


@pytest.fixture(scope="session")
def reference_store(tmp_path_factory: pytest.TempPathFactory, big_tiff: Path) -> Path:
    """``big_tiff`` converted in one uninterrupted run of the console script (slow options)."""
    dest = tmp_path_factory.mktemp("reference") / "out.zarr"
    run("convert", str(big_tiff), str(dest), *SLOW_OPTIONS, "--quiet", check=True)
    return dest
