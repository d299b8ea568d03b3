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
import re
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from ..basic_indexing import basic_index
from ..errors import SourceError, StoreReadError
from ..ome_ngff import ome_attributes, parse_multiscale, valid_unit
from ..reader.layers import member_array, open_zarr_node
from ..zarr_names import METADATA_FILES
from .tiff_metadata import Calibration, imagej_calibration, ome_calibration

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2", ".svs", ".ndpi", ".scn", ".qptiff")
SAMPLES = ("slide_uint8", "slide_uint16")


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
        if path.is_dir() or path.name in METADATA_FILES:
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
        check_local(self.path)
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


#: ``scheme://`` (http, https, s3, gs, ftp, file ...): a URL, not a local path.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def check_local(path: str | os.PathLike[str], *, role: str = "source") -> None:
    """Refuse a URL where a local path is needed (URLs are not supported yet).

    Raises
    ------
    SourceError
        When ``path`` is a URL.
    """
    if _URL.match(os.fspath(path)):
        advice = (
            "download the data and give its local path"
            if role == "source"
            else "give a local folder"
        )
        msg = f"{os.fspath(path)}: URLs are not supported yet as the {role}; {advice}"
        raise SourceError(msg)


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


def _tiff_calibration(path: Path, tiff: Any, series: Any, series_index: int) -> Calibration:
    """The calibration an OME-TIFF's XML or an ImageJ TIFF's description holds (else none)."""
    import tifffile

    where = str(path)
    if tiff.is_ome:
        try:
            image = tifffile.xml2dict(tiff.ome_metadata)["OME"]["Image"]
            pixels = (image[series_index] if isinstance(image, list) else image)["Pixels"]
        except (KeyError, TypeError, ValueError, IndexError):
            return Calibration()
        return ome_calibration(pixels, where=where) if isinstance(pixels, dict) else Calibration()
    if tiff.is_imagej:
        return imagej_calibration(tiff, series.keyframe, where=where)
    return Calibration()


def _tiff_options(calibration: Calibration, stored: StoredAxes) -> dict[str, Any]:
    """Scale, units, channel names and colours per stored axis (the colour samples left out)."""
    names = stored.names[:-1] if stored.rgb else stored.names
    scale, units = [], []
    for name in names:
        size, unit = calibration.sizes.get(name.upper(), (1.0, None))
        scale.append(size)
        units.append(unit)
    options: dict[str, Any] = {"scale": tuple(scale), "units": tuple(units)}
    if stored.folded:
        labels = _folded_labels(calibration, stored)
        options["channel_names"] = tuple(labels)
        if calibration.channel_colors and "C" in stored.folded:
            repeat = math.prod(stored.fold_shape) // len(calibration.channel_colors)
            if len(calibration.channel_colors) * repeat == math.prod(stored.fold_shape):
                options["colors"] = tuple(
                    c for c in calibration.channel_colors for _ in range(repeat)
                )
        return options
    if "c" in names:  # names or colours of another length than C's are ignored
        if calibration.channel_names:
            options["channel_names"] = tuple(calibration.channel_names)
        if calibration.channel_colors:
            options["colors"] = tuple(calibration.channel_colors)
    return options


def _folded_labels(calibration: Calibration, stored: StoredAxes) -> list[str]:
    """Channel names of folded axes: e.g. ``DAPI lifetime 3`` (C's names where known)."""
    import itertools

    import tifffile

    words = tifffile.TIFF.AXES_NAMES
    parts = []
    for letter, size in zip(stored.folded, stored.fold_shape, strict=True):
        if letter == "C" and len(calibration.channel_names) == size:
            parts.append(list(calibration.channel_names))
        else:
            word = words.get(letter, letter)
            parts.append([f"{word} {i}" for i in range(size)])
    return [" ".join(combination) for combination in itertools.product(*parts)]


#: What tifffile logs when a file's structure is cut short or damaged; it then goes on with
#: what it could parse (fewer pages, another series layout), which would convert silently.
_DAMAGE_SIGNS = (
    "invalid page offset",
    "invalid offset",
    "corrupt",
    "truncat",
    "invalid tag",
    "out of range",
)


class _TiffDamageLog(logging.Handler):
    """Collect tifffile's warnings while a file is opened (those about damage apart)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self.damage: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().strip().splitlines()[0] if record.getMessage() else ""
        self.messages.append(message)
        if any(sign in message.lower() for sign in _DAMAGE_SIGNS):
            self.damage.append(message)


def _parse_tiff(path: Path) -> tuple[Any, list[Any]]:
    """Open a TIFF and parse its series; refuse a damaged one with tifffile's own reason."""
    import tifffile

    log = _TiffDamageLog()
    tifffile_log = logging.getLogger("tifffile")
    tifffile_log.addHandler(log)
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
        tifffile_log.removeHandler(log)
    if log.damage or not series_list:
        tiff.close()
        reason = (log.damage or log.messages or ["tifffile found no image in it"])[0]
        msg = f"{path}: the TIFF is truncated or corrupt ({reason}); not converted"
        raise SourceError(msg)
    return tiff, series_list


def _check_segments_inside(path: Path, series: Any) -> None:
    """Refuse a series whose strips or tiles lie (partly) past the end of the file.

    tifffile reads what is there; a strip past the end would come out short or as zeros.
    """
    size = path.stat().st_size
    if series.dataoffset is not None:  # contiguous: one run of bytes
        nbytes = series.size * np.dtype(series.dtype).itemsize
        if series.dataoffset + nbytes > size:
            msg = (
                f"{path}: the TIFF is truncated or corrupt (its image data spans bytes "
                f"{series.dataoffset:,} to {series.dataoffset + nbytes:,}, past the end of the "
                f"file at {size:,}); not converted"
            )
            raise SourceError(msg)
        return
    for page_index, page in enumerate(series.pages):
        if page is None:
            continue
        ends = np.asarray(page.dataoffsets, dtype=np.uint64) + np.asarray(
            page.databytecounts, dtype=np.uint64
        )
        present = (np.asarray(page.dataoffsets) > 0) & (np.asarray(page.databytecounts) > 0)
        beyond = np.flatnonzero(present & (ends > size))
        if beyond.size:
            kind = "tile" if page.is_tiled else "strip"
            first = int(beyond[0])
            msg = (
                f"{path}: the TIFF is truncated or corrupt ({beyond.size:,} {kind}(s) of page "
                f"{page_index} point past the end of the file: {kind} {first} at offset "
                f"{page.dataoffsets[first]:,} + {page.databytecounts[first]:,} bytes, file "
                f"size {size:,}); not converted"
            )
            raise SourceError(msg)


def _tiff_array(path: Path, tiff: Any, series: Any) -> tuple[Any, list[Any]]:
    """Level 0 of a series, read lazily, and the objects to close with it."""
    array = _contiguous_file_array(path, tiff, series) or _uncompressed_tiles(path, tiff, series)
    if array is not None:
        return array, [array]
    # Compressed or scattered data: tifffile's zarr interface decodes the tiles or strips a
    # region needs, lazily; each is decoded whole, so each must be of a sane size.
    _check_segment_size(path, series.keyframe)
    store = series.aszarr(level=0)
    return zarr.open(store, mode="r"), [store]


def _open_tiff(path: Path, series_index: int = 0) -> OpenSource:
    import tifffile

    tiff, series_list = _parse_tiff(path)
    try:
        if not 0 <= series_index < len(series_list):
            available = ", ".join(f"{i} ({s.axes} {s.shape})" for i, s in enumerate(series_list))
            msg = f"{path}: no series {series_index}; the TIFF holds series {available}"
            raise SourceError(msg)
        series = series_list[series_index]
        _check_segments_inside(path, series)
        array, closers = _tiff_array(path, tiff, series)
        closers.append(tiff)
    except SourceError:
        tiff.close()
        raise
    except (tifffile.TiffFileError, OSError, ValueError, KeyError, IndexError) as error:
        tiff.close()
        msg = f"{path}: cannot read the TIFF's image data ({error})"
        raise SourceError(msg) from error
    axes = series.axes.upper()
    read_as = (
        "read directly (uncompressed)"
        if isinstance(array, _PositionedReads)
        else (f"read in blocks of {array.chunks}")
    )
    description = (
        f"{path.name}: {'OME-' if tiff.is_ome else ''}{'ImageJ ' if tiff.is_imagej else ''}"
        f"TIFF series {series_index} of {len(series_list)}, axes {axes}, {series.shape} "
        f"{series.dtype}, {len(series.levels)} level(s), {read_as}"
    )
    colour = series.keyframe.photometric == tifffile.PHOTOMETRIC.RGB
    stored = ome_axes(axes, tuple(array.shape), colour=colour)
    if stored.order != tuple(range(len(stored.order))) or stored.folded:
        channel = stored.names.index("c") if stored.folded else 0
        merge = (channel, len(stored.folded)) if stored.folded else None
        array = AxisOrderView(array, stored.order, merge)
        folded = f" ({' x '.join(stored.folded)} folded into channels)" if stored.folded else ""
        description += f", stored as {''.join(stored.names).upper()}{folded}"
    options: dict[str, Any] = {"name": path.name.split(".")[0], "rgb": stored.rgb}
    options["axes"] = stored.names[:-1] if stored.rgb else stored.names
    options.update(_tiff_options(_tiff_calibration(path, tiff, series, series_index), stored))
    return OpenSource(array, options, description, closers)


#: Axes tifffile names that OME-Zarr has no place for, with tifffile's word for each.
_PAGE_STACK_AXES = "IQ"


@dataclass(frozen=True)
class StoredAxes:
    """How a TIFF series with tifffile's axes is stored as OME-Zarr (order t, c, z, y, x).

    ``order`` permutes the file's axes into the stored order, in which the ``folded`` axes (C,
    then axes OME-Zarr has no name for, then samples) sit side by side at the channel position
    and are merged into one channel axis. ``names`` are the stored axis names (RGB samples last,
    as ``s``).
    """

    order: tuple[int, ...]
    names: tuple[str, ...]
    rgb: bool
    folded: tuple[str, ...] = ()
    fold_shape: tuple[int, ...] = ()


def ome_axes(axes: str, shape: tuple[int, ...], *, colour: bool = True) -> StoredAxes:
    """Map tifffile's axes of a series onto OME-Zarr's t, c, z, y, x without renaming any.

    T, C, Z, Y and X keep their meaning. Samples (S) make an RGB(A) image when there are 3 or
    4 of a ``colour`` (photometric RGB) image and neither C, T nor a folded axis (napari shows
    RGB with Z only); else they are channels. A page stack tifffile cannot classify (I, Q) fills
    Z, then T, while those are free (a plain multi-page TIFF is a Z stack). Every other axis
    (H lifetime, E lambda, A angle, P phase, R tile, ...) is folded into the channel axis after
    C, as OME-TIFF's ModuloAlongC does: e.g. C=2 by H=5 become 10 channels.
    """
    axes = axes.upper()
    roles: dict[int, str] = {}
    for index, letter in enumerate(axes):
        if letter in "TCZYX" and letter not in roles.values():
            roles[index] = letter
    for index in reversed(range(len(axes))):
        if index not in roles and axes[index] in _PAGE_STACK_AXES:
            free = next((slot for slot in "ZT" if slot not in roles.values()), None)
            if free is not None:
                roles[index] = free
    unknown = [i for i in range(len(axes)) if i not in roles and axes[i] != "S"]
    samples = [i for i in range(len(axes)) if axes[i] == "S"]
    rgb = bool(
        samples
        and len(samples) == 1
        and colour
        and shape[samples[0]] in (3, 4)
        and not unknown
        and not {"C", "T"} & set(roles.values())
    )
    channel_like = [i for i in range(len(axes)) if roles.get(i) == "C"] + unknown
    if not rgb:
        channel_like += samples
    spatial = {letter: index for index, letter in roles.items() if letter != "C"}
    order = [spatial[letter] for letter in "T" if letter in spatial]
    order += channel_like
    order += [spatial[letter] for letter in "ZYX" if letter in spatial]
    names = [name for name in "t" if "T" in spatial]
    names += ["c"] if channel_like else []
    names += [name for name in "zyx" if name.upper() in spatial]
    if rgb:
        order.append(samples[0])
        names.append("s")
    folded = tuple(axes[i] for i in channel_like) if len(channel_like) > 1 else ()
    fold_shape = tuple(shape[i] for i in channel_like) if folded else ()
    return StoredAxes(tuple(order), tuple(names), rgb, folded, fold_shape)


class AxisOrderView:
    """A lazy view of an array with its axes permuted (and some merged): ``view[key]`` reads
    ``array`` in its own order and transposes only the block read.

    ``merge = (start, count)`` merges the ``count`` permuted axes from ``start`` into one axis
    (C order: the last varies fastest); a read along it is split into runs along the last.
    """

    def __init__(
        self, array: Any, order: tuple[int, ...], merge: tuple[int, int] | None = None
    ) -> None:
        self.array = array
        self.order = order
        permuted = tuple(int(array.shape[axis]) for axis in order)
        self.merge = merge if merge is not None and merge[1] > 1 else None
        if self.merge is None:
            self.shape = permuted
        else:
            start, count = self.merge
            self._group = permuted[start : start + count]
            self.shape = (
                *permuted[:start],
                math.prod(self._group),
                *permuted[start + count :],
            )
        self._permuted = permuted
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        starts, stops, squeeze = basic_index(key, self.shape)
        if self.merge is None:
            block = self._read(list(zip(starts, stops, strict=True)))
        else:
            block = self._read_merged(starts, stops)
        return np.ascontiguousarray(block.squeeze(axis=tuple(squeeze)) if squeeze else block)

    def _read(self, ranges: list[tuple[int, int]]) -> np.ndarray:
        """Read ``ranges`` of the permuted axes; return the block in permuted order."""
        source_key: list[slice] = [slice(None)] * len(self.order)
        for axis, (start, stop) in enumerate(ranges):
            source_key[self.order[axis]] = slice(start, stop)
        return np.transpose(np.asarray(self.array[tuple(source_key)]), self.order)

    def _read_merged(self, starts: list[int], stops: list[int]) -> np.ndarray:
        assert self.merge is not None
        start, count = self.merge
        out = np.empty([b - a for a, b in zip(starts, stops, strict=True)], dtype=self.dtype)
        inner = self._group[-1]
        position = starts[start]
        while position < stops[start]:
            outer, first = divmod(position, inner)
            last = min(inner, first + stops[start] - position)
            indices = np.unravel_index(outer, self._group[:-1]) if count > 1 else ()
            group_ranges = [(int(i), int(i) + 1) for i in indices] + [(first, last)]
            ranges = [
                *zip(starts[:start], stops[:start], strict=True),
                *group_ranges,
                *zip(starts[start + 1 :], stops[start + 1 :], strict=True),
            ]
            block = self._read(ranges)
            merged_shape = (*block.shape[:start], last - first, *block.shape[start + count :])
            done = position - starts[start]
            target = [slice(None)] * out.ndim
            target[start] = slice(done, done + last - first)
            out[tuple(target)] = block.reshape(merged_shape)
            position += last - first
        return out


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
