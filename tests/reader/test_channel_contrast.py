"""Contrast limits of a multichannel level: every channel's own min and max (finite pixels
only), with a chunk that holds several channels read once, not once per channel."""

from __future__ import annotations

import logging

import dask.array as da
import numpy as np
import pytest
import zarr
from zarr.storage import LoggingStore, MemoryStore

from napari_zarr_tiler.reader.contrast import channel_contrast_limits, contrast_limits_from


def _logged_level(data: np.ndarray, chunks: tuple[int, ...]) -> tuple[da.Array, LoggingStore]:
    store = LoggingStore(MemoryStore(), log_level="DEBUG", log_handler=logging.NullHandler())
    array = zarr.create_array(store, shape=data.shape, chunks=chunks, dtype=data.dtype)
    array[...] = data
    store.counter.clear()
    return da.from_zarr(array), store


@pytest.fixture
def channels() -> np.ndarray:
    rng = np.random.default_rng(3)
    data = rng.normal(size=(5, 48, 40)).astype(np.float32) * np.arange(1, 6)[:, None, None]
    data[1, 3, 4] = np.inf  # ignored, as for a single channel
    data[2] = np.nan  # no finite pixel: (0, 1)
    data[4] = 7.0  # constant: widened above
    return data


def test_each_channel_gets_its_own_limits_as_a_single_channel_would(channels: np.ndarray) -> None:
    level, _ = _logged_level(channels, (5, 16, 16))
    expected = [contrast_limits_from(da.from_array(plane)) for plane in channels]
    assert channel_contrast_limits(level, 0, 5) == expected
    finite = channels[0][np.isfinite(channels[0])]
    assert expected[0] == (float(finite.min()), float(finite.max()))
    assert expected[2] == (0.0, 1.0)
    assert expected[4][0] == 7.0 and expected[4][1] > 7.0


def test_a_chunk_holding_every_channel_is_read_once(channels: np.ndarray) -> None:
    level, store = _logged_level(channels, (5, 48, 40))
    channel_contrast_limits(level, 0, 5)
    assert store.counter["get"] == 1  # per channel it was read five times

    level, store = _logged_level(channels, (5, 48, 40))
    channel_contrast_limits(level, 0, 5, batch_pixels=2 * 48 * 40)
    assert store.counter["get"] == 3  # batches of two channels: read three times


def test_the_channel_axis_may_be_anywhere(channels: np.ndarray) -> None:
    moved = np.ascontiguousarray(np.moveaxis(channels, 0, -1))[..., :2]  # y, x, c
    level, _ = _logged_level(moved, (16, 16, 2))
    assert channel_contrast_limits(level, 2, 2) == [
        contrast_limits_from(da.from_array(moved[..., index])) for index in range(2)
    ]
