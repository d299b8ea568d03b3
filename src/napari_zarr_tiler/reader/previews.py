"""Lazily downsampled views of an array that has no pyramid.

A large array stored without a pyramid would make napari load a whole plane to draw it. Instead we
offer strided views (every ``f``-th pixel along Y and X), which zarr reads on demand: only the
chunks holding sampled pixels are decoded, and nothing is computed ahead of display.

Exact strided sampling still touches every chunk of a zoomed-out view when the stride is smaller
than the chunk. So the views sample at most every ``sample_step``-th pixel, chosen per array so
that a whole-image view decodes at most :data:`VIEW_CHUNK_BUDGET` chunks (and
:data:`VIEW_BYTES_BUDGET` bytes, counting every axis of a chunk: a chunk spanning many planes is
decoded whole for one). Zoomed-out levels of a huge array are then coarser previews
(nearest neighbour), level 0 stays exact, and every view costs a bounded number of chunk reads.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..basic_indexing import basic_index

#: A plane with more pixels than this (or a side above the GL texture limit) gets strided views.
LAZY_PYRAMID_MIN_PIXELS = 4096 * 4096
MAX_TEXTURE_SIDE = 16384
#: Strided levels are added until the coarsest level fits in this many pixels a side.
COARSEST_SIDE = 1024
#: Dask chunk side of a strided level.
VIEW_CHUNK_SIDE = 512
#: Most chunks (and decoded bytes) a whole-image view may read.
VIEW_CHUNK_BUDGET = 1 << 14
VIEW_BYTES_BUDGET = 1 << 30


def needs_lazy_pyramid(shape: tuple[int, ...]) -> bool:
    """Whether an array of this shape is too large to display as a single level.

    Parameters
    ----------
    shape : tuple of int
        The array's shape; the last two axes are the plane.

    Returns
    -------
    bool
        True when a plane has more than :data:`LAZY_PYRAMID_MIN_PIXELS` pixels or a side longer
        than :data:`MAX_TEXTURE_SIDE`.
    """
    if len(shape) < 2:
        return False
    height, width = shape[-2:]
    return height * width > LAZY_PYRAMID_MIN_PIXELS or max(height, width) > MAX_TEXTURE_SIDE


def strided_level_factors(shape: tuple[int, ...]) -> list[int]:
    """Downsampling factors (2, 4, 8, ...) until the last two axes fit in :data:`COARSEST_SIDE`.

    Parameters
    ----------
    shape : tuple of int
        The array's shape.

    Returns
    -------
    list of int
        One factor per preview level, coarsest last; empty when the plane already fits.
    """
    factors = []
    factor = 1
    while max(math.ceil(side / factor) for side in shape[-2:]) > COARSEST_SIDE:
        factor *= 2
        factors.append(factor)
    return factors


def view_reads(
    shape: tuple[int, ...], chunks: tuple[int, ...], itemsize: int, step: int
) -> tuple[int, int]:
    """Chunks and decoded bytes a whole-plane view sampled every ``step`` pixels reads.

    A chunk is decoded whole, along every axis: a chunk spanning many planes costs all of
    them even though a view shows one.
    """
    height, width = shape[-2:]
    chunk_y, chunk_x = chunks[-2:]
    touched = math.ceil(height / max(step, chunk_y)) * math.ceil(width / max(step, chunk_x))
    return touched, touched * math.prod(chunks) * itemsize


def minimum_sample_step(shape: tuple[int, ...], chunks: tuple[int, ...], itemsize: int) -> int:
    """Smallest power-of-two sampling step that keeps a whole-plane view within budget.

    The budget is :data:`VIEW_CHUNK_BUDGET` chunks and :data:`VIEW_BYTES_BUDGET` decoded bytes,
    counted over every chunk axis (:func:`view_reads`).

    Parameters
    ----------
    shape, chunks : tuple of int
        The array's shape and stored chunks.
    itemsize : int
        Bytes per pixel.

    Returns
    -------
    int
        The step; 1 when reading every chunk of a plane is already within budget.
    """

    def over_budget(step: int) -> bool:
        touched, decoded = view_reads(shape, chunks, itemsize, step)
        return touched > VIEW_CHUNK_BUDGET or (touched > 1 and decoded > VIEW_BYTES_BUDGET)

    step = 1
    while over_budget(step) and step < max(shape[-2:]):
        step *= 2
    return step


class StridedView:
    """A downsampled view of the last two axes of an array, read on indexing.

    Parameters
    ----------
    array : array-like
        An array supporting strided basic indexing, such as a ``zarr.Array``.
    factor : int
        The view's downsampling factor: its shape is the source's divided by ``factor``.
    sample_step : int
        Read only every ``sample_step``-th source pixel (a multiple of ``factor``, or smaller to
        sample exactly); view pixels between two samples repeat the nearest sample before them.
    """

    def __init__(self, array: Any, factor: int, sample_step: int = 1) -> None:
        self.array = array
        self.factor = factor
        self.step = max(sample_step, factor)
        self.dtype = np.dtype(array.dtype)
        self.shape = (
            *array.shape[:-2],
            *(math.ceil(side / factor) for side in array.shape[-2:]),
        )
        self.ndim = len(self.shape)
        self.chunks = (*(1,) * (self.ndim - 2), VIEW_CHUNK_SIDE, VIEW_CHUNK_SIDE)

    def __getitem__(self, key: Any) -> np.ndarray:
        starts, stops, squeeze = basic_index(key, self.shape)
        source_key: list[slice] = [
            slice(a, b) for a, b in zip(starts[:-2], stops[:-2], strict=True)
        ]
        expand: list[np.ndarray] = []
        for start, stop in zip(starts[-2:], stops[-2:], strict=True):
            samples = (
                np.arange(start, stop) * self.factor
            ) // self.step  # sample each pixel shows
            first = int(samples[0]) if samples.size else 0
            last = int(samples[-1]) if samples.size else -1
            source_key.append(slice(first * self.step, last * self.step + 1, self.step))
            expand.append(samples - first)
        result = np.asarray(self.array[tuple(source_key)])
        if result.shape[-2:] != (len(expand[0]), len(expand[1])):
            result = result.take(expand[0], axis=-2).take(expand[1], axis=-1)
        return result.squeeze(axis=tuple(squeeze)) if squeeze else result
