"""Sources named by path in the Python API: ``convert("scan.tif", ...)`` reads the file as the
command line does, with its metadata filling the options the caller leaves unset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_zarr_tiler import SourceError, convert
from napari_zarr_tiler.sources import SourceSpec


def _multiscale(path: Path) -> dict:
    return zarr.open_group(str(path), mode="r").attrs["ome"]["multiscales"][0]


def _level0_scale(path: Path) -> list[float]:
    return _multiscale(path)["datasets"][0]["coordinateTransformations"][0]["scale"]


@pytest.fixture
def calibrated_tiff(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """An ImageJ TIFF with a pixel size of 0.5 micrometer."""
    image = np.arange(300 * 200, dtype=np.uint16).reshape(300, 200)
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, image, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "um"})
    return path, image


@pytest.mark.parametrize("as_text", [True, False], ids=["str", "Path"])
def test_a_tiff_named_by_path_converts_with_its_calibration(
    tmp_path: Path, calibrated_tiff: tuple[Path, np.ndarray], as_text: bool
) -> None:
    path, image = calibrated_tiff
    dest = tmp_path / "out.zarr"
    convert(str(path) if as_text else path, dest, chunks=64)
    assert _level0_scale(dest) == [0.5, 0.5]
    assert [axis.get("unit") for axis in _multiscale(dest)["axes"]] == ["micrometer"] * 2
    np.testing.assert_array_equal(zarr.open_array(str(dest / "0"), mode="r")[:], image)


def test_options_given_by_the_caller_win_over_the_file(
    tmp_path: Path, calibrated_tiff: tuple[Path, np.ndarray]
) -> None:
    path, _ = calibrated_tiff
    dest = tmp_path / "out.zarr"
    convert(path, dest, chunks=64, scale=(3.0, 4.0))
    assert _level0_scale(dest) == [3.0, 4.0]


def test_a_relative_path_is_read_from_the_working_folder(
    tmp_path: Path, calibrated_tiff: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = convert("scan.tif", "relative.zarr", chunks=64)
    assert result.path == tmp_path / "relative.zarr"
    assert _level0_scale(tmp_path / "relative.zarr") == [0.5, 0.5]


def test_a_tiff_series_is_picked_with_a_source_spec(tmp_path: Path) -> None:
    path = tmp_path / "two.tif"
    with tifffile.TiffWriter(path) as tiff:
        tiff.write(np.full((64, 64), 1, np.uint8))
        tiff.write(np.full((32, 48), 2, np.uint8))
    dest = tmp_path / "second.zarr"
    convert(SourceSpec(str(path), series=1), dest, chunks=32)
    level0 = zarr.open_array(str(dest / "0"), mode="r")
    assert level0.shape == (32, 48)
    assert int(level0[0, 0]) == 2


def test_a_store_named_by_path_keeps_its_labels(tmp_path: Path) -> None:
    image = np.random.default_rng(3).integers(0, 4000, (128, 128), dtype=np.uint16)
    source = tmp_path / "in.zarr"
    convert(image, source, chunks=64)
    convert((image > 2000).astype(np.uint8), source / "labels" / "cells", label=True, chunks=64)
    dest = tmp_path / "retiled.zarr"
    convert(source, dest, chunks=32)
    labels = zarr.open_group(str(dest / "labels"), mode="r").attrs["ome"]["labels"]
    assert labels == ["cells"]
    stored = zarr.open_array(str(dest / "labels" / "cells" / "0"), mode="r")
    assert stored.chunks == (32, 32)
    np.testing.assert_array_equal(stored[:], image > 2000)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"missing\.tif: no such file"):
        convert(tmp_path / "missing.tif", tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()
