"""Zarr stores as sources: a zarr array, or level 0 of an OME-Zarr image with its metadata.

Stores are opened through the reader's face, with the reader's checks (not zarr, an incomplete
conversion, files outside the store, corrupt metadata), so a store the viewer refuses is refused
as a source too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import zarr

from ..errors import SourceError, StoreReadError
from ..ome_ngff import (
    Multiscale,
    ome_attributes,
    parse_multiscale,
    safe_member_path,
    valid_unit,
)
from ..reader import member_array, member_group_unlisted, open_zarr_node
from .spec import OpenSource, SourceSpec


def open_zarr(path: Path) -> OpenSource:
    """Open a zarr array, or level 0 of the OME-Zarr image in a group, lazily.

    Parameters
    ----------
    path : Path
        The store's folder (or a node inside it, or its metadata file).

    Returns
    -------
    OpenSource
        The zarr array with its name; for an OME image also its axes, scale, translation, units,
        channel names, colours and windows, and whether it is a label image.

    Raises
    ------
    SourceError
        When the store cannot be read, or is a group without an OME image (the message names one
        of its arrays to give instead).
    """
    try:
        node_dir, node = open_zarr_node(path)
    except StoreReadError as error:
        raise SourceError(str(error)) from error
    name = node_dir.name.removesuffix(".zarr")
    if isinstance(node, zarr.Array):
        return OpenSource(
            node, {"name": name}, f"zarr array {node.shape} {node.dtype}, chunks {node.chunks}"
        )
    return _open_ome_image(node_dir, node, name)


def _open_ome_image(node_dir: Path, group: zarr.Group, name: str) -> OpenSource:
    """Level 0 of the OME image in ``group``, with the options its metadata implies."""
    ome = ome_attributes(group.attrs.asdict())
    if "multiscales" not in ome:
        arrays = sorted(key for key, _ in group.arrays())
        msg = (
            f"{node_dir}: a zarr group without an OME image; name one of its arrays, e.g. "
            f"{node_dir / arrays[0]}"
            if arrays
            else f"{node_dir}: an empty zarr group"
        )
        raise SourceError(msg)
    try:
        multiscale = parse_multiscale(ome, where=str(node_dir))
        array = member_array(group, multiscale.paths[0], where=node_dir)
    except StoreReadError as error:
        raise SourceError(str(error)) from error
    options = _multiscale_options(multiscale, name)
    if "image-label" in ome:
        options["label"] = True  # re-tiled labels keep nearest-neighbour levels and their kind
    else:
        labels = _label_sources(node_dir, group)
        if labels:
            options["labels"] = labels  # converted into the new image's labels/ too
    return OpenSource(
        array, options, f"OME-Zarr level 0 {array.shape} {array.dtype}, chunks {array.chunks}"
    )


def _multiscale_options(multiscale: Multiscale, name: str) -> dict[str, Any]:
    """Name, axes, level 0's scale and translation, units, and the channels' display."""
    options: dict[str, Any] = {
        "name": multiscale.name or name,
        "axes": tuple(axis.name for axis in multiscale.axes),
        "scale": multiscale.scales[0],
        "translate": multiscale.translations[0],
        "units": tuple(valid_unit(axis) for axis in multiscale.axes),
    }
    channels = multiscale.channels
    if channels:
        options["channel_names"] = tuple(c.label or f"c{i}" for i, c in enumerate(channels))
        if all(c.color for c in channels):
            options["colors"] = tuple(str(c.color) for c in channels)
        if all(c.window for c in channels):
            options["contrast_limits"] = tuple(c.window for c in channels)
    return options


def _label_sources(node_dir: Path, group: zarr.Group) -> dict[str, SourceSpec]:
    """The label images the image's ``labels`` group lists, as sources (``{name: spec}``);
    names that are not plain folder names inside the store (hidden ones too), or not groups,
    are skipped."""
    try:  # read from the store: a consolidated listing misses labels added after it
        labels_group = member_group_unlisted(group, "labels", where=node_dir)
    except StoreReadError:
        return {}
    if labels_group is None:
        return {}
    listed = ome_attributes(labels_group.attrs.asdict()).get("labels")
    sources: dict[str, SourceSpec] = {}
    for name in listed if isinstance(listed, list) else []:
        try:
            safe = safe_member_path(name, where=str(node_dir / "labels"))
            if (
                "/" in safe
                or safe.startswith(".")
                or not isinstance(labels_group[safe], zarr.Group)
            ):
                continue
        except (StoreReadError, KeyError, OSError, ValueError):
            continue
        sources[safe] = SourceSpec(str(node_dir / "labels" / safe))
    return sources


def label_display(path: Path) -> tuple[dict[int, Any] | None, list[dict[str, Any]] | None]:
    """The ``image-label`` colours (``{label value: RGBA}``) and properties of the label image
    at ``path``; (None, None) when it declares none or cannot be read."""
    try:
        _node_dir, node = open_zarr_node(path)
    except StoreReadError:
        return None, None
    if not isinstance(node, zarr.Group):
        return None, None
    image_label = ome_attributes(node.attrs.asdict()).get("image-label")
    if not isinstance(image_label, dict):
        return None, None
    colors: dict[int, Any] = {}
    for entry in image_label.get("colors") or []:
        if not isinstance(entry, dict):
            continue
        value, rgba = entry.get("label-value"), entry.get("rgba")
        if (
            isinstance(value, int)
            and isinstance(rgba, list)
            and len(rgba) in (3, 4)
            and all(isinstance(c, int) and 0 <= c <= 255 for c in rgba)
        ):
            colors[value] = rgba
    raw = image_label.get("properties")
    properties = [dict(p) for p in raw if isinstance(p, dict)] if isinstance(raw, list) else None
    return colors or None, properties or None
