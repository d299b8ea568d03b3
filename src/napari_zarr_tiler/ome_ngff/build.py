"""Build the OME-Zarr metadata of the stores we write."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .model import SPACE_UNITS, TIME_UNITS


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


#: The OME-Zarr versions we write: 0.4 (zarr format 2), 0.5 and 0.6 (zarr format 3).
WRITTEN_VERSIONS = ("0.4", "0.5", "0.6")
#: The coordinate system a 0.6 image's levels map into (named as the specification's examples).
INTRINSIC_SYSTEM = "intrinsic"


def _axes_json(axes: Sequence[str], units: Sequence[str | None]) -> list[dict[str, Any]]:
    """The ``axes`` entries: name, type where known, and a unit the specification allows."""
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
    return axes_json


def _level_transforms(
    level_scales: Sequence[Sequence[float]], translation: Sequence[float]
) -> list[list[dict[str, Any]]]:
    """Per level, its scale and (when not zero) translation, as 0.4/0.5 transformation objects.

    A level's pixel centre sits half a (level pixel - level 0 pixel) after level 0's.
    """
    levels = []
    for scale in level_scales:
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": [float(s) for s in scale]}]
        level_translation = [
            float(t) + (float(s) - float(s0)) / 2
            for t, s, s0 in zip(translation, scale, level_scales[0], strict=True)
        ]
        if any(level_translation):
            transforms.append({"type": "translation", "translation": level_translation})
        levels.append(transforms)
    return levels


def _rfc5_transform(transforms: list[dict[str, Any]], path: str) -> dict[str, Any]:
    """One level's transformations as the single 0.6 (RFC-5) transformation from the array at
    ``path`` into the intrinsic system: a scale, or a sequence of a scale and a translation."""
    ends = {"input": {"path": path}, "output": {"name": INTRINSIC_SYSTEM}}
    if len(transforms) == 1:
        return {**transforms[0], **ends}
    return {"type": "sequence", "transformations": transforms, **ends}


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
    version : {"0.4", "0.5", "0.6"}
        OME-Zarr version: 0.4 writes ``version`` inside the multiscale entry; 0.6 declares the
        axes as a coordinate system (``coordinateSystems``) and each level's transformation
        into it (RFC-5), 0.4 and 0.5 as ``axes`` and per-level scale and translation.
    downscaling : str
        How the levels were computed (``"mean"`` or ``"mode"``), recorded as ``type``.

    Returns
    -------
    list of dict
        The ``multiscales`` value: one multiscale entry.

    Raises
    ------
    ValueError
        For a version not in :data:`WRITTEN_VERSIONS`.
    """
    if version not in WRITTEN_VERSIONS:
        msg = f"OME-Zarr version {version!r} cannot be written; choose one of {WRITTEN_VERSIONS}"
        raise ValueError(msg)
    axes_json = _axes_json(axes, units)
    levels = _level_transforms(level_scales, translation)
    paths = [str(level) for level in range(len(levels))]
    multiscale: dict[str, Any] = {"name": name}
    if version == "0.6":
        multiscale["coordinateSystems"] = [{"name": INTRINSIC_SYSTEM, "axes": axes_json}]
        multiscale["datasets"] = [
            {"path": path, "coordinateTransformations": [_rfc5_transform(transforms, path)]}
            for path, transforms in zip(paths, levels, strict=True)
        ]
    else:
        multiscale["axes"] = axes_json
        multiscale["datasets"] = [
            {"path": path, "coordinateTransformations": transforms}
            for path, transforms in zip(paths, levels, strict=True)
        ]
    multiscale["type"] = downscaling
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
    """Place an OME block in node attributes the way ``version`` requires: at the top for 0.4,
    inside an ``ome`` object carrying the version for 0.5 and later."""
    if version == "0.4":
        return dict(block)
    return {"ome": {"version": version, **block}}
