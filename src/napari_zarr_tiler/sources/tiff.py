"""TIFF files as sources: any layout tifffile reads, checked for damage, read lazily by region.

Opening a TIFF parses its series (a file tifffile calls damaged is refused with tifffile's own
reason), checks that the chosen series' strips or tiles lie inside the file and can be decoded one
at a time, and reads level 0 with positioned reads when the data are uncompressed
(:mod:`.file_arrays`), else through tifffile's zarr interface. The file's axes are put in OME
order (:mod:`.axes`) and its calibration carried (:mod:`.tiff_metadata`). Nothing here imports
dask: converting a TIFF never pays for it.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from ..errors import SourceError
from .axes import AxisOrderView, StoredAxes, ome_axes
from .file_arrays import ContiguousFileArray, TiledFileArray, positioned_read_array
from .spec import OpenSource
from .tiff_metadata import calibration_options, tiff_calibration

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

#: Largest compressed strip or tile decoded (each is decoded whole, several at once): a TIFF
#: saved as one compressed strip would otherwise be decoded whole for every region.
MAX_SEGMENT_BYTES = 256 << 20


def open_tiff(path: Path, series_index: int = 0) -> OpenSource:
    """Open series ``series_index`` of a TIFF lazily, its axes in OME order.

    Parameters
    ----------
    path : Path
        The TIFF file (OME-TIFF, ImageJ, BigTIFF, tiled or stripped, any compression tifffile
        decodes).
    series_index : int
        The series to open.

    Returns
    -------
    OpenSource
        Level 0 read lazily (through an :class:`~.axes.AxisOrderView` when the file's axes are
        not in OME order), with name, axes, RGB, scale, units, channel names and colours; it
        holds the file open until closed.

    Raises
    ------
    SourceError
        When the file is not a readable TIFF, is truncated or corrupt, has no such series, or
        has compressed strips or tiles too large to decode one at a time.
    """
    import tifffile

    tiff, series_list = _parse_tiff(path)
    try:
        series = _choose_series(path, series_list, series_index)
        _check_segments_inside(path, series)
        array, closers = _level0(path, tiff, series)
    except SourceError:
        tiff.close()
        raise
    except (tifffile.TiffFileError, OSError, ValueError, KeyError, IndexError) as error:
        tiff.close()
        msg = f"{path}: cannot read the TIFF's image data ({error})"
        raise SourceError(msg) from error
    closers.append(tiff)
    description = _describe(path, tiff, series, array, f"{series_index} of {len(series_list)}")
    colour = series.keyframe.photometric == tifffile.PHOTOMETRIC.RGB
    stored = ome_axes(series.axes, tuple(array.shape), colour=colour)
    array, stored_as = _in_ome_order(array, stored)
    options: dict[str, Any] = {"name": path.name.split(".")[0], "rgb": stored.rgb}
    options["axes"] = stored.names[:-1] if stored.rgb else stored.names
    if stored.guessed_z:  # a plain page stack may be time or anything: never averaged by guess
        options["downsample_z"] = "never"
    options.update(calibration_options(tiff_calibration(path, tiff, series, series_index), stored))
    return OpenSource(
        array,
        options,
        description + stored_as,
        closers,
        single_file=not getattr(series, "is_multifile", False),
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


def _choose_series(path: Path, series_list: list[Any], series_index: int) -> Any:
    """Series ``series_index``, or a SourceError listing the series the file holds."""
    if not 0 <= series_index < len(series_list):
        available = ", ".join(f"{i} ({s.axes} {s.shape})" for i, s in enumerate(series_list))
        msg = f"{path}: no series {series_index}; the TIFF holds series {available}"
        raise SourceError(msg)
    return series_list[series_index]


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
        if page is not None:
            _check_page_segments_inside(path, page, page_index, size)


def _check_page_segments_inside(path: Path, page: Any, page_index: int, size: int) -> None:
    """Refuse a page with a strip or tile that ends past ``size``, naming the first."""
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


def _level0(path: Path, tiff: Any, series: Any) -> tuple[Any, list[Any]]:
    """Level 0 of a series, read lazily, and the objects to close with it."""
    array = positioned_read_array(path, tiff, series)
    if array is not None:
        return array, [array]
    # Compressed or scattered data: tifffile's zarr interface decodes the tiles or strips a
    # region needs, lazily; each is decoded whole, so each must be of a sane size.
    _check_segment_size(path, series.keyframe)
    store = series.aszarr(level=0)
    return zarr.open(store, mode="r"), [store]


def _describe(path: Path, tiff: Any, series: Any, array: Any, which: str) -> str:
    """One line: the file, its flavour, the series, its axes, shape and type, how it is read."""
    if isinstance(array, ContiguousFileArray | TiledFileArray):
        read_as = "read directly (uncompressed)"
    else:
        read_as = f"read in blocks of {array.chunks}"
    flavour = f"{'OME-' if tiff.is_ome else ''}{'ImageJ ' if tiff.is_imagej else ''}"
    return (
        f"{path.name}: {flavour}TIFF series {which}, axes {series.axes.upper()}, "
        f"{series.shape} {series.dtype}, {len(series.levels)} level(s), {read_as}"
    )


def _in_ome_order(array: Any, stored: StoredAxes) -> tuple[Any, str]:
    """``array`` viewed in the stored axis order (folded axes merged), and how it is stored."""
    if stored.order == tuple(range(len(stored.order))) and not stored.folded:
        return array, ""
    channel = stored.names.index("c") if stored.folded else 0
    merge = (channel, len(stored.folded)) if stored.folded else None
    folded = f" ({' x '.join(stored.folded)} folded into channels)" if stored.folded else ""
    view = AxisOrderView(array, stored.order, merge)
    return view, f", stored as {''.join(stored.names).upper()}{folded}"
