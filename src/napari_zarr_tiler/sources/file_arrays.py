"""Arrays read straight from a file with positioned reads (``preadv``), for uncompressed TIFFs.

A region then reads exactly its own bytes, with no page left mapped and zarr's event loop (which
the writer needs) left alone. :func:`positioned_read_array` decides when a TIFF series can be
read so: contiguous image data (:class:`ContiguousFileArray`) or a single uncompressed tiled page
(:class:`TiledFileArray`); anything else goes through tifffile's zarr interface.
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..basic_indexing import basic_index


def positioned_read_array(
    path: Path, tiff: Any, series: Any
) -> ContiguousFileArray | TiledFileArray | None:
    """Level 0 of a TIFF series read with positioned reads, or None when it cannot be.

    Parameters
    ----------
    path : Path
        The TIFF file.
    tiff : tifffile.TiffFile
        The file, opened (for its byte order).
    series : tifffile.TiffPageSeries
        The series to read.

    Returns
    -------
    ContiguousFileArray or TiledFileArray or None
        The array, or None for compressed, scattered or truncated image data.
    """
    return _contiguous_file_array(path, tiff, series) or _uncompressed_tiles(path, tiff, series)


def _contiguous_file_array(path: Path, tiff: Any, series: Any) -> ContiguousFileArray | None:
    """Uncompressed, contiguous image data read with positioned reads, else None.

    A region then reads exactly its own bytes. Through the zarr interface each region of a
    stripped file would decode every full-width strip it touches: tens of times the file on wide
    images, and strips held in memory. (A memory map would be as fast, but every page it touches,
    and the pages the kernel maps around them, count in the converter's resident memory.)
    """
    if series.dataoffset is None:
        return None
    dtype = np.dtype(series.dtype).newbyteorder(tiff.byteorder)
    needed = series.dataoffset + math.prod(series.shape) * dtype.itemsize
    if path.stat().st_size < needed:
        return None  # truncated: the zarr interface reports it on the region that is missing
    return ContiguousFileArray(path, series.dataoffset, tuple(series.shape), dtype)


def _uncompressed_tiles(path: Path, tiff: Any, series: Any) -> TiledFileArray | None:
    """A single-page, uncompressed, tiled image read tile by tile with ``preadv``, else None."""
    pages = series.pages
    if len(pages) != 1 or pages[0] is None:
        return None
    page = pages[0]
    if not (
        page.is_tiled and page.compression == 1 and page.imagedepth == 1 and page.predictor == 1
    ):
        return None
    samples = page.samplesperpixel
    if samples > 1 and page.planarconfig != 1:
        return None
    dtype = np.dtype(series.dtype).newbyteorder(tiff.byteorder)
    shape = tuple(series.shape)
    if shape not in (
        (page.imagelength, page.imagewidth),
        (page.imagelength, page.imagewidth, samples),
    ):
        return None
    tile = (page.tilelength, page.tilewidth)
    tile_bytes = tile[0] * tile[1] * samples * dtype.itemsize
    if page.bitspersample != dtype.itemsize * 8 or any(
        n != tile_bytes for n in page.databytecounts
    ):
        return None
    if path.stat().st_size < max(page.dataoffsets) + tile_bytes:
        return None  # truncated: the zarr interface reports it on the region that is missing
    return TiledFileArray(path, tuple(page.dataoffsets), shape, tile, samples, dtype)


class _PositionedReads:
    """A file opened lazily for ``preadv`` (re-opened after pickling, e.g. in a dask worker).

    The subclasses are what :func:`positioned_read_array` returns; ``close`` releases the file
    and the next read opens it again.
    """

    def __init__(self, path: Path) -> None:
        self.filename = str(path)
        self._fd: int | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fd"], state["_lock"] = None, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _descriptor(self) -> int:
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.filename, os.O_RDONLY)
            return self._fd

    def read_into(self, buffer: memoryview, offset: int) -> None:
        """Fill ``buffer`` from ``offset``, or raise OSError if the file ends first."""
        if os.preadv(self._descriptor(), [buffer], offset) != len(buffer):
            self._truncated()

    def read_runs(self, buffer: memoryview, offsets: list[int], run_bytes: int) -> None:
        """Fill ``buffer`` with runs of ``run_bytes`` read from each of ``offsets`` in turn."""
        descriptor, preadv = self._descriptor(), os.preadv
        for position, offset in zip(range(0, len(buffer), run_bytes), offsets, strict=True):
            if preadv(descriptor, [buffer[position : position + run_bytes]], offset) != run_bytes:
                self._truncated()

    def _truncated(self) -> None:
        msg = f"{self.filename}: the file ends before the image data does (truncated?)"
        raise OSError(msg)

    def close(self) -> None:
        """Close the file (it is opened again on the next read)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class ContiguousFileArray(_PositionedReads):
    """A C-ordered array stored contiguously in a file, read region by region with ``preadv``.

    Supports the indexing the converter uses: integers and unit-step slices. Each read makes one
    system call per contiguous run of bytes and copies nothing twice; no page stays mapped.

    Parameters
    ----------
    path : Path
        The file.
    offset : int
        Where the array's first byte is.
    shape : tuple of int
        The array's shape (C order).
    dtype : numpy.dtype
        Its type, with the file's byte order.
    """

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        super().__init__(path)
        self.offset = offset
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.ndim = len(shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        starts, stops, squeeze = basic_index(key, self.shape)
        extents = [b - a for a, b in zip(starts, stops, strict=True)]
        out = np.empty(extents, dtype=self.dtype)
        if out.size:
            self._read_into(out, starts, extents)
        return out.squeeze(axis=tuple(squeeze)) if squeeze else out

    def _read_into(self, out: np.ndarray, starts: list[int], extents: list[int]) -> None:
        # Trailing axes read whole merge with the axis before them into one contiguous run.
        run_axis = self.ndim - 1
        while run_axis > 0 and extents[run_axis] == self.shape[run_axis]:
            run_axis -= 1
        itemsize = self.dtype.itemsize
        strides = [itemsize * math.prod(self.shape[axis + 1 :]) for axis in range(self.ndim)]
        run_bytes = extents[run_axis] * strides[run_axis]
        # The file offset of every run, in C order, computed at once (a 16 MB region of a wide
        # stripped image is thousands of runs: a Python loop per run cost more than its read).
        offsets = np.full((), self.offset + starts[run_axis] * strides[run_axis], dtype=np.int64)
        for axis in range(run_axis):
            positions = (starts[axis] + np.arange(extents[axis], dtype=np.int64)) * strides[axis]
            offsets = np.add.outer(offsets, positions)
        self.read_runs(
            memoryview(out.reshape(-1).view(np.uint8)), offsets.reshape(-1).tolist(), run_bytes
        )


class TiledFileArray(_PositionedReads):
    """An uncompressed tiled image (Y, X[, samples]) read tile by tile with ``preadv``.

    Reads bypass zarr's event loop (which the writer needs) and copy each tile's overlap once.

    Parameters
    ----------
    path : Path
        The file.
    offsets : tuple of int
        Where each tile starts, row by row.
    shape : tuple of int
        The image's shape: (Y, X) or (Y, X, samples).
    tile : tuple of int
        A tile's height and width.
    samples : int
        Samples per pixel (interleaved).
    dtype : numpy.dtype
        The sample type, with the file's byte order.
    """

    def __init__(
        self,
        path: Path,
        offsets: tuple[int, ...],
        shape: tuple[int, ...],
        tile: tuple[int, int],
        samples: int,
        dtype: np.dtype,
    ) -> None:
        super().__init__(path)
        self.offsets = offsets
        self.shape = shape
        self.tile = tile
        self.samples = samples
        self.dtype = np.dtype(dtype)
        self.ndim = len(shape)
        self.tiles_across = math.ceil(shape[1] / tile[1])

    def __getitem__(self, key: Any) -> np.ndarray:
        starts, stops, squeeze = basic_index(key, self.shape)
        (y0, x0), (y1, x1) = starts[:2], stops[:2]
        out = np.empty((y1 - y0, x1 - x0, self.samples), dtype=self.dtype)
        tile_y, tile_x = self.tile
        buffer = np.empty((tile_y, tile_x, self.samples), dtype=self.dtype)
        view = memoryview(buffer.reshape(-1).view(np.uint8))
        for row in range(y0 // tile_y, -(-y1 // tile_y) if y1 > y0 else y0 // tile_y):
            for column in range(x0 // tile_x, -(-x1 // tile_x) if x1 > x0 else x0 // tile_x):
                self.read_into(view, self.offsets[row * self.tiles_across + column])
                top, left = row * tile_y, column * tile_x
                ys = slice(max(y0, top), min(y1, top + tile_y))
                xs = slice(max(x0, left), min(x1, left + tile_x))
                out[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = buffer[
                    ys.start - top : ys.stop - top, xs.start - left : xs.stop - left
                ]
        out = out[..., 0] if self.ndim == 2 else out[..., starts[2] : stops[2]]
        return out.squeeze(axis=tuple(squeeze)) if squeeze else out
