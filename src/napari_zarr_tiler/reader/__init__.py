"""The reader wing: a zarr store in, lazily loaded layer specs out (no napari, no Qt).

Its face is what other wings and the adapters use: :func:`read_zarr` and the records it returns,
:func:`find_zarr_node` (the npe2 reader's cheap check), and :func:`open_zarr_node` /
:func:`member_array` (the converter's zarr source opens stores with the same safety checks).
Inside: ``contained_store`` (a store that serves only regular files inside it),
``bounded_codecs`` (decompression refused past a chunk's size), ``previews`` (downsampled views
of arrays stored without a pyramid) and ``layers`` (metadata to layer specs).
"""

from __future__ import annotations

from .contained_store import ContainedLocalStore, StoreContentWarning
from .layers import (
    LayerSpec,
    StoreContents,
    find_zarr_node,
    member_array,
    open_zarr_node,
    read_zarr,
)

__all__ = [
    "ContainedLocalStore",
    "LayerSpec",
    "StoreContentWarning",
    "StoreContents",
    "find_zarr_node",
    "member_array",
    "open_zarr_node",
    "read_zarr",
]
