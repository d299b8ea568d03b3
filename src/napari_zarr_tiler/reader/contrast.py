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
#: Pixels of the channels read together for their contrast limits (see channel_contrast_limits).
MAX_BATCH_PIXELS = 2 * MAX_CONTRAST_PIXELS


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
    return _limits_of(np.asarray(_bounded_crop(level).compute()), dtype)


def channel_contrast_limits(
    level: da.Array, channel_axis: int, n_channels: int, *, batch_pixels: int = MAX_BATCH_PIXELS
) -> list[tuple[float, float]]:
    """Contrast limits of each channel of ``level``, as :func:`contrast_limits_from` gives them.

    Channels are read together, in batches of at most ``batch_pixels`` pixels: dask
    then reads a chunk that holds several channels (a plate's fields, an image chunked across
    its channels) once, not once per channel.

    Parameters
    ----------
    level : dask.array.Array
        The level to read, usually a pyramid's smallest.
    channel_axis : int
        The axis of ``level`` that holds the channels.
    n_channels : int
        How many channels to give limits for (the first ``n_channels`` along the axis).
    batch_pixels : int
        Pixels read together at most (one channel's crop is always read whole).

    Returns
    -------
    list of tuple of (float, float)
        ``(low, high)`` per channel, as :func:`contrast_limits_from` gives it.
    """
    import dask
    import dask.array as da

    dtype = np.dtype(level.dtype)
    if dtype.kind == "b" or level.size == 0:
        return [contrast_limits_from(level)] * n_channels
    crops = [
        _bounded_crop(da.take(level, index, axis=channel_axis)) for index in range(n_channels)
    ]
    limits: list[tuple[float, float]] = []
    batch: list[da.Array] = []
    for crop in [*crops, None]:
        if batch and (crop is None or sum(c.size for c in batch) + crop.size > batch_pixels):
            limits.extend(_limits_of(np.asarray(pixels), dtype) for pixels in dask.compute(*batch))
            batch = []
        if crop is not None:
            batch.append(crop)
    return limits


def _limits_of(pixels: np.ndarray, dtype: np.dtype) -> tuple[float, float]:
    """Min and max of ``pixels`` (finite ones), widened when they are equal."""
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
