"""One level of an HCS plate as a single lazy array that knows only the fields that exist.

The plate is a grid of cells (each well is a small grid of field cells); a cell holds one
field, padded with zeros to the cell's shape, or nothing (zeros). :class:`PlateView` reads
any region of that grid from the fields' own arrays, looking them up in a dict keyed by cell,
and :func:`lazy_plate_level` wraps it as one dask array. Opening a plate therefore costs in
proportion to the fields it holds, not to rows x columns x fields per well: a 300 x 300
plate with a single well opens as fast as a one-well plate.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ..basic_indexing import basic_index
from ..errors import StoreReadError
from .arrays import MAX_BLOCKS_PER_AXIS, MAX_CHUNK_BYTES
from .previews import VIEW_CHUNK_SIDE

if TYPE_CHECKING:
    from pathlib import Path

    import dask.array as da

Cell = tuple[int, int]


class PlateView:
    """A grid of cells along the last two axes, each a field's array or zeros, read on indexing.

    Parameters
    ----------
    cells : dict
        The fields by (cell row, cell column): array-likes supporting basic indexing with
        unit-step slices (``zarr.Array``, :class:`~.previews.StridedView`), each no larger than
        ``cell`` along any axis.
    cell : tuple of int
        The shape of one cell (the largest field's shape).
    grid : tuple of (int, int)
        Cell rows and cell columns of the plate.
    dtype : numpy.dtype
        The plate's data type; fields are cast to it.
    """

    def __init__(
        self, cells: dict[Cell, Any], *, cell: tuple[int, ...], grid: Cell, dtype: np.dtype
    ) -> None:
        self.cells = cells
        self.cell = cell
        self.dtype = np.dtype(dtype)
        self.shape = (*cell[:-2], grid[0] * cell[-2], grid[1] * cell[-1])
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        starts, stops, squeeze = basic_index(key, self.shape)
        out = np.zeros([b - a for a, b in zip(starts, stops, strict=True)], dtype=self.dtype)
        cell_y, cell_x = self.cell[-2:]
        for (row, column), field in self._cells_in(starts[-2:], stops[-2:]):
            origin = (*(0,) * (self.ndim - 2), row * cell_y, column * cell_x)
            source, target = [], []
            for start, stop, offset, size in zip(starts, stops, origin, field.shape, strict=True):
                low, high = max(start, offset), min(stop, offset + size)
                if low >= high:
                    break
                source.append(slice(low - offset, high - offset))
                target.append(slice(low - start, high - start))
            else:
                out[tuple(target)] = np.asarray(field[tuple(source)])
        return out.squeeze(axis=tuple(squeeze)) if squeeze else out

    def _cells_in(self, starts: list[int], stops: list[int]) -> Iterator[tuple[Cell, Any]]:
        """The fields whose cells meet the region: at most as many lookups as fields or cells."""
        cell_y, cell_x = self.cell[-2:]
        rows = range(starts[0] // cell_y, math.ceil(stops[0] / cell_y))
        columns = range(starts[1] // cell_x, math.ceil(stops[1] / cell_x))
        if len(rows) * len(columns) <= len(self.cells):
            for row in rows:
                for column in columns:
                    field = self.cells.get((row, column))
                    if field is not None:
                        yield (row, column), field
        else:
            for (row, column), field in self.cells.items():
                if row in rows and column in columns:
                    yield (row, column), field


def _axis_chunks(n_cells: int, cell: int, chunk: int) -> tuple[int, ...]:
    """Dask chunks along a plate axis of ``n_cells`` cells of ``cell`` pixels.

    Cells larger than ``chunk`` are split into chunks of ``chunk`` (each cell starting a
    chunk); smaller cells are grouped into chunks of about :data:`~.previews.VIEW_CHUNK_SIDE`
    pixels. Either way at most :data:`~.arrays.MAX_BLOCKS_PER_AXIS` chunks are made.
    """
    chunk = max(1, min(chunk, cell))
    if chunk < cell:
        per_cell = (chunk,) * (cell // chunk) + ((cell % chunk,) if cell % chunk else ())
        if len(per_cell) * n_cells <= MAX_BLOCKS_PER_AXIS:
            return per_cell * n_cells
    group = max(1, VIEW_CHUNK_SIDE // cell, math.ceil(n_cells / MAX_BLOCKS_PER_AXIS))
    full, rest = divmod(n_cells, group)
    return (group * cell,) * full + ((rest * cell,) if rest else ())


def lazy_plate_level(
    cells: dict[Cell, Any],
    *,
    cell: tuple[int, ...],
    grid: Cell,
    dtype: np.dtype,
    chunk: tuple[int, ...],
    where: Path,
) -> da.Array:
    """One plate level as a dask array over a :class:`PlateView`; nothing is read.

    Parameters
    ----------
    cells, cell, grid, dtype
        As for :class:`PlateView`.
    chunk : tuple of int
        Preferred dask chunk (the first field's), clipped to the cell.
    where : Path
        The plate's folder, named in errors.

    Returns
    -------
    dask.array.Array
        Chunks aligned to the cells: no chunk spans part of two cells.

    Raises
    ------
    StoreReadError
        When one chunk of the plate would exceed :data:`~.arrays.MAX_CHUNK_BYTES` (only absurd
        metadata: hundreds of thousands of cells of huge fields).
    """
    import dask.array as da

    view = PlateView(cells, cell=cell, grid=grid, dtype=dtype)
    leading = [_regular(size, min(c, size)) for size, c in zip(cell[:-2], chunk[:-2], strict=True)]
    spatial = [
        _axis_chunks(n, size, c) for n, size, c in zip(grid, cell[-2:], chunk[-2:], strict=True)
    ]
    chunks = (*leading, *spatial)
    largest = math.prod(max(axis) for axis in chunks) * view.dtype.itemsize
    if largest > MAX_CHUNK_BYTES:
        msg = (
            f"{where}: the plate ({grid[0]:,} x {grid[1]:,} field cells of {cell}) would be read "
            f"in blocks of {largest / 2**30:.1f} GiB; refusing to open it (is the metadata "
            "corrupt?)"
        )
        raise StoreReadError(msg)
    return da.from_array(
        view,
        chunks=chunks,
        name=f"zarr-tiler-plate-{uuid.uuid4().hex}",
        asarray=False,
        inline_array=True,
        meta=np.empty((0,) * view.ndim, dtype=view.dtype),
    )


def _regular(size: int, chunk: int) -> tuple[int, ...]:
    """Chunks of ``chunk`` along an axis of ``size``, the last one shorter."""
    chunk = max(1, chunk)
    return (chunk,) * (size // chunk) + ((size % chunk,) if size % chunk else ())
