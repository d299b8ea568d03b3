"""The plan of a conversion: level shapes, chunks, shards and regions, decided before any data.

:func:`plan_conversion` validates the options against the image's shape and dtype and says what
will be written; it touches no data, so a GUI can show it live. Regions are sized here: a region
spans ``unit * 2**depth`` pixels (``unit`` being the chunk or shard), so every level it writes
receives whole chunks and whole shards, within a budget of :data:`REGION_BYTES`. Where a step
halves Z (``downsample_z``), a region is a slab of ``unit * 2**h`` planes (``h`` the Z halvings
its pass computes), so its deepest level still receives whole chunks along Z.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import InvalidOptionError, UnsupportedDtypeError
from .option_text import parse_levels, parse_shape
from .pyramid import (
    DOWNSAMPLE_Z,
    DownsampleZ,
    ZRule,
    auto_level_count,
    level_factors,
    level_shapes,
    max_level_count,
    z_steps,
)

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
    #: The Z rule as asked ("auto", "always", "never").
    downsample_z: DownsampleZ = "never"
    #: Index of the Z axis (None: no Z axis, or not known).
    z_axis: int | None = None
    #: For each step from a level to the next, whether it halves Z.
    z_halved: tuple[bool, ...] = ()

    @property
    def n_levels(self) -> int:
        """Number of pyramid levels."""
        return len(self.level_shapes)

    @property
    def level_factors(self) -> tuple[tuple[int, ...], ...]:
        """Each level's downsampling factor per axis relative to level 0 (its OME scale factor)."""
        steps = self.z_halved or (False,) * (self.n_levels - 1)
        return tuple(level_factors(len(self.shape), steps, self.z_axis))

    def pass_region_shape(self, first: int, last: int) -> tuple[int, ...]:
        """Shape of the regions of level ``first`` in a pass writing levels ``first..last``.

        Leading axes span one unit (chunk or shard) of level ``first``, Y and X
        :attr:`region_yx`; Z spans ``unit * 2**h`` planes (``h`` the Z halvings in the pass, the
        whole level at most), so that every level of the pass gets whole chunks along Z.
        """
        unit = self.level_shards[first] or self.level_chunks[first]
        shape = [*unit[:-2], *self.region_yx]
        if self.z_axis is not None:
            halvings = sum(self.z_halved[first:last])
            side = self.level_shapes[first][self.z_axis]
            shape[self.z_axis] = min(side, unit[self.z_axis] * 2**halvings)
        return tuple(shape)

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
        """One line for people: levels, tiles and size (and where Z is halved)."""
        text = (
            f"{self.n_levels} level{'s' if self.n_levels > 1 else ''}, {self.tiles:,} tiles of "
            f"{' x '.join(map(str, self.level_chunks[0]))}, {self.nbytes / 1e6:,.1f} MB uncompressed"
        )
        halved = [level + 1 for level, halves in enumerate(self.z_halved) if halves]
        if halved:
            factors = ", ".join(
                "x".join(map(str, f[self.z_axis :]))
                for f in self.level_factors  # type: ignore[misc]
            )
            text += f"; z halved at level{'s' if len(halved) > 1 else ''} "
            text += f"{', '.join(map(str, halved))} (z-y-x factors {factors})"
        return text


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
    downsample_z: DownsampleZ = "auto",
    axes: Sequence[str] | None = None,
    scale: Sequence[float] | None = None,
) -> ConversionPlan:
    """Validate options against an image's shape and dtype, and say what will be written.

    Parameters
    ----------
    shape : sequence of int
        Shape of the image (level 0), channel axis included, RGB already moved to a channel axis.
    dtype : dtype-like
        Pixel type.
    chunks, shards, levels, zarr_format, layout, downsample_z
        As for :func:`convert`.
    axes : sequence of str, optional
        The image's OME axis names, one per axis (as resolved for the metadata). None: not
        known yet, and Z is not halved (``downsample_z="always"`` is checked once they are).
    scale : sequence of float, optional
        Physical pixel size per axis (default 1), which ``downsample_z="auto"`` compares.

    Returns
    -------
    ConversionPlan

    Raises
    ------
    InvalidOptionError
        For zero or negative chunk or shard sizes, shards that are not a multiple of the chunks,
        shards with zarr format 2, an unknown layout, an invalid level count, an unknown
        ``downsample_z``, or ``downsample_z="always"`` on an image without a Z axis.
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
    rule = z_rule(downsample_z, axes, scale, ndim=len(shape))
    n_levels = _level_count(levels, shape, chunk_shape, layout, rule)
    shapes = level_shapes(shape, n_levels, rule)
    halved = z_steps(shape, n_levels, rule)
    level_chunks = tuple(
        tuple(min(c, s) for c, s in zip(chunk_shape, level_shape, strict=True))
        for level_shape in shapes
    )
    level_shards = _level_shards(shard_shape, shapes, level_chunks)
    unit = shard_shape or chunk_shape
    depth, region_yx = _regions(shape, unit, n_levels, resolved_dtype.itemsize, halved)
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
        downsample_z=downsample_z,
        z_axis=rule.axis,
        z_halved=halved,
    )


def z_rule(
    downsample_z: Any, axes: Sequence[str] | None, scale: Sequence[float] | None, *, ndim: int
) -> ZRule:
    """The Z rule of an image with OME axis names ``axes`` and pixel size ``scale``.

    Raises
    ------
    InvalidOptionError
        For an unknown rule, or ``"always"`` when the axes are known and have no Z.
    """
    if downsample_z not in DOWNSAMPLE_Z:
        msg = f"downsample_z (--downsample-z) must be one of {', '.join(DOWNSAMPLE_Z)}, got {downsample_z!r}"
        raise InvalidOptionError(msg)
    names = [str(a).lower() for a in axes] if axes is not None else None
    if names is None or "z" not in names:
        if names is not None and downsample_z == "always":
            msg = (
                f"downsample_z='always' (--downsample-z always) needs a z axis, and the image's "
                f"axes are {names}; name one with the axes option, or use 'auto' or 'never'"
            )
            raise InvalidOptionError(msg)
        return ZRule()
    spacing = [float(v) for v in scale] if scale is not None else [1.0] * ndim
    if len(spacing) != ndim or len(names) != ndim:
        msg = f"axes {names} and scale {spacing} must have one value per axis ({ndim})"
        raise InvalidOptionError(msg)
    z = names.index("z")
    return ZRule(downsample_z, z, (spacing[z], min(spacing[-2], spacing[-1])))


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
    levels: int | str,
    shape: tuple[int, ...],
    chunk_shape: tuple[int, ...],
    layout: str,
    rule: ZRule,
) -> int:
    """How many levels: ``"auto"`` until the smallest fits in one chunk, or the count asked for."""
    if levels == "auto":
        if layout == "array":
            return 1
        chunk_z = chunk_shape[rule.axis] if rule.axis is not None else 1
        return auto_level_count(shape, (chunk_shape[-2], chunk_shape[-1]), rule, chunk_z)
    if isinstance(levels, int | np.integer) and not isinstance(levels, bool) and levels >= 1:
        n_levels = min(int(levels), max_level_count(shape, rule))
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
    shape: tuple[int, ...],
    unit: tuple[int, ...],
    n_levels: int,
    itemsize: int,
    z_halved: tuple[bool, ...] = (),
) -> tuple[int, tuple[int, int]]:
    """(depth, region size on Y and X): how many levels a region computes, and its size."""
    unit_yx = (unit[-2], unit[-1])
    # Bytes of one Y x X pixel of a region: the units' leading axes times the item size.
    pixel = (math.prod(unit[:-2]) if len(shape) > 2 else 1) * itemsize
    depth = _pyramid_depth(unit_yx, n_levels, pixel, z_halved)
    region_yx = (unit_yx[0] * 2**depth, unit_yx[1] * 2**depth)
    if n_levels > 1:
        # Z slabs: a pass halving Z h times reads 2**h units of planes per region.
        slab = _slab_growth(z_halved, depth, n_levels)
        return depth, _widen_regions(region_yx, shape, pixel * slab)
    return depth, _grow_single_level_regions(region_yx, shape, pixel)


def _slab_growth(z_halved: tuple[bool, ...], depth: int, n_levels: int) -> int:
    """The largest 2**h over the passes of ``depth`` levels (``h``: Z halvings in a pass)."""
    growth, first = 1, 0
    while first < n_levels - 1:
        last = min(first + depth, n_levels - 1)
        growth = max(growth, 2 ** sum(z_halved[first:last]))
        first = last
    return growth


def _pyramid_depth(
    unit_yx: tuple[int, int], n_levels: int, pixel: int, z_halved: tuple[bool, ...] = ()
) -> int:
    """How many levels one region computes in memory.

    A region must hold 2 x 2 units (2 x 2 x 2 where Z halves) to give whole units (chunks or
    shards) of the next level, so depth is at least 1 whenever there is a pyramid, even when
    that makes regions larger than :data:`REGION_BYTES` (huge shards).
    """
    depth = 1 if n_levels > 1 else 0
    while (
        depth < n_levels - 1
        and unit_yx[0]
        * unit_yx[1]
        * 4 ** (depth + 1)
        * pixel
        * (_slab_growth(z_halved, depth + 1, n_levels))
        <= REGION_BYTES
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
