"""Calibration and channel display metadata of TIFF files: OME-TIFF and ImageJ/Fiji.

What the converter carries into the OME-Zarr: the physical size of a pixel along X, Y and Z, the
frame interval along T (each with its unit), and channel names and colours. A size that cannot be
used (not finite, zero or negative) is ignored with a warning naming the file and the axis; the
axis then keeps scale 1.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

from ..ome_ngff import SPACE_UNITS, TIME_UNITS

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
    """The OME-NGFF name of a unit as OME-XML or ImageJ spell it (None when unknown)."""
    if text is None:
        return None
    text = str(text).strip().replace("\\u00B5", "µ").replace("\\u00b5", "µ")
    name = UNIT_NAMES.get(text, UNIT_NAMES.get(text.lower(), text.lower()))
    return name if name in SPACE_UNITS or name in TIME_UNITS else None


def usable_size(value: Any, *, where: str, axis: str, what: str) -> float | None:
    """``value`` as a float if it is a usable physical size, else None (with a warning)."""
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
    """An OME ``Color`` (a signed 32-bit RGBA integer) as ``RRGGBB``, or None."""
    try:
        rgba = int(value) & 0xFFFFFFFF
    except (TypeError, ValueError):
        return None
    return f"{rgba >> 8:06X}"


def ome_calibration(pixels: dict[str, Any], *, where: str) -> Calibration:
    """Sizes, units, channel names and colours of an OME ``Pixels`` element (tifffile.xml2dict)."""
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
