"""A file's axes in OME-Zarr order: which file axis becomes t, c, z, y or x, and a lazy view.

:func:`ome_axes` maps tifffile's axis letters of a series onto OME-Zarr's t, c, z, y, x without
renaming any (axes OME-Zarr has no name for are folded into the channel axis);
:class:`AxisOrderView` reads the file in its own order and hands out blocks in the stored order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..basic_indexing import basic_index

#: Axes tifffile names that OME-Zarr has no place for, with tifffile's word for each.
_PAGE_STACK_AXES = "IQ"


@dataclass(frozen=True)
class StoredAxes:
    """How a TIFF series with tifffile's axes is stored as OME-Zarr (order t, c, z, y, x).

    ``order`` permutes the file's axes into the stored order, in which the ``folded`` axes (C,
    then axes OME-Zarr has no name for, then samples) sit side by side at the channel position
    and are merged into one channel axis. ``names`` are the stored axis names (RGB samples last,
    as ``s``).
    """

    order: tuple[int, ...]
    names: tuple[str, ...]
    rgb: bool
    folded: tuple[str, ...] = ()
    fold_shape: tuple[int, ...] = ()
    #: Whether the Z axis is a page stack tifffile could not classify (I, Q), Z by guess only.
    guessed_z: bool = False


def ome_axes(axes: str, shape: tuple[int, ...], *, colour: bool = True) -> StoredAxes:
    """Map tifffile's axes of a series onto OME-Zarr's t, c, z, y, x without renaming any.

    T, C, Z, Y and X keep their meaning. Samples (S) make an RGB(A) image when there are 3 or
    4 of a ``colour`` (photometric RGB) image and neither C, T nor a folded axis (napari shows
    RGB with Z only); else they are channels. A page stack tifffile cannot classify (I, Q) fills
    Z, then T, while those are free (a plain multi-page TIFF is a Z stack). Every other axis
    (H lifetime, E lambda, A angle, P phase, R tile, ...) is folded into the channel axis after
    C, as OME-TIFF's ModuloAlongC does: e.g. C=2 by H=5 become 10 channels.

    Parameters
    ----------
    axes : str
        tifffile's axis letters of the series, one per dimension (case ignored).
    shape : tuple of int
        The series' shape.
    colour : bool
        Whether the image is photometric RGB (its samples may then be shown as RGB).

    Returns
    -------
    StoredAxes
        The permutation into stored order, the stored names and what is folded into channels.
    """
    axes = axes.upper()
    roles = _axis_roles(axes)
    unknown = [i for i in range(len(axes)) if i not in roles and axes[i] != "S"]
    samples = [i for i in range(len(axes)) if axes[i] == "S"]
    rgb = bool(
        len(samples) == 1
        and colour
        and shape[samples[0]] in (3, 4)
        and not unknown
        and not {"C", "T"} & set(roles.values())
    )
    channel_like = [i for i in range(len(axes)) if roles.get(i) == "C"] + unknown
    if not rgb:
        channel_like += samples
    spatial = {letter: index for index, letter in roles.items() if letter != "C"}
    order, names = _stored_order(spatial, channel_like)
    if rgb:
        order.append(samples[0])
        names.append("s")
    folded = tuple(axes[i] for i in channel_like) if len(channel_like) > 1 else ()
    fold_shape = tuple(shape[i] for i in channel_like) if folded else ()
    guessed_z = any(roles[i] == "Z" and axes[i] in _PAGE_STACK_AXES for i in roles)
    return StoredAxes(tuple(order), tuple(names), rgb, folded, fold_shape, guessed_z)


def _axis_roles(axes: str) -> dict[int, str]:
    """The OME letter (T, C, Z, Y, X) each file axis plays; unclassified page stacks fill Z, T."""
    roles: dict[int, str] = {}
    for index, letter in enumerate(axes):
        if letter in "TCZYX" and letter not in roles.values():
            roles[index] = letter
    for index in reversed(range(len(axes))):
        if index not in roles and axes[index] in _PAGE_STACK_AXES:
            free = next((slot for slot in "ZT" if slot not in roles.values()), None)
            if free is not None:
                roles[index] = free
    return roles


def _stored_order(spatial: dict[str, int], channel_like: list[int]) -> tuple[list[int], list[str]]:
    """File axes and stored names in the order t, c (all channel-like axes), z, y, x."""
    order = [spatial[letter] for letter in "T" if letter in spatial]
    order += channel_like
    order += [spatial[letter] for letter in "ZYX" if letter in spatial]
    names = [name for name in "t" if "T" in spatial]
    names += ["c"] if channel_like else []
    names += [name for name in "zyx" if name.upper() in spatial]
    return order, names


class AxisOrderView:
    """A lazy view of an array with its axes permuted (and some merged): ``view[key]`` reads
    ``array`` in its own order and transposes only the block read.

    ``merge = (start, count)`` merges the ``count`` permuted axes from ``start`` into one axis
    (C order: the last varies fastest); a read along it is split into runs along the last.
    """

    def __init__(
        self, array: Any, order: tuple[int, ...], merge: tuple[int, int] | None = None
    ) -> None:
        self.array = array
        self.order = order
        permuted = tuple(int(array.shape[axis]) for axis in order)
        self.merge = merge if merge is not None and merge[1] > 1 else None
        if self.merge is None:
            self.shape = permuted
        else:
            start, count = self.merge
            self._group = permuted[start : start + count]
            self.shape = (
                *permuted[:start],
                math.prod(self._group),
                *permuted[start + count :],
            )
        self._permuted = permuted
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        starts, stops, squeeze = basic_index(key, self.shape)
        if self.merge is None:
            block = self._read(list(zip(starts, stops, strict=True)))
        else:
            block = self._read_merged(starts, stops)
        return np.ascontiguousarray(block.squeeze(axis=tuple(squeeze)) if squeeze else block)

    def _read(self, ranges: list[tuple[int, int]]) -> np.ndarray:
        """Read ``ranges`` of the permuted axes; return the block in permuted order."""
        source_key: list[slice] = [slice(None)] * len(self.order)
        for axis, (start, stop) in enumerate(ranges):
            source_key[self.order[axis]] = slice(start, stop)
        return np.transpose(np.asarray(self.array[tuple(source_key)]), self.order)

    def _read_merged(self, starts: list[int], stops: list[int]) -> np.ndarray:
        """Read a block whose merged axis spans ``starts``/``stops``, one run of the last at a time."""
        assert self.merge is not None
        start, count = self.merge
        out = np.empty([b - a for a, b in zip(starts, stops, strict=True)], dtype=self.dtype)
        inner = self._group[-1]
        position = starts[start]
        while position < stops[start]:
            outer, first = divmod(position, inner)
            last = min(inner, first + stops[start] - position)
            indices = np.unravel_index(outer, self._group[:-1]) if count > 1 else ()
            group_ranges = [(int(i), int(i) + 1) for i in indices] + [(first, last)]
            ranges = [
                *zip(starts[:start], stops[:start], strict=True),
                *group_ranges,
                *zip(starts[start + 1 :], stops[start + 1 :], strict=True),
            ]
            block = self._read(ranges)
            merged_shape = (*block.shape[:start], last - first, *block.shape[start + count :])
            done = position - starts[start]
            target = [slice(None)] * out.ndim
            target[start] = slice(done, done + last - first)
            out[tuple(target)] = block.reshape(merged_shape)
            position += last - first
        return out
