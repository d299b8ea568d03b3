"""An HCS plate as a few layers: every well at its row and column, every field tiled in its well.

The plate is one lazy image per pyramid level (:mod:`.plate_grid`), read from the fields' own
stored levels: a well's fields are tiled in a small grid inside the well's cell, each field
padded to the largest field's shape, and positions without a well (or a well without that many
fields) read as zeros. Only the fields that exist cost anything to open. The plate keeps as many levels as every field has. Channels become
one layer each (not one per field); the fields' label images become one Labels layer per label
name, laid out the same way. Nothing is read but metadata.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from ..errors import StoreReadError
from ..ome_ngff import Multiscale, ome_attributes, safe_member_path
from ..ome_ngff.model import Plate
from ..ome_ngff.parse import parse_label_hints, parse_plate, parse_well_images
from .multiscale import label_hints_kwargs, layer_from_levels, open_levels
from .nodes import member
from .plate_grid import lazy_plate_level
from .previews import (
    VIEW_CHUNK_BUDGET,
    VIEW_CHUNK_SIDE,
    StridedView,
    needs_lazy_pyramid,
    strided_level_factors,
    view_reads,
)
from .specs import LayerSpec, StoreContents

if TYPE_CHECKING:
    import dask.array as da

#: Fields (images) of one plate opened at most.
MAX_PLATE_FIELDS = 20_000
#: Label names of a plate shown at most (one Labels layer each).
MAX_PLATE_LABELS = 16
#: Threads reading the metadata of wells and fields.
OPENING_THREADS = 8
#: Problem wells or fields named in a notice at most.
SHOWN_PROBLEMS = 8

Position = tuple[int, int]


@dataclass(frozen=True)
class _Field:
    """One opened field (image) of a well: its metadata, lazy levels, group and folder."""

    multiscale: Multiscale
    levels: list[da.Array]
    group: zarr.Group
    where: Path
    ome: dict[str, Any]
    #: The stored levels, the plate's coarsest sampled for previews when still large.
    arrays: list[zarr.Array]


@dataclass
class _Problems:
    """Wells and fields that could not be shown, gathered into one notice each."""

    wells: list[str]
    fields: list[str]

    def notices(self, where: Path) -> list[str]:
        """At most one notice for missing wells and one for skipped fields."""
        found = []
        for what, items in (("wells", self.wells), ("fields", self.fields)):
            if items:
                shown = "; ".join(items[:SHOWN_PROBLEMS])
                more = (
                    f" (and {len(items) - SHOWN_PROBLEMS:,} more)"
                    if len(items) > SHOWN_PROBLEMS
                    else ""
                )
                found.append(
                    f"{where}: {len(items):,} {what} of the plate shown empty: {shown}{more}"
                )
        return found


def plate_layers(
    group: zarr.Group, ome: dict[str, Any], *, name: str, where: Path, contents: StoreContents
) -> None:
    """Add an HCS plate's layers: one image layer per channel, one Labels layer per label name.

    Parameters
    ----------
    group : zarr.Group
        The plate's group (an OME plate, or a bioformats2raw root with ``plate`` metadata).
    ome : dict
        Its OME attributes, holding ``plate``.
    name : str
        Layer name when the plate has none.
    where : Path
        The plate's folder, named in errors and notices.
    contents : StoreContents
        Layers and notices are appended here (wells missing or unreadable, fields skipped).

    Raises
    ------
    StoreReadError
        When the plate metadata is malformed or absurd, names paths outside the store, or no
        well holds an image that can be shown.
    """
    plate = parse_plate(ome, where=str(where))
    problems = _Problems([], [])
    fields = _open_plate_fields(group, plate, where=where, problems=problems)
    first = next((f for well in fields.values() for f in well if f is not None), None)
    if first is None:
        msg = f"{where}: no well of the plate holds an image that can be shown"
        raise StoreReadError(msg)
    fields = _matching(fields, first, problems)
    contents.notices.extend(problems.notices(where))
    layer_name = plate.name or name
    levels = plate_levels(plate, fields, where=where)
    contents.layers.append(
        layer_from_levels(
            levels,
            first.multiscale,
            name=layer_name,
            where=where,
            labels=False,
            notices=contents.notices,
        )
    )
    for label_name in _label_names(first):
        label_spec = _plate_label_layer(plate, fields, label_name, name=layer_name, where=where)
        if label_spec is not None:
            contents.layers.append(label_spec)


# ---------------------------------------------------------------------------------------------
# Opening wells and fields
# ---------------------------------------------------------------------------------------------


def _open_plate_fields(
    group: zarr.Group, plate: Plate, *, where: Path, problems: _Problems
) -> dict[Position, list[_Field | None]]:
    """Open every field of every well; a well or field that cannot be shown is noted, not fatal.

    Metadata is read by :data:`OPENING_THREADS` threads: each read waits on zarr's event loop,
    and a 384-well plate has thousands.
    """
    with ThreadPoolExecutor(OPENING_THREADS) as pool:
        opened = list(
            pool.map(lambda well: _open_well(group, well.path, where=where), plate.wells)
        )
        n_fields = sum(len(paths) for _, paths in opened if isinstance(paths, list))
        if n_fields > MAX_PLATE_FIELDS:
            msg = (
                f"{where}: the plate's wells list {n_fields:,} images; at most "
                f"{MAX_PLATE_FIELDS:,} are opened"
            )
            raise StoreReadError(msg)
        pending = {}
        for well, (well_group, paths) in zip(plate.wells, opened, strict=True):
            if isinstance(paths, str):
                problems.wells.append(paths)
                continue
            pending[(well.row, well.column)] = [
                pool.submit(_open_field, well_group, path, where=where / well.path)
                for path in paths
            ]
        fields = {position: [f.result() for f in futures] for position, futures in pending.items()}
    for well in fields.values():
        problems.fields.extend(field for field in well if isinstance(field, str))
    return {
        position: [f if isinstance(f, _Field) else None for f in well]
        for position, well in fields.items()
    }


def _open_well(
    group: zarr.Group, path: str, *, where: Path
) -> tuple[zarr.Group | None, list[str] | str]:
    """A well's group and its fields' paths, or (None, why) when it cannot be read.

    Paths outside the store are refused (raised), never noted.
    """
    try:
        well_group = _group_member(group, path, where=where)
        ome = ome_attributes(well_group.attrs.asdict())
        return well_group, parse_well_images(ome, where=str(where / path))
    except StoreReadError as error:
        if "not a plain path" in str(error):
            raise
        return None, f"{path} ({error})"


def _group_member(group: zarr.Group, path: str, *, where: Path) -> zarr.Group:
    """The group at ``path`` (checked to stay inside ``group``), or StoreReadError."""
    node = member(group, safe_member_path(path, where=str(where)), where=where)
    if not isinstance(node, zarr.Group):
        msg = f"{where / path}: expected a group, found an array"
        raise StoreReadError(msg)
    return node


def _open_field(well_group: zarr.Group, path: str, *, where: Path) -> _Field | str:
    """One field of a well, opened lazily; why not (a string) when it cannot be shown."""
    field_where = where / path
    try:
        field_group = _group_member(well_group, path, where=where)
        ome = ome_attributes(field_group.attrs.asdict())
        if "multiscales" not in ome:
            msg = f"{field_where}: not an OME image (no multiscales)"
            raise StoreReadError(msg)
        multiscale, levels, arrays = open_levels(field_group, ome, where=field_where)
    except StoreReadError as error:
        return str(error)
    return _Field(multiscale, levels, field_group, field_where, ome, arrays)


def _matching(
    fields: dict[Position, list[_Field | None]], first: _Field, problems: _Problems
) -> dict[Position, list[_Field | None]]:
    """Fields with the first field's axes; the others are noted and shown empty."""
    names = [axis.name for axis in first.multiscale.axes]

    def keep(field: _Field | None) -> _Field | None:
        if field is None or [a.name for a in field.multiscale.axes] == names:
            return field
        problems.fields.append(
            f"{field.where}: axes {[a.name for a in field.multiscale.axes]} differ from {names}"
        )
        return None

    return {position: [keep(f) for f in well] for position, well in fields.items()}


# ---------------------------------------------------------------------------------------------
# The plate's levels
# ---------------------------------------------------------------------------------------------


def field_grid(n_fields: int) -> tuple[int, int]:
    """Rows and columns of the grid a well's fields are tiled in (as square as possible).

    Parameters
    ----------
    n_fields : int
        The largest number of fields of any well.

    Returns
    -------
    tuple of (int, int)
        ``(rows, columns)``, columns first filled: 1 -> (1, 1), 2 -> (1, 2), 4 -> (2, 2),
        5 -> (2, 3).
    """
    columns = max(1, math.ceil(math.sqrt(n_fields)))
    return max(1, math.ceil(n_fields / columns)), columns


def plate_levels(
    plate: Plate, fields: dict[Position, list[Any]], *, where: Path
) -> list[da.Array]:
    """The plate's lazy levels, assembled from the fields' levels.

    Parameters
    ----------
    plate : Plate
        The plate's rows and columns.
    fields : dict
        For each (row, column) position with a well, its fields: objects with ``levels`` (a
        list of dask arrays, finest first, all with the same number of dimensions) and
        ``arrays`` (the stored arrays of those levels), or None for a field shown empty.
    where : Path
        The plate's folder, named in errors.

    Returns
    -------
    list of dask.array.Array
        One array per level every field has: the fields tiled in their wells (a
        :func:`field_grid` each), the wells in the plate's rows and columns, along the last
        two axes; missing wells and fields are zeros. When the coarsest is still too large to
        draw whole, coarser previews follow, sampled from the fields' coarsest levels. Each
        is one lazy array (:mod:`.plate_grid`) costing only the fields that exist.

    Raises
    ------
    StoreReadError
        When a block of the plate would be absurdly large.
    """
    present = [f for well in fields.values() for f in well if f is not None]
    grid = field_grid(max(len(well) for well in fields.values()))

    def assembled(pick: Any, chunk: tuple[int, ...]) -> da.Array:
        sources = {
            pos: [None if f is None else pick(f) for f in well] for pos, well in fields.items()
        }
        return _plate_level(plate, sources, grid, chunk=chunk, where=where)

    n_levels = min(len(f.levels) for f in present)
    levels = [
        assembled(lambda f, k=k: f.arrays[k], present[0].levels[k].chunksize)
        for k in range(n_levels)
    ]
    if needs_lazy_pyramid(levels[-1].shape):
        step = _sample_step(present, n_levels - 1)
        ndim = levels[-1].ndim
        view_chunk = (*(1,) * (ndim - 2), VIEW_CHUNK_SIDE, VIEW_CHUNK_SIDE)
        for factor in strided_level_factors(levels[-1].shape):
            preview = assembled(
                lambda f, factor=factor: StridedView(f.arrays[n_levels - 1], factor, step),
                view_chunk,
            )
            if preview.shape == levels[-1].shape:
                break  # one pixel per field already: napari needs levels that shrink
            levels.append(preview)
    return levels


def _sample_step(present: list[Any], level: int) -> int:
    """Sampling step keeping a whole-plate preview within :data:`VIEW_CHUNK_BUDGET` chunks."""
    largest = max(present, key=lambda f: math.prod(f.levels[level].shape)).arrays[level]
    itemsize = np.dtype(largest.dtype).itemsize
    step = 1
    while step < max(largest.shape[-2:]):
        touched, _ = view_reads(largest.shape, largest.chunks, itemsize, step)
        if touched * len(present) <= VIEW_CHUNK_BUDGET:
            break
        step *= 2
    return step


def _plate_level(
    plate: Plate,
    sources: dict[Position, list[Any]],
    grid: tuple[int, int],
    *,
    chunk: tuple[int, ...],
    where: Path,
) -> da.Array:
    """One level of the plate: every field in its cell, padded to the largest, zeros elsewhere.

    ``sources`` holds each field's array-like at this level (None for a field shown empty).
    """
    present = [a for well in sources.values() for a in well if a is not None]
    cell = tuple(max(sizes) for sizes in zip(*(a.shape for a in present), strict=True))
    dtype = np.result_type(*{np.dtype(a.dtype) for a in present})
    field_rows, field_columns = grid
    cells = {}
    for (row, column), well in sources.items():
        for index, source in enumerate(well):
            if source is not None:
                field_row, field_column = divmod(index, field_columns)
                cells[(row * field_rows + field_row, column * field_columns + field_column)] = (
                    source
                )
    return lazy_plate_level(
        cells,
        cell=cell,
        grid=(len(plate.rows) * field_rows, len(plate.columns) * field_columns),
        dtype=dtype,
        chunk=chunk,
        where=where,
    )


# ---------------------------------------------------------------------------------------------
# Plate labels
# ---------------------------------------------------------------------------------------------


def _labels_group(field: _Field) -> zarr.Group | None:
    """The ``labels`` group of a field, None when it has none."""
    if "labels" not in field.group:
        return None
    try:
        labels = member(field.group, "labels", where=field.where)
    except StoreReadError:
        return None
    return labels if isinstance(labels, zarr.Group) else None


def _label_names(field: _Field) -> list[str]:
    """The label names the first field lists (at most :data:`MAX_PLATE_LABELS`)."""
    labels = _labels_group(field)
    if labels is None:
        return []
    names = ome_attributes(labels.attrs.asdict()).get("labels")
    if not isinstance(names, list):
        return []
    where = str(field.where / "labels")
    return [safe_member_path(n, where=where) for n in names[:MAX_PLATE_LABELS]]


@dataclass(frozen=True)
class _LabelField:
    """One field's label image of a given name: its lazy levels, metadata and OME block."""

    levels: list[da.Array]
    multiscale: Multiscale
    ome: dict[str, Any]
    arrays: list[zarr.Array]


def _open_label(field: _Field | None, label_name: str) -> _LabelField | None:
    """A field's label image ``label_name``, None when it has none or it cannot be shown."""
    labels = None if field is None else _labels_group(field)
    if field is None or labels is None or label_name not in labels:
        return None
    where = field.where / "labels" / label_name
    try:
        group = member(labels, label_name, where=field.where / "labels")
        ome = ome_attributes(group.attrs.asdict()) if isinstance(group, zarr.Group) else {}
        if "multiscales" not in ome:
            return None
        multiscale, levels, arrays = open_levels(group, ome, where=where)
    except StoreReadError:
        return None
    return _LabelField(levels, multiscale, ome, arrays)


def _plate_label_layer(
    plate: Plate,
    fields: dict[Position, list[_Field | None]],
    label_name: str,
    *,
    name: str,
    where: Path,
) -> LayerSpec | None:
    """One Labels layer for the fields' label images ``label_name``, laid out like the image."""
    label_fields = {
        position: [_open_label(field, label_name) for field in well]
        for position, well in fields.items()
    }
    first = next((f for well in label_fields.values() for f in well if f is not None), None)
    if first is None:
        return None
    names = [axis.name for axis in first.multiscale.axes]
    label_fields = {
        position: [
            f if f is not None and [a.name for a in f.multiscale.axes] == names else None
            for f in well
        ]
        for position, well in label_fields.items()
    }
    levels = plate_levels(plate, label_fields, where=where)
    spec = layer_from_levels(
        levels, first.multiscale, name=f"{name} {label_name}", where=where, labels=True, notices=[]
    )
    spec.kwargs.update(label_hints_kwargs(parse_label_hints(first.ome)))
    return spec
