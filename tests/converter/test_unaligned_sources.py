"""Chunked sources whose blocks do not match the regions: each block is read once, and the store
written is the one an aligned source gives."""

from __future__ import annotations

import threading
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr

from napari_zarr_tiler.converter import convert
from napari_zarr_tiler.converter.level_zero import (
    BlockCache,
    LevelZero,
    block_edges,
    unwrapped_source,
)

from ..helpers import tree_bytes

SHAPE = (1536, 2560)


class CountedSource:
    """A lazily generated dask image that counts how often each of its blocks is computed."""

    def __init__(self, shape: tuple[int, ...], chunks: tuple[int, ...]) -> None:
        self.calls: dict[tuple[int, ...], int] = {}
        self._lock = threading.Lock()
        self.array = da.zeros(shape, dtype=np.uint16, chunks=chunks).map_blocks(
            self._generate, dtype=np.uint16, meta=np.empty((0,) * len(shape), np.uint16)
        )

    def _generate(self, block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        assert block_info is not None
        with self._lock:
            key = tuple(block_info[None]["chunk-location"])
            self.calls[key] = self.calls.get(key, 0) + 1
        location = block_info[None]["array-location"]
        grids = np.meshgrid(*(np.arange(a, b) for a, b in location), indexing="ij")
        value = sum((g * (7 + 6 * i)) for i, g in enumerate(grids))
        return (value % 65521).astype(np.uint16)


def _expected(shape: tuple[int, ...]) -> np.ndarray:
    grids = np.meshgrid(*(np.arange(s) for s in shape), indexing="ij")
    return (sum((g * (7 + 6 * i)) for i, g in enumerate(grids)) % 65521).astype(np.uint16)


@pytest.fixture(scope="module")
def aligned_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image converted from a numpy array (no blocks at all)."""
    dest = tmp_path_factory.mktemp("aligned") / "image.zarr"
    convert(_expected(SHAPE), dest, chunks=256, name="image")
    return dest


@pytest.mark.parametrize(
    "chunks",
    [(1536, 2560), (1024, 1024), (300, 700), (777, 2560), (1536, 129)],
    ids=["one-block", "larger-than-regions", "small-crossing", "rows", "columns"],
)
@pytest.mark.parametrize("workers", [1, 3])
def test_unaligned_dask_blocks_are_computed_once_and_give_the_aligned_store(
    tmp_path: Path, aligned_store: Path, chunks: tuple[int, int], workers: int
) -> None:
    source = CountedSource(SHAPE, chunks)
    dest = tmp_path / "image.zarr"
    result = convert(source.array, dest, chunks=256, workers=workers, name="image")
    # Regions of this plan are smaller than some blocks and cross the edges of others.
    assert result.plan.region_yx != chunks
    assert tree_bytes(dest) == tree_bytes(aligned_store)
    blocks = source.array.numblocks
    assert len(source.calls) == blocks[0] * blocks[1]
    assert max(source.calls.values()) == 1, source.calls


def test_plane_blocks_of_a_stack_are_computed_once(tmp_path: Path) -> None:
    shape = (3, 700, 1100)
    source = CountedSource(shape, (1, 700, 1100))
    dest = tmp_path / "stack.zarr"
    convert(source.array, dest, chunks=(1, 128, 128), levels=3)
    assert sorted(source.calls) == [(0, 0, 0), (1, 0, 0), (2, 0, 0)]
    assert set(source.calls.values()) == {1}
    np.testing.assert_array_equal(zarr.open_array(dest / "0")[:], _expected(shape))


def test_a_dask_array_over_a_zarr_array_is_read_from_it_by_its_own_chunks(tmp_path: Path) -> None:
    """Dask blocks far larger than a region, backed by a zarr array: read in parts."""
    image = _expected((1000, 1500))
    stored = zarr.create_array(
        tmp_path / "src.zarr", shape=image.shape, chunks=(300, 450), dtype="u2"
    )
    stored[:] = image
    source = da.from_zarr(stored, chunks=(1000, 1500))  # one dask block: the whole image
    level0 = LevelZero(source)
    region = (slice(256, 512), slice(512, 1024))
    np.testing.assert_array_equal(level0(region), image[region])
    cache = level0._block_cache()
    assert isinstance(cache.array, zarr.Array)  # not dask's one big block
    assert cache.blocks_read == 2 * 2  # the zarr chunks the region overlaps, no more


def test_every_pixel_of_a_kept_block_handed_out_frees_it() -> None:
    image = _expected((100, 90))
    array = da.from_array(image, chunks=(60, 50)) + 0  # computed: not unwrapped to numpy
    cache = BlockCache(array, block_edges(array))
    pieces = []
    for y in range(0, 100, 25):
        for x in range(0, 90, 30):
            region = (slice(y, min(y + 25, 100)), slice(x, min(x + 30, 90)))
            pieces.append((region, cache.read(region)))
    assert cache.blocks_read == 4
    assert cache._kept == {}
    assert cache._kept_bytes == 0
    for region, piece in pieces:
        np.testing.assert_array_equal(piece, image[region])


def test_blocks_past_the_budget_are_read_again_not_kept() -> None:
    image = _expected((100, 90))
    array = da.from_array(image, chunks=(60, 50)) + 0
    cache = BlockCache(array, block_edges(array), budget=0)
    for y in range(0, 100, 25):
        region = (slice(y, min(y + 25, 100)), slice(0, 90))
        np.testing.assert_array_equal(cache.read(region), image[region])
    assert cache._kept == {}
    # Each block is read by every region it overlaps: rows 0-60 by three, rows 60-100 by two.
    assert cache.blocks_read == 2 * 3 + 2 * 2


def test_aligned_regions_and_blockless_arrays_are_read_directly() -> None:
    image = _expected((64, 64))
    array = da.from_array(image, chunks=16) + 0
    cache = BlockCache(array, block_edges(array))
    np.testing.assert_array_equal(cache.read((slice(16, 48), slice(0, 64))), image[16:48])
    assert cache.blocks_read == 0
    assert block_edges(image) is None


def test_only_plain_reads_are_unwrapped_never_a_computation(tmp_path: Path) -> None:
    image = _expected((40, 60))
    stored = zarr.create_array(tmp_path / "a.zarr", shape=image.shape, chunks=(16, 16), dtype="u2")
    stored[:] = image
    assert unwrapped_source(da.from_zarr(stored)) is stored
    plain = unwrapped_source(da.from_array(image))  # dask copied it: the copy is read
    assert isinstance(plain, np.ndarray)
    np.testing.assert_array_equal(plain, image)
    for computed in (da.from_array(image) + 1, da.from_zarr(stored)[::-1], da.from_zarr(stored).T):
        assert unwrapped_source(computed) is computed
        np.testing.assert_array_equal(
            LevelZero(computed)((slice(3, 30), slice(5, 33))), np.asarray(computed)[3:30, 5:33]
        )
