"""The plan of a conversion: level shapes, chunks, shards and regions, decided before any data.

:func:`plan_conversion` validates the options against the image's shape and dtype and says what
will be written; it touches no data, so a GUI can show it live. Regions are sized here: a region
spans ``unit * 2**depth`` pixels (``unit`` being the chunk or shard), so every level it writes
receives whole chunks and whole shards, within a budget of :data:`REGION_BYTES`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import InvalidOptionError, UnsupportedDtypeError
from .option_text import parse_levels, parse_shape
from .pyramid import auto_level_count, level_shapes, max_level_count

SUPPORTED_DTYPES = (
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "float16",
    "float32",
    "float64",
)
#: Largest region (bytes of level 0) one worker holds; regions grow by powers of two up to it.
#: 16 MB measured best on 2 cores (64 MB regions left a core idle on images of a few regions).
REGION_BYTES = 16 << 20

Layout = Literal["ome", "array"]


@dataclass(frozen=True)
class ConversionPlan:
    """What a conversion will write: level shapes, chunking, tiles and bytes.

    Built by :func:`plan_conversion` without touching any data, so that a GUI can show it live.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    zarr_format: int
    layout: Layout
    level_shapes: tuple[tuple[int, ...], ...]
    level_chunks: tuple[tuple[int, ...], ...]
    level_shards: tuple[tuple[int, ...] | None, ...]
    region_yx: tuple[int, int]
    depth: int

    @property
    def n_levels(self) -> int:
        """Number of pyramid levels."""
        return len(self.level_shapes)

    @property
    def tiles(self) -> int:
        """Number of chunks written over all levels."""
        return sum(
            math.prod(math.ceil(s / c) for s, c in zip(shape, chunks, strict=True))
            for shape, chunks in zip(self.level_shapes, self.level_chunks, strict=True)
        )

    @property
    def nbytes(self) -> int:
        """Uncompressed bytes written over all levels."""
        return sum(math.prod(shape) for shape in self.level_shapes) * self.dtype.itemsize

    def describe(self) -> str:
        """One line for people: levels, tiles and size."""
        return (
            f"{self.n_levels} level{'s' if self.n_levels > 1 else ''}, {self.tiles:,} tiles of "
            f"{' x '.join(map(str, self.level_chunks[0]))}, {self.nbytes / 1e6:,.1f} MB uncompressed"
        )


def check_dtype(dtype: Any) -> np.dtype:
    """Return ``dtype`` as a numpy dtype if an OME-Zarr image can hold it.

    Raises
    ------
    UnsupportedDtypeError
        For bool, complex, object, string and other non-numeric types.
    """
    try:
        resolved = np.dtype(dtype)
    except TypeError as error:
        msg = f"data type {dtype} is not supported; supported: {', '.join(SUPPORTED_DTYPES)}"
        raise UnsupportedDtypeError(msg) from error
    if resolved.name not in SUPPORTED_DTYPES:
        hint = " (convert it to uint8 first)" if resolved.kind == "b" else ""
        msg = f"data type {resolved} is not supported{hint}; supported: {', '.join(SUPPORTED_DTYPES)}"
        raise UnsupportedDtypeError(msg)
    # Canonical: numpy's `longlong` equals int64 but is another type, which zarr does not map.
    return np.dtype(resolved.newbyteorder("=").str)


def plan_conversion(
    shape: Sequence[int],
    dtype: Any,
    *,
    chunks: int | Sequence[int] = 512,
    shards: int | Sequence[int] | None = None,
    levels: int | Literal["auto"] = "auto",
    zarr_format: Literal[2, 3] = 3,
    layout: Layout = "ome",
) -> ConversionPlan:
    """Validate options against an image's shape and dtype, and say what will be written.

    Parameters
    ----------
    shape : sequence of int
        Shape of the image (level 0), channel axis included, RGB already moved to a channel axis.
    dtype : dtype-like
        Pixel type.
    chunks, shards, levels, zarr_format, layout
        As for :func:`convert`.

    Returns
    -------
    ConversionPlan

    Raises
    ------
    InvalidOptionError
        For zero or negative chunk or shard sizes, shards that are not a multiple of the chunks,
        shards with zarr format 2, an unknown layout, or an invalid level count.
    UnsupportedDtypeError
        For data types an OME-Zarr image cannot hold.
    """
    shape = tuple(int(s) for s in shape)
    resolved_dtype = check_dtype(dtype)
    _check_image(shape, zarr_format=zarr_format, layout=layout)
    requested_chunks = _per_axis(chunks, len(shape), name="chunks")
    if isinstance(shards, str):  # "" and "none": no shards, as in the widget
        shards = parse_shape(shards, name="shards")
    if isinstance(levels, str):
        levels = parse_levels(levels)
    chunk_shape = tuple(min(c, s) for c, s in zip(requested_chunks, shape, strict=True))  # clip
    shard_shape = _shard_shape(shards, shape, requested_chunks, chunk_shape, zarr_format)
    n_levels = _level_count(levels, shape, chunk_shape, layout)
    shapes = level_shapes(shape, n_levels)
    level_chunks = tuple(
        tuple(min(c, s) for c, s in zip(chunk_shape, level_shape, strict=True))
        for level_shape in shapes
    )
    level_shards = _level_shards(shard_shape, shapes, level_chunks)
    unit = shard_shape or chunk_shape
    depth, region_yx = _regions(shape, unit, n_levels, resolved_dtype.itemsize)
    return ConversionPlan(
        shape=shape,
        dtype=resolved_dtype,
        zarr_format=zarr_format,
        layout=layout,
        level_shapes=tuple(shapes),
        level_chunks=level_chunks,
        level_shards=level_shards,
        region_yx=region_yx,
        depth=depth,
    )


def _check_image(shape: tuple[int, ...], *, zarr_format: Any, layout: Any) -> None:
    """Refuse an unknown zarr format or layout, an empty image, or a number of axes it cannot hold."""
    ndim = len(shape)
    if zarr_format not in (2, 3):
        msg = f"zarr_format must be 2 or 3, got {zarr_format!r}"
        raise InvalidOptionError(msg)
    if layout not in ("ome", "array"):
        msg = f"layout must be 'ome' or 'array', got {layout!r}"
        raise InvalidOptionError(msg)
    if any(s <= 0 for s in shape):
        msg = f"the image is empty (shape {shape})"
        raise InvalidOptionError(msg)
    if layout == "ome" and not 2 <= ndim <= 5:
        msg = f"OME-Zarr images have 2 to 5 axes; this image has {ndim} (shape {shape})"
        raise InvalidOptionError(msg)
    if ndim < 2:
        msg = f"an array of {ndim} axes is not an image; images have 2 to 5 axes (shape {shape})"
        raise InvalidOptionError(msg)


def _per_axis(
    value: int | Sequence[int], ndim: int, *, name: str, default_other: int = 1, smallest: int = 1
) -> tuple[int, ...]:
    """A size per axis from one int (the last two axes; ``default_other`` on the others), a
    sequence or text such as ``"64"`` or ``"1,64,64"``."""
    if isinstance(value, str):  # "64" or "1,64,64" (never its characters, one per axis)
        parsed = parse_shape(value, name=name)
        value = value if parsed is None else parsed
    if isinstance(value, bool | str):
        msg = f"{name} must be a positive integer or one per axis, got {value!r}"
        raise InvalidOptionError(msg)
    if isinstance(value, int | np.integer):
        values = (default_other,) * max(ndim - 2, 0) + (int(value),) * min(ndim, 2)
    else:
        try:
            values = tuple(int(v) for v in value)
        except (TypeError, ValueError) as error:
            msg = f"{name} must be a positive integer or one per axis, got {value!r}"
            raise InvalidOptionError(msg) from error
        if len(values) != ndim:
            msg = f"{name} has {len(values)} values but the image has {ndim} axes"
            raise InvalidOptionError(msg)
    if any(v < smallest for v in values):
        msg = f"{name} must be positive, got {values}"
        raise InvalidOptionError(msg)
    return values


def _shard_shape(
    shards: int | Sequence[int] | None,
    shape: tuple[int, ...],
    requested_chunks: tuple[int, ...],
    chunk_shape: tuple[int, ...],
    zarr_format: int,
) -> tuple[int, ...] | None:
    """The shard shape of level 0 (a multiple of the chunks, clipped to the image), or None."""
    if shards is None:
        return None
    if zarr_format != 3:
        msg = "shards need zarr format 3 (zarr format 2 has no sharding)"
        raise InvalidOptionError(msg)
    # 0 (and an integer's leading axes): one chunk along that axis.
    requested = _per_axis(shards, len(shape), name="shards", default_other=0, smallest=0)
    requested = tuple(r if r else c for r, c in zip(requested, requested_chunks, strict=True))
    if any(r % c for r, c in zip(requested, requested_chunks, strict=True)):
        msg = (
            f"shards {requested} must be a multiple of the chunks {requested_chunks} on every axis"
        )
        raise InvalidOptionError(msg)
    # A shard larger than the image is clipped to whole chunks covering it.
    return tuple(
        min(r, math.ceil(s / c) * c) for r, s, c in zip(requested, shape, chunk_shape, strict=True)
    )


def _level_count(
    levels: int | str, shape: tuple[int, ...], chunk_shape: tuple[int, ...], layout: str
) -> int:
    """How many levels: ``"auto"`` until the smallest fits in one chunk, or the count asked for."""
    if levels == "auto":
        return 1 if layout == "array" else auto_level_count(shape, chunk_shape[-2:])
    if isinstance(levels, int | np.integer) and not isinstance(levels, bool) and levels >= 1:
        n_levels = min(int(levels), max_level_count(shape))
        if layout == "array" and n_levels > 1:
            msg = "layout 'array' writes a single array and cannot hold a pyramid; use levels=1 or layout 'ome'"
            raise InvalidOptionError(msg)
        return n_levels
    msg = f"levels must be 'auto' or a positive integer, got {levels!r}"
    raise InvalidOptionError(msg)


def _level_shards(
    shard_shape: tuple[int, ...] | None,
    shapes: list[tuple[int, ...]],
    level_chunks: tuple[tuple[int, ...], ...],
) -> tuple[tuple[int, ...] | None, ...]:
    """Each level's shard shape: level 0's, clipped to whole chunks covering the level."""
    if shard_shape is None:
        return (None,) * len(shapes)
    return tuple(
        tuple(
            min(r, math.ceil(s / c) * c)
            for r, s, c in zip(shard_shape, level_shape, level_chunk, strict=True)
        )
        for level_shape, level_chunk in zip(shapes, level_chunks, strict=True)
    )


def _regions(
    shape: tuple[int, ...], unit: tuple[int, ...], n_levels: int, itemsize: int
) -> tuple[int, tuple[int, int]]:
    """(depth, region size on Y and X): how many levels a region computes, and its size."""
    unit_yx = (unit[-2], unit[-1])
    # Bytes of one Y x X pixel of a region: the units' leading axes times the item size.
    pixel = (math.prod(unit[:-2]) if len(shape) > 2 else 1) * itemsize
    depth = _pyramid_depth(unit_yx, n_levels, pixel)
    region_yx = (unit_yx[0] * 2**depth, unit_yx[1] * 2**depth)
    if n_levels > 1:
        return depth, _widen_regions(region_yx, shape, pixel)
    return depth, _grow_single_level_regions(region_yx, shape, pixel)


def _pyramid_depth(unit_yx: tuple[int, int], n_levels: int, pixel: int) -> int:
    """How many levels one region computes in memory.

    A region must hold 2 x 2 units to give whole units (chunks or shards) of the next level, so
    depth is at least 1 whenever there is a pyramid, even when that makes regions larger than
    :data:`REGION_BYTES` (huge shards).
    """
    depth = 1 if n_levels > 1 else 0
    while depth < n_levels - 1 and unit_yx[0] * unit_yx[1] * 4 ** (depth + 1) * pixel <= (
        REGION_BYTES
    ):
        depth += 1
    return depth


def _widen_regions(
    region_yx: tuple[int, int], shape: tuple[int, ...], pixel: int
) -> tuple[int, int]:
    """Regions of a pyramid made wider along X, by whole regions' worth of units, to the budget.

    Fewer regions, longer rows per read (stripped sources) and larger batches for the codec
    pipeline measured ~7 % faster than square regions.
    """
    while region_yx[0] * region_yx[1] * 2 * pixel <= REGION_BYTES and region_yx[1] < shape[-1]:
        region_yx = (region_yx[0], region_yx[1] * 2)
    return region_yx


def _grow_single_level_regions(
    region_yx: tuple[int, int], shape: tuple[int, ...], pixel: int
) -> tuple[int, int]:
    """Regions of a single level grown to several whole units, up to the budget.

    No pyramid to align: larger regions keep the per-region overhead small.
    """
    while region_yx[0] * region_yx[1] * 4 * pixel <= REGION_BYTES and (
        region_yx[0] < shape[-2] or region_yx[1] < shape[-1]
    ):
        region_yx = (region_yx[0] * 2, region_yx[1] * 2)
    return region_yx
