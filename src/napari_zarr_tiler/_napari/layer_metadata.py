"""Translate a napari layer's state (LayerData metadata) into :func:`convert` keyword arguments."""

from __future__ import annotations

from typing import Any


def _hex_color(colormap: Any) -> str | None:
    """The brightest colour of a colormap (its last control point), as ``RRGGBB``."""
    colors = (
        colormap.get("colors") if isinstance(colormap, dict) else getattr(colormap, "colors", None)
    )
    if colors is None or len(colors) == 0:
        return None
    red, green, blue = (max(0, min(255, round(float(v) * 255))) for v in list(colors[-1])[:3])
    return f"{red:02X}{green:02X}{blue:02X}"


def _unit_name(unit: Any) -> str | None:
    name = str(unit) if unit is not None else None
    return None if name in (None, "", "pixel", "dimensionless") else name


def conversion_options(meta: dict[str, Any], layer_type: str) -> dict[str, Any]:
    """Keyword arguments for :func:`napari_zarr_tiler.convert` from a layer's metadata.

    Parameters
    ----------
    meta : dict
        The layer's state, as in ``layer.as_layer_data_tuple()[1]`` or what npe2 writers receive.
    layer_type : str
        ``"image"`` or ``"labels"``.
    """
    options: dict[str, Any] = {"label": layer_type == "labels"}
    if meta.get("name"):
        options["name"] = str(meta["name"])
    for key in ("scale", "translate", "axis_labels"):
        if meta.get(key) is not None:
            options["axes" if key == "axis_labels" else key] = tuple(meta[key])
    if meta.get("units") is not None:
        options["units"] = tuple(_unit_name(unit) for unit in meta["units"])
    rgb = bool(meta.get("rgb", False))
    options["rgb"] = rgb
    if layer_type == "image" and not rgb:
        color = _hex_color(meta.get("colormap"))
        if color is not None:
            options["colors"] = (color,)
        if meta.get("contrast_limits") is not None:
            options["contrast_limits"] = (tuple(meta["contrast_limits"]),)
        if meta.get("name"):
            options["channel_names"] = (str(meta["name"]),)
    return options


def level_zero(data: Any, meta: dict[str, Any]) -> Any:
    """Level 0 of a layer's data (the data itself unless multiscale)."""
    return data[0] if meta.get("multiscale") else data
