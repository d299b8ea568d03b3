"""The OME-Zarr (OME-NGFF 0.1 to 0.5) metadata model: parse what a store declares, build what we write.

Everything here works on plain JSON-like dictionaries and never touches array data, so it is cheap
to call and safe on untrusted input: every path a store's metadata names is checked to stay inside
the store (:func:`safe_member_path`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import StoreReadError

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
_DEFAULT_AXES = ("t", "c", "z", "y", "x")


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

    @property
    def channel_axis(self) -> int | None:
        """Index of the channel axis, or None when the image has none."""
        for index, axis in enumerate(self.axes):
            if axis.type == "channel" or (axis.type is None and axis.name.lower() == "c"):
                return index
        return None


def ome_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Return the OME block of a node's attributes, whichever version wrote it.

    OME-Zarr 0.5 nests everything under ``"ome"``; 0.4 and earlier keep ``multiscales``,
    ``omero``, ``labels`` and ``image-label`` at the top level of ``.zattrs``.
    """
    ome = attributes.get("ome")
    if isinstance(ome, Mapping):
        return dict(ome)
    keys = ("multiscales", "omero", "labels", "image-label", "bioformats2raw.layout")
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


def _as_float_tuple(values: object, ndim: int, *, what: str, where: str) -> tuple[float, ...]:
    if (
        not isinstance(values, Sequence)
        or isinstance(values, str)
        or len(values) != ndim
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        or not all(math.isfinite(v) for v in values)
    ):
        msg = f"{where}: {what} {values!r} is not a list of {ndim} finite numbers"
        raise StoreReadError(msg)
    return tuple(float(v) for v in values)


def _parse_transforms(
    transforms: object, ndim: int, *, where: str
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    scale = (1.0,) * ndim
    translation = (0.0,) * ndim
    if transforms is None:
        return scale, translation
    if not isinstance(transforms, Sequence):
        msg = f"{where}: coordinateTransformations must be a list"
        raise StoreReadError(msg)
    for transform in transforms:
        if not isinstance(transform, Mapping):
            continue
        kind = transform.get("type")
        if kind == "scale" and "scale" in transform:
            new_scale = _as_float_tuple(transform["scale"], ndim, what="scale", where=where)
            scale = tuple(a * b for a, b in zip(scale, new_scale, strict=True))
            translation = tuple(a * b for a, b in zip(translation, new_scale, strict=True))
        elif kind == "translation" and "translation" in transform:
            shift = _as_float_tuple(
                transform["translation"], ndim, what="translation", where=where
            )
            translation = tuple(a + b for a, b in zip(translation, shift, strict=True))
        elif kind in {"scale", "translation"}:
            msg = f"{where}: a {kind} transform given by path is not supported"
            raise StoreReadError(msg)
    return scale, translation


def _parse_axes(raw_axes: object, ndim: int | None, *, where: str) -> list[Axis]:
    if raw_axes is None:  # OME-NGFF 0.1/0.2: axes are implicitly the last of t, c, z, y, x
        if ndim is None:
            msg = f"{where}: multiscales has no axes and no level to infer them from"
            raise StoreReadError(msg)
        return [Axis(name) for name in _DEFAULT_AXES[-ndim:]]
    if not isinstance(raw_axes, Sequence) or isinstance(raw_axes, str):
        msg = f"{where}: 'axes' must be a list"
        raise StoreReadError(msg)
    axes = []
    for raw in raw_axes:
        if isinstance(raw, str):  # OME-NGFF 0.3
            axes.append(Axis(raw))
        elif isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
            unit = raw.get("unit")
            kind = raw.get("type")
            axes.append(
                Axis(
                    raw["name"],
                    kind if isinstance(kind, str) else None,
                    unit if isinstance(unit, str) else None,
                )
            )
        else:
            msg = f"{where}: axis {raw!r} has no name"
            raise StoreReadError(msg)
    return axes


def _parse_channels(omero: object) -> list[Channel]:
    if not isinstance(omero, Mapping) or not isinstance(omero.get("channels"), Sequence):
        return []
    channels = []
    for raw in omero["channels"]:
        if not isinstance(raw, Mapping):
            channels.append(Channel())
            continue
        label = raw.get("label")
        color = raw.get("color")
        if isinstance(color, str) and re.fullmatch(r"[0-9A-Fa-f]{6}", color):
            color = "#" + color.lower()
        else:
            color = None
        window = None
        raw_window = raw.get("window")
        if isinstance(raw_window, Mapping):
            start, end = raw_window.get("start"), raw_window.get("end")
            if (
                isinstance(start, int | float)
                and isinstance(end, int | float)
                and math.isfinite(start)
                and math.isfinite(end)
                and end > start
            ):
                window = (float(start), float(end))
        channels.append(
            Channel(
                label=label if isinstance(label, str) else None,
                color=color,
                window=window,
                visible=bool(raw.get("active", True)),
            )
        )
    return channels


def parse_multiscale(ome: Mapping[str, Any], *, where: str, ndim: int | None = None) -> Multiscale:
    """Parse the first multiscale image declared in an OME block.

    Parameters
    ----------
    ome : Mapping
        The OME block, as returned by :func:`ome_attributes`.
    where : str
        The node's path, for error messages.
    ndim : int, optional
        Number of dimensions of the first level, used when the metadata has no ``axes``.

    Returns
    -------
    Multiscale
        Axes, level paths, and for every level its scale and translation with the
        multiscale-level transforms applied after the dataset-level ones.

    Raises
    ------
    StoreReadError
        When the metadata is malformed or names a path outside the store.
    """
    multiscales = ome.get("multiscales")
    if not isinstance(multiscales, Sequence) or not multiscales:
        msg = f"{where}: 'multiscales' must be a non-empty list"
        raise StoreReadError(msg)
    first = multiscales[0]
    if not isinstance(first, Mapping):
        msg = f"{where}: 'multiscales[0]' must be an object"
        raise StoreReadError(msg)
    version = str(ome.get("version") or first.get("version") or "0.4")
    axes = _parse_axes(first.get("axes"), ndim, where=where)
    datasets = first.get("datasets")
    if not isinstance(datasets, Sequence) or not datasets:
        msg = f"{where}: multiscales lists no datasets"
        raise StoreReadError(msg)
    n_axes = len(axes)
    global_scale, global_translation = _parse_transforms(
        first.get("coordinateTransformations"), n_axes, where=where
    )
    paths, scales, translations = [], [], []
    for dataset in datasets:
        if not isinstance(dataset, Mapping):
            msg = f"{where}: a dataset entry is not an object"
            raise StoreReadError(msg)
        paths.append(safe_member_path(dataset.get("path"), where=where))
        scale, translation = _parse_transforms(
            dataset.get("coordinateTransformations"), n_axes, where=where
        )
        scales.append(tuple(g * s for g, s in zip(global_scale, scale, strict=True)))
        translations.append(
            tuple(
                g * t + gt
                for g, t, gt in zip(global_scale, translation, global_translation, strict=True)
            )
        )
    name = first.get("name")
    return Multiscale(
        version=version,
        axes=axes,
        paths=paths,
        scales=scales,
        translations=translations,
        name=name if isinstance(name, str) else None,
        channels=_parse_channels(ome.get("omero")),
    )


def valid_unit(axis: Axis) -> str | None:
    """Return the axis unit when the OME-NGFF specification allows it, else None."""
    if axis.unit in SPACE_UNITS or axis.unit in TIME_UNITS:
        return axis.unit
    return None


# --------------------------------------------------------------------------------------------
# Building metadata for the stores we write
# --------------------------------------------------------------------------------------------


def axis_type(name: str) -> str | None:
    """Guess the OME axis type from a conventional axis name (t, c, z, y, x)."""
    lowered = name.lower()
    if lowered in {"t", "time"}:
        return "time"
    if lowered in {"c", "channel", "ch"}:
        return "channel"
    if lowered in {"z", "y", "x"}:
        return "space"
    return None


def build_multiscales(
    *,
    axes: Sequence[str],
    units: Sequence[str | None],
    level_scales: Sequence[Sequence[float]],
    translation: Sequence[float],
    name: str,
    version: str,
    downscaling: str,
) -> list[dict[str, Any]]:
    """Build the ``multiscales`` list of an image we write.

    Parameters
    ----------
    axes, units : sequence
        Axis names and units (None where unknown) of level 0.
    level_scales : sequence of sequences
        Physical pixel size of every level, level 0 first; level ``i`` is stored at path ``"i"``.
    translation : sequence of float
        Physical position of level 0's first pixel centre.
    name : str
        Image name.
    version : {"0.4", "0.5"}
        OME-Zarr version; 0.4 writes ``version`` inside the multiscale entry.
    downscaling : str
        How the levels were computed (``"mean"`` or ``"mode"``), recorded as ``type``.
    """
    axes_json: list[dict[str, Any]] = []
    for axis_name, unit in zip(axes, units, strict=True):
        entry: dict[str, Any] = {"name": axis_name}
        kind = axis_type(axis_name)
        if kind is not None:
            entry["type"] = kind
        allowed = SPACE_UNITS if kind == "space" else TIME_UNITS if kind == "time" else ()
        if unit is not None and unit in allowed:
            entry["unit"] = unit
        axes_json.append(entry)
    datasets = []
    for level, scale in enumerate(level_scales):
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": [float(s) for s in scale]}]
        level_translation = [
            float(t) + (float(s) - float(s0)) / 2
            for t, s, s0 in zip(translation, scale, level_scales[0], strict=True)
        ]
        if any(level_translation):
            transforms.append({"type": "translation", "translation": level_translation})
        datasets.append({"path": str(level), "coordinateTransformations": transforms})
    multiscale: dict[str, Any] = {
        "name": name,
        "axes": axes_json,
        "datasets": datasets,
        "type": downscaling,
    }
    if version == "0.4":
        multiscale = {"version": "0.4", **multiscale}
    return [multiscale]


def build_omero(
    *,
    channel_names: Sequence[str],
    colors: Sequence[str],
    windows: Sequence[tuple[float, float]],
    dtype_range: tuple[float, float],
) -> dict[str, Any]:
    """Build an ``omero`` block with one entry per channel (colours as ``RRGGBB``)."""
    channels = []
    for label, color, (start, end) in zip(channel_names, colors, windows, strict=True):
        channels.append(
            {
                "label": label,
                "color": color.lstrip("#").upper(),
                "active": True,
                "window": {
                    "min": float(dtype_range[0]),
                    "max": float(dtype_range[1]),
                    "start": float(start),
                    "end": float(end),
                },
            }
        )
    return {
        "channels": channels,
        "rdefs": {"model": "color" if len(channels) > 1 else "greyscale"},
    }


def wrap_ome(block: Mapping[str, Any], *, version: str) -> dict[str, Any]:
    """Place an OME block in node attributes the way ``version`` (0.4 or 0.5) requires."""
    if version == "0.5":
        return {"ome": {"version": "0.5", **block}}
    return dict(block)
