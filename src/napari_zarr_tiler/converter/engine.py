"""The streaming conversion engine: any array in, a chunked, compressed OME-Zarr pyramid out.

:func:`convert` is a short orchestration over named steps: read level 0 of the source
(:class:`~.level_zero.LevelZero`), resolve the options (:func:`~.options.resolve_options`),
check and stage the destination (:class:`~.staging.Staging`), guard resume with a fingerprint
(:mod:`.resume`), write the pyramid region by region (:mod:`.scheduler`), declare the image in
its OME metadata (:mod:`.ome_metadata`) and commit. Memory is bounded by a few regions, whatever
the image size; a thread pool (or a dask cluster) keeps enough chunks in flight to use every core.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..sources import SourceSpec
from .backend import (
    base_pipeline,
    codec_pipeline_name,
    declare_image,
    settle_writes,
    with_direct_io,
)
from .compression import Compressor
from .direct_io import choose_direct_io
from .level_zero import LevelZero
from .named_source import is_named_source, open_named_source
from .object_store_target import convert_to_object_store, is_object_store_url
from .ome_metadata import OmeVersion, ome_attributes
from .options import ConversionOptions, resolve_options
from .plan import ConversionPlan, Layout
from .progress import CancelArg, Progress
from .pyramid import DownsampleZ
from .resume import Journal, build_fingerprint
from .scheduler import write_pyramid
from .staging import Staging
from .zipped import ZippedStaging, stage_destination


@dataclass
class ConversionResult:
    """What :func:`convert` wrote."""

    #: The store written (its ``s3://`` URL, as a str, for an object-store destination).
    path: Path | str
    plan: ConversionPlan
    #: Wall time of the conversion.
    seconds: float
    #: The codec pipeline that wrote the chunks: ``"zarrs"`` or ``"default"`` (zarr-python's).
    codec_pipeline: str = "default"
    #: Whether chunks were written with direct I/O (past the page cache).
    direct_io: bool = False
    #: For a resumed conversion, how many regions the interrupted run had finished intact
    #: (kept, not written again); None when nothing was resumed.
    resumed_regions: int | None = None


@dataclass(frozen=True)
class _Written:
    """How the pyramid was written: the pipeline's name and the regions kept from a resumed run."""

    pipeline: str
    resumed_regions: int | None


def convert(
    source: Any,
    dest: str | os.PathLike[str],
    *,
    chunks: int | Sequence[int] = 512,
    compressor: Compressor = "zstd",
    clevel: int | None = None,
    zarr_format: Literal[2, 3] | None = None,
    ome_version: OmeVersion | None = None,
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
    downsample_z: DownsampleZ | None = None,
    properties: Sequence[Mapping[str, Any]] | None = None,
    labels: Mapping[str, Any] | None = None,
) -> ConversionResult:
    """Convert an image into a chunked, compressed zarr store with a multiscale pyramid.

    The source is streamed region by region: memory stays bounded by a few regions (about
    16 MB each, times the number of workers plus one) whatever the image size. Each pyramid
    level is computed from the level before it. The store is written beside ``dest`` and moved
    into place only when complete, with its OME-Zarr metadata written last.

    Parameters
    ----------
    source : array-like, list of array-likes, path, URL or SourceSpec
        A numpy, dask or zarr array, or a multiscale list of them (level 0 is used); or a file or
        store named by path or URL (TIFF, OME-TIFF, CZI, ``.npy``, zarr, ``sample:NAME``), read
        lazily, whose metadata (axes, scale, units, channels, labels ...) fills every option left
        unset here; a :class:`~napari_zarr_tiler.sources.SourceSpec` picks a TIFF series or CZI
        scene (``SourceSpec("slide.czi", series=1)``).
    dest : path
        The store to create: a folder, conventionally named ``*.zarr``, or a zipped OME-Zarr
        file (RFC-9) when the name ends with ``.ozx`` (zarr format 3; it appears only once
        complete, and ``overwrite`` replaces only a zip holding a zarr store), or an
        ``s3://bucket/prefix/NAME.zarr`` URL (credentials and endpoint from the ``AWS_*``
        variables; written in place with its root metadata last, see
        :mod:`.object_store_staging`).
    chunks : int or sequence of int
        Chunk shape: one int for the last two axes (1 on the others), or one per axis.
        Chunks larger than the image are clipped to it.
    compressor : {"zstd", "blosc-lz4", "blosc-zstd", "gzip", "none"}
        Lossless codec.
    clevel : int, optional
        Compression level (codec default if None).
    zarr_format : {3, 2}, optional
        3 writes OME-Zarr 0.5 or 0.6, 2 writes OME-Zarr 0.4 (default: the one
        ``ome_version`` needs, else 3).
    ome_version : {"0.5", "0.6", "0.4"}, optional
        OME-Zarr version to write (default: 0.4 with ``zarr_format=2``, else 0.5). 0.6 declares
        the axes as a coordinate system and each level's scale and translation as RFC-5
        transformations into it.
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
        Regions processed at once by the in-process threads (default: the number of CPUs
        this process may use, plus one).
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
        A source file (TIFF, CZI, ``.npy``, a whole memory map) replaced or changed since (its
        path, inode, size or modification time) refuses the resume, and the kept regions' chunk
        files are checked against their checksums; the regions of a source nothing can pin (see
        :meth:`~.level_zero.LevelZero.pin`: an array in memory, a computed dask array, a zarr
        store, ...) are computed again and compared before they are kept.
    direct_io : bool, optional
        Write chunks past the page cache (``O_DIRECT``; Linux, zarrs pipeline). None (default)
        does so when converting in this process an output larger than a quarter of the
        available memory. The bytes stored are the same either way.
    downsample_z : {"auto", "always", "never"}, optional
        Whether levels halve the Z axis too (2x2x2 mean, nearest for labels; the OME scale
        follows). "auto" (default; None means the source's choice, else "auto") halves it at a level whose Z spacing is not larger than its
        Y/X spacing (``scale``), so near-isotropic volumes shrink in all three axes and
        anisotropic ones keep Z until Y and X catch up. "auto" halves only a Z axis that is
        named (by ``axes``, or by a TIFF, CZI or zarr source's metadata): the default names of
        an array without them (z, y, x for 3-D) are a guess, so its leading axes are kept, and
        so is a plain multi-page TIFF's page axis.
        "always" needs a ``z`` axis, named or guessed. Images without a Z axis are not affected.
    properties : sequence of mappings, optional
        For labels written into an image: ``image-label`` properties, one mapping per label
        value (each with its ``label-value``).
    labels : mapping, optional
        Label images to write into the new image's ``labels/``: ``{name: source}``, each shaped
        as the image (re-tiled with its chunks) and written before the store is moved into place.

    With ``label=True`` and ``dest`` inside an OME-Zarr image's ``labels`` folder
    (``image.zarr/labels/cells``), the labels are added to that image (see
    :mod:`.into_image`): one level per image level with its shapes and transforms, listed in the
    ``labels`` group; the image's own files are not touched. ``colors`` may then map label values
    to colours (``{1: "FF0000"}``), and the zarr format, axes and scale are the image's.

    Returns
    -------
    ConversionResult
        Where the store was written, its plan and the time taken; also the codec pipeline
        (``codec_pipeline``), whether chunks were written with direct I/O (``direct_io``) and,
        for a resumed conversion, how many regions the interrupted run had finished intact
        (``resumed_regions``; None otherwise).

    Raises
    ------
    InvalidOptionError, UnsupportedDtypeError
        For invalid options or data types, before anything is written.
    DestinationError
        When the destination exists (without ``overwrite``; with ``resume``, when there is
        nothing to resume), is not a zarr store, is inside the source, is not writable, or the
        disk fills up.
    SourceError
        When a source named by path or URL is missing, unreadable or holds no image.
    ConversionCancelled
        When ``cancel`` was set.
    """
    if is_named_source(source):  # a file, store, URL or sample: opened as the CLI opens it
        given = {key: value for key, value in locals().items() if key not in ("source", "dest")}
        spec, implied = open_named_source(source, given)
        if implied or not isinstance(source, SourceSpec):
            return convert(spec, dest, **{**given, **implied})
    if label and layout == "ome" and not is_object_store_url(dest):
        from .into_image import convert_if_into_image  # imported here: it imports this module

        into = convert_if_into_image(
            source, dest, chunks=chunks, compressor=compressor, clevel=clevel, shards=shards,
            overwrite=overwrite, colors=colors, properties=properties, workers=workers,
            resume=resume, source_paths=source_paths, progress=progress, cancel=cancel,
        )  # fmt: skip
        if into is not None:
            return into
    started = time.perf_counter()
    level0 = LevelZero(source, rgb=rgb)
    options = resolve_options(
        level0,
        chunks=chunks,
        compressor=compressor,
        clevel=clevel,
        zarr_format=zarr_format,
        ome_version=ome_version,
        shards=shards,
        levels=levels,
        layout=layout,
        overwrite=overwrite,
        axes=axes,
        scale=scale,
        translate=translate,
        units=units,
        channel_names=channel_names,
        colors=colors,
        contrast_limits=contrast_limits,
        name=name,
        label=label,
        rgb=rgb,
        workers=workers,
        scheduler=scheduler,
        resume=resume,
        source_paths=source_paths,
        direct_io=direct_io,
        downsample_z=downsample_z or "auto",
    )
    if is_object_store_url(dest):  # s3://: written in place, its root metadata last
        return convert_to_object_store(
            os.fspath(dest), level0, options, started=started, progress=progress,
            cancel=cancel, labels=labels,
        )  # fmt: skip
    if labels:  # names and shapes checked before anything is written
        from .into_image import labels_that_fit  # imported here: it imports this module

        labels = labels_that_fit(labels, level0, options, dest=dest)
    staging = stage_destination(
        dest, options, source_paths=[*level0.paths(), *options.source_paths]
    )
    written = _write_staged(
        staging, level0, options, progress=progress, cancel=cancel, labels=labels
    )
    return ConversionResult(
        staging.dest,
        options.plan,
        time.perf_counter() - started,
        codec_pipeline=base_pipeline(written.pipeline),
        direct_io=written.pipeline != base_pipeline(written.pipeline),
        resumed_regions=written.resumed_regions,
    )


def _write_staged(
    staging: Staging | ZippedStaging,
    level0: LevelZero,
    options: ConversionOptions,
    *,
    progress: Callable[[Progress], None] | None,
    cancel: CancelArg,
    labels: Mapping[str, Any] | None = None,
) -> _Written:
    """Write the whole store into the staging folder, declare the image, and commit it.

    On failure the staging session waits for writes in flight, removes (or, resuming, keeps)
    the partial store and reports a failed write as a :class:`DestinationError`.
    """
    plan = options.plan
    base = codec_pipeline_name()
    with staging.session(settle=settle_writes) as folder:
        pipeline = _pipeline_for(folder, base, options)
        kept, journal = write_journaled(
            folder, level0, options, pipeline=pipeline, progress=progress, cancel=cancel
        )
        if plan.layout == "ome":
            name = options.name or staging.dest.name.removesuffix(".zarr").removesuffix(".ozx")
            attributes = ome_attributes(plan, journal.value_ranges(), options.metadata, name=name)
            declare_image(folder, plan.zarr_format, attributes)  # the image is declared last
        if labels:  # written into the staged image: the store appears with its labels
            from .into_image import write_labels_of  # imported here: it imports this module

            write_labels_of(folder, labels, options, cancel=cancel, dest=staging.dest)
        staging.commit()
    # Regions the interrupted run finished and that were found intact.
    return _Written(pipeline, kept if staging.resuming else None)


def write_journaled(
    folder: Path,
    level0: LevelZero,
    options: ConversionOptions,
    *,
    pipeline: str,
    progress: Callable[[Progress], None] | None,
    cancel: CancelArg,
) -> tuple[int, Journal]:
    """Write the pyramid into ``folder`` under a resume journal; return the regions kept from
    an interrupted run and the (closed) journal, which holds the value ranges.

    The journal comes first: a resume with other options is refused before anything changes in
    the partial store it keeps. Its fingerprint names the base pipeline: direct or buffered
    writes store the same bytes.
    """
    pin = level0.pin()
    fingerprint = build_fingerprint(
        level0.describe(),
        options.plan,
        codec=options.codec,
        pipeline=base_pipeline(pipeline),
        method=options.method,
        pin=pin,
    )
    journal = Journal(folder, fingerprint, resume=options.resume)
    try:
        kept = write_pyramid(
            folder,
            level0,
            options,
            pipeline=pipeline,
            journal=journal,
            progress=progress,
            cancel=cancel,
            checksums=pin is not None,
        )
    finally:
        journal.close()
    return kept, journal


def _pipeline_for(folder: Path, base: str, options: ConversionOptions) -> str:
    """The codec pipeline that writes the chunks: ``base``, with direct I/O where chosen."""
    direct = choose_direct_io(
        options.direct_io,
        staging=folder,
        output_bytes=options.plan.nbytes,
        pipeline=base,
        on_cluster=bool(options.scheduler),
    )
    return with_direct_io(base) if direct else base
