"""``.npy`` files as sources: memory-mapped, never loaded whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SourceError
from .spec import OpenSource


def open_npy(path: Path) -> OpenSource:
    """Open a ``.npy`` file as a read-only memory map, named after the file.

    Parameters
    ----------
    path : Path
        The ``.npy`` file.

    Returns
    -------
    OpenSource
        The memory-mapped array and its name.

    Raises
    ------
    SourceError
        When the file is not a ``.npy`` array numpy can map (pickled objects are refused).
    """
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        msg = f"{path}: not a readable .npy array ({error})"
        raise SourceError(msg) from error
    return OpenSource(
        array, {"name": path.stem}, f"{path.name}: {array.shape} {array.dtype} (memory-mapped)"
    )
