"""npe2 reader: dispatch zarr paths to :func:`napari_zarr_tiler.reader.read_zarr`.

napari asks :func:`get_reader` about every folder it opens, so importing this module stays cheap:
``reader.locate.accepts`` alone is loaded (no zarr, no dask); the rest of the wing is
imported when a store is read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from napari.utils.notifications import show_info

from ..reader.locate import accepts

PathOrPaths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
LayerDataTuple = tuple[Any, dict[str, Any], str]


def get_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[LayerDataTuple]] | None:
    """Return :func:`read_layers` when every path is a zarr node, a store URL (http, https, s3)
    or an ``.ozx`` file, else None (cheap: no request, never raises)."""
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if not paths or not all(accepts(p) for p in paths):
        return None
    return read_layers


def read_layers(path: PathOrPaths) -> list[LayerDataTuple]:
    """Read every zarr node in ``path`` as lazily loaded layers.

    Parameters
    ----------
    path : str, PathLike or sequence of them
        Zarr nodes accepted by :func:`get_reader`.

    Returns
    -------
    list of LayerData tuples
        ``(data, kwargs, layer_type)`` per layer, data being dask arrays (a list when
        multiscale); notices about the stores are shown as napari notifications.

    Raises
    ------
    StoreReadError
        When a store cannot be read; the message names the path and the problem, and napari
        shows it as a notification.
    """
    from ..reader import read_zarr  # the whole reader wing (zarr, dask), once there is a store

    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    layer_data: list[LayerDataTuple] = []
    for one_path in paths:
        contents = read_zarr(one_path)
        for notice in contents.notices:
            show_info(notice)
        layer_data.extend(layer.as_layer_data() for layer in contents.layers)
    return layer_data
