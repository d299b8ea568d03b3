"""Open zarr stores lazily in napari and convert images into tiled OME-Zarr pyramids.

The package root exposes the pure-Python API (no Qt, no napari):

- :func:`read_zarr` describes what a store holds as lazily loaded layers;
- :func:`convert` streams an image into a chunked, compressed OME-Zarr pyramid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "convert", "read_zarr"]

if TYPE_CHECKING:
    from .conversion import convert
    from .store_layers import read_zarr


def __getattr__(name: str) -> Any:
    # Lazy imports keep `import napari_zarr_tiler` (and npe2's manifest discovery) cheap.
    if name == "convert":
        from .conversion import convert

        return convert
    if name == "read_zarr":
        from .store_layers import read_zarr

        return read_zarr
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
