"""Pyramid geometry and the downsampling kernels (mean for images, nearest for labels).

Levels halve the last two axes (Y and X), rounding up: an odd last row or column is kept, averaged
with itself. The Z axis is halved too at the steps a :class:`ZRule` allows (2x2x2 blocks, an odd
last plane kept likewise); other axes (t, c) are never downsampled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Downsampling = Literal["mean", "nearest"]
#: Whether levels halve Z: "auto" when Z spacing is not larger than Y/X spacing, or always, or never.
DownsampleZ = Literal["auto", "always", "never"]
DOWNSAMPLE_Z = ("auto", "always", "never")

#: Bytes of the wide temporaries of one slab of mean downsampling (cache-sized).
_SLAB_BYTES = 1 << 20
#: Relative tolerance when comparing spacings (0.1 * 3 is not 0.3 in floats).
_SPACING_TOLERANCE = 1e-9
#: No pyramid has more levels (a side of 2**63 pixels halves to 1 in 63 steps).
_MAX_STEPS = 128


@dataclass(frozen=True)
class ZRule:
    """When a pyramid step halves the Z axis.

    ``axis`` is Z's index (None: the image has no Z axis, and Z is never halved); ``spacing`` is
    level 0's physical (Z, min(Y, X)) pixel size, which ``"auto"`` compares at every level.
    """

    mode: DownsampleZ = "never"
    axis: int | None = None
    spacing: tuple[float, float] = (1.0, 1.0)

    def halves(self, level_shape: tuple[int, ...], factors: tuple[int, int]) -> bool:
        """Whether the step from a level (its shape, and its (Z, Y/X) factors) halves Z."""
        if self.axis is None or self.mode == "never" or level_shape[self.axis] <= 1:
            return False
        if self.mode == "always":
            return True
        z_spacing = self.spacing[0] * factors[0]
        yx_spacing = self.spacing[1] * factors[1]
        return z_spacing <= yx_spacing * (1 + _SPACING_TOLERANCE)


def _step(shape: tuple[int, ...], z_axis: int | None, halve_z: bool) -> tuple[int, ...]:
    """The shape of the next level: Y and X halved (rounding up), Z too when ``halve_z``."""
    sides = [*shape[:-2], *(math.ceil(side / 2) for side in shape[-2:])]
    if halve_z and z_axis is not None:
        sides[z_axis] = math.ceil(sides[z_axis] / 2)
    return tuple(sides)


def z_steps(shape: tuple[int, ...], n_levels: int, rule: ZRule) -> tuple[bool, ...]:
    """For each of the ``n_levels - 1`` steps, whether it halves Z."""
    steps: list[bool] = []
    current, z_factor = tuple(shape), 1
    for level in range(n_levels - 1):
        halve = rule.halves(current, (z_factor, 2**level))
        steps.append(halve)
        z_factor *= 2 if halve else 1
        current = _step(current, rule.axis, halve)
    return tuple(steps)


def level_shapes(
    shape: tuple[int, ...], n_levels: int, rule: ZRule | None = None
) -> list[tuple[int, ...]]:
    """Shapes of ``n_levels`` levels, halving Y and X (rounding up) each time, and Z where
    ``rule`` says so."""
    rule = rule or ZRule()
    shapes = [tuple(shape)]
    for halve in z_steps(shape, n_levels, rule):
        shapes.append(_step(shapes[-1], rule.axis, halve))
    return shapes


def level_factors(ndim: int, steps: tuple[bool, ...], z_axis: int | None) -> list[tuple[int, ...]]:
    """Each level's downsampling factor per axis relative to level 0 (Y, X: 2**level)."""
    factors = []
    z_factor = 1
    for level in range(len(steps) + 1):
        if level:
            z_factor *= 2 if steps[level - 1] else 1
        per_axis = [1] * (ndim - 2) + [2**level, 2**level]
        if z_axis is not None:
            per_axis[z_axis] = z_factor
        factors.append(tuple(per_axis))
    return factors


def _count_levels(shape: tuple[int, ...], rule: ZRule, small: tuple[int, ...]) -> int:
    """Levels until a level is at most ``small`` on Y and X, and on Z unless Z stops halving."""
    count, current, z_factor = 1, tuple(shape), 1
    while count <= _MAX_STEPS:
        halve = rule.halves(current, (z_factor, 2 ** (count - 1)))
        big_yx = current[-2] > small[-2] or current[-1] > small[-1]
        big_z = halve and rule.axis is not None and current[rule.axis] > small[rule.axis]
        if not (big_yx or big_z):
            break
        current = _step(current, rule.axis, halve)
        z_factor *= 2 if halve else 1
        count += 1
    return count


def auto_level_count(
    shape: tuple[int, ...], chunk_yx: tuple[int, int], rule: ZRule | None = None, chunk_z: int = 1
) -> int:
    """Number of levels until the smallest level fits in one chunk along Y and X (and along Z
    while the rule halves it)."""
    small = [1] * len(shape)
    small[-2:] = chunk_yx
    rule = rule or ZRule()
    if rule.axis is not None:
        small[rule.axis] = chunk_z
    return _count_levels(shape, rule, tuple(small))


def max_level_count(shape: tuple[int, ...], rule: ZRule | None = None) -> int:
    """Number of levels until Y and X (and Z, while the rule halves it) are one pixel."""
    return _count_levels(shape, rule or ZRule(), (1,) * len(shape))


def _pad_even(block: np.ndarray) -> np.ndarray:
    pad_y, pad_x = block.shape[-2] % 2, block.shape[-1] % 2
    if not (pad_y or pad_x):
        return block
    widths = [(0, 0)] * (block.ndim - 2) + [(0, pad_y), (0, pad_x)]
    return np.pad(block, widths, mode="edge")


def _accumulator_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.kind == "u":
        return np.dtype(np.uint32 if dtype.itemsize <= 2 else np.uint64)
    if dtype.kind == "i":
        return np.dtype(np.int32 if dtype.itemsize <= 2 else np.int64)
    return np.dtype(np.float64)  # float32 sums near its maximum would overflow to inf


def _mean_of_quarters(corners: list[np.ndarray]) -> np.ndarray:
    """Rounded mean of n (four or eight) 64-bit integer arrays without overflow.

    Each value is nq + r with 0 <= r < n (floor division), so the rounded mean is
    sum(q) + (sum(r) + n // 2) // n, and no partial sum leaves the type's range.
    """
    n = len(corners)
    quotients = sum(corner // n for corner in corners)
    remainders = sum(corner % n for corner in corners)
    return quotients + (remainders + n // 2) // n


def downsample_2x(
    block: np.ndarray, method: Downsampling = "mean", z_axis: int | None = None
) -> np.ndarray:
    """Halve the last two axes of ``block`` (rounding up), and ``z_axis`` if given, keeping its dtype.

    ``"mean"`` averages each 2x2 square (2x2x2 cube with ``z_axis``) in a wider type, a
    cache-sized slab of rows (or one output plane) at a time (integers rounded half up; 64-bit
    integers through quotients and remainders; floats in float64, in a fixed order);
    ``"nearest"`` keeps its top-left (and front) pixel, which preserves label values.
    """
    if z_axis is not None:
        return _downsample_2x2x2(block, method, z_axis)
    if method == "nearest":
        return np.ascontiguousarray(block[..., ::2, ::2])
    padded = _pad_even(block)
    if padded.dtype.kind in "ui" and padded.dtype.itemsize == 8:
        corners = [
            padded[..., 0::2, 0::2],
            padded[..., 1::2, 0::2],
            padded[..., 0::2, 1::2],
            padded[..., 1::2, 1::2],
        ]
        return _mean_of_quarters(corners).astype(padded.dtype)
    accumulator = _accumulator_dtype(padded.dtype)
    height, width = padded.shape[-2] // 2, padded.shape[-1] // 2
    out = np.empty((*padded.shape[:-2], height, width), dtype=padded.dtype)
    # A slab of output rows at a time: the temporaries stay cache-sized (~1 MB) instead of 1.5x
    # the block, which also made this 2.1x faster.
    row_bytes = 2 * math.prod(padded.shape[:-2]) * padded.shape[-1] * accumulator.itemsize
    rows = max(1, _SLAB_BYTES // max(1, row_bytes))
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        upper = padded[..., 2 * top : 2 * bottom : 2, :]
        lower = padded[..., 2 * top + 1 : 2 * bottom : 2, :]
        if padded.dtype.kind in "ui":
            pairs = upper.astype(accumulator)
            pairs += lower
            total = pairs[..., 0::2] + pairs[..., 1::2]
            # (sum + 2) // 4 (a right shift is floor division by 4, also for negatives): the
            # accumulator has room for four values plus 2.
            total += 2
            total >>= 2
        else:
            # Floats add in one fixed order (top-left, bottom-left, top-right, bottom-right):
            # rounding, and inf against NaN near the type's limits, must not depend on it.
            total = upper[..., 0::2].astype(accumulator)
            total += lower[..., 0::2]
            total += upper[..., 1::2]
            total += lower[..., 1::2]
            total *= 0.25
        out[..., top:bottom, :] = total
    return out


def _downsample_2x2x2(block: np.ndarray, method: Downsampling, z_axis: int) -> np.ndarray:
    """Halve Z (rounding up: an odd last plane is averaged with itself), Y and X.

    One output plane at a time: the wide temporaries hold two planes, never the whole block.
    """
    planes = np.moveaxis(block, z_axis, -3)
    depth = planes.shape[-3]
    if method == "nearest":
        out = planes[..., ::2, ::2, ::2]
        return np.ascontiguousarray(np.moveaxis(out, -3, z_axis))
    out_shape = (
        *planes.shape[:-3],
        math.ceil(depth / 2),
        *(math.ceil(s / 2) for s in planes.shape[-2:]),
    )
    out = np.empty(out_shape, dtype=block.dtype)
    for plane in range(out_shape[-3]):
        front = planes[..., 2 * plane, :, :]
        back = planes[..., min(2 * plane + 1, depth - 1), :, :]
        out[..., plane, :, :] = _mean_of_pair(front, back)
    return np.moveaxis(out, -3, z_axis)


def _mean_of_pair(front: np.ndarray, back: np.ndarray) -> np.ndarray:
    """The 2x2x2 mean of two planes (Y and X halved, rounding up), in their dtype."""
    front, back = _pad_even(front), _pad_even(back)
    if front.dtype.kind in "ui" and front.dtype.itemsize == 8:
        corners = [
            plane[..., dy::2, dx::2] for plane in (front, back) for dy in (0, 1) for dx in (0, 1)
        ]
        return _mean_of_quarters(corners).astype(front.dtype)
    accumulator = _accumulator_dtype(front.dtype)
    pairs = front.astype(accumulator)
    pairs += back
    # Fixed order (top-left, bottom-left, top-right, bottom-right) as in the 2-D kernel.
    total = pairs[..., 0::2, 0::2].copy()
    total += pairs[..., 1::2, 0::2]
    total += pairs[..., 0::2, 1::2]
    total += pairs[..., 1::2, 1::2]
    if front.dtype.kind in "ui":
        total += 4  # (sum + 4) // 8: rounded half up, as the 2-D kernel's (sum + 2) // 4
        total >>= 3
    else:
        total *= 0.125
    return total
