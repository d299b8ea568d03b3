"""What a Zeiss CZI file's XML metadata says: pixel size, channel names and colours, scene names.

CZI stores the size of a pixel in metres (``Metadata/Scaling/Items/Distance[@Id]/Value``); channel
names in ``Information/Image/Dimensions/Channels`` and colours (``#AARRGGBB``) in the display
settings; scene names in ``Information/Image/Dimensions/S/Scenes``. Anything missing, unparsable
or out of range is left out (the axis keeps scale 1, the channel its default name), with a
:class:`~.tiff_metadata.SourceWarning` for a pixel size that cannot be used. Parsed with the
standard library's expat parser, which refuses entity expansion attacks (expat >= 2.4).
"""

from __future__ import annotations

import math
import re
import warnings
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field

from .tiff_metadata import SourceWarning

#: Largest XML metadata parsed (a hostile file could claim gigabytes); larger is ignored.
MAX_METADATA_CHARS = 64 << 20

_COLOR = re.compile(r"^#?(?:[0-9A-Fa-f]{2})?([0-9A-Fa-f]{6})$")


@dataclass
class CziCalibration:
    """The metadata of a CZI the converter carries into the OME-Zarr.

    Attributes
    ----------
    sizes : dict
        Pixel size in micrometer per axis letter (``"X"``, ``"Y"``, ``"Z"``), where known.
    channel_names : list of str
        One name per channel, in channel order (empty when the file names none).
    channel_colors : list of str or None
        ``RRGGBB`` per channel (None for a channel without a colour).
    scene_names : dict
        Scene names by scene index, where the file has them.
    """

    sizes: dict[str, float] = field(default_factory=dict)
    channel_names: list[str] = field(default_factory=list)
    channel_colors: list[str | None] = field(default_factory=list)
    scene_names: dict[int, str] = field(default_factory=dict)


def parse_czi_metadata(xml: str, *, where: str, channels: int) -> CziCalibration:
    """Parse a CZI's XML metadata into a :class:`CziCalibration`.

    Parameters
    ----------
    xml : str
        The file's raw XML metadata (``CziReader.raw_metadata``).
    where : str
        The file, named in warnings.
    channels : int
        The number of channels the image has (names and colours of another count are dropped).

    Returns
    -------
    CziCalibration
        What could be read; empty when the XML is missing, too large or malformed.
    """
    if not xml or len(xml) > MAX_METADATA_CHARS:
        return CziCalibration()
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as error:
        warnings.warn(
            f"{where}: the CZI's XML metadata cannot be parsed ({error}); pixel size and "
            "channel names are not carried",
            SourceWarning,
            stacklevel=2,
        )
        return CziCalibration()
    metadata = root.find("Metadata")
    if metadata is None:
        return CziCalibration()
    return CziCalibration(
        sizes=_pixel_sizes(metadata, where),
        channel_names=_channel_names(metadata, channels),
        channel_colors=_channel_colors(metadata, channels),
        scene_names=_scene_names(metadata),
    )


def _pixel_sizes(metadata: ElementTree.Element, where: str) -> dict[str, float]:
    """Pixel size in micrometer along X, Y and Z (metres in the file); unusable ones warned."""
    sizes: dict[str, float] = {}
    for distance in metadata.findall("Scaling/Items/Distance"):
        axis, text = distance.get("Id"), distance.findtext("Value")
        if axis not in ("X", "Y", "Z") or text is None:
            continue
        try:
            metres = float(text)
        except ValueError:
            metres = math.nan
        if metres == 0:
            continue  # ZEN (and pylibCZIrw's writer) write 0 for "not calibrated"
        micrometres = metres * 1e6
        if not (math.isfinite(micrometres) and micrometres > 0):
            warnings.warn(
                f"{where}: the CZI's pixel size along {axis} ({text!r} m) is not a positive "
                f"number; {axis} keeps scale 1",
                SourceWarning,
                stacklevel=3,
            )
            continue
        sizes[axis] = micrometres
    return sizes


def _channel_names(metadata: ElementTree.Element, channels: int) -> list[str]:
    """Channel names (``Name``, else ``Id``) in file order, if there is one per channel."""
    found = metadata.findall("Information/Image/Dimensions/Channels/Channel")
    names = [(c.get("Name") or c.get("Id") or "").strip() for c in found]
    if len(names) != channels or not all(names):
        return []
    return names


def _channel_colors(metadata: ElementTree.Element, channels: int) -> list[str | None]:
    """``RRGGBB`` per channel from the display settings (else the image's channel list)."""
    for place in (
        "DisplaySetting/Channels/Channel",
        "Information/Image/Dimensions/Channels/Channel",
    ):
        found = metadata.findall(place)
        if len(found) == channels:
            colors = [_color(channel.findtext("Color")) for channel in found]
            if any(colors):
                return colors
    return []


def _color(text: str | None) -> str | None:
    """``#AARRGGBB`` or ``#RRGGBB`` as ``RRGGBB`` (alpha dropped), or None."""
    match = _COLOR.match((text or "").strip())
    return match.group(1).upper() if match else None


def _scene_names(metadata: ElementTree.Element) -> dict[int, str]:
    """Scene names by their index, where the file has them."""
    names: dict[int, str] = {}
    for scene in metadata.findall("Information/Image/Dimensions/S/Scenes/Scene"):
        index, name = scene.get("Index"), (scene.get("Name") or "").strip()
        if index is not None and index.isdigit() and name:
            names[int(index)] = name
    return names
