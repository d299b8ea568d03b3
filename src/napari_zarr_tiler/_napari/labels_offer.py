"""Where a Labels layer drawn over an image from a zarr store belongs: that store's ``labels/``.

The Convert widget offers it as the output when such a layer is chosen (and no output is set
yet); the conversion then adds the labels to the image's store (see
:mod:`napari_zarr_tiler.converter.into_image`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.layers import Image, Labels

from ..reader import find_zarr_node

if TYPE_CHECKING:
    import napari

__all__ = ["store_labels_destination"]


def store_labels_destination(viewer: napari.viewer.Viewer, layer: Any) -> Path | None:
    """``STORE/labels/NAME`` for a Labels layer over an image opened from a local zarr store.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer holding the layers.
    layer : napari layer
        The layer chosen for conversion.

    Returns
    -------
    Path or None
        The label image's path inside the store of the first Image layer whose level-0 shape
        (y, x and any other axes) equals the labels', or None when ``layer`` is not a Labels
        layer or no such image was opened from a store.
    """
    if not isinstance(layer, Labels):
        return None
    shape = _level0_shape(layer)
    for other in viewer.layers:
        if isinstance(other, Image) and _level0_shape(other) == shape:
            store = _store_of(other)
            if store is not None:
                return store / "labels" / _folder_name(layer.name)
    return None


def _level0_shape(layer: Any) -> tuple[int, ...]:
    data = layer.data[0] if layer.multiscale else layer.data
    return tuple(data.shape)


def _store_of(layer: Any) -> Path | None:
    """The local zarr store an Image layer was opened from (None: not from a store)."""
    path = layer.source.path
    if not path:
        return None
    node = find_zarr_node(path)
    return node if node is not None and node.is_dir() else None


def _folder_name(name: str) -> str:
    """A layer name made a safe folder name ("cell mask" -> "cell_mask")."""
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "labels"
