"""npe2 writers: File > Save Selected Layers to ``name.zarr`` writes an OME-Zarr pyramid."""

from __future__ import annotations

from typing import Any

from ..conversion import convert
from .layer_metadata import conversion_options, level_zero


def _write(path: str, data: Any, meta: dict[str, Any], layer_type: str) -> list[str]:
    # napari's save dialog has already asked before replacing an existing name; the engine still
    # refuses to replace anything that is not a zarr store.
    result = convert(
        level_zero(data, meta), path, overwrite=True, **conversion_options(meta, layer_type)
    )
    return [str(result.path)]


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write an Image layer as an OME-Zarr image with default options."""
    return _write(path, data, meta, "image")


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Labels layer as an OME-Zarr label image."""
    return _write(path, data, meta, "labels")
