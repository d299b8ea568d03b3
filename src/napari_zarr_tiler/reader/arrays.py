"""A stored zarr array as a lazy dask array, within limits that keep display and memory bounded.

Dask chunks follow the stored chunks (grown by whole chunks when an array has very many), and
only the chunks a slice touches are read. Metadata that would make any read enormous (a single
huge chunk) or the chunk grid itself enormous is refused with a message saying so. Arrays
stored without a pyramid get a lazy one of strided previews (:mod:`.previews`).
"""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import zarr

from ..errors import StoreReadError
from .bounded_codecs import limit_format2_compressor
from .previews import StridedView, minimum_sample_step, strided_level_factors

if TYPE_CHECKING:  # dask is imported where it is used: converting a TIFF never needs it
    import dask.array as da

#: A single stored chunk larger than this is refused: displaying any pixel would decode it all.
MAX_CHUNK_BYTES = 1 << 30
#: Dask chunks are grown (by whole stored chunks) until an array has at most this many.
MAX_DASK_BLOCKS = 1 << 16
#: More dask blocks than this along one axis is refused: the chunk grid alone would fill memory.
MAX_BLOCKS_PER_AXIS = 1 << 16
#: Largest dask chunk we build by grouping stored chunks.
MAX_DASK_CHUNK_BYTES = 64 << 20
#: Blocks of one lazy array at most (metadata far beyond any real image: 2^32 blocks of even
#: 64 x 64 pixels are 2^44 pixels).
MAX_TOTAL_BLOCKS = 1 << 32


class UndisplayableArrayError(StoreReadError):
    """An array napari cannot show as an image (0-D, 1-D or empty); skipped inside a group."""


def check_displayable(shape: tuple[int, ...], *, where: Path) -> None:
    """Refuse an array napari cannot show: fewer than two dimensions, or no pixel.

    Parameters
    ----------
    shape : tuple of int
        The array's shape.
    where : Path
        The array's folder, named in the error.

    Raises
    ------
    UndisplayableArrayError
        Naming the array and its shape.
    """
    if len(shape) < 2:
        what = "a single value" if not shape else f"1-D (shape {shape})"
        msg = (
            f"{where}: cannot be shown, it is {what} (napari shows arrays of 2 or more dimensions)"
        )
        raise UndisplayableArrayError(msg)
    if 0 in shape:
        msg = f"{where}: cannot be shown, it is empty (shape {shape})"
        raise UndisplayableArrayError(msg)


def _check_dtype(array: zarr.Array, *, where: Path) -> np.dtype:
    """The array's numpy dtype, refused unless napari displays it (integer, float, bool)."""
    try:
        dtype = np.dtype(array.dtype)
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in "biuf":
        msg = (
            f"{where}: data type {array.dtype} is not supported; napari displays integer, "
            "float and bool arrays"
        )
        raise UndisplayableArrayError(msg)
    return dtype


def _block_count(shape: tuple[int, ...], chunks: list[int]) -> int:
    return math.prod(math.ceil(s / max(c, 1)) for s, c in zip(shape, chunks, strict=True))


def _dask_chunks(array: zarr.Array, itemsize: int) -> tuple[int, ...]:
    """Stored chunks, grown by whole chunks on the last two axes while there are too many."""
    chunks = list(array.chunks)
    shape = array.shape
    if not shape:
        return ()
    while (
        _block_count(shape, chunks) > MAX_DASK_BLOCKS
        and math.prod(chunks) * itemsize * 4 <= MAX_DASK_CHUNK_BYTES
    ):
        grown = False
        for axis in range(max(len(shape) - 2, 0), len(shape)):
            if chunks[axis] < shape[axis]:
                chunks[axis] = min(chunks[axis] * 2, shape[axis])
                grown = True
        if not grown:
            break
    return tuple(chunks)


def _check_block_grid(shape: tuple[int, ...], chunks: tuple[int, ...], *, where: Path) -> None:
    """Refuse a dask chunk grid too large to index (only corrupt or hostile metadata makes one)."""
    blocks = [math.ceil(s / max(c, 1)) for s, c in zip(shape, chunks, strict=True)]
    if any(count > MAX_BLOCKS_PER_AXIS for count in blocks):
        msg = (
            f"{where}: shape {shape} in blocks of {chunks} makes {max(blocks):,} blocks along one "
            "axis; refusing to index that many (is the metadata corrupt?)"
        )
        raise StoreReadError(msg)
    if math.prod(blocks) > MAX_TOTAL_BLOCKS:
        msg = (
            f"{where}: shape {shape} in blocks of {chunks} makes {math.prod(blocks):,} blocks; "
            f"refusing to index more than {MAX_TOTAL_BLOCKS:,} (re-tile the store with larger "
            "chunks: `napari-zarr-tiler convert`)"
        )
        raise StoreReadError(msg)


def lazy_array(array: zarr.Array, *, where: Path) -> da.Array:
    """Wrap a zarr array as a dask array that reads only the chunks a slice touches.

    Parameters
    ----------
    array : zarr.Array
        An array opened read-only.
    where : Path
        The array's folder, named in errors.

    Returns
    -------
    dask.array.Array
        Chunked like the stored array (chunks grouped when there are very many); a fresh dask
        name per call, so a store rewritten in place is never served from dask's cache.

    Raises
    ------
    StoreReadError
        When the dtype cannot be displayed, a single stored chunk is larger than
        :data:`MAX_CHUNK_BYTES` (any read would allocate it all), or the chunk grid is too
        large to index.
    """
    dtype = _check_dtype(array, where=where)
    chunk_bytes = math.prod(array.chunks) * dtype.itemsize
    if chunk_bytes > MAX_CHUNK_BYTES:
        msg = (
            f"{where}: one stored chunk {array.chunks} is {chunk_bytes / 2**30:.1f} GiB; "
            "displaying any pixel would load it whole. Re-tile the store with "
            "`napari-zarr-tiler convert` first."
        )
        raise StoreReadError(msg)
    limit_format2_compressor(array)
    chunks = _dask_chunks(array, dtype.itemsize)
    _check_block_grid(array.shape, chunks, where=where)
    import dask.array as da

    # A fresh name per open: a store rewritten in place must not be served from dask's cache.
    name = f"zarr-tiler-{uuid.uuid4().hex}"
    # ``meta`` given: without it dask reads an empty selection of every array it wraps.
    meta = np.empty((0,) * array.ndim, dtype=dtype)
    return da.from_array(
        array, chunks=chunks, name=name, asarray=False, inline_array=True, meta=meta
    )


def lazy_pyramid(array: zarr.Array, base: da.Array, *, where: Path) -> list[da.Array]:
    """Extend ``base`` (the dask array of ``array``) with strided preview levels.

    Parameters
    ----------
    array : zarr.Array
        An array too large to draw whole (see :func:`.previews.needs_lazy_pyramid`).
    base : dask.array.Array
        Its lazy array, from :func:`lazy_array`.
    where : Path
        The array's folder, named in errors.

    Returns
    -------
    list of dask.array.Array
        ``base`` then ever coarser strided views, none read ahead of display.

    Raises
    ------
    StoreReadError
        When a view's chunk grid is too large to index.
    """
    import dask.array as da

    levels = [base]
    step = minimum_sample_step(array.shape, array.chunks, np.dtype(array.dtype).itemsize)
    for factor in strided_level_factors(array.shape):
        view = StridedView(array, factor, step)
        _check_block_grid(view.shape, view.chunks, where=where)
        levels.append(
            da.from_array(
                view,
                chunks=view.chunks,
                name=f"zarr-tiler-strided-{factor}-{uuid.uuid4().hex}",
                asarray=False,
                inline_array=True,
                meta=np.empty((0,) * array.ndim, dtype=array.dtype),
            )
        )
    return levels


def no_pyramid_notice(where: Path, shape: tuple[int, ...], *, partial: bool) -> str:
    """The notice shown when an image is displayed through strided previews.

    Parameters
    ----------
    where : Path
        The image's folder.
    shape : tuple of int
        The shape of the level the previews start from.
    partial : bool
        Whether the store has a pyramid that stops too early (rather than none).

    Returns
    -------
    str
        One sentence saying why browsing is slow and how to convert the store.
    """
    what = "its smallest pyramid level is" if partial else "it has no pyramid, so it is"
    return (
        f"{where}: {' x '.join(map(str, shape))}: {what} shown through downsampled previews that "
        "read many chunks when zoomed out. Convert it with Plugins > Zarr Tiler > Convert to zarr "
        "(or `napari-zarr-tiler convert`) to build a full pyramid and browse it fast."
    )
