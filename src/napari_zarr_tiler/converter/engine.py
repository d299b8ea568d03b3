"""The streaming conversion engine: any array in, a chunked, compressed OME-Zarr pyramid out.

The source is read region by region; each region is written to level 0 and downsampled in memory
into the next few levels (a region spans ``unit * 2**depth`` pixels, ``unit`` being the chunk or
shard, so every level receives whole chunks and whole shards). Levels beyond that depth are made by
the same routine reading the last level written. Memory is bounded by a few regions, whatever
the image size; a thread pool keeps enough chunks in flight to use every core.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr

from .. import ome_ngff
from ..errors import (
    ConversionError,
    DestinationError,
    InvalidOptionError,
    UnsupportedDtypeError,
)
from ..sources.formats import SourceSpec
from ..zarr_names import GROUP_METADATA
from .compression import Compressor, compressor_codecs
from .direct_io import choose_direct_io
from .option_text import parse_colors, parse_levels, parse_shape, parse_windows
from .pyramid import Downsampling, auto_level_count, level_shapes, max_level_count
from .regions import (
    DIRECT_IO_SUFFIX,
    CancelArg,
    Journal,
    LevelReader,
    Progress,
    PyramidPass,
    RegionScheduler,
    SourceReader,
    codec_pipeline_name,
    dask_client,
    settle_writes,
    use_codec_pipeline,
    with_direct_io,
)
from .staging import Staging

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
#: Channel colours when the source names none, as napari's own defaults: one channel gray, two
#: magenta and green, more cyan, magenta, yellow, blue, green, red (colours that add up well).
DEFAULT_COLORS = ("00FFFF", "FF00FF", "FFFF00", "0000FF", "00FF00", "FF0000")
TWO_CHANNEL_COLORS = ("FF00FF", "00FF00")
RGB_COLORS = ("FF0000", "00FF00", "0000FF", "FFFFFF")


def default_colors(n_channels: int) -> tuple[str, ...]:
    """The colours given to ``n_channels`` channels whose source names none (cycled)."""
    if n_channels == 1:
        return ("FFFFFF",)
    return TWO_CHANNEL_COLORS if n_channels == 2 else DEFAULT_COLORS


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


@dataclass
class ConversionResult:
    """What :func:`convert` wrote."""

    path: Path
    plan: ConversionPlan
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


def _per_axis(
    value: int | Sequence[int], ndim: int, *, name: str, default_other: int = 1, smallest: int = 1
) -> tuple[int, ...]:
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
    ndim = len(shape)
    resolved_dtype = check_dtype(dtype)
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
    requested_chunks = _per_axis(chunks, ndim, name="chunks")
    if isinstance(shards, str):  # "" and "none": no shards, as in the widget
        shards = parse_shape(shards, name="shards")
    if isinstance(levels, str):
        levels = parse_levels(levels)
    chunk_shape = tuple(min(c, s) for c, s in zip(requested_chunks, shape, strict=True))  # clip
    shard_shape = None
    if shards is not None:
        if zarr_format != 3:
            msg = "shards need zarr format 3 (zarr format 2 has no sharding)"
            raise InvalidOptionError(msg)
        # 0 (and an integer's leading axes): one chunk along that axis.
        requested = _per_axis(shards, ndim, name="shards", default_other=0, smallest=0)
        requested = tuple(r if r else c for r, c in zip(requested, requested_chunks, strict=True))
        if any(r % c for r, c in zip(requested, requested_chunks, strict=True)):
            msg = (
                f"shards {requested} must be a multiple of the chunks {requested_chunks} on "
                "every axis"
            )
            raise InvalidOptionError(msg)
        # A shard larger than the image is clipped to whole chunks covering it.
        shard_shape = tuple(
            min(r, math.ceil(s / c) * c)
            for r, s, c in zip(requested, shape, chunk_shape, strict=True)
        )
    if levels == "auto":
        n_levels = 1 if layout == "array" else auto_level_count(shape, chunk_shape[-2:])
    elif isinstance(levels, int | np.integer) and not isinstance(levels, bool) and levels >= 1:
        n_levels = min(int(levels), max_level_count(shape))
        if layout == "array" and n_levels > 1:
            msg = "layout 'array' writes a single array and cannot hold a pyramid; use levels=1 or layout 'ome'"
            raise InvalidOptionError(msg)
    else:
        msg = f"levels must be 'auto' or a positive integer, got {levels!r}"
        raise InvalidOptionError(msg)

    shapes = level_shapes(shape, n_levels)
    level_chunks = tuple(
        tuple(min(c, s) for c, s in zip(chunk_shape, level_shape, strict=True))
        for level_shape in shapes
    )
    level_shards: tuple[tuple[int, ...] | None, ...]
    if shard_shape is None:
        level_shards = (None,) * n_levels
    else:
        level_shards = tuple(
            tuple(
                min(r, math.ceil(s / c) * c)
                for r, s, c in zip(shard_shape, level_shape, level_chunk, strict=True)
            )
            for level_shape, level_chunk in zip(shapes, level_chunks, strict=True)
        )
    unit = shard_shape or chunk_shape
    unit_yx = tuple(unit[-2:])
    other = math.prod(unit[:-2]) if ndim > 2 else 1
    # How many levels one region computes in memory. A region must hold 2 x 2 units to give whole
    # units (chunks or shards) of the next level, so depth is at least 1 whenever there is a
    # pyramid, even when that makes regions larger than REGION_BYTES (huge shards).
    depth = 1 if n_levels > 1 else 0
    while (
        depth < n_levels - 1
        and unit_yx[0] * unit_yx[1] * 4 ** (depth + 1) * other * resolved_dtype.itemsize
        <= REGION_BYTES
    ):
        depth += 1
    region_yx = (unit_yx[0] * 2**depth, unit_yx[1] * 2**depth)
    if n_levels > 1:
        # Then wider along X, still by whole regions' worth of units, up to the budget: fewer
        # regions, longer rows per read (stripped sources) and larger batches for the codec
        # pipeline measured ~7 % faster than square regions.
        while (
            region_yx[0] * region_yx[1] * 2 * other * resolved_dtype.itemsize <= REGION_BYTES
            and region_yx[1] < shape[-1]
        ):
            region_yx = (region_yx[0], region_yx[1] * 2)
    if n_levels == 1:
        # No pyramid to align: regions of several whole units, up to the budget, keep the
        # per-region overhead small.
        while region_yx[0] * region_yx[
            1
        ] * 4 * other * resolved_dtype.itemsize <= REGION_BYTES and (
            region_yx[0] < shape[-2] or region_yx[1] < shape[-1]
        ):
            region_yx = (region_yx[0] * 2, region_yx[1] * 2)
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


# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------


def rgb_channel_position(ndim: int) -> int:
    """Where the colour samples of an RGB(A) image of ``ndim`` axes go (OME order t, c, z, y, x)."""
    return 0 if ndim <= 4 else 1


def channels_first_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """The shape of an RGB(A) image (samples last) with its samples moved to a channel axis."""
    dims = list(shape)
    dims.insert(rgb_channel_position(len(dims)), dims.pop())
    return tuple(dims)


def _local_paths_of(array: Any) -> list[Path]:
    """The local folder of a zarr array (or of the array a preview view wraps), or a memmap's file."""
    if not isinstance(array, zarr.Array):
        array = getattr(array, "array", array)
    if isinstance(array, zarr.Array):
        if isinstance(array.store, zarr.storage.LocalStore):
            # A store opened by a relative path has a relative root: resolve it now (against
            # the working directory it was opened from, as far as it can be known).
            return [_store_root(Path(array.store.root).absolute())]
        # An fsspec store on the local disk has an absolute path (a remote one is not local).
        root = getattr(array.store, "path", None)
        return [Path(root)] if root is not None and Path(root).is_absolute() else []
    filename = getattr(array, "filename", None)  # numpy memmap
    return [Path(filename)] if isinstance(filename, str) else []


def _store_root(folder: Path) -> Path:
    """The outermost folder of the zarr hierarchy ``folder`` belongs to (an array opened by the
    path of a node inside a store belongs to the whole store)."""
    root = folder
    while any((root.parent / name).is_file() for name in GROUP_METADATA):
        if root.parent == root:
            break
        root = root.parent
    return root


def _arrays_in_dask_graph(array: Any) -> list[Any]:
    """Arrays a dask array reads from, found without materialising its graph.

    ``da.from_array`` keeps its source in a Blockwise layer's ``indices`` (``inline_array=True``)
    or in a one-task layer (the default); layers with many tasks are not scanned.
    """
    graph_of = getattr(array, "__dask_graph__", None)
    if graph_of is None:
        return []
    found: list[Any] = []
    for layer in getattr(graph_of(), "layers", {}).values():
        for index in getattr(layer, "indices", None) or ():
            found.append(index[0])
        mapping = getattr(layer, "mapping", None)
        if isinstance(mapping, dict) and len(mapping) <= 4:
            for task in mapping.values():
                found.append(task)
                found.extend(getattr(task, "args", ()) or ())
                found.append(getattr(task, "value", None))
    return [
        item for item in found if hasattr(item, "shape") and not hasattr(item, "__dask_graph__")
    ]


class _Source:
    """Level 0 of what the user gave: its shape (RGB moved to a channel axis) and a reader."""

    def __init__(self, source: Any, *, rgb: bool) -> None:
        self.spec = source if isinstance(source, SourceSpec) else None
        if self.spec is not None:
            source = self.spec.opened.array
        if isinstance(source, list | tuple) or type(source).__name__ == "MultiScaleData":
            if len(source) == 0:
                msg = "the source is an empty list of levels"
                raise InvalidOptionError(msg)
            source = source[0]
        if not hasattr(source, "shape") or not hasattr(source, "dtype"):
            msg = (
                "the source must be an array (numpy, dask, zarr) or a list of levels, "
                f"got {type(source).__name__}"
            )
            raise InvalidOptionError(msg)
        self.array = source
        shape = tuple(int(s) for s in source.shape)
        self.channel_position = None
        if rgb:
            if len(shape) < 3 or shape[-1] not in (3, 4):
                msg = f"an RGB image needs a last axis of 3 or 4 channels, got shape {shape}"
                raise InvalidOptionError(msg)
            self.channel_position = rgb_channel_position(len(shape))
            shape = channels_first_shape(shape)
        self.shape = shape
        self.dtype = np.dtype(source.dtype)
        self.reader = SourceReader(source, spec=self.spec, channel_position=self.channel_position)

    def paths(self) -> list[Path]:
        """Files or folders the source is read from, as far as they can be known."""
        paths = (
            [Path(self.spec.path)]
            if self.spec is not None and not self.spec.path.startswith("sample:")
            else []
        )
        for array in (self.array, *_arrays_in_dask_graph(self.array)):
            paths.extend(_local_paths_of(array))
        return paths

    def describe(self) -> str:
        """Identifies the source in the resume journal."""
        origin = repr(self.spec) if self.spec is not None else type(self.array).__name__
        return f"{origin} {self.shape} {self.dtype}"


# ---------------------------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------------------------


def _default_axes(ndim: int, *, channel_position: int | None) -> list[str]:
    """Axis names when none are given: a channel axis only where one is known (RGB) or needed (5-D)."""
    if channel_position is None:
        return list(("t", "c", "z", "y", "x") if ndim == 5 else ("t", "z", "y", "x")[-ndim:])
    names = list(("t", "z", "y", "x")[-(ndim - 1) :])
    names.insert(channel_position, "c")
    return names


def _valid_ome_axes(axes: Sequence[str]) -> bool:
    lowered = [a.lower() for a in axes]
    if len(set(lowered)) != len(lowered) or not set(lowered) <= {"t", "c", "z", "y", "x"}:
        return False
    order = [("t", "c", "z", "y", "x").index(a) for a in lowered]
    return order == sorted(order) and lowered[-2:] == ["y", "x"]


def _resolve_axes(
    axes: Sequence[str] | None, ndim: int, *, channel_position: int | None
) -> list[str]:
    if axes is None:
        return _default_axes(ndim, channel_position=channel_position)
    names = [str(a) for a in axes]
    if channel_position is not None and len(names) == ndim - 1:
        names.insert(channel_position, "c")
    if len(names) != ndim:
        msg = f"axes {names} has {len(names)} names but the image has {ndim} axes"
        raise InvalidOptionError(msg)
    if not _valid_ome_axes(names):
        # e.g. napari's default axis labels ("-1", "0", ...), which are not OME axis names
        return _default_axes(ndim, channel_position=channel_position)
    return [a.lower() for a in names]


def _per_axis_floats(
    values: Sequence[float] | None,
    ndim: int,
    *,
    name: str,
    default: float,
    channel_index: int | None,
) -> list[float]:
    if values is None:
        return [default] * ndim
    values = [float(v) for v in values]
    if channel_index is not None and len(values) == ndim - 1:
        values.insert(channel_index, default)
    if len(values) != ndim or not all(math.isfinite(v) for v in values):
        msg = f"{name} must have {ndim} finite values, got {values}"
        raise InvalidOptionError(msg)
    if name == "scale" and any(v <= 0 for v in values):
        msg = f"scale must be positive, got {values}"
        raise InvalidOptionError(msg)
    return values


def _windows(ranges: dict[int, tuple[float, float]], n_channels: int) -> list[tuple[float, float]]:
    """Display windows from the measured value ranges (finite, and never empty)."""
    windows = []
    for channel in range(n_channels):
        low, high = ranges.get(channel, (0.0, 1.0))
        if not (math.isfinite(low) and math.isfinite(high)):
            low, high = 0.0, 1.0
        windows.append((low, high if high > low else low + 1))
    return windows


def _omero_value_range(dtype: np.dtype, windows: list[tuple[float, float]]) -> tuple[float, float]:
    """The omero window's min and max: the dtype's range for integers, else the data's."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return min(w[0] for w in windows), max(w[1] for w in windows)


# ---------------------------------------------------------------------------------------------
# The public entry point
# ---------------------------------------------------------------------------------------------


def convert(
    source: Any,
    dest: str | os.PathLike[str],
    *,
    chunks: int | Sequence[int] = 512,
    compressor: Compressor = "zstd",
    clevel: int | None = None,
    zarr_format: Literal[2, 3] = 3,
    shards: int | Sequence[int] | None = None,
    levels: int | Literal["auto"] = "auto",
    layout: Layout = "ome",
    overwrite: bool = False,
    axes: Sequence[str] | None = None,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
    units: Sequence[str | None] | None = None,
    channel_names: Sequence[str] | None = None,
    colors: Sequence[str] | None = None,
    contrast_limits: Sequence[Sequence[float]] | None = None,
    name: str | None = None,
    label: bool = False,
    rgb: bool = False,
    progress: Callable[[Progress], None] | None = None,
    cancel: CancelArg = None,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    source_paths: Sequence[str | os.PathLike[str]] = (),
    direct_io: bool | None = None,
) -> ConversionResult:
    """Convert an image into a chunked, compressed zarr store with a multiscale pyramid.

    The source is streamed region by region: memory stays bounded by a few regions (about
    16 MB each, times the number of workers) whatever the image size. Each pyramid level is
    computed from the level before it. The store is written beside ``dest`` and moved into place
    only when complete, with its OME-Zarr metadata written last.

    Parameters
    ----------
    source : array-like or list of array-likes
        A numpy, dask or zarr array, or a multiscale list of them (level 0 is used).
    dest : path
        The store to create (a folder, conventionally named ``*.zarr``).
    chunks : int or sequence of int
        Chunk shape: one int for the last two axes (1 on the others), or one per axis.
        Chunks larger than the image are clipped to it.
    compressor : {"zstd", "blosc-lz4", "blosc-zstd", "gzip", "none"}
        Lossless codec.
    clevel : int, optional
        Compression level (codec default if None).
    zarr_format : {3, 2}
        3 writes OME-Zarr 0.5, 2 writes OME-Zarr 0.4.
    shards : int or sequence of int, optional
        Shard shape (zarr format 3 only), a multiple of ``chunks``.
    levels : "auto" or int
        "auto" halves Y and X until the smallest level fits in one chunk; 1 means no pyramid.
    layout : {"ome", "array"}
        An OME-Zarr image group (levels "0", "1", ...) or one bare array.
    overwrite : bool
        Replace an existing zarr store at ``dest`` (a folder that is not a zarr store is never
        replaced).
    axes, scale, translate, units : sequence, optional
        Axis names (t, c, z, y, x), physical pixel size, position of the first pixel, and units,
        per axis of the source (for RGB sources, without the colour axis).
    channel_names, colors, contrast_limits : sequence, optional
        Per-channel display metadata (``omero``): colours as hex ``RRGGBB`` (or ``"red"``,
        ``"green"``, ... as in ``option_text.COLOR_NAMES``), windows as ``(start, end)`` with
        ``start <= end``.
    name : str, optional
        Image name in the metadata (default: ``dest``'s name).
    label : bool
        Write a label image (``image-label``; nearest-neighbour downsampling).
    rgb : bool
        The source's last axis holds RGB(A) samples; it is stored as a channel axis.
    progress : callable, optional
        Called with a :class:`Progress` after every region.
    cancel : threading.Event or callable, optional
        Checked between regions; when set (or returning True) the conversion stops, removes
        what it wrote (with ``resume``, keeps the partial store), and raises
        :class:`ConversionCancelled`.
    workers : int, optional
        Regions processed at once by the in-process threads (default: the number of CPUs).
    scheduler : str, optional
        None (default) runs on threads in this process; ``"local"`` starts a dask
        ``LocalCluster`` of worker processes; any other value is the address of a running
        dask.distributed scheduler (its workers must see the source and ``dest``). The store
        written is byte-for-byte the same whichever runs it.
    source_paths : sequence of paths
        Files or folders the source is read from (for a dask array opened from a store), so that
        the destination can never overlap them; found by itself for zarr arrays and memory maps.
    resume : bool
        Continue an interrupted conversion to ``dest`` (same source and options), skipping the
        regions its journal lists as written. An interrupted run (Ctrl-C, SIGKILL) keeps its
        partial store hidden beside ``dest`` for this; a resumed run that fails keeps it too.
    direct_io : bool, optional
        Write chunks past the page cache (``O_DIRECT``; Linux, zarrs pipeline). None (default)
        does so when converting in this process an output larger than a quarter of the
        available memory. The bytes stored are the same either way.

    Returns
    -------
    ConversionResult
        Its ``extra`` names the codec pipeline (``"codec_pipeline"``), whether chunks were
        written with direct I/O (``"direct_io"``) and, for a resumed conversion, how many
        regions the interrupted run had finished intact (``"resumed_regions"``; None
        otherwise).

    Raises
    ------
    InvalidOptionError, UnsupportedDtypeError
        For invalid options or data types, before anything is written.
    DestinationError
        When the destination exists (without ``overwrite``; with ``resume``, when there is
        nothing to resume), is not a zarr store, is inside the source, is not writable, or the
        disk fills up.
    ConversionCancelled
        When ``cancel`` was set.
    """
    started = time.perf_counter()
    src = _Source(source, rgb=rgb)
    plan = plan_conversion(
        src.shape,
        src.dtype,
        chunks=chunks,
        shards=shards,
        levels=levels,
        zarr_format=zarr_format,
        layout=layout,
    )
    codecs = compressor_codecs(
        compressor, clevel, zarr_format=zarr_format, itemsize=plan.dtype.itemsize
    )
    colors = parse_colors(colors)  # checked before anything is written
    contrast_limits = parse_windows(contrast_limits)
    ndim = len(plan.shape)
    axis_names = (
        _resolve_axes(axes, ndim, channel_position=src.channel_position)
        if layout == "ome"
        else None
    )
    channel_index = axis_names.index("c") if axis_names and "c" in axis_names else None
    rgb_channel = src.channel_position
    scales = _per_axis_floats(scale, ndim, name="scale", default=1.0, channel_index=rgb_channel)
    offsets = _per_axis_floats(
        translate, ndim, name="translate", default=0.0, channel_index=rgb_channel
    )
    unit_list: list[str | None] = list(units) if units is not None else [None] * ndim
    if rgb_channel is not None and len(unit_list) == ndim - 1:
        unit_list.insert(rgb_channel, None)
    if len(unit_list) != ndim:
        msg = f"units must have {ndim} values, got {unit_list}"
        raise InvalidOptionError(msg)
    staging = Staging(
        dest,
        overwrite=overwrite,
        source_paths=[*src.paths(), *map(Path, source_paths)],
        resume=resume,
    )
    dest_path = staging.dest
    image_name = name or dest_path.name.removesuffix(".zarr")
    version = "0.5" if zarr_format == 3 else "0.4"
    method: Downsampling = "nearest" if label else "mean"

    if scheduler and isinstance(src.array, np.ndarray) and src.spec is None:
        msg = (
            "a dask cluster needs a source its workers can open: a file (SourceSpec or the "
            "command line), a zarr array or a dask array; a numpy array would be copied into every task"
        )
        raise InvalidOptionError(msg)
    pipeline = codec_pipeline_name()
    run_id = uuid.uuid4().hex
    fingerprint = {
        "journal": 2,  # 2: regions verified by recomputing them (1 kept checksums)
        "source": src.describe(),
        "plan": [
            plan.level_shapes,
            plan.level_chunks,
            plan.level_shards,
            plan.zarr_format,
            plan.layout,
            plan.region_yx,
        ],
        "codec": [compressor, clevel],
        "pipeline": pipeline,
        "method": method,
    }
    folder = staging.begin()
    resuming = staging.resuming
    try:
        direct = choose_direct_io(
            direct_io,
            staging=folder,
            output_bytes=plan.nbytes,
            pipeline=pipeline,
            on_cluster=bool(scheduler),
        )
        # The fingerprint names the base pipeline: direct or buffered writes store the same bytes.
        pipeline = with_direct_io(pipeline) if direct else pipeline
        # The journal first: a resume with other options is refused before anything changes in
        # the partial store it keeps.
        journal = Journal(folder, fingerprint, resume=resume)
        try:
            with use_codec_pipeline(pipeline):
                level_paths = _create_arrays(folder, plan, codecs, axis_names, reuse=resume)
            client_context = dask_client(scheduler) if scheduler else contextlib.nullcontext()
            with use_codec_pipeline(pipeline), client_context as client:
                runner = RegionScheduler(
                    pipeline=pipeline,
                    run_id=run_id,
                    method=method,
                    level_chunks=plan.level_chunks,
                    tiles_total=plan.tiles,
                    bytes_total=plan.nbytes,
                    journal=journal,
                    progress=progress,
                    cancel=cancel,
                    workers=workers or os.cpu_count() or 2,
                    itemsize=plan.dtype.itemsize,
                    channel_axis=None if label else channel_index,
                    client=client,
                )
                for pass_index, pyramid_pass in enumerate(
                    _passes(plan, src.reader, level_paths, pipeline, run_id)
                ):
                    runner.run(pyramid_pass, pass_index)
                # Regions the interrupted run finished and that were found intact.
                resumed_regions = runner.regions_kept if resuming else None
        finally:
            journal.close()
        if layout == "ome":
            assert axis_names is not None
            attributes = _ome_attributes(
                plan,
                journal.value_ranges(),
                axis_names=axis_names,
                scales=scales,
                offsets=offsets,
                units=unit_list,
                name=image_name,
                version=version,
                method=method,
                label=label,
                rgb=rgb,
                channel_index=channel_index,
                channel_names=channel_names,
                colors=colors,
                contrast_limits=contrast_limits,
            )
            # The metadata that declares the image comes last.
            zarr.open_group(str(folder), mode="r+", zarr_format=zarr_format).attrs.update(
                attributes
            )
        staging.commit()
    except KeyboardInterrupt:
        # Interrupted by the user: keep the partial store (hidden, marked incomplete) for resume.
        settle_writes()
        raise
    except BaseException as error:
        # Writes still in flight (siblings of a failed one) finish first: what is left on disk
        # is only judged, and reported, once nothing writes there any more.
        settle_writes()
        # A resumed run keeps its partial store whatever happens (a typo in an option must
        # not throw away hours of work); a fresh one leaves nothing behind.
        staging.abort(keep=resume)
        failure = _write_failure(error, dest_path, staging.left_behind)
        if failure is not None:
            raise failure from error
        raise
    finally:
        staging.release()
    return ConversionResult(
        dest_path,
        plan,
        time.perf_counter() - started,
        {
            "codec_pipeline": pipeline.removesuffix(DIRECT_IO_SUFFIX),
            "direct_io": direct,
            "resumed_regions": resumed_regions,
        },
    )


def _write_failure(error: BaseException, dest: Path, left_behind: str) -> DestinationError | None:
    """A failed write (a full disk, a file-size limit) as one clear error, saying what was left."""
    # zarr-python raises OSError; the zarrs pipeline a RuntimeError naming the OS error.
    io_failure = isinstance(error, OSError) or (
        isinstance(error, RuntimeError) and "os error" in str(error)
    )
    if not io_failure or isinstance(error, DestinationError):
        return None
    full = getattr(error, "errno", None) == 28 or "os error 28" in str(error)
    reason = "the disk is full" if full else (getattr(error, "strerror", None) or str(error))
    return DestinationError(f"{dest}: writing failed ({reason}); {left_behind}")


def _passes(
    plan: ConversionPlan, reader: SourceReader, level_paths: list[str], pipeline: str, run_id: str
) -> Iterator[PyramidPass]:
    """Pass 0 reads the source into levels 0..depth; each next pass reads the last level written."""
    n_levels, depth = plan.n_levels, plan.depth
    first, last = 0, min(depth, n_levels - 1)
    while True:
        unit = plan.level_shards[first] or plan.level_chunks[first]
        shape = plan.level_shapes[first]
        region_shape = (*unit[:-2], *plan.region_yx) if len(shape) >= 2 else unit
        yield PyramidPass(
            read=reader if first == 0 else LevelReader(level_paths[first], pipeline, run_id),
            level_paths=tuple(level_paths[first : last + 1]),
            levels=tuple(range(first, last + 1)),
            shape=shape,
            region_shape=region_shape,
            write_first=first == 0,
        )
        if last >= n_levels - 1:
            return
        first, last = last, min(last + depth, n_levels - 1)


def _create_arrays(
    staging: Path,
    plan: ConversionPlan,
    codecs: list[Any] | None,
    axis_names: list[str] | None,
    *,
    reuse: bool,
) -> list[str]:
    """Create the level arrays (or, when resuming, keep those already there); return their paths."""
    kwargs: dict[str, Any] = {"compressors": codecs, "fill_value": 0}
    if plan.zarr_format == 3:
        if axis_names is not None:
            kwargs["dimension_names"] = axis_names
    else:
        kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    metadata = "zarr.json" if plan.zarr_format == 3 else ".zarray"
    try:
        if plan.layout == "array":
            if not (reuse and (staging / metadata).is_file()):
                zarr.create_array(
                    str(staging),
                    shape=plan.shape,
                    dtype=plan.dtype,
                    chunks=plan.level_chunks[0],
                    shards=plan.level_shards[0],
                    zarr_format=plan.zarr_format,
                    **kwargs,
                )
            return [str(staging)]
        group_metadata = "zarr.json" if plan.zarr_format == 3 else ".zgroup"
        if reuse and (staging / group_metadata).is_file():
            group = zarr.open_group(str(staging), mode="r+", zarr_format=plan.zarr_format)
        else:
            group = zarr.create_group(str(staging), zarr_format=plan.zarr_format)
        for level, (shape, chunk, shard) in enumerate(
            zip(plan.level_shapes, plan.level_chunks, plan.level_shards, strict=True)
        ):
            if not (reuse and (staging / str(level) / metadata).is_file()):
                group.create_array(
                    str(level), shape=shape, dtype=plan.dtype, chunks=chunk, shards=shard, **kwargs
                )
        return [str(staging / str(level)) for level in range(plan.n_levels)]
    except (ValueError, TypeError) as error:
        msg = f"zarr refused the array settings: {error}"
        raise ConversionError(msg) from error


def _ome_attributes(
    plan: ConversionPlan,
    value_ranges: dict[int, tuple[float, float]],
    *,
    axis_names: list[str],
    scales: list[float],
    offsets: list[float],
    units: list[str | None],
    name: str,
    version: str,
    method: str,
    label: bool,
    rgb: bool,
    channel_index: int | None,
    channel_names: Sequence[str] | None,
    colors: Sequence[str] | None,
    contrast_limits: Sequence[Sequence[float]] | None,
) -> dict[str, Any]:
    # Level k's pixel spans 2**k source pixels on Y and X (odd edges are padded, not stretched).
    level_scales = []
    for level in range(plan.n_levels):
        factors = [1] * (len(plan.shape) - 2) + [2**level, 2**level]
        level_scales.append([sc * f for sc, f in zip(scales, factors, strict=True)])
    block: dict[str, Any] = {
        "multiscales": ome_ngff.build_multiscales(
            axes=axis_names,
            units=units,
            level_scales=level_scales,
            translation=offsets,
            name=name,
            version=version,
            downscaling=method,
        )
    }
    if label:
        image_label: dict[str, Any] = {}
        if version == "0.4":
            image_label["version"] = "0.4"
        block["image-label"] = image_label
    else:
        n_channels = plan.shape[channel_index] if channel_index is not None else 1
        names = list(channel_names) if channel_names else []
        if len(names) != n_channels:
            names = (
                ["R", "G", "B", "A"][:n_channels]
                if rgb
                else [f"{name} c{i}" if n_channels > 1 else name for i in range(n_channels)]
            )
        palette = RGB_COLORS if rgb else default_colors(n_channels)
        channel_colors = (
            [c.lstrip("#") for c in colors] if colors and len(colors) == n_channels else []
        )
        if not channel_colors:
            channel_colors = [palette[i % len(palette)] for i in range(n_channels)]
        if contrast_limits is not None and len(contrast_limits) == n_channels:
            windows = [(float(lo), float(hi)) for lo, hi in contrast_limits]
        else:
            windows = _windows(value_ranges, n_channels)  # level 0's exact range, per channel
        block["omero"] = ome_ngff.build_omero(
            channel_names=names,
            colors=channel_colors,
            windows=windows,
            dtype_range=_omero_value_range(plan.dtype, windows),
        )
    attributes = ome_ngff.wrap_ome(block, version=version)
    if rgb:
        attributes[ome_ngff.TILER_ATTRIBUTE] = {"rgb": True}
    return attributes
