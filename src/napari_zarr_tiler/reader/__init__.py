"""The reader wing: a zarr store in, lazily loaded layer specs out (no napari, no Qt).

Its face is what other wings and the adapters use: :func:`read_zarr` and the records it returns,
:func:`find_zarr_node` (the npe2 reader's cheap check), :func:`open_zarr_node` /
:func:`member_array` (the converter's zarr source opens stores with the same safety checks), and
:func:`describe_store` (the CLI's ``info``).

Inside, one module per job:

- ``locate``: which zarr node a path designates (a few ``stat`` calls, no zarr import);
- ``nodes``: opening a store and its members read-only, metadata checked first;
- ``contained_store``: a store that serves only regular files inside it;
- ``bounded_codecs``: decompression refused past a chunk's size;
- ``arrays``: a stored array as a lazy dask array, within limits;
- ``previews``: downsampled views of arrays stored without a pyramid;
- ``contrast``: contrast limits from a bounded read of the pixels;
- ``specs``: the records returned (:class:`LayerSpec`, :class:`StoreContents`);
- ``multiscale``: an OME multiscale image as a layer spec;
- ``layers``: walking a store (arrays, plain groups, OME images, labels, bioformats2raw);
- ``inspect``: what a store holds, level by level, for people.

Names are loaded on first use, so that ``find_zarr_node`` (asked by napari for every folder it
opens) does not import zarr.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

#: Each name of the face, and the module that defines it.
_HOMES = {
    "ContainedLocalStore": "contained_store",
    "LayerSpec": "specs",
    "StoreContentWarning": "contained_store",
    "StoreContents": "specs",
    "describe_store": "inspect",
    "find_zarr_node": "locate",
    "member_array": "nodes",
    "member_group_unlisted": "nodes",
    "open_zarr_node": "nodes",
    "read_zarr": "layers",
}

__all__ = [
    "ContainedLocalStore",
    "LayerSpec",
    "StoreContentWarning",
    "StoreContents",
    "describe_store",
    "find_zarr_node",
    "member_array",
    "member_group_unlisted",
    "open_zarr_node",
    "read_zarr",
]

if TYPE_CHECKING:
    from .contained_store import ContainedLocalStore, StoreContentWarning
    from .inspect import describe_store
    from .layers import read_zarr
    from .locate import find_zarr_node
    from .nodes import member_array, member_group_unlisted, open_zarr_node
    from .specs import LayerSpec, StoreContents


def __getattr__(name: str) -> Any:
    """Load a name of the face from its module on first use."""
    home = _HOMES.get(name)
    if home is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(import_module(f".{home}", __name__), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
