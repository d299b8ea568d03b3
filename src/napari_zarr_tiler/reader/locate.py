"""Find the zarr node a path designates, without opening it (a few ``stat`` calls, no zarr).

The npe2 reader asks this for every folder napari is given, so it stays cheap: importing this
module imports neither zarr nor dask.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..zarr_names import METADATA_FILES, has_node_metadata


def find_zarr_node(path: str | os.PathLike[str]) -> Path | None:
    """Return the zarr node folder ``path`` designates, or None if it designates none.

    Cheap (a few ``stat`` calls) and never raises.

    Parameters
    ----------
    path : str or PathLike
        A store folder, a group or array folder inside a store, or one of the metadata files
        (``zarr.json``, ``.zattrs``, ``.zgroup``, ``.zarray``, ``.zmetadata``) in such a folder.

    Returns
    -------
    Path or None
        The folder holding the node's metadata, or None when ``path`` is not a zarr node.
    """
    try:
        candidate = Path(path)
        if candidate.name in METADATA_FILES and candidate.is_file():
            candidate = candidate.parent
        if candidate.is_dir() and has_node_metadata(candidate):
            return candidate
    except (OSError, ValueError):
        return None
    return None
