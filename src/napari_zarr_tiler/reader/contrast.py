"""Contrast limits for a layer whose metadata gives no window, from a bounded read of its pixels."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import dask.array as da

#: Contrast limits are computed from the smallest level only when it is at most this many pixels.
MAX_CONTRAST_PIXELS = 1 << 24
#: Dask blocks read at most to find contrast limits (a central crop when there are more).
MAX_CONTRAST_BLOCKS = 256


def contrast_limits_from(level: da.Array) -> tuple[float, float]:
    """Contrast limits from one (small) level: its min and max, widened when they are equal.

    NaN and infinite pixels are ignored. At most :data:`MAX_CONTRAST_PIXELS` pixels in at most
    :data:`MAX_CONTRAST_BLOCKS` blocks are read: a larger level gives the limits of a central
    crop of its first plane.

    Parameters
    ----------
    level : dask.array.Array
        The level to read, usually a pyramid's smallest.

    Returns
    -------
    tuple of (float, float)
        ``(low, high)`` with ``high > low``; ``(0, 1)`` for booleans and for floats without a
        finite pixel, the dtype's range for integers without a pixel.
    """
    dtype = np.dtype(level.dtype)
    if dtype.kind == "b":
        return 0.0, 1.0
    if level.size == 0:
        return _dtype_range(dtype)
    # The bounded crop is read first and reduced in numpy: a dask reduction of a slice would
    # build the graph of every block of the whole array (800 MB for 4 million blocks).
    pixels = np.asarray(_bounded_crop(level).compute())
    if dtype.kind == "f":
        pixels = pixels[np.isfinite(pixels)]  # one inf or NaN must not decide the window
    if pixels.size == 0:
        return _dtype_range(dtype)
    low, high = float(pixels.min()), float(pixels.max())
    if high <= low:
        high = low + max(1.0, abs(low) * 2**-20)  # + 1 is lost on huge values
    return low, high


def _bounded_crop(level: da.Array) -> da.Array:
    """``level``, or a central crop of its first plane small in pixels and in blocks."""
    if level.size > MAX_CONTRAST_PIXELS:
        # Too large to scan: use a central crop of the first plane (a bounded, chunk-aligned read).
        side = math.isqrt(MAX_CONTRAST_PIXELS)
        crop: list[int | slice] = [0] * max(level.ndim - 2, 0)
        for extent in level.shape[-2:]:
            start = max((extent - side) // 2, 0)
            crop.append(slice(start, start + side))
        level = level[tuple(crop)]
    if math.prod(level.numblocks) > MAX_CONTRAST_BLOCKS:
        # Small chunks: a central square of blocks of the first plane instead.
        side = math.isqrt(MAX_CONTRAST_BLOCKS)
        blocks: list[int | slice] = [0] * max(level.ndim - 2, 0)
        for count in level.numblocks[-2:]:
            start = max((count - side) // 2, 0)
            blocks.append(slice(start, start + side))
        level = level.blocks[tuple(blocks)]
    return level


def _dtype_range(dtype: np.dtype) -> tuple[float, float]:
    """Full range of an integer dtype; (0, 1) for any other."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return 0.0, 1.0
