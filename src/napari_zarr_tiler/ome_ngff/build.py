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
