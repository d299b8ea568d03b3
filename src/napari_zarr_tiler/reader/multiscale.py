"""One OME-Zarr multiscale image (or label image) as a layer spec: levels, placement, channels.

The steps, each a function: parse the metadata (:func:`_parse`), open the levels napari can use
(:func:`_level_arrays`, :func:`_displayed_levels`), place them in the world with checked
transformations (:class:`_Placement`), then make the keyword arguments of one RGB layer, one
layer per channel or a single layer, with the colours and contrast windows the metadata gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zarr

from ..errors import StoreReadError
from ..ome_ngff import (
    TILER_ATTRIBUTE,
    Channel,
    Multiscale,
    parse_multiscale,
    safe_member_path,
    valid_unit,
)
from ..ome_ngff.coordinate_systems import Placement
from ..ome_ngff.model import LabelHints
from ..ome_ngff.parse import parse_label_hints
from .arrays import check_displayable, lazy_array, lazy_pyramid, no_pyramid_notice
from .contrast import channel_contrast_limits, contrast_limits_from
from .nodes import member_array
from .previews import needs_lazy_pyramid
from .specs import LayerSpec

if TYPE_CHECKING:
    import dask.array as da

#: Levels of one multiscale image at most (a 2^60-pixel image has 60).
MAX_LEVELS = 64
#: Channels split into layers of their own at most; more stay one layer with a channel slider.
MAX_CHANNEL_LAYERS = 64
#: Pixel sizes napari can draw (it renders in single precision: below about 3e-10 the canvas
#: stays black, far above 1e35 or at 1e300 it fails), with a margin.
SCALE_RANGE = (1e-9, 1e20)
#: Farthest translation napari draws, in pixels of the finest level (beyond 1e8 pixels single
#: precision moves or hides the image).
MAX_TRANSLATION_PIXELS = 1e7


def multiscale_layer(
    group: zarr.Group,
    ome: dict[str, Any],
    *,
    name: str,
    where: Path,
    labels: bool,
    notices: list[str],
    into: Placement | None = None,
) -> LayerSpec:
    """Describe the OME multiscale image in ``group`` as one layer spec.

    Parameters
    ----------
    group : zarr.Group
        The image's group.
    ome : dict
        Its OME attributes (``multiscales``, ``omero``, ...).
    name : str
        Layer name (channel layers are named by their labels, or ``"{name} c{index}"``).
    where : Path
        The group's folder, named in errors and notices.
    labels : bool
        Whether it is a label image (a Labels layer, no channel split, no contrast).
    notices : list of str
        Notices for the user are appended here (previews instead of a pyramid, too many
        channels to split, an OME-Zarr version newer than the reader knows, a coordinate
        transformation napari cannot show).
    into : Placement, optional
        For an image of an OME-Zarr 0.6 scene: where its coordinate system sits in the
        scene's displayed one.

    Returns
    -------
    LayerSpec
        Levels finest first, and napari keyword arguments.

    Raises
    ------
    StoreReadError
        For metadata that names missing or mismatched arrays, too many levels, or a scale or
        translation napari cannot draw.
    UndisplayableArrayError
        When the finest level has fewer than two dimensions or no pixel.
    """
    multiscale = _parse(group, ome, where=where, into=into)
    notices.extend(multiscale.notices)
    arrays = _level_arrays(group, multiscale, where=where)
    levels = _displayed_levels(arrays, multiscale.paths, where=where, notices=notices)
    placement = _Placement.of(multiscale, where=where)
    channel_axis = None if labels else multiscale.channel_axis
    if channel_axis is not None and _stored_as_rgb(group, levels[0], channel_axis):
        return _rgb_layer(levels, channel_axis, placement, name=name)
    spec = layer_from_levels(
        levels, multiscale, name=name, where=where, labels=labels, notices=notices
    )
    if labels:
        spec.kwargs.update(label_hints_kwargs(parse_label_hints(ome)))
    return spec


def open_levels(
    group: zarr.Group, ome: dict[str, Any], *, where: Path
) -> tuple[Multiscale, list[da.Array], list[zarr.Array]]:
    """Open the stored levels of an OME multiscale image as lazy arrays (no previews added).

    Parameters
    ----------
    group : zarr.Group
        The image's group.
    ome : dict
        Its OME attributes.
    where : Path
        The group's folder, named in errors.

    Returns
    -------
    tuple of (Multiscale, list of dask.array.Array, list of zarr.Array)
        The parsed metadata, the levels that really shrink (finest first), and their arrays.

    Raises
    ------
    StoreReadError
        For metadata that names missing or mismatched arrays or too many levels.
    UndisplayableArrayError
        When the finest level has fewer than two dimensions or no pixel.
    """
    multiscale = _parse(group, ome, where=where)
    arrays = _level_arrays(group, multiscale, where=where)
    levels = [
        lazy_array(array, where=where / path)
        for path, array in zip(multiscale.paths, arrays, strict=True)
    ]
    kept = _shrinking([level.shape for level in levels])
    return multiscale, [levels[index] for index in kept], [arrays[index] for index in kept]


def label_hints_kwargs(hints: LabelHints) -> dict[str, Any]:
    """napari ``add_labels`` keyword arguments for a label image's colours and properties.

    Parameters
    ----------
    hints : LabelHints
        From :func:`~napari_zarr_tiler.ome_ngff.parse.parse_label_hints`.

    Returns
    -------
    dict
        ``colormap`` as a plain ``{label value: RGBA}`` mapping (napari makes it a direct
        colormap; labels without a colour are grey, 0 transparent unless given) and
        ``features`` as columns; empty when the metadata gives neither.
    """
    kwargs: dict[str, Any] = {}
    if hints.colors:
        colormap: dict[int | None, tuple[float, ...]] = {
            None: (0.5, 0.5, 0.5, 1.0),
            0: (0.0, 0.0, 0.0, 0.0),
        }
        colormap.update(hints.colors)
        kwargs["colormap"] = colormap
    if hints.properties:
        kwargs["features"] = {key: list(column) for key, column in hints.properties.items()}
    return kwargs


def layer_from_levels(
    levels: list[da.Array],
    multiscale: Multiscale,
    *,
    name: str,
    where: Path,
    labels: bool,
    notices: list[str],
) -> LayerSpec:
    """One layer spec from lazy levels placed by ``multiscale``'s finest-level transformation.

    Parameters
    ----------
    levels : list of dask.array.Array
        The levels, finest first, with the axes ``multiscale`` declares.
    multiscale : Multiscale
        The metadata giving axes, channels, scale and translation.
    name : str
        Layer name (channel layers are named by their labels, or ``"{name} c{index}"``).
    where : Path
        The image's folder, named in errors and notices.
    labels : bool
        Whether it is a label image (a Labels layer, no channel split, no contrast).
    notices : list of str
        Notices for the user are appended here (too many channels to split).

    Returns
    -------
    LayerSpec
        A channel-split image, a single image, or a labels layer.

    Raises
    ------
    StoreReadError
        For a scale or translation napari cannot draw.
    """
    placement = _Placement.of(multiscale, where=where)
    channel_axis = None if labels else multiscale.channel_axis
    if channel_axis is not None and levels[0].shape[channel_axis] > MAX_CHANNEL_LAYERS:
        notices.append(
            f"{where}: {levels[0].shape[channel_axis]:,} channels are shown as one layer with a "
            f"channel slider (more than {MAX_CHANNEL_LAYERS} would each need a layer)"
        )
        channel_axis = None
    if channel_axis is not None:
        kwargs = _channel_layers_kwargs(levels, channel_axis, multiscale.channels, name=name)
        placement = placement.without_axis(channel_axis)
    else:
        kwargs = _single_layer_kwargs(levels, multiscale.channels, name=name, labels=labels)
    kwargs = {"multiscale": len(levels) > 1, **kwargs, **placement.as_kwargs()}
    return LayerSpec(levels, kwargs, "labels" if labels else "image")


# ---------------------------------------------------------------------------------------------
# Levels
# ---------------------------------------------------------------------------------------------


def _first_level_ndim(group: zarr.Group, ome: dict[str, Any], *, where: Path) -> int | None:
    """Dimensions of the first dataset's array (metadata without axes needs it), if named."""
    raw = ome.get("multiscales")
    if not (isinstance(raw, list) and raw and isinstance(raw[0], dict)):
        return None
    datasets = raw[0].get("datasets")
    if not (isinstance(datasets, list) and datasets and isinstance(datasets[0], dict)):
        return None
    first_path = datasets[0].get("path")
    if not isinstance(first_path, str):
        return None
    return member_array(group, safe_member_path(first_path, where=str(where)), where=where).ndim


def _parse(
    group: zarr.Group, ome: dict[str, Any], *, where: Path, into: Placement | None = None
) -> Multiscale:
    """The first multiscale of ``ome``, refused with more than :data:`MAX_LEVELS` levels."""
    raw = ome.get("multiscales")
    if isinstance(raw, list) and not raw:
        msg = (
            f"{where}: the metadata declares no multiscale image ('multiscales' is an empty "
            "list); open one of its arrays directly, or rewrite its metadata"
        )
        raise StoreReadError(msg)
    first = raw[0] if isinstance(raw, list) else None
    declared = isinstance(first, dict) and ("axes" in first or "coordinateSystems" in first)
    # The first level is opened only when the metadata declares no axes (OME-Zarr 0.1, 0.2).
    ndim = None if declared else _first_level_ndim(group, ome, where=where)
    multiscale = parse_multiscale(ome, where=str(where), ndim=ndim, into=into)
    if len(multiscale.paths) > MAX_LEVELS:
        msg = f"{where}: {len(multiscale.paths):,} levels declared; at most {MAX_LEVELS} are read"
        raise StoreReadError(msg)
    return multiscale


def _level_arrays(group: zarr.Group, multiscale: Multiscale, *, where: Path) -> list[zarr.Array]:
    """Open every level, each with as many dimensions as the metadata declares axes."""
    arrays = [member_array(group, path, where=where) for path in multiscale.paths]
    n_axes = len(multiscale.axes)
    for path, array in zip(multiscale.paths, arrays, strict=True):
        if array.ndim != n_axes:
            msg = f"{where / path}: array has {array.ndim} dimensions but the metadata declares {n_axes} axes"
            raise StoreReadError(msg)
    check_displayable(arrays[0].shape, where=where / multiscale.paths[0])
    return arrays


def _shrinking(shapes: list[tuple[int, ...]]) -> list[int]:
    """Indices of the levels that really shrink, growing along no axis, finest first.

    napari expects decreasing sizes; empty levels are dropped too.
    """
    kept = [0]
    for index, shape in enumerate(shapes[1:], start=1):
        previous = shapes[kept[-1]]
        if 0 < math.prod(shape) < math.prod(previous) and all(
            side <= last for side, last in zip(shape, previous, strict=True)
        ):
            kept.append(index)
    return kept


def _displayed_levels(
    arrays: list[zarr.Array], paths: list[str], *, where: Path, notices: list[str]
) -> list[da.Array]:
    """Lazy levels napari can use: the shrinking ones, extended by previews when still large."""
    levels = [
        lazy_array(array, where=where / path) for path, array in zip(paths, arrays, strict=True)
    ]
    kept = _shrinking([level.shape for level in levels])
    smallest = arrays[kept[-1]]
    levels = [levels[index] for index in kept]
    if needs_lazy_pyramid(smallest.shape):
        # The stored pyramid stops while still too large to draw whole: extend it lazily.
        levels = levels[:-1] + lazy_pyramid(smallest, levels[-1], where=where)
        notices.append(no_pyramid_notice(where, smallest.shape, partial=len(kept) > 1))
    return levels


# ---------------------------------------------------------------------------------------------
# Placement: scale, translation, axis labels and units
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Placement:
    """Where the finest level sits in the world, per axis: scale, translation, label, unit."""

    scale: tuple[float, ...]
    translate: tuple[float, ...]
    axis_labels: tuple[str, ...]
    units: tuple[str | None, ...]

    @classmethod
    def of(cls, multiscale: Multiscale, *, where: Path) -> _Placement:
        """The finest level's placement, checked to be one napari can draw."""
        placement = cls(
            scale=tuple(multiscale.scales[0]),
            translate=tuple(multiscale.translations[0]),
            axis_labels=tuple(axis.name for axis in multiscale.axes),
            units=tuple(valid_unit(axis) for axis in multiscale.axes),
        )
        placement.check(where=where)
        return placement

    def check(self, *, where: Path) -> None:
        """Refuse a scale and translation napari cannot draw, saying why."""
        scale, translate = list(self.scale), list(self.translate)
        given = (
            f"{where}: the coordinate transformations give scale {scale} and "
            f"translation {translate}"
        )
        if not all(math.isfinite(v) and v > 0 for v in scale) or not all(
            math.isfinite(v) for v in translate
        ):
            msg = f"{given}; scales must be positive and finite, translations finite"
            raise StoreReadError(msg)
        low, high = SCALE_RANGE
        far = any(
            abs(t) > MAX_TRANSLATION_PIXELS * s for s, t in zip(scale, translate, strict=True)
        )
        if far or not all(low <= v <= high for v in scale):
            msg = (
                f"{given}; napari draws scales between {low:g} and {high:g} and translations of "
                f"up to {MAX_TRANSLATION_PIXELS:g} pixels, and would show nothing or fail. Fix "
                "the metadata's coordinateTransformations (or convert the pixels with "
                "`napari-zarr-tiler convert`)."
            )
            raise StoreReadError(msg)

    def without_axis(self, axis: int) -> _Placement:
        """The placement without ``axis`` (a channel axis split into layers or moved last)."""

        def drop(values: tuple[Any, ...]) -> tuple[Any, ...]:
            return values[:axis] + values[axis + 1 :]

        return _Placement(
            drop(self.scale), drop(self.translate), drop(self.axis_labels), drop(self.units)
        )

    def as_kwargs(self) -> dict[str, Any]:
        """napari's ``scale``, ``translate``, ``axis_labels`` and (when any is known) ``units``."""
        kwargs: dict[str, Any] = {
            "scale": self.scale,
            "translate": self.translate,
            "axis_labels": self.axis_labels,
        }
        if any(self.units):
            kwargs["units"] = tuple(unit or "pixel" for unit in self.units)
        return kwargs


# ---------------------------------------------------------------------------------------------
# Channels, colours and contrast
# ---------------------------------------------------------------------------------------------


def _stored_as_rgb(group: zarr.Group, level: da.Array, channel_axis: int) -> bool:
    """Whether we wrote this image from an RGB(A) layer (3 or 4 samples on the channel axis)."""
    tiler = group.attrs.get(TILER_ATTRIBUTE)
    return (
        isinstance(tiler, dict)
        and tiler.get("rgb") is True
        and level.shape[channel_axis] in (3, 4)
        and level.ndim >= 3
    )


def _rgb_layer(
    levels: list[da.Array], channel_axis: int, placement: _Placement, *, name: str
) -> LayerSpec:
    """One RGB layer: the colour samples moved back to the last axis, as napari wants them."""
    import dask.array as da

    rgb_levels = [da.moveaxis(level, channel_axis, -1) for level in levels]
    kwargs = {
        "multiscale": len(levels) > 1,
        "name": name,
        "rgb": True,
        **placement.without_axis(channel_axis).as_kwargs(),
    }
    return LayerSpec(rgb_levels, kwargs, "image")


def _channel_layers_kwargs(
    levels: list[da.Array], channel_axis: int, channels: list[Channel], *, name: str
) -> dict[str, Any]:
    """Names, colours, windows and visibility of one layer per channel (``channel_axis``)."""
    n_channels = levels[0].shape[channel_axis]
    channels = channels if len(channels) == n_channels else []
    names = [f"{name} c{index}" for index in range(n_channels)]
    kwargs: dict[str, Any] = {
        "channel_axis": channel_axis,
        "name": [channel.label or names[i] for i, channel in enumerate(channels)] or names,
    }
    if channels and all(channel.color for channel in channels):
        kwargs["colormap"] = [channel.color for channel in channels]
    windows = [channel.window for channel in channels]
    if windows and all(windows):
        kwargs["contrast_limits"] = [list(window) for window in windows]  # type: ignore[arg-type]
    else:
        kwargs["contrast_limits"] = _channel_contrast_limits(levels[-1], channel_axis, n_channels)
    if channels:
        kwargs["visible"] = [channel.visible for channel in channels]
    return kwargs


def _channel_contrast_limits(
    smallest: da.Array, channel_axis: int, n_channels: int
) -> list[list[float]]:
    """Contrast limits of each of the ``n_channels`` channels, read from the smallest level."""
    return [list(limits) for limits in channel_contrast_limits(smallest, channel_axis, n_channels)]


def _single_layer_kwargs(
    levels: list[da.Array], channels: list[Channel], *, name: str, labels: bool
) -> dict[str, Any]:
    """Name, and for an image its window and colour (from its only channel when described)."""
    kwargs: dict[str, Any] = {"name": name}
    if labels:
        return kwargs
    channel = channels[0] if len(channels) == 1 else None
    if channel is not None and channel.window is not None:
        kwargs["contrast_limits"] = list(channel.window)
    else:
        kwargs["contrast_limits"] = list(contrast_limits_from(levels[-1]))
    if channel is not None and channel.color:
        kwargs["colormap"] = channel.color
    return kwargs
