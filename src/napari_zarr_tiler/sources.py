"""Open conversion sources from disk lazily: TIFF (any layout tifffile reads), zarr, ``.npy``.

A :class:`SourceSpec` names a source by path and can be opened again anywhere (in a dask worker
process, for instance); :meth:`SourceSpec.open` gives an :class:`OpenSource`: a lazily read array
(tifffile's zarr interface, a zarr array, or a memory map) plus the metadata to carry into the
OME-Zarr (axes, physical pixel sizes, units, channel names, RGB).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from .basic_indexing import basic_index
from .errors import SourceError, StoreReadError
from .ome_ngff import ome_attributes, parse_multiscale, valid_unit
from .store_layers import member_array, open_zarr_node

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2", ".svs", ".ndpi", ".scn", ".qptiff")
SAMPLES = ("slide_uint8", "slide_uint16")

_UNIT_NAMES = {
    "µm": "micrometer",
    "um": "micrometer",
    "nm": "nanometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "Å": "angstrom",
    "s": "second",
    "ms": "millisecond",
}


@dataclass
class OpenSource:
    """An opened source: the array (read lazily) and the metadata for :func:`convert`."""

    array: Any
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    _closers: list[Any] = field(default_factory=list, repr=False)

    def close(self) -> None:
        """Release the files the source holds open."""
        for closer in self._closers:
            closer.close()
        self._closers.clear()


@dataclass(frozen=True)
class SourceSpec:
    """A source named by path (picklable: dask workers re-open it)."""

    path: str
    series: int = 0

    def __getstate__(self) -> dict[str, Any]:
        # Never the opened source: each process opens its own.
        return {"path": self.path, "series": self.series}

    @functools.cached_property
    def opened(self) -> OpenSource:
        """The source opened once in this process (see :meth:`open`)."""
        return self.open()

    @property
    def kind(self) -> str:
        """``"sample"``, ``"tiff"``, ``"zarr"`` or ``"npy"``."""
        if self.path.startswith("sample:"):
            return "sample"
        path = Path(self.path)
        if path.is_dir() or path.name in ("zarr.json", ".zarray", ".zgroup", ".zattrs"):
            return "zarr"
        if path.suffix.lower() == ".npy":
            return "npy"
        return "tiff"

    def open(self) -> OpenSource:
        """Open the source lazily.

        Raises
        ------
        SourceError
            When the path is missing, unreadable, or holds no image this package can read.
        """
        if self.kind == "sample":
            return _open_sample(self.path.removeprefix("sample:"))
        path = Path(self.path)
        if not path.exists():
            msg = f"{path}: no such file or folder"
            raise SourceError(msg)
        if not os.access(path, os.R_OK):
            msg = f"{path}: permission denied"
            raise SourceError(msg)
        if self.kind == "zarr":
            return _open_zarr(path)
        if self.kind == "npy":
            return _open_npy(path)
        return _open_tiff(path, self.series)


def _open_sample(name: str) -> OpenSource:
    from .synthetic import synthetic_slide

    if name not in SAMPLES:
        msg = (
            f"unknown sample {name!r}; choose one of: {', '.join('sample:' + s for s in SAMPLES)}"
        )
        raise SourceError(msg)
    dtype = "uint8" if name.endswith("uint8") else "uint16"
    return OpenSource(
        synthetic_slide(4096, dtype=dtype),
        {"name": name, "units": ("micrometer", "micrometer"), "scale": (0.25, 0.25)},
        f"built-in sample {name} (4096 x 4096 {dtype})",
    )


def _open_npy(path: Path) -> OpenSource:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        msg = f"{path}: not a readable .npy array ({error})"
        raise SourceError(msg) from error
    return OpenSource(
        array, {"name": path.stem}, f"{path.name}: {array.shape} {array.dtype} (memory-mapped)"
    )


def _open_zarr(path: Path) -> OpenSource:
    try:
        # The reader's checks: not zarr, an incomplete conversion, unreadable, corrupt metadata.
        node_dir, node = open_zarr_node(path)
    except StoreReadError as error:
        raise SourceError(str(error)) from error
    name = node_dir.name.removesuffix(".zarr")
    if isinstance(node, zarr.Array):
        return OpenSource(
            node, {"name": name}, f"zarr array {node.shape} {node.dtype}, chunks {node.chunks}"
        )
    ome = ome_attributes(node.attrs.asdict())
    if "multiscales" not in ome:
        arrays = sorted(key for key, _ in node.arrays())
        msg = (
            f"{node_dir}: a zarr group without an OME image; name one of its arrays, e.g. "
            f"{node_dir / arrays[0]}"
            if arrays
            else f"{node_dir}: an empty zarr group"
        )
        raise SourceError(msg)
    try:
        multiscale = parse_multiscale(ome, where=str(node_dir))
        array = member_array(node, multiscale.paths[0], where=node_dir)
    except StoreReadError as error:
        raise SourceError(str(error)) from error
    options: dict[str, Any] = {
        "name": multiscale.name or name,
        "axes": tuple(axis.name for axis in multiscale.axes),
        "scale": multiscale.scales[0],
        "translate": multiscale.translations[0],
        "units": tuple(valid_unit(axis) for axis in multiscale.axes),
    }
    if "image-label" in ome:
        options["label"] = True  # re-tiled labels keep nearest-neighbour levels and their kind
    channels = multiscale.channels
    if channels:
        options["channel_names"] = tuple(c.label or f"c{i}" for i, c in enumerate(channels))
        if all(c.color for c in channels):
            options["colors"] = tuple(str(c.color) for c in channels)
        if all(c.window for c in channels):
            options["contrast_limits"] = tuple(c.window for c in channels)
    return OpenSource(
        array, options, f"OME-Zarr level 0 {array.shape} {array.dtype}, chunks {array.chunks}"
    )


def _ome_tiff_options(tiff: Any, axes: str, series_index: int) -> dict[str, Any]:
    import tifffile

    try:
        document = tifffile.xml2dict(tiff.ome_metadata)
        image = document["OME"]["Image"]
        pixels = (image[series_index] if isinstance(image, list) else image)["Pixels"]
    except (KeyError, TypeError, ValueError, IndexError):
        return {}
    options: dict[str, Any] = {}
    scale, units = [], []
    for axis in axes.lower():
        size = pixels.get(f"PhysicalSize{axis.upper()}") if axis in "zyx" else None
        unit = pixels.get(f"PhysicalSize{axis.upper()}Unit", "µm") if size is not None else None
        if axis == "t" and pixels.get("TimeIncrement") is not None:
            size, unit = pixels["TimeIncrement"], pixels.get("TimeIncrementUnit", "s")
        scale.append(float(size) if isinstance(size, int | float) and size > 0 else 1.0)
        units.append(_UNIT_NAMES.get(str(unit), unit) if unit is not None else None)
    options["scale"], options["units"] = tuple(scale), tuple(units)
    channels = pixels.get("Channel")
    if isinstance(channels, dict):
        channels = [channels]
    if isinstance(channels, list):
        names = [c.get("Name") for c in channels if isinstance(c, dict)]
        if names and all(isinstance(n, str) for n in names):
            options["channel_names"] = tuple(names)
    return options


#: What tifffile logs when a file's structure is cut short or damaged; it then goes on with
#: what it could parse (fewer pages, another series layout), which would convert silently.
_DAMAGE_SIGNS = ("invalid page offset", "corrupt", "truncat", "invalid tag", "out of range")


class _TiffDamageLog(logging.Handler):
    """Collect tifffile's warnings about a damaged file while it is opened."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(sign in message.lower() for sign in _DAMAGE_SIGNS):
            self.messages.append(message.strip().splitlines()[0])


def _open_tiff(path: Path, series_index: int = 0) -> OpenSource:
    import tifffile

    damage = _TiffDamageLog()
    tifffile_log = logging.getLogger("tifffile")
    tifffile_log.addHandler(damage)
    try:
        tiff = tifffile.TiffFile(path)
        try:
            series_list = tiff.series  # parsing the series reads every page
        except BaseException:
            tiff.close()
            raise
    except (tifffile.TiffFileError, OSError, ValueError, struct.error) as error:
        msg = f"{path}: not a readable TIFF image ({error})"
        raise SourceError(msg) from error
    finally:
        tifffile_log.removeHandler(damage)
    if damage.messages:
        tiff.close()
        msg = f"{path}: the TIFF is truncated or corrupt ({damage.messages[0]}); not converted"
        raise SourceError(msg)
    try:
        if not 0 <= series_index < len(series_list):
            available = ", ".join(f"{i} ({s.axes} {s.shape})" for i, s in enumerate(series_list))
            msg = f"{path}: no series {series_index}; the TIFF holds series {available or 'none'}"
            raise SourceError(msg)
        series = series_list[series_index]
        closers: list[Any] = [tiff]
        array = _contiguous_file_array(path, tiff, series) or _uncompressed_tiles(
            path, tiff, series
        )
        if array is not None:
            closers.insert(0, array)
        else:
            # Compressed or scattered data: tifffile's zarr interface decodes the tiles or strips
            # a region needs, lazily; each is decoded whole, so each must be of a sane size.
            _check_segment_size(path, series.keyframe)
            store = series.aszarr(level=0)
            closers.insert(0, store)
            array = zarr.open(store, mode="r")
    except SourceError:
        tiff.close()
        raise
    except (tifffile.TiffFileError, OSError, ValueError, KeyError, IndexError) as error:
        tiff.close()
        msg = f"{path}: cannot read the TIFF's image data ({error})"
        raise SourceError(msg) from error
    axes = series.axes.upper()
    options: dict[str, Any] = {"name": path.name.split(".")[0]}
    read_as = (
        "read directly (uncompressed)"
        if isinstance(array, _PositionedReads)
        else (f"read in blocks of {array.chunks}")
    )
    description = (
        f"{path.name}: {'OME-' if tiff.is_ome else ''}TIFF series {series_index} of "
        f"{len(series_list)}, axes {axes}, {series.shape} {series.dtype}, "
        f"{len(series.levels)} level(s), {read_as}"
    )
    colour = series.keyframe.photometric == tifffile.PHOTOMETRIC.RGB
    order, stored_axes, rgb = ome_axis_order(axes, tuple(array.shape), colour=colour)
    if order is None:
        # Axes tifffile could not name (Q, I ...): stored in the file's order; trailing colour
        # samples still make an RGB image.
        rgb = axes.endswith("S") and array.shape[-1] in (3, 4)
    else:
        if order != tuple(range(len(order))):
            array = AxisOrderView(array, order)
            description += f", stored as {stored_axes}"
        spatial_axes = stored_axes[:-1] if rgb else stored_axes
        options["axes"] = tuple(spatial_axes.lower())
        if tiff.is_ome:
            options.update(_ome_tiff_options(tiff, spatial_axes, series_index))
    options["rgb"] = rgb
    return OpenSource(array, options, description, closers)


def ome_axis_order(
    axes: str, shape: tuple[int, ...], *, colour: bool = True
) -> tuple[tuple[int, ...] | None, str, bool]:
    """How to store a TIFF series with tifffile's ``axes`` as OME-Zarr (order t, c, z, y, x).

    Returns the permutation of the file's axes (None when they cannot be mapped: then they are
    stored as they are, with default names), the axes in stored order, and whether the image is
    RGB(A): 3 or 4 samples per pixel (``S``, contiguous or planar) of a ``colour`` image
    (photometric RGB) and neither ``C`` nor ``T`` (napari shows RGB with Z, not with time or
    channels). Other samples become the channel axis.
    """
    axes = axes.upper()
    rgb = False
    if "S" in axes:
        samples = shape[axes.index("S")]
        if colour and samples in (3, 4) and "C" not in axes and "T" not in axes:
            rgb = True
        elif "C" not in axes:
            axes = axes.replace("S", "C")
        else:
            return None, axes, False
    spatial = axes.replace("S", "") if rgb else axes
    if (
        not set(spatial) <= set("TCZYX")
        or len(set(spatial)) != len(spatial)
        or not {"Y", "X"} <= set(spatial)
    ):
        return None, axes, False
    canonical = "".join(a for a in "TCZYX" if a in spatial) + ("S" if rgb else "")
    return tuple(axes.index(a) for a in canonical), canonical, rgb


class AxisOrderView:
    """A lazy view of an array with its axes permuted: ``view[key]`` reads ``array`` in its own
    order and transposes only the block read."""

    def __init__(self, array: Any, order: tuple[int, ...]) -> None:
        self.array = array
        self.order = order
        self.shape = tuple(int(array.shape[axis]) for axis in order)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        starts, stops, squeeze = basic_index(key, self.shape)
        source_key: list[slice] = [slice(None)] * self.ndim
        for axis, (start, stop) in enumerate(zip(starts, stops, strict=True)):
            source_key[self.order[axis]] = slice(start, stop)
        block = np.asarray(self.array[tuple(source_key)])
        block = np.transpose(block, self.order)
        return np.ascontiguousarray(block.squeeze(axis=tuple(squeeze)) if squeeze else block)


#: Largest compressed strip or tile decoded (each is decoded whole, several at once): a TIFF
#: saved as one compressed strip would otherwise be decoded whole for every region.
MAX_SEGMENT_BYTES = 256 << 20


def _check_segment_size(path: Path, page: Any) -> None:
    """Refuse a TIFF whose compressed strips or tiles are too large to decode one at a time."""
    if page.is_tiled:
        rows, width = page.tilelength, page.tilewidth
    else:
        rows, width = min(page.rowsperstrip, page.imagelength), page.imagewidth
    samples = page.samplesperpixel if page.planarconfig == 1 else 1
    segment = rows * width * samples * np.dtype(page.dtype).itemsize
    if segment > MAX_SEGMENT_BYTES:
        kind = "tile" if page.is_tiled else "strip"
        msg = (
            f"{path}: each compressed {kind} holds {segment / 2**20:,.0f} MiB of pixels, and "
            f"converting decodes whole {kind}s (at most {MAX_SEGMENT_BYTES >> 20} MiB); save "
            "the image tiled (e.g. tifffile.imwrite(..., tile=(512, 512))) or uncompressed"
        )
        raise SourceError(msg)


def _contiguous_file_array(path: Path, tiff: Any, series: Any) -> ContiguousFileArray | None:
    """Uncompressed, contiguous image data read with positioned reads, else None.

    A region then reads exactly its own bytes. Through the zarr interface each region of a
    stripped file would decode every full-width strip it touches: tens of times the file on wide
    images, and strips held in memory. (A memory map would be as fast, but every page it touches,
    and the pages the kernel maps around them, count in the converter's resident memory.)
    """
    if series.dataoffset is None:
        return None
    dtype = np.dtype(series.dtype).newbyteorder(tiff.byteorder)
    needed = series.dataoffset + math.prod(series.shape) * dtype.itemsize
    if path.stat().st_size < needed:
        return None  # truncated: the zarr interface reports it on the region that is missing
    return ContiguousFileArray(path, series.dataoffset, tuple(series.shape), dtype)


class _PositionedReads:
    """A file opened lazily for ``preadv`` (re-opened after pickling, e.g. in a dask worker)."""

    def __init__(self, path: Path) -> None:
        self.filename = str(path)
        self._fd: int | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fd"], state["_lock"] = None, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _descriptor(self) -> int:
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.filename, os.O_RDONLY)
            return self._fd

    def read_into(self, buffer: memoryview, offset: int) -> None:
        """Fill ``buffer`` from ``offset``, or raise OSError if the file ends first."""
        if os.preadv(self._descriptor(), [buffer], offset) != len(buffer):
            self._truncated()

    def read_runs(self, buffer: memoryview, offsets: list[int], run_bytes: int) -> None:
        """Fill ``buffer`` with runs of ``run_bytes`` read from each of ``offsets`` in turn."""
        descriptor, preadv = self._descriptor(), os.preadv
        for position, offset in zip(range(0, len(buffer), run_bytes), offsets, strict=True):
            if preadv(descriptor, [buffer[position : position + run_bytes]], offset) != run_bytes:
                self._truncated()

    def _truncated(self) -> None:
        msg = f"{self.filename}: the file ends before the image data does (truncated?)"
        raise OSError(msg)

    def close(self) -> None:
        """Close the file (it is opened again on the next read)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class ContiguousFileArray(_PositionedReads):
    """A C-ordered array stored contiguously in a file, read region by region with ``preadv``.

    Supports the indexing the converter uses: integers and unit-step slices. Each read makes one
    system call per contiguous run of bytes and copies nothing twice; no page stays mapped.
    """

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        super().__init__(path)
        self.offset = offset
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.ndim = len(shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        starts, stops, squeeze = basic_index(key, self.shape)
        extents = [b - a for a, b in zip(starts, stops, strict=True)]
        out = np.empty(extents, dtype=self.dtype)
        if out.size:
            self._read_into(out, starts, extents)
        return out.squeeze(axis=tuple(squeeze)) if squeeze else out

    def _read_into(self, out: np.ndarray, starts: list[int], extents: list[int]) -> None:
        # Trailing axes read whole merge with the axis before them into one contiguous run.
        run_axis = self.ndim - 1
        while run_axis > 0 and extents[run_axis] == self.shape[run_axis]:
            run_axis -= 1
        itemsize = self.dtype.itemsize
        strides = [itemsize * math.prod(self.shape[axis + 1 :]) for axis in range(self.ndim)]
        run_bytes = extents[run_axis] * strides[run_axis]
        # The file offset of every run, in C order, computed at once (a 16 MB region of a wide
        # stripped image is thousands of runs: a Python loop per run cost more than its read).
        offsets = np.full((), self.offset + starts[run_axis] * strides[run_axis], dtype=np.int64)
        for axis in range(run_axis):
            positions = (starts[axis] + np.arange(extents[axis], dtype=np.int64)) * strides[axis]
            offsets = np.add.outer(offsets, positions)
        self.read_runs(
            memoryview(out.reshape(-1).view(np.uint8)), offsets.reshape(-1).tolist(), run_bytes
        )


def _uncompressed_tiles(path: Path, tiff: Any, series: Any) -> TiledFileArray | None:
    """A single-page, uncompressed, tiled image read tile by tile with ``preadv``, else None."""
    pages = series.pages
    if len(pages) != 1 or pages[0] is None:
        return None
    page = pages[0]
    if not (
        page.is_tiled and page.compression == 1 and page.imagedepth == 1 and page.predictor == 1
    ):
        return None
    samples = page.samplesperpixel
    if samples > 1 and page.planarconfig != 1:
        return None
    dtype = np.dtype(series.dtype).newbyteorder(tiff.byteorder)
    shape = tuple(series.shape)
    if shape not in (
        (page.imagelength, page.imagewidth),
        (page.imagelength, page.imagewidth, samples),
    ):
        return None
    tile = (page.tilelength, page.tilewidth)
    tile_bytes = tile[0] * tile[1] * samples * dtype.itemsize
    if page.bitspersample != dtype.itemsize * 8 or any(
        n != tile_bytes for n in page.databytecounts
    ):
        return None
    if path.stat().st_size < max(page.dataoffsets) + tile_bytes:
        return None  # truncated: the zarr interface reports it on the region that is missing
    return TiledFileArray(path, tuple(page.dataoffsets), shape, tile, samples, dtype)


class TiledFileArray(_PositionedReads):
    """An uncompressed tiled image (Y, X[, samples]) read tile by tile with ``preadv``.

    Reads bypass zarr's event loop (which the writer needs) and copy each tile's overlap once.
    """

    def __init__(
        self,
        path: Path,
        offsets: tuple[int, ...],
        shape: tuple[int, ...],
        tile: tuple[int, int],
        samples: int,
        dtype: np.dtype,
    ) -> None:
        super().__init__(path)
        self.offsets = offsets
        self.shape = shape
        self.tile = tile
        self.samples = samples
        self.dtype = np.dtype(dtype)
        self.ndim = len(shape)
        self.tiles_across = math.ceil(shape[1] / tile[1])

    def __getitem__(self, key: Any) -> np.ndarray:
        starts, stops, squeeze = basic_index(key, self.shape)
        (y0, x0), (y1, x1) = starts[:2], stops[:2]
        out = np.empty((y1 - y0, x1 - x0, self.samples), dtype=self.dtype)
        tile_y, tile_x = self.tile
        buffer = np.empty((tile_y, tile_x, self.samples), dtype=self.dtype)
        view = memoryview(buffer.reshape(-1).view(np.uint8))
        for row in range(y0 // tile_y, -(-y1 // tile_y) if y1 > y0 else y0 // tile_y):
            for column in range(x0 // tile_x, -(-x1 // tile_x) if x1 > x0 else x0 // tile_x):
                self.read_into(view, self.offsets[row * self.tiles_across + column])
                top, left = row * tile_y, column * tile_x
                ys = slice(max(y0, top), min(y1, top + tile_y))
                xs = slice(max(x0, left), min(x1, left + tile_x))
                out[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = buffer[
                    ys.start - top : ys.stop - top, xs.start - left : xs.stop - left
                ]
        out = out[..., 0] if self.ndim == 2 else out[..., starts[2] : stops[2]]
        return out.squeeze(axis=tuple(squeeze)) if squeeze else out
