"""Calibration and channel display metadata of TIFF files: OME-TIFF and ImageJ/Fiji.

What the converter carries into the OME-Zarr: the physical size of a pixel along X, Y and Z, the
frame interval along T (each with its unit), and channel names and colours. A size that cannot be
used (not finite, zero or negative) is ignored with a warning naming the file and the axis; the
axis then keeps scale 1. :func:`tiff_calibration` reads it from a file; :func:`calibration_options`
turns it into the converter's options for the axes as stored.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..ome_ngff import SPACE_UNITS, TIME_UNITS
from .axes import StoredAxes

#: Unit spellings of OME-XML, ImageJ and tifffile, as OME-NGFF names them.
UNIT_NAMES = {
    "µm": "micrometer",
    "\u03bcm": "micrometer",
    "um": "micrometer",
    "micron": "micrometer",
    "microns": "micrometer",
    "nm": "nanometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "Å": "angstrom",
    "inch": "inch",
    "in": "inch",
    "s": "second",
    "sec": "second",
    "ms": "millisecond",
    "msec": "millisecond",
    "us": "microsecond",
    "µs": "microsecond",
    "usec": "microsecond",
    "min": "minute",
    "h": "hour",
    "hr": "hour",
}


class SourceWarning(UserWarning):
    """Metadata of a source that is ignored (the conversion goes on without it)."""


@dataclass
class Calibration:
    """Physical size and unit per axis letter (X, Y, Z, T), and the C axis' names and colours."""

    sizes: dict[str, tuple[float, str | None]] = field(default_factory=dict)
    channel_names: list[str] = field(default_factory=list)
    channel_colors: list[str] = field(default_factory=list)


def ome_unit(text: Any) -> str | None:
    """The OME-NGFF name of a unit as OME-XML or ImageJ spell it (None when unknown).

    Parameters
    ----------
    text : object
        The unit as written (``µm``, ``micron``, ``\\u00B5m``, ``sec`` ...), or None.

    Returns
    -------
    str or None
        An OME-NGFF space or time unit name, or None for no or an unknown unit.
    """
    if text is None:
        return None
    text = str(text).strip().replace("\\u00B5", "µ").replace("\\u00b5", "µ")
    name = UNIT_NAMES.get(text, UNIT_NAMES.get(text.lower(), text.lower()))
    return name if name in SPACE_UNITS or name in TIME_UNITS else None


def usable_size(value: Any, *, where: str, axis: str, what: str) -> float | None:
    """``value`` as a float if it is a usable physical size, else None (with a warning).

    Parameters
    ----------
    value : object
        The size as the metadata holds it (a number or text), or None.
    where : str
        The file, named in the warning.
    axis : str
        The axis letter, named in the warning.
    what : str
        What the value is (``"physical size"``, ``"spacing"`` ...), named in the warning.

    Returns
    -------
    float or None
        The size, or None when absent or not a finite positive number.

    Warns
    -----
    SourceWarning
        When a value is present but cannot be used (the axis then keeps scale 1).
    """
    if value is None:
        return None
    try:
        size = float(value)
    except (TypeError, ValueError):
        size = math.nan
    if math.isfinite(size) and size > 0:
        return size
    msg = f"{where}: ignoring the {what} of axis {axis} ({value!r} is not a positive number); using 1"
    warnings.warn(msg, SourceWarning, stacklevel=2)
    return None


def ome_color(value: Any) -> str | None:
    """An OME ``Color`` (a signed 32-bit RGBA integer) as ``RRGGBB``, or None.

    Parameters
    ----------
    value : object
        The ``Color`` attribute as written (an integer or its text).

    Returns
    -------
    str or None
        Six hexadecimal digits (alpha dropped), or None when not an integer.
    """
    try:
        rgba = int(value) & 0xFFFFFFFF
    except (TypeError, ValueError):
        return None
    return f"{rgba >> 8:06X}"


def ome_calibration(pixels: dict[str, Any], *, where: str) -> Calibration:
    """Sizes, units, channel names and colours of an OME ``Pixels`` element.

    Parameters
    ----------
    pixels : dict
        The ``Pixels`` element as :func:`tifffile.xml2dict` gives it.
    where : str
        The file, named in warnings about sizes that cannot be used.

    Returns
    -------
    Calibration
        The usable sizes (micrometers and seconds by default), and channel names and colours
        when every channel has one.
    """
    calibration = Calibration()
    for axis in "XYZ":
        size = usable_size(
            pixels.get(f"PhysicalSize{axis}"), where=where, axis=axis, what="physical size"
        )
        if size is not None:
            unit = ome_unit(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
            calibration.sizes[axis] = (size, unit)
    interval = usable_size(
        pixels.get("TimeIncrement"), where=where, axis="T", what="time increment"
    )
    if interval is not None:
        calibration.sizes["T"] = (interval, ome_unit(pixels.get("TimeIncrementUnit", "s")))
    channels = pixels.get("Channel")
    channels = [channels] if isinstance(channels, dict) else channels
    if isinstance(channels, list) and all(isinstance(c, dict) for c in channels):
        names = [c.get("Name") for c in channels]
        if names and all(isinstance(n, str) for n in names):
            calibration.channel_names = [str(n) for n in names]
        colors = [ome_color(c.get("Color")) for c in channels]
        if colors and all(colors):
            calibration.channel_colors = [str(c) for c in colors]
    return calibration


def imagej_calibration(tiff: Any, page: Any, *, where: str) -> Calibration:
    """Sizes and units of an ImageJ/Fiji TIFF, read as ImageJ does.

    The pixel width and height are the inverse of the XResolution and YResolution tags, in the
    description's ``unit`` (``yunit``, ``zunit`` where given); the Z step is ``spacing``; the
    frame interval ``finterval`` in ``tunit`` (seconds by default). Without a unit (or with
    ImageJ's ``pixel``) the file is uncalibrated. Channel colours come from the LUTs of a
    composite image.

    Parameters
    ----------
    tiff : tifffile.TiffFile
        The file, opened (its ``imagej_metadata``).
    page : tifffile.TiffPage
        The series' key page (its resolution tags).
    where : str
        The file, named in warnings about sizes that cannot be used.

    Returns
    -------
    Calibration
        The usable sizes and units, and the LUT colours.
    """
    metadata = tiff.imagej_metadata or {}
    calibration = Calibration()
    unit = ome_unit(metadata.get("unit"))
    for axis, tag in (("X", "XResolution"), ("Y", "YResolution")):
        axis_unit = ome_unit(metadata.get(f"{axis.lower()}unit")) or unit
        resolution = page.tags.get(tag)
        if axis_unit is None or resolution is None:
            continue
        numerator, denominator = resolution.value
        pixel = denominator / numerator if numerator else math.inf
        size = usable_size(pixel, where=where, axis=axis, what="pixel size (resolution tag)")
        if size is not None:
            calibration.sizes[axis] = (size, axis_unit)
    z_unit = ome_unit(metadata.get("zunit")) or unit
    spacing = usable_size(metadata.get("spacing"), where=where, axis="Z", what="spacing")
    if spacing is not None and z_unit is not None:
        calibration.sizes["Z"] = (spacing, z_unit)
    interval = usable_size(metadata.get("finterval"), where=where, axis="T", what="finterval")
    if interval is not None:
        calibration.sizes["T"] = (interval, ome_unit(metadata.get("tunit", "s")) or "second")
    luts = metadata.get("LUTs")
    if isinstance(luts, list) and luts:
        colors = [_lut_color(lut) for lut in luts]
        if all(colors):
            calibration.channel_colors = [str(c) for c in colors]
    return calibration


def _lut_color(lut: Any) -> str | None:
    """The brightest colour of an ImageJ LUT (3 x 256 values), as ``RRGGBB``."""
    try:
        red, green, blue = (int(lut[band][-1]) for band in range(3))
    except (TypeError, ValueError, IndexError):
        return None
    return f"{red:02X}{green:02X}{blue:02X}"


def tiff_calibration(path: Path, tiff: Any, series: Any, series_index: int) -> Calibration:
    """The calibration an OME-TIFF's XML or an ImageJ TIFF's description holds (else none).

    Parameters
    ----------
    path : Path
        The file (named in warnings about sizes that cannot be used).
    tiff : tifffile.TiffFile
        The file, opened.
    series : tifffile.TiffPageSeries
        The series converted.
    series_index : int
        Its index (an OME-TIFF's ``Image`` element of the same index describes it).

    Returns
    -------
    Calibration
        What the metadata holds; empty for a plain TIFF or unreadable OME-XML.
    """
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


def calibration_options(calibration: Calibration, stored: StoredAxes) -> dict[str, Any]:
    """Scale, units, channel names and colours per stored axis (the colour samples left out).

    Parameters
    ----------
    calibration : Calibration
        What the file's metadata holds.
    stored : StoredAxes
        How the file's axes are stored (see :func:`~.axes.ome_axes`).

    Returns
    -------
    dict
        ``scale`` and ``units`` per stored axis, and ``channel_names`` / ``colors`` where known
        (names or colours of another length than C's are ignored).
    """
    names = stored.names[:-1] if stored.rgb else stored.names
    scale, units = [], []
    for name in names:
        size, unit = calibration.sizes.get(name.upper(), (1.0, None))
        scale.append(size)
        units.append(unit)
    options: dict[str, Any] = {"scale": tuple(scale), "units": tuple(units)}
    if stored.folded:
        options.update(_folded_channel_options(calibration, stored))
    elif "c" in names:
        if calibration.channel_names:
            options["channel_names"] = tuple(calibration.channel_names)
        if calibration.channel_colors:
            options["colors"] = tuple(calibration.channel_colors)
    return options


def _folded_channel_options(calibration: Calibration, stored: StoredAxes) -> dict[str, Any]:
    """Channel names of folded axes, and C's colours repeated over what is folded after C."""
    options: dict[str, Any] = {"channel_names": tuple(_folded_labels(calibration, stored))}
    colors = calibration.channel_colors
    if colors and "C" in stored.folded:
        channels = math.prod(stored.fold_shape)
        repeat = channels // len(colors)
        if len(colors) * repeat == channels:
            options["colors"] = tuple(c for c in colors for _ in range(repeat))
    return options


def _folded_labels(calibration: Calibration, stored: StoredAxes) -> list[str]:
    """Channel names of folded axes: e.g. ``DAPI lifetime 3`` (C's names where known)."""
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
