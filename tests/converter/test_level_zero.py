"""Level 0 of a conversion's source: lists of levels by duck typing, RGB moved once, pickling to
a spec, and the typed fields of the conversion result."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from napari_zarr_tiler import Progress, convert, read_zarr
from napari_zarr_tiler.converter import LevelZero
from napari_zarr_tiler.errors import InvalidOptionError
from napari_zarr_tiler.sources import SourceSpec


class Levels(Sequence):
    """A multiscale container as viewers keep one: a sequence of levels that also answers
    ``shape`` and ``dtype`` (level 0's) without being an array itself."""

    def __init__(self, levels: list[np.ndarray]) -> None:
        self._levels = levels

    @property
    def shape(self) -> tuple[int, ...]:
        return self._levels[0].shape

    @property
    def dtype(self) -> np.dtype:
        return self._levels[0].dtype

    def __getitem__(self, index: Any) -> Any:
        if not isinstance(index, int):
            msg = "index a level by its number"
            raise TypeError(msg)
        return self._levels[index]

    def __len__(self) -> int:
        return len(self._levels)


def test_any_sequence_of_levels_is_read_from_its_level_zero(
    tmp_path: Path, small_image: np.ndarray
) -> None:
    """A sequence of arrays is a list of levels whatever its class is called (it used to be
    recognised by the name of napari's class only, and read as one array)."""
    levels = Levels([small_image, small_image[::2, ::2]])
    level0 = LevelZero(levels)
    assert level0.shape == small_image.shape
    region = (slice(10, 74), slice(3, 50))
    np.testing.assert_array_equal(level0(region), small_image[region])
    result = convert(levels, tmp_path / "out.zarr", chunks=64)
    np.testing.assert_array_equal(zarr.open_group(str(result.path))["0"][...], small_image)


def test_napari_multiscale_data_is_a_list_of_levels(small_image: np.ndarray) -> None:
    multiscale = pytest.importorskip("napari.layers._multiscale_data")
    data = multiscale.MultiScaleData([small_image, small_image[::2, ::2]])
    level0 = LevelZero(data)
    assert level0.shape == small_image.shape
    np.testing.assert_array_equal(level0((slice(0, 8), slice(0, 8))), small_image[:8, :8])


def test_rgb_samples_are_moved_once_to_a_channel_axis() -> None:
    rgb = np.arange(2 * 40 * 30 * 3, dtype="uint8").reshape(2, 40, 30, 3)
    level0 = LevelZero([rgb], rgb=True)
    assert level0.shape == (3, 2, 40, 30)
    assert level0.channel_position == 0
    region = (slice(1, 3), slice(0, 2), slice(5, 9), slice(0, 30))
    np.testing.assert_array_equal(level0(region), np.moveaxis(rgb, -1, 0)[region])
    with pytest.raises(InvalidOptionError, match="3 or 4 channels"):
        LevelZero(np.zeros((40, 30, 5), "uint8"), rgb=True)
    with pytest.raises(InvalidOptionError, match="empty list of levels"):
        LevelZero([])
    with pytest.raises(InvalidOptionError, match="must be an array"):
        LevelZero("image.tif")


def test_a_source_file_pickles_to_its_spec_and_reopens_itself(
    tmp_path: Path, small_image: np.ndarray
) -> None:
    """What a dask worker receives is the spec (a few bytes), never the pixels."""
    path = tmp_path / "image.npy"
    np.save(path, small_image)
    level0 = LevelZero(SourceSpec(str(path)))
    assert path in level0.paths()
    payload = pickle.dumps(level0)
    assert len(payload) < small_image.nbytes / 10
    reopened = pickle.loads(payload)
    region = (slice(100, 164), slice(0, 256))
    np.testing.assert_array_equal(reopened(region), small_image[region])
    assert reopened.describe() == level0.describe()


def test_a_zarr_array_inside_a_store_names_the_whole_store(
    tmp_path: Path, small_image: np.ndarray
) -> None:
    store = convert(small_image, tmp_path / "in.zarr", chunks=64).path
    level0 = LevelZero(zarr.open_array(str(store / "1"), mode="r"))
    assert level0.paths() == [store]


def test_the_result_names_pipeline_direct_io_and_regions_kept_on_resume(
    tmp_path: Path,
) -> None:
    image = np.tile(np.arange(256, dtype="uint16"), (1024, 16))  # 1024 x 4096: two regions
    dest = tmp_path / "out.zarr"
    fresh = convert(image, tmp_path / "fresh.zarr", chunks=256, direct_io=False)
    assert fresh.codec_pipeline in ("zarrs", "default")
    assert fresh.direct_io is False
    assert fresh.resumed_regions is None

    def interrupt(progress: Progress) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert(image, dest, chunks=256, workers=1, levels=1, progress=interrupt)
    resumed = convert(image, dest, chunks=256, workers=1, levels=1, resume=True)
    assert resumed.resumed_regions == 1
    assert read_zarr(dest).layers[0].data[0].shape == image.shape
    assert not hasattr(resumed, "extra")
