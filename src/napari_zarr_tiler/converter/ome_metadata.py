"""The OME-Zarr metadata a conversion writes: axes, scales, translations, channels and windows.

:func:`resolve_metadata` checks the metadata options against the image before anything is
written, into an :class:`ImageMetadata`; :func:`ome_attributes` builds the group attributes
(``multiscales``, ``omero`` or ``image-label``) once the image's value ranges are known.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .. import ome_ngff
from ..errors import InvalidOptionError
from .option_text import parse_colors, parse_windows
from .plan import ConversionPlan
from .pyramid import Downsampling

#: Channel colours when the source names none, as napari's own defaults: one channel gray, two
#: magenta and green, more cyan, magenta, yellow, blue, green, red (colours that add up well).
DEFAULT_COLORS = ("00FFFF", "FF00FF", "FFFF00", "0000FF", "00FF00", "FF0000")
TWO_CHANNEL_COLORS = ("FF00FF", "00FF00")
RGB_COLORS = ("FF0000", "00FF00", "0000FF", "FFFFFF")
OME_AXES = ("t", "c", "z", "y", "x")

#: The OME-Zarr versions a conversion writes.
OmeVersion = Literal["0.4", "0.5", "0.6"]
#: The zarr format each OME-Zarr version is stored in.
ZARR_FORMAT_OF = {"0.4": 2, "0.5": 3, "0.6": 3}


def resolve_versions(
    ome_version: str | None, zarr_format: int | None
) -> tuple[OmeVersion, Literal[2, 3]]:
    """The OME-Zarr version and zarr format to write, each derived from the other when not given.

    Neither given: 0.5 in zarr format 3. ``zarr_format=2`` alone means 0.4; ``3`` alone 0.5.

    Raises
    ------
    InvalidOptionError
        For an unknown version or format, or a combination no OME-Zarr version is stored in
        (0.4 is zarr format 2; 0.5 and 0.6 are zarr format 3).
    """
    if ome_version is not None and ome_version not in ZARR_FORMAT_OF:
        msg = f"ome_version must be one of {', '.join(ZARR_FORMAT_OF)}, got {ome_version!r}"
        raise InvalidOptionError(msg)
    if zarr_format is not None and zarr_format not in (2, 3):
        msg = f"zarr_format must be 2 or 3, got {zarr_format!r}"
        raise InvalidOptionError(msg)
    if ome_version is None:
        return ("0.4", 2) if zarr_format == 2 else ("0.5", 3)
    needed = ZARR_FORMAT_OF[ome_version]
    if zarr_format is not None and zarr_format != needed:
        msg = (
            f"ome_version {ome_version} is stored in zarr format {needed}, but zarr_format "
            f"{zarr_format} was given; drop one of them (--ome-version / --zarr-format) or "
            f"choose zarr_format {needed}"
        )
        raise InvalidOptionError(msg)
    return ome_version, needed  # type: ignore[return-value]


def default_colors(n_channels: int) -> tuple[str, ...]:
    """The colours given to ``n_channels`` channels whose source names none (cycled)."""
    if n_channels == 1:
        return ("FFFFFF",)
    return TWO_CHANNEL_COLORS if n_channels == 2 else DEFAULT_COLORS


@dataclass(frozen=True)
class ImageMetadata:
    """The metadata options of a conversion, checked against the image (one entry per axis)."""

    #: OME axis names (None for the ``array`` layout, which has no OME metadata).
    axis_names: list[str] | None
    #: Index of the channel axis ("c") among ``axis_names``, or None.
    channel_index: int | None
    scales: list[float]
    offsets: list[float]
    units: list[str | None]
    #: OME-Zarr version: "0.5" or "0.6" (zarr format 3), or "0.4" (zarr format 2).
    version: OmeVersion
    method: Downsampling
    label: bool
    rgb: bool
    channel_names: Sequence[str] | None
    colors: Sequence[str] | None
    contrast_limits: Sequence[Sequence[float]] | None


def resolve_metadata(
    plan: ConversionPlan,
    *,
    channel_position: int | None,
    axes: Sequence[str] | None,
    scale: Sequence[float] | None,
    translate: Sequence[float] | None,
    units: Sequence[str | None] | None,
    channel_names: Sequence[str] | None,
    colors: Sequence[str] | None,
    contrast_limits: Sequence[Sequence[float]] | None,
    label: bool,
    rgb: bool,
    version: OmeVersion | None = None,
) -> ImageMetadata:
    """Check the metadata options against the planned image (``channel_position``: where an
    RGB source's samples went, and where per-axis options given without them get a default).

    ``version`` is the OME-Zarr version to write (default: 0.5 for zarr format 3, else 0.4),
    already checked against the plan's zarr format by :func:`resolve_versions`.

    Raises
    ------
    InvalidOptionError
        For colours or windows that cannot be read, or per-axis values of the wrong count.
    """
    parsed_colors = parse_colors(colors)  # checked before anything is written
    windows = parse_windows(contrast_limits)
    ndim = len(plan.shape)
    axis_names = (
        resolve_axes(axes, ndim, channel_position=channel_position)
        if plan.layout == "ome"
        else None
    )
    floats = {"ndim": ndim, "channel_index": channel_position}
    return ImageMetadata(
        axis_names=axis_names,
        channel_index=axis_names.index("c") if axis_names and "c" in axis_names else None,
        scales=per_axis_floats(scale, name="scale", default=1.0, **floats),
        offsets=per_axis_floats(translate, name="translate", default=0.0, **floats),
        units=_per_axis_units(units, ndim, channel_position),
        version=version or resolve_versions(None, plan.zarr_format)[0],
        method="nearest" if label else "mean",
        label=label,
        rgb=rgb,
        channel_names=channel_names,
        colors=parsed_colors,
        contrast_limits=windows,
    )


def _default_axes(ndim: int, *, channel_position: int | None) -> list[str]:
    """Axis names when none are given: a channel axis only where one is known (RGB) or needed (5-D)."""
    if channel_position is None:
        return list(OME_AXES if ndim == 5 else ("t", "z", "y", "x")[-ndim:])
    names = list(("t", "z", "y", "x")[-(ndim - 1) :])
    names.insert(channel_position, "c")
    return names


def valid_ome_axes(axes: Sequence[str]) -> bool:
    """Whether ``axes`` are distinct OME axis names in OME order, ending with y, x."""
    lowered = [a.lower() for a in axes]
    if len(set(lowered)) != len(lowered) or not set(lowered) <= set(OME_AXES):
        return False
    order = [OME_AXES.index(a) for a in lowered]
    return order == sorted(order) and lowered[-2:] == ["y", "x"]


def resolve_axes(
    axes: Sequence[str] | None, ndim: int, *, channel_position: int | None
) -> list[str]:
    """OME axis names for an image of ``ndim`` axes: those given if valid, else defaults.

    Raises
    ------
    InvalidOptionError
        When the number of names does not match the image.
    """
    if axes is None:
        return _default_axes(ndim, channel_position=channel_position)
    names = [str(a) for a in axes]
    if channel_position is not None and len(names) == ndim - 1:
        names.insert(channel_position, "c")
    if len(names) != ndim:
        msg = f"axes {names} has {len(names)} names but the image has {ndim} axes"
        raise InvalidOptionError(msg)
    if not valid_ome_axes(names):
        # e.g. napari's default axis labels ("-1", "0", ...), which are not OME axis names
        return _default_axes(ndim, channel_position=channel_position)
    return [a.lower() for a in names]


def per_axis_floats(
    values: Sequence[float] | None,
    ndim: int,
    *,
    name: str,
    default: float,
    channel_index: int | None,
) -> list[float]:
    """One finite value per axis (``default`` inserted for an RGB source's channel axis).

    Raises
    ------
    InvalidOptionError
        For a wrong count, non-finite values, or a scale that is not positive.
    """
    if values is None:
        return [default] * ndim
    values = [float(v) for v in values]
    if channel_index is not None and len(values) == ndim - 1:
        values.insert(channel_index, default)
    if len(values) != ndim or not all(math.isfinite(v) for v in values):
        msg = f"{name} must have {ndim} finite values, got {values}"
        raise InvalidOptionError(msg)
    if name == "scale" and any(v <= 0 for v in values):
        msg = f"scale must be positive, got {values}"
        raise InvalidOptionError(msg)
    return values


def _per_axis_units(
    units: Sequence[str | None] | None, ndim: int, channel_position: int | None
) -> list[str | None]:
    """One unit (or None) per axis (None inserted for an RGB source's channel axis)."""
    unit_list: list[str | None] = list(units) if units is not None else [None] * ndim
    if channel_position is not None and len(unit_list) == ndim - 1:
        unit_list.insert(channel_position, None)
    if len(unit_list) != ndim:
        msg = f"units must have {ndim} values, got {unit_list}"
        raise InvalidOptionError(msg)
    return unit_list


def _windows(ranges: dict[int, tuple[float, float]], n_channels: int) -> list[tuple[float, float]]:
    """Display windows from the measured value ranges (finite, and never empty)."""
    windows = []
    for channel in range(n_channels):
        low, high = ranges.get(channel, (0.0, 1.0))
        if not (math.isfinite(low) and math.isfinite(high)):
            low, high = 0.0, 1.0
        windows.append((low, high if high > low else low + 1))
    return windows


def _omero_value_range(dtype: np.dtype, windows: list[tuple[float, float]]) -> tuple[float, float]:
    """The omero window's min and max: the dtype's range for integers, else the data's."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return min(w[0] for w in windows), max(w[1] for w in windows)


def ome_attributes(
    plan: ConversionPlan,
    value_ranges: dict[int, tuple[float, float]],
    metadata: ImageMetadata,
    *,
    name: str,
) -> dict[str, Any]:
    """The group attributes declaring the image ``name``: multiscales, then omero or image-label.

    ``value_ranges`` (level 0's exact range per channel) gives the windows not given.
    """
    assert metadata.axis_names is not None
    # Level k's pixel spans 2**k source pixels on Y and X (odd edges are padded, not stretched),
    # and on Z as many as the plan's Z halvings so far.
    level_scales = []
    for factors in plan.level_factors:
        level_scales.append([sc * f for sc, f in zip(metadata.scales, factors, strict=True)])
    block: dict[str, Any] = {
        "multiscales": ome_ngff.build_multiscales(
            axes=metadata.axis_names,
            units=metadata.units,
            level_scales=level_scales,
            translation=metadata.offsets,
            name=name,
            version=metadata.version,
            downscaling=metadata.method,
        )
    }
    if metadata.label:
        block["image-label"] = {"version": "0.4"} if metadata.version == "0.4" else {}
    else:
        block["omero"] = _omero(plan, value_ranges, metadata, name=name)
    attributes = ome_ngff.wrap_ome(block, version=metadata.version)
    if metadata.rgb:
        attributes[ome_ngff.TILER_ATTRIBUTE] = {"rgb": True}
    return attributes


def _omero(
    plan: ConversionPlan,
    value_ranges: dict[int, tuple[float, float]],
    metadata: ImageMetadata,
    *,
    name: str,
) -> dict[str, Any]:
    """The ``omero`` block: a name, colour and window per channel (given, or defaults)."""
    channel_index, rgb = metadata.channel_index, metadata.rgb
    n_channels = plan.shape[channel_index] if channel_index is not None else 1
    names = list(metadata.channel_names) if metadata.channel_names else []
    if len(names) != n_channels:
        names = (
            ["R", "G", "B", "A"][:n_channels]
            if rgb
            else [f"{name} c{i}" if n_channels > 1 else name for i in range(n_channels)]
        )
    palette = RGB_COLORS if rgb else default_colors(n_channels)
    colors = metadata.colors
    channel_colors = (
        [c.lstrip("#") for c in colors] if colors and len(colors) == n_channels else []
    )
    if not channel_colors:
        channel_colors = [palette[i % len(palette)] for i in range(n_channels)]
    limits = metadata.contrast_limits
    if limits is not None and len(limits) == n_channels:
        windows = [(float(lo), float(hi)) for lo, hi in limits]
    else:
        windows = _windows(value_ranges, n_channels)  # level 0's exact range, per channel
    return ome_ngff.build_omero(
        channel_names=names,
        colors=channel_colors,
        windows=windows,
        dtype_range=_omero_value_range(plan.dtype, windows),
    )
