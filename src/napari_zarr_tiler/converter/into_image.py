"""Labels written into an existing OME-Zarr image: ``convert(seg, "image.zarr/labels/cells", label=True)``.

The label image gets one level per image level, with the image's own level shapes and transforms
(copied from its multiscales), so that it lies exactly over the image whichever tool wrote it
(ours, ome-zarr-py, ngff-zarr; OME-Zarr 0.4, 0.5 or 0.6). Level 0 is streamed from the source by
the engine's scheduler; every further level is sampled (nearest neighbour) from the level before
it, region by region. It is staged as every conversion is (a hidden folder beside ``NAME`` inside
``labels/``, moved into place when complete); only then is ``NAME`` added to the ``labels``
group's list, atomically. Nothing outside ``labels/`` is written: the image's own arrays and
metadata stay byte-identical (so an image with consolidated metadata keeps its old listing:
a :class:`~napari_zarr_tiler.sources.SourceWarning` says how to refresh it).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from ..errors import InvalidOptionError
from ..sources import SourceSpec, SourceWarning
from ..sources.zarr_source import label_display
from .backend import codec_pipeline_name, declare_image, settle_writes, use_codec_pipeline
from .compression import Compressor
from .engine import ConversionResult, write_journaled
from .label_image import (
    ParentImage,
    add_to_labels_list,
    find_parent_image,
    label_attributes,
    label_colors,
    label_level_shapes,
    label_shape_in,
    read_parent_image,
)
from .level_zero import LevelZero
from .options import ConversionOptions, resolve_options
from .progress import CancelArg, Progress, stop_if_cancelled
from .regions import Region
from .staging import Staging

__all__ = [
    "LabelRequest",
    "convert_if_into_image",
    "convert_into_image",
    "labels_that_fit",
    "write_labels_of",
]

#: Elements of a level written per task (the level before it read is about 4 times as many).
_BLOCK_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class LabelRequest:
    """How to write one label image into an image (the options of :func:`convert` that apply)."""

    chunks: int | Sequence[int] = 512
    compressor: Compressor = "zstd"
    clevel: int | None = None
    shards: int | Sequence[int] | None = None
    overwrite: bool = False
    #: ``{label value: colour}`` (``image-label`` colours), or None.
    colors: Mapping[int, Any] | None = None
    #: ``image-label`` properties (one mapping per label, each with a ``label-value``), or None.
    properties: Sequence[Mapping[str, Any]] | None = None
    workers: int | None = None
    resume: bool = False
    source_paths: Sequence[str | os.PathLike[str]] = ()


def convert_into_image(
    source: Any,
    dest: str | os.PathLike[str],
    parent: ParentImage,
    request: LabelRequest,
    *,
    progress: Callable[[Progress], None] | None = None,
    cancel: CancelArg = None,
) -> ConversionResult:
    """Write ``source`` as label image ``dest`` (``IMAGE/labels/NAME``) of the image ``parent``.

    Parameters
    ----------
    source : array-like, list of levels or SourceSpec
        The labels (integers), shaped as the image's level 0 (with one channel, or without the
        channel axis: they get a channel axis of 1).
    dest : path
        ``IMAGE/labels/NAME``.
    parent : ParentImage
        The image (see :func:`~.label_image.find_parent_image`).
    request : LabelRequest
        Chunks, codec, overwrite, colours and properties.
    progress, cancel
        As for :func:`~napari_zarr_tiler.convert` (progress covers level 0).

    Returns
    -------
    ConversionResult

    Raises
    ------
    InvalidOptionError
        For a shape other than the image's, labels that are not integers, or invalid options.
    DestinationError
        When ``NAME`` exists (without ``overwrite``) and as :func:`~napari_zarr_tiler.convert`.
    """
    started = time.perf_counter()
    level0 = LevelZero(source)
    shapes = label_level_shapes(parent, level0.shape)
    _check_integers(level0.dtype)
    colors = label_colors(request.colors)  # checked before anything is written
    if len(level0.shape) < len(shapes[0]):  # no channel axis: read with one of 1
        level0 = _WithChannelAxis(source, parent.channel_axis or 0)
    options = _level0_options(level0, parent, request)
    created = not parent.labels_folder.exists()
    try:
        staging = Staging(
            dest,
            overwrite=request.overwrite,
            source_paths=[*level0.paths(), *options.source_paths],
            resume=request.resume,
        )
        name = staging.dest.name
        attributes = label_attributes(parent, name, colors=colors, properties=request.properties)
        with staging.session(settle=settle_writes) as folder:
            write_journaled(folder, level0, options, pipeline=codec_pipeline_name(),
                            progress=progress, cancel=cancel)  # fmt: skip
            _write_levels(folder, shapes, options, cancel=cancel)
            declare_image(folder, parent.zarr_format, attributes)  # declared last
            staging.commit()
    except BaseException:
        if created:  # the labels folder the checks made, still empty: removed
            with contextlib.suppress(OSError):
                parent.labels_folder.rmdir()
        raise
    add_to_labels_list(parent, name)  # listed once complete and in place (the group made then)
    _warn_if_consolidated(parent, name)
    return ConversionResult(staging.dest, options.plan, time.perf_counter() - started)


def _check_integers(dtype: np.dtype) -> None:
    if dtype.kind not in "iu":
        msg = f"labels must be integers, got {dtype}; convert them to an integer type first"
        raise InvalidOptionError(msg)


def _warn_if_consolidated(parent: ParentImage, name: str) -> None:
    """Say how other tools get to see label ``name`` in an image with consolidated metadata."""
    if not parent.consolidated:
        return
    msg = (
        f"{parent.shown}: the image's metadata is consolidated and was left unchanged, so "
        f"zarr.open_group and napari-ome-zarr will see the new label image {name!r} only after "
        f'zarr.consolidate_metadata("{parent.shown}") (napari-zarr-tiler sees it already)'
    )
    warnings.warn(msg, SourceWarning, stacklevel=3)


class _WithChannelAxis(LevelZero):
    """Level 0 of labels without the image's channel axis, read with a channel axis of 1 at
    ``axis`` (its files, spec and pickling are the source's)."""

    def __init__(self, source: Any, axis: int) -> None:
        super().__init__(source)
        self._axis = axis
        self.shape = (*self.shape[:axis], 1, *self.shape[axis:])

    def describe(self) -> str:
        """Identifies the source in the resume journal."""
        return f"{super().describe()} (channel axis {self._axis} added)"

    def __call__(self, region: Region) -> np.ndarray:
        """Read one region (its channel axis spans the one channel)."""
        inner = (*region[: self._axis], *region[self._axis + 1 :])
        return np.expand_dims(super().__call__(inner), self._axis)


def _level0_options(
    level0: LevelZero, parent: ParentImage, request: LabelRequest
) -> ConversionOptions:
    """Options of level 0: the request's chunks and codec in the image's zarr format."""
    return resolve_options(
        level0,
        chunks=request.chunks,
        compressor=request.compressor,
        clevel=request.clevel,
        zarr_format=parent.zarr_format,  # type: ignore[arg-type]
        shards=request.shards if parent.zarr_format == 3 else None,
        levels=1,
        layout="ome",
        overwrite=request.overwrite,
        axes=parent.dimension_names,
        scale=None,
        translate=None,
        units=None,
        channel_names=None,
        colors=None,
        contrast_limits=None,
        name=None,
        label=True,
        rgb=False,
        workers=request.workers,
        scheduler=None,
        resume=request.resume,
        source_paths=request.source_paths,
        direct_io=False,
    )


def _write_levels(
    folder: Path,
    shapes: list[tuple[int, ...]],
    options: ConversionOptions,
    *,
    cancel: CancelArg,
) -> None:
    """Create levels 1, 2, ... with the image's shapes and sample each from the level before it."""
    with use_codec_pipeline(codec_pipeline_name()):
        group = zarr.open_group(str(folder), mode="r+")
        previous = group["0"]
        for level, shape in enumerate(shapes[1:], start=1):
            array = _create_level(group, str(level), shape, previous, options)
            _sample_level(previous, array, workers=options.workers, cancel=cancel)
            previous = array


def _create_level(
    group: zarr.Group, path: str, shape: tuple[int, ...], like: Any, options: ConversionOptions
) -> Any:
    """A level array shaped ``shape``, chunked and encoded as level 0 (chunks clipped to it)."""
    chunks = tuple(min(c, s) for c, s in zip(options.plan.level_chunks[0], shape, strict=True))
    shards = options.plan.level_shards[0]
    if shards is not None:  # whole shards of whole chunks, clipped to the level
        shards = tuple(
            c * math.ceil(min(sh, s) / c) for c, sh, s in zip(chunks, shards, shape, strict=True)
        )
    kwargs: dict[str, Any] = {"compressors": options.codecs, "fill_value": 0}
    if options.plan.zarr_format == 3:
        kwargs["dimension_names"] = like.metadata.dimension_names
    else:
        kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    return group.create_array(
        path,
        shape=shape,
        dtype=like.dtype,
        chunks=chunks,
        shards=shards,
        overwrite=True,
        **kwargs,
    )


def nearest_indices(source_size: int, target_size: int, start: int, stop: int) -> np.ndarray:
    """Indices into an axis of ``source_size`` of pixels ``start:stop`` of the same axis
    resampled to ``target_size``: the first pixel of each, as our own label pyramids take it.

    An axis divided by a whole factor ``k`` (``target_size`` is ``source_size / k`` rounded up
    or down: exact halvings, whichever way a writer rounds) takes pixel ``k * i``, as
    :func:`~.pyramid.downsample_2x` does; any other ratio takes ``floor(i * ratio)``.
    """
    positions = np.arange(start, stop, dtype=np.int64)
    factor = max(1, round(source_size / target_size))
    if target_size in (source_size // factor, -(-source_size // factor)):
        indices = positions * factor
    else:
        indices = positions * source_size // target_size
    return np.minimum(indices, source_size - 1)


def _blocks(array: Any) -> Iterator[tuple[slice, ...]]:
    """Regions of ``array`` made of whole chunks (whole shards when sharded), about
    :data:`_BLOCK_ELEMENTS` elements each, growing along Y and X."""
    unit = list(array.shards or array.chunks)
    while math.prod(unit) * 4 <= _BLOCK_ELEMENTS and any(
        u < s for u, s in zip(unit[-2:], array.shape[-2:], strict=True)
    ):
        unit[-2:] = [
            min(u * 2, s) if u < s else u for u, s in zip(unit[-2:], array.shape[-2:], strict=True)
        ]
    ranges = [range(0, s, u) for s, u in zip(array.shape, unit, strict=True)]
    for corner in np.ndindex(*(len(r) for r in ranges)):
        yield tuple(
            slice(r[i], min(r[i] + u, s))
            for r, i, u, s in zip(ranges, corner, unit, array.shape, strict=True)
        )


def _sample_block(source: Any, target: Any, region: tuple[slice, ...]) -> None:
    """Write ``region`` of ``target`` with the nearest pixels of ``source`` (the level before)."""
    indices = [
        nearest_indices(size, tsize, r.start, r.stop)
        for size, tsize, r in zip(source.shape, target.shape, region, strict=True)
    ]
    # Orthogonal selection: only the chunks holding the sampled pixels are read, and only
    # those pixels are kept (memory: the region, whatever the factor between levels).
    target[region] = source.oindex[tuple(indices)]


def _sample_level(source: Any, target: Any, *, workers: int, cancel: CancelArg) -> None:
    """Fill ``target`` from ``source`` region by region on ``workers`` threads, a bounded
    number in flight; ``cancel`` is checked between regions."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        in_flight: set[Any] = set()
        try:
            for region in _blocks(target):
                stop_if_cancelled(cancel)
                if len(in_flight) >= 2 * workers:
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        future.result()
                in_flight.add(pool.submit(_sample_block, source, target, region))
            for future in in_flight:
                future.result()
        finally:
            for future in in_flight:
                future.cancel()


def convert_if_into_image(
    source: Any,
    dest: str | os.PathLike[str],
    *,
    progress: Callable[[Progress], None] | None = None,
    cancel: CancelArg = None,
    colors: Any = None,
    properties: Sequence[Mapping[str, Any]] | None = None,
    **request: Any,
) -> ConversionResult | None:
    """Write labels into the image ``dest`` names (``IMAGE/labels/NAME``); None when ``dest``
    is not in an OME-Zarr image's ``labels`` folder (a plain conversion then).

    ``request`` holds :class:`LabelRequest`'s other fields. Colours and properties not given are
    taken from the source when it is a label image in a zarr store.
    """
    parent = find_parent_image(dest)
    if parent is None:
        return None
    if colors is not None and not isinstance(colors, Mapping):
        colors = None  # channel colours (a source's, passed on by the CLI) do not apply
    if colors is None and properties is None:
        colors, properties = source_display(source)
    label_request = LabelRequest(colors=colors, properties=properties, **request)
    return convert_into_image(
        source, dest, parent, label_request, progress=progress, cancel=cancel
    )


def source_display(source: Any) -> tuple[dict[int, Any] | None, list[dict[str, Any]] | None]:
    """The ``image-label`` colours and properties of a source that is a zarr label image."""
    path = getattr(source, "path", None)
    if not isinstance(source, SourceSpec) or path is None or source.kind != "zarr":
        return None, None
    return label_display(Path(path))


def labels_that_fit(
    labels: Mapping[str, Any],
    level0: LevelZero,
    options: ConversionOptions,
    *,
    dest: str | os.PathLike[str],
) -> dict[str, Any]:
    """The label images of ``labels`` (``{name: source}``) that fit the image to be written,
    checked before anything is written; each other one is left out with a
    :class:`~napari_zarr_tiler.sources.SourceWarning` naming it and both shapes.

    Labels fit with the image's shape, or with one channel, or without its channel axis
    (:func:`~.label_image.label_shape_in`), and integers. With the bare-array layout, which
    holds no labels, all are left out (with a warning).

    Raises
    ------
    InvalidOptionError
        For a label name that is not a plain folder name.
    """
    for name in labels:
        _check_name(name)
    if labels and options.plan.layout != "ome":
        msg = (
            f"{os.fspath(dest)}: the label images {', '.join(labels)} were left out: labels "
            "are kept only in an OME-Zarr image (layout 'ome')"
        )
        warnings.warn(msg, SourceWarning, stacklevel=3)
        return {}
    fitting: dict[str, Any] = {}
    for name, source in labels.items():
        label0 = LevelZero(source)
        fits = label_shape_in(level0.shape, options.metadata.channel_index, label0.shape)
        if fits is not None and label0.dtype.kind in "iu":
            fitting[name] = source
            continue
        what = f"shape {label0.shape}" if fits is None else f"type {label0.dtype} (not integers)"
        msg = (
            f"the label image {name!r} has {what} but the image {os.fspath(dest)} has shape "
            f"{level0.shape}; labels must have the image's shape (with one channel, or without "
            "its channel axis) and integer values, so it is left out"
        )
        warnings.warn(msg, SourceWarning, stacklevel=3)
    return fitting


def _check_name(name: Any) -> None:
    """Refuse a label name that is not a plain folder name."""
    if not isinstance(name, str) or not name or name.startswith(".") or {"/", "\\"} & set(name):
        msg = f"label name {name!r} is not a plain folder name (labels={{NAME: source}})"
        raise InvalidOptionError(msg)


def write_labels_of(
    folder: Path,
    labels: Mapping[str, Any],
    options: ConversionOptions,
    *,
    cancel: CancelArg = None,
    dest: Path | None = None,
) -> None:
    """Write the label images ``labels`` (``{name: source}``) into the image staged in ``folder``,
    re-tiled with the image's chunks, shards and codec (messages name the image ``dest``).

    Raises
    ------
    InvalidOptionError
        For a label name that is not a plain folder name, or labels not shaped as the image
        (:func:`labels_that_fit` checks both before the image is written).
    """
    parent = read_parent_image(folder, shown_as=dest)
    if parent is None:  # the bare-array layout: no image to hold labels
        msg = "labels can be kept only in an OME-Zarr image (layout 'ome')"
        raise InvalidOptionError(msg)
    plan = options.plan
    for name, source in labels.items():
        _check_name(name)
        colors, properties = source_display(source)
        request = LabelRequest(
            chunks=plan.level_chunks[0],
            compressor=options.codec[0],  # type: ignore[arg-type]
            clevel=options.codec[1],
            shards=plan.level_shards[0],
            overwrite=True,  # inside the staged store: an interrupted run's leftovers
            colors=colors,
            properties=properties,
            workers=options.workers,
        )
        convert_into_image(source, folder / "labels" / name, parent, request, cancel=cancel)
