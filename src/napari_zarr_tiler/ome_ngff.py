"""The OME-Zarr (OME-NGFF 0.1 to 0.6) metadata model: parse what a store declares, build what we write.

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
#: The newest OME-Zarr version whose rules this reader knows; newer ones are read with its rules.
NEWEST_KNOWN_VERSION = (0, 6)
#: Major and minor number of a version as writers spell it ("0.6", "0.6.dev3", "0.6rc0", "0.6-dev2").
_VERSION_NUMBERS = re.compile(r"^\s*(\d{1,4})\.(\d{1,4})(?!\d)")
#: Nesting depth of ``sequence`` transformations read at most.
_MAX_SEQUENCE_DEPTH = 16


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


def version_numbers(version: str) -> tuple[int, int] | None:
    """Return the (major, minor) numbers of an OME-Zarr version, None when unreadable.

    Writers spell versions in several ways: ``"0.6"``, ``"0.6.dev3"`` (acquire-zarr),
    ``"0.6rc0"``, ``"0.6-dev2"``; all of them are 0.6 here.
    """
    match = _VERSION_NUMBERS.match(version)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def _version_notices(version: str, *, where: str) -> list[str]:
    """A notice when ``version`` is newer than the reader knows (read with the newest rules)."""
    numbers = version_numbers(version)
    if numbers is None or numbers <= NEWEST_KNOWN_VERSION:
        return []
    known = ".".join(str(n) for n in NEWEST_KNOWN_VERSION)
    return [
        f"{where}: OME-Zarr version {version!r} is newer than this reader knows; read with "
        f"the OME-Zarr {known} rules, so some metadata may be ignored"
    ]


def parse_multiscale(ome: Mapping[str, Any], *, where: str, ndim: int | None = None) -> Multiscale:
    """Parse the first multiscale image declared in an OME block.

    OME-Zarr 0.6 (and any newer version, with a notice) is read by its coordinate systems and
    coordinate transformations; earlier versions by ``axes`` and scale/translation lists.

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
        multiscale-level transforms applied after the dataset-level ones; ``notices`` says what
        could not be honoured (a newer version, a transformation napari cannot show).

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
    numbers = version_numbers(version)
    datasets = first.get("datasets")
    if not isinstance(datasets, Sequence) or isinstance(datasets, str) or not datasets:
        msg = f"{where}: multiscales lists no datasets"
        raise StoreReadError(msg)
    if "coordinateSystems" in first or (numbers is not None and numbers >= (0, 6)):
        multiscale = _parse_coordinate_systems(first, datasets, version, where=where)
    else:
        multiscale = _parse_axes_and_transforms(first, datasets, version, ndim=ndim, where=where)
    multiscale.notices[:0] = _version_notices(version, where=where)
    name = first.get("name")
    multiscale.name = name if isinstance(name, str) else None
    multiscale.channels = _parse_channels(ome.get("omero"))
    return multiscale


def _dataset_path(dataset: object, *, where: str) -> str:
    if not isinstance(dataset, Mapping):
        msg = f"{where}: a dataset entry is not an object"
        raise StoreReadError(msg)
    return safe_member_path(dataset.get("path"), where=where)


def _parse_axes_and_transforms(
    first: Mapping[str, Any],
    datasets: Sequence[Any],
    version: str,
    *,
    ndim: int | None,
    where: str,
) -> Multiscale:
    """OME-Zarr 0.1 to 0.5: ``axes``, and scale/translation lists per dataset and overall."""
    axes = _parse_axes(first.get("axes"), ndim, where=where)
    n_axes = len(axes)
    global_scale, global_translation = _parse_transforms(
        first.get("coordinateTransformations"), n_axes, where=where
    )
    paths, scales, translations = [], [], []
    for dataset in datasets:
        paths.append(_dataset_path(dataset, where=where))
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
    return Multiscale(
        version=version, axes=axes, paths=paths, scales=scales, translations=translations
    )


# --------------------------------------------------------------------------------------------
# OME-Zarr 0.6 (RFC-5): coordinate systems and coordinate transformations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ScaleShift:
    """A transformation napari can show: ``x -> scale * x + translation`` per axis."""

    scale: tuple[float, ...]
    translation: tuple[float, ...]

    @classmethod
    def identity(cls, ndim: int) -> _ScaleShift:
        """The transformation that changes nothing."""
        return cls((1.0,) * ndim, (0.0,) * ndim)

    def then(self, other: _ScaleShift) -> _ScaleShift:
        """This transformation followed by ``other``."""
        return _ScaleShift(
            tuple(a * b for a, b in zip(self.scale, other.scale, strict=True)),
            tuple(
                t * s + u
                for t, s, u in zip(self.translation, other.scale, other.translation, strict=True)
            ),
        )


def _system_name(reference: object) -> str | None:
    """The coordinate system an ``input`` / ``output`` names (``{"name": ...}`` or a string)."""
    if isinstance(reference, Mapping):
        reference = reference.get("name")
    return reference if isinstance(reference, str) else None


def _parse_coordinate_systems_list(raw: object, *, where: str) -> dict[str, list[Axis]]:
    """The declared coordinate systems by name, in declaration order."""
    if raw is None:
        return {}
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        msg = f"{where}: 'coordinateSystems' must be a list"
        raise StoreReadError(msg)
    systems: dict[str, list[Axis]] = {}
    for system in raw:
        if not isinstance(system, Mapping) or not isinstance(system.get("name"), str):
            msg = f"{where}: a coordinate system has no name"
            raise StoreReadError(msg)
        if system.get("axes") is None:
            msg = f"{where}: coordinate system {system['name']!r} has no axes"
            raise StoreReadError(msg)
        systems.setdefault(system["name"], _parse_axes(system.get("axes"), None, where=where))
    return systems


def _transform_list(raw: object, *, where: str) -> list[Mapping[str, Any]]:
    """A ``coordinateTransformations`` list, each entry an object."""
    if raw is None:
        return []
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        msg = f"{where}: coordinateTransformations must be a list"
        raise StoreReadError(msg)
    if not all(isinstance(transform, Mapping) for transform in raw):
        msg = f"{where}: a coordinate transformation is not an object"
        raise StoreReadError(msg)
    return list(raw)


def _identity_map_axis(mapping: object, ndim: int) -> bool:
    """Whether a ``mapAxis`` leaves every axis in place (a list 0, 1, ..., n - 1)."""
    return isinstance(mapping, Sequence) and list(mapping) == list(range(ndim))


def _not_shown(kind: object, *, where: str, notices: list[str]) -> None:
    """Note a transformation napari cannot show (the image is placed without it)."""
    notice = (
        f"{where}: the metadata declares a {kind!r} coordinate transformation, which napari "
        "cannot show; the image is placed without it (as if it were the identity)"
    )
    if notice not in notices:
        notices.append(notice)


def _scale_shift(
    transform: Mapping[str, Any], ndim: int, *, where: str, notices: list[str], depth: int = 0
) -> _ScaleShift:
    """One 0.6 transformation as a scale and shift; others become identity plus a notice."""
    kind = transform.get("type")
    identity = _ScaleShift.identity(ndim)
    if kind in {"scale", "translation"} and kind in transform:
        values = _as_float_tuple(transform[kind], ndim, what=kind, where=where)
        if kind == "scale":
            return _ScaleShift(values, (0.0,) * ndim)
        return _ScaleShift((1.0,) * ndim, values)
    if kind == "sequence":
        if depth >= _MAX_SEQUENCE_DEPTH:
            msg = f"{where}: sequence transformations nested more than {_MAX_SEQUENCE_DEPTH} deep"
            raise StoreReadError(msg)
        result = identity
        steps = _transform_list(transform.get("transformations"), where=where)
        for step in steps:
            result = result.then(
                _scale_shift(step, ndim, where=where, notices=notices, depth=depth + 1)
            )
        return result
    if kind == "identity" or (
        kind == "mapAxis" and _identity_map_axis(transform.get("mapAxis"), ndim)
    ):
        return identity
    if kind in {"scale", "translation"}:
        kind = f"{kind} given by path"
    _not_shown(kind, where=where, notices=notices)
    return identity


def _chain(
    transforms: list[Mapping[str, Any]], ndim: int, *, where: str, notices: list[str]
) -> _ScaleShift:
    """Several transformations applied one after the other."""
    result = _ScaleShift.identity(ndim)
    for transform in transforms:
        result = result.then(_scale_shift(transform, ndim, where=where, notices=notices))
    return result


def _intrinsic_axes(
    systems: dict[str, list[Axis]],
    datasets: Sequence[Any],
    first: Mapping[str, Any],
    *,
    where: str,
) -> tuple[str | None, list[Axis]]:
    """The system the datasets map into (named by their ``output``) and its axes."""
    transforms = _transform_list(datasets[0].get("coordinateTransformations"), where=where)
    name = _system_name(transforms[-1].get("output")) if transforms else None
    if name in systems:
        return name, systems[name]
    if systems:  # no output named: the spec lists the datasets' own system last
        name = list(systems)[-1]
        return name, systems[name]
    if first.get("axes") is not None:  # a draft writer: 0.4-style axes
        return None, _parse_axes(first.get("axes"), None, where=where)
    msg = f"{where}: OME-Zarr 0.6 metadata declares no coordinateSystems (and no axes)"
    raise StoreReadError(msg)


def _world_transform(
    first: Mapping[str, Any],
    systems: dict[str, list[Axis]],
    intrinsic: str | None,
    axes: list[Axis],
    *,
    where: str,
    notices: list[str],
) -> tuple[_ScaleShift, list[Axis]]:
    """The multiscale-level transformation out of the datasets' system, and the axes it maps to.

    Only the first one leaving the datasets' system is applied (the others lead to other systems).
    """
    ndim = len(axes)
    for transform in _transform_list(first.get("coordinateTransformations"), where=where):
        source = _system_name(transform.get("input"))
        if source is not None and intrinsic is not None and source != intrinsic:
            continue
        target_name = _system_name(transform.get("output"))
        target = systems.get(target_name or "", axes)
        if len(target) != ndim:
            notices.append(
                f"{where}: coordinate system {target_name!r} has {len(target)} axes and the "
                f"image {ndim}; the image is shown in its own coordinate system {intrinsic!r}"
            )
            break
        return _scale_shift(transform, ndim, where=where, notices=notices), target
    return _ScaleShift.identity(ndim), axes


def _parse_coordinate_systems(
    first: Mapping[str, Any], datasets: Sequence[Any], version: str, *, where: str
) -> Multiscale:
    """OME-Zarr 0.6: axes from the coordinate system the datasets map into, RFC-5 transforms."""
    paths = [_dataset_path(dataset, where=where) for dataset in datasets]
    systems = _parse_coordinate_systems_list(first.get("coordinateSystems"), where=where)
    intrinsic, axes = _intrinsic_axes(systems, datasets, first, where=where)
    notices: list[str] = []
    world, axes = _world_transform(first, systems, intrinsic, axes, where=where, notices=notices)
    scales, translations = [], []
    for dataset in datasets:
        transforms = _transform_list(dataset.get("coordinateTransformations"), where=where)
        placed = _chain(transforms, len(axes), where=where, notices=notices).then(world)
        scales.append(placed.scale)
        translations.append(placed.translation)
    return Multiscale(
        version=version,
        axes=axes,
        paths=paths,
        scales=scales,
        translations=translations,
        notices=notices,
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
