"""Basic NumPy indexing (integers, unit-step slices, ``...``) for the array-likes we read from."""

from __future__ import annotations

from typing import Any

import numpy as np


def basic_index(key: Any, shape: tuple[int, ...]) -> tuple[list[int], list[int], list[int]]:
    """Starts, stops and integer-indexed axes of a basic index (ints, unit-step slices, ``...``).

    Raises
    ------
    IndexError
        For steps other than 1, out-of-bounds integers and other index types.
    """
    ndim = len(shape)
    key = key if isinstance(key, tuple) else (key,)
    if any(item is Ellipsis for item in key):
        position = key.index(Ellipsis)
        key = key[:position] + (slice(None),) * (ndim - len(key) + 1) + key[position + 1 :]
    key = key + (slice(None),) * (ndim - len(key))
    starts, stops, squeeze = [], [], []
    for axis, (item, size) in enumerate(zip(key, shape, strict=True)):
        if isinstance(item, slice):
            start, stop, step = item.indices(size)
            if step != 1:
                msg = "only unit-step slices are supported"
                raise IndexError(msg)
            starts.append(start)
            stops.append(max(stop, start))
        elif isinstance(item, int | np.integer):
            index = int(item) + (size if int(item) < 0 else 0)
            if not 0 <= index < size:
                msg = f"index {item} is out of bounds for axis {axis} with size {size}"
                raise IndexError(msg)
            starts.append(index)
            stops.append(index + 1)
            squeeze.append(axis)
        else:
            msg = f"unsupported index {item!r}"
            raise IndexError(msg)
    return starts, stops, squeeze
