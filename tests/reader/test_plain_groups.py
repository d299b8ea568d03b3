"""Plain groups written by xarray: coordinates napari cannot show are skipped, axes are named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_zarr_tiler import read_zarr

xr = pytest.importorskip("xarray")


def _dataset() -> object:
    rng = np.random.default_rng(0)
    return xr.Dataset(
        {"intensity": (("t", "y", "x"), rng.integers(0, 1000, (3, 32, 48), dtype=np.uint16))},
        coords={
            "t": [0.0, 1.5, 3.0],
            "y": np.arange(32) * 0.5,
            "x": np.arange(48) * 0.5,
            "well": ("t", np.array(["A1", "B2", "C3"])),  # a string coordinate
        },
    )


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_xarray_dataset_opens_its_image_with_axis_labels(tmp_path: Path, zarr_format: int) -> None:
    path = tmp_path / "dataset.zarr"
    _dataset().to_zarr(path, zarr_format=zarr_format, consolidated=False)
    contents = read_zarr(path)
    (layer,) = contents.layers
    assert layer.kwargs["name"].endswith("intensity")
    assert layer.kwargs["axis_labels"] == ("t", "y", "x")
    assert layer.data[0].shape == (3, 32, 48)
    # The 1-D coordinates and the string coordinate are named in notices, not opened.
    for skipped in ("well", "x", "y", "t"):
        assert any(f"dataset.zarr/{skipped}:" in notice for notice in contents.notices), skipped
    assert any("well" in n and "1-D" in n for n in contents.notices)


def test_object_and_string_arrays_are_skipped_not_fatal(tmp_path: Path) -> None:
    group = zarr.open_group(str(tmp_path / "mixed.zarr"), mode="w", zarr_format=3)
    group.create_array("names", shape=(4, 4), dtype=str)[:] = np.full((4, 4), "a")
    group.create_array("image", shape=(16, 16), dtype="uint8")[:] = 7
    contents = read_zarr(tmp_path / "mixed.zarr")
    assert [layer.kwargs["name"] for layer in contents.layers] == ["mixed/image"]
    assert any("names" in n and "is not supported" in n for n in contents.notices)


def test_a_group_of_only_1d_arrays_says_why_nothing_opens(tmp_path: Path) -> None:
    group = zarr.open_group(str(tmp_path / "series.zarr"), mode="w", zarr_format=2)
    group.create_array("signal", shape=(100,), dtype="float32")
    from napari_zarr_tiler.errors import StoreReadError

    with pytest.raises(StoreReadError, match=r"holds no arrays to display .*signal.*1-D"):
        read_zarr(tmp_path / "series.zarr")


def test_array_dimensions_attribute_names_the_axes_of_a_v2_array(tmp_path: Path) -> None:
    array = zarr.open_array(
        str(tmp_path / "a.zarr"), mode="w", shape=(8, 8), dtype="uint8", zarr_format=2
    )
    array.attrs["_ARRAY_DIMENSIONS"] = ["row", "col"]
    (layer,) = read_zarr(tmp_path / "a.zarr").layers
    assert layer.kwargs["axis_labels"] == ("row", "col")
    array.attrs["_ARRAY_DIMENSIONS"] = ["only-one"]  # wrong length: ignored
    (layer,) = read_zarr(tmp_path / "a.zarr").layers
    assert "axis_labels" not in layer.kwargs
