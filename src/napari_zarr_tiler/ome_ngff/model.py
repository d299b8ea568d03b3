"""The OME-Zarr metadata model: its records, units and names, and the checks every version shares."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import StoreReadError

#: Units the OME-NGFF specification allows on space and time axes.
SPACE_UNITS = frozenset(
    [
        "angstrom",
        "attometer",
        "centimeter",
        "decimeter",
        "exameter",
        "femtometer",
        "foot",
        "gigameter",
        "hectometer",
        "inch",
        "kilometer",
        "megameter",
        "meter",
        "micrometer",
        "mile",
        "millimeter",
        "nanometer",
        "parsec",
        "petameter",
        "picometer",
        "terameter",
        "yard",
        "yoctometer",
        "yottameter",
        "zeptometer",
        "zettameter",
    ]
)


TIME_UNITS = frozenset(
    [
        "attosecond",
        "centisecond",
        "day",
        "decisecond",
        "exasecond",
        "femtosecond",
        "gigasecond",
        "hectosecond",
        "hour",
        "kilosecond",
        "megasecond",
        "microsecond",
        "millisecond",
        "minute",
        "nanosecond",
        "petasecond",
        "picosecond",
        "second",
        "terasecond",
        "yoctosecond",
        "yottasecond",
        "zeptosecond",
        "zettasecond",
    ]
)


#: Attributes of our own beside the OME block (``{"rgb": true}`` marks an RGB(A) image).
TILER_ATTRIBUTE = "napari-zarr-tiler"


#: Characters no path component may hold: control characters (NUL among them) and the
#: backslash (a separator on Windows).
_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\\]")


#: A Windows drive ("C:"), which would make a component absolute there.
_DRIVE = re.compile(r"^[A-Za-z]:")


DEFAULT_AXES = ("t", "c", "z", "y", "x")


#: The newest OME-Zarr version whose rules this reader knows; newer ones are read with its rules.
NEWEST_KNOWN_VERSION = (0, 6)


#: Major and minor number of a version as writers spell it ("0.6", "0.6.dev3", "0.6rc0", "0.6-dev2").
VERSION_NUMBERS = re.compile(r"^\s*(\d{1,4})\.(\d{1,4})(?!\d)")


#: Nesting depth of ``sequence`` transformations read at most.
MAX_SEQUENCE_DEPTH = 16


@dataclass(frozen=True)
class Axis:
    """One axis of an OME-Zarr image: its name, type (space, time, channel) and unit."""

    name: str
    type: str | None = None
    unit: str | None = None


@dataclass(frozen=True)
class Channel:
    """Display hints of one channel from the ``omero`` block."""

    label: str | None = None
    color: str | None = None  # "#rrggbb"
    window: tuple[float, float] | None = None
    visible: bool = True


@dataclass
class Multiscale:
    """One multiscale image: its axes, level paths and the transform of every level."""

    version: str
    axes: list[Axis]
    paths: list[str]
    scales: list[tuple[float, ...]]
    translations: list[tuple[float, ...]]
    name: str | None = None
    channels: list[Channel] = field(default_factory=list)
    #: What the reader could not honour (a newer version, a transformation napari cannot show).
    notices: list[str] = field(default_factory=list)

    @property
    def channel_axis(self) -> int | None:
        """Index of the channel axis, or None when the image has none."""
        for index, axis in enumerate(self.axes):
            if axis.type == "channel" or (axis.type is None and axis.name.lower() == "c"):
                return index
        return None


@dataclass(frozen=True)
class Well:
    """One well of an HCS plate: its path in the plate and its row and column indices."""

    path: str
    row: int
    column: int


@dataclass(frozen=True)
class Plate:
    """An HCS plate: row and column names, and the wells it holds (not every position has one)."""

    rows: tuple[str, ...]
    columns: tuple[str, ...]
    wells: tuple[Well, ...]
    name: str | None = None


@dataclass(frozen=True)
class LabelHints:
    """Display hints of a label image (``image-label``): colours and properties per label value."""

    #: RGBA in 0-1 per label value.
    colors: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)
    #: Property columns, the label values in the column ``"index"`` (napari's ``features``).
    properties: dict[str, list[Any]] = field(default_factory=dict)


def ome_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Return the OME block of a node's attributes, whichever version wrote it.

    OME-Zarr 0.5 nests everything under ``"ome"``; 0.4 and earlier keep ``multiscales``,
    ``omero``, ``labels`` and ``image-label`` at the top level of ``.zattrs``.
    """
    ome = attributes.get("ome")
    if isinstance(ome, Mapping):
        return dict(ome)
    keys = (
        "multiscales",
        "omero",
        "labels",
        "image-label",
        "bioformats2raw.layout",
        "plate",
        "well",
    )
    return {key: attributes[key] for key in keys if key in attributes}


def safe_member_path(path: object, *, where: str) -> str:
    """Check that a path named in metadata stays inside the store, and return it.

    Parameters
    ----------
    path : object
        The path as found in the metadata (a dataset path or a label name).
    where : str
        The node whose metadata names it, for the error message.

    Returns
    -------
    str
        ``path`` unchanged. Any name made of plain components is accepted: spaces, dots and
        non-ASCII letters included (label names such as ``"cell nuclei"``).

    Raises
    ------
    StoreReadError
        When the path could lead elsewhere: a component that is empty (absolute paths, ``//``,
        a trailing ``/``), ``.`` or ``..``, holds a backslash or a control character, or starts
        with a drive letter.
    """
    if not isinstance(path, str) or not path:
        msg = f"{where}: metadata names an invalid member path {path!r}"
        raise StoreReadError(msg)
    segments = path.split("/")
    if any(
        segment in {"", ".", ".."} or _UNSAFE_CHARACTERS.search(segment) or _DRIVE.match(segment)
        for segment in segments
    ):
        msg = f"{where}: metadata names {path!r}, which is not a plain path inside the store; refused"
        raise StoreReadError(msg)
    return path


def valid_unit(axis: Axis) -> str | None:
    """Return the axis unit when the OME-NGFF specification allows it, else None."""
    if axis.unit in SPACE_UNITS or axis.unit in TIME_UNITS:
        return axis.unit
    return None
