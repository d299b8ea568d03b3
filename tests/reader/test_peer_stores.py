"""Stores written by other tools (ome-zarr-py, ngff-zarr) open with the right levels and transforms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_zarr_tiler import read_zarr


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_py_image_with_labels(
    tmp_path: Path, small_image: np.ndarray, version: str
) -> None:
    pytest.importorskip("ome_zarr")
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_image, write_labels

    fmt = FormatV05() if version == "0.5" else FormatV04()
    path = tmp_path / "ome_zarr_py.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=3 if version == "0.5" else 2)
    write_image(small_image, group, axes="yx", fmt=fmt, scale_factors=[2, 2])
    mask = (small_image > np.percentile(small_image, 90)).astype(np.uint8)
    write_labels(mask, group, name="bright", axes="yx", fmt=fmt, scale_factors=[2, 2])
    image, labels = read_zarr(path).layers
    assert [level.shape for level in image.data] == [(256, 256), (128, 128), (64, 64)]
    assert image.kwargs["scale"] == (1.0, 1.0)
    np.testing.assert_array_equal(image.data[0].compute(), small_image)
    assert labels.layer_type == "labels"
    assert labels.kwargs["name"].endswith("bright")
    np.testing.assert_array_equal(labels.data[0].compute(), mask)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ngff_zarr_image_keeps_its_translation(
    tmp_path: Path, small_image: np.ndarray, version: str
) -> None:
    nz = pytest.importorskip("ngff_zarr")

    ngff_image = nz.to_ngff_image(
        small_image,
        dims=["y", "x"],
        scale={"y": 0.25, "x": 0.5},
        translation={"y": 100.0, "x": 200.0},
    )
    multiscales = nz.to_multiscales(ngff_image, scale_factors=[2, 4])
    path = tmp_path / "ngff_zarr.zarr"
    nz.to_ngff_zarr(str(path), multiscales, version=version)
    layer = read_zarr(path).layers[0]
    assert len(layer.data) == 3
    assert layer.kwargs["scale"] == (0.25, 0.5)
    assert layer.kwargs["translate"] == (100.0, 200.0)
    np.testing.assert_array_equal(layer.data[0].compute(), small_image)
