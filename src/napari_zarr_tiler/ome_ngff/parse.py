"""Parse what a store declares: the multiscale image of OME-Zarr 0.1 to 0.6, untrusted input."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import StoreReadError
from .coordinate_systems import Placement, parse_coordinate_systems
from .fields import as_float_tuple, dataset_path, parse_axes
from .model import (
    NEWEST_KNOWN_VERSION,
    VERSION_NUMBERS,
    Channel,
    LabelHints,
    Multiscale,
    Plate,
    Well,
    safe_member_path,
)

#: Wells of one plate at most (a 1536-well plate is the largest made).
MAX_WELLS = 10_000
#: Positions (rows x columns) of one plate at most.
MAX_PLATE_POSITIONS = 100_000
#: Fields (images) of one well at most.
MAX_FIELDS_PER_WELL = 1_000
#: Label values with a colour or properties read at most from ``image-label``.
MAX_LABEL_ENTRIES = 100_000


def _parse_transforms(
    transforms: object, ndim: int, *, where: str
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    scale = (1.0,) * ndim
    translation = (0.0,) * ndim
    if transforms is None:
        return scale, translation
    if not isinstance(transforms, Sequence):
        msg = f"{where}: coordinateTransformations must be a list"
        raise StoreReadError(msg)
    for transform in transforms:
        if not isinstance(transform, Mapping):
            continue
        kind = transform.get("type")
        if kind == "scale" and "scale" in transform:
            new_scale = as_float_tuple(transform["scale"], ndim, what="scale", where=where)
            scale = tuple(a * b for a, b in zip(scale, new_scale, strict=True))
            translation = tuple(a * b for a, b in zip(translation, new_scale, strict=True))
        elif kind == "translation" and "translation" in transform:
            shift = as_float_tuple(transform["translation"], ndim, what="translation", where=where)
            translation = tuple(a + b for a, b in zip(translation, shift, strict=True))
        elif kind in {"scale", "translation"}:
            msg = f"{where}: a {kind} transform given by path is not supported"
            raise StoreReadError(msg)
    return scale, translation


def _parse_channels(omero: object) -> list[Channel]:
    if not isinstance(omero, Mapping) or not isinstance(omero.get("channels"), Sequence):
        return []
    channels = []
    for raw in omero["channels"]:
        if not isinstance(raw, Mapping):
            channels.append(Channel())
            continue
        label = raw.get("label")
        color = raw.get("color")
        if isinstance(color, str) and re.fullmatch(r"[0-9A-Fa-f]{6}", color):
            color = "#" + color.lower()
        else:
            color = None
        window = None
        raw_window = raw.get("window")
        if isinstance(raw_window, Mapping):
            start, end = raw_window.get("start"), raw_window.get("end")
            if (
                isinstance(start, int | float)
                and isinstance(end, int | float)
                and math.isfinite(start)
                and math.isfinite(end)
                and end > start
            ):
                window = (float(start), float(end))
        channels.append(
            Channel(
                label=label if isinstance(label, str) else None,
                color=color,
                window=window,
                visible=bool(raw.get("active", True)),
            )
        )
    return channels


def version_numbers(version: str) -> tuple[int, int] | None:
    """Return the (major, minor) numbers of an OME-Zarr version, None when unreadable.

    Writers spell versions in several ways: ``"0.6"``, ``"0.6.dev3"`` (acquire-zarr),
    ``"0.6rc0"``, ``"0.6-dev2"``; all of them are 0.6 here.
    """
    match = VERSION_NUMBERS.match(version)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def _version_notices(version: str, *, where: str) -> list[str]:
    """A notice when ``version`` is newer than the reader knows (read with the newest rules)."""
    numbers = version_numbers(version)
    if numbers is None or numbers <= NEWEST_KNOWN_VERSION:
        return []
    known = ".".join(str(n) for n in NEWEST_KNOWN_VERSION)
    return [
        f"{where}: OME-Zarr version {version!r} is newer than this reader knows; read with "
        f"the OME-Zarr {known} rules, so some metadata may be ignored"
    ]


def parse_multiscale(
    ome: Mapping[str, Any],
    *,
    where: str,
    ndim: int | None = None,
    into: Placement | None = None,
) -> Multiscale:
    """Parse the first multiscale image declared in an OME block.

    OME-Zarr 0.6 (and any newer version, with a notice) is read by its coordinate systems and
    coordinate transformations; earlier versions by ``axes`` and scale/translation lists.

    Parameters
    ----------
    ome : Mapping
        The OME block, as returned by :func:`ome_attributes`.
    where : str
        The node's path, for error messages.
    ndim : int, optional
        Number of dimensions of the first level, used when the metadata has no ``axes``.
    into : Placement, optional
        For an image of an OME-Zarr 0.6 scene: where its intrinsic coordinate system sits in
        the scene's displayed one (replaces its own multiscale-level transformations).

    Returns
    -------
    Multiscale
        Axes, level paths, and for every level its scale and translation with the
        multiscale-level transforms applied after the dataset-level ones; ``notices`` says what
        could not be honoured (a newer version, a transformation napari cannot show).

    Raises
    ------
    StoreReadError
        When the metadata is malformed or names a path outside the store.
    """
    multiscales = ome.get("multiscales")
    if not isinstance(multiscales, Sequence) or not multiscales:
        msg = f"{where}: 'multiscales' must be a non-empty list"
        raise StoreReadError(msg)
    first = multiscales[0]
    if not isinstance(first, Mapping):
        msg = f"{where}: 'multiscales[0]' must be an object"
        raise StoreReadError(msg)
    version = str(ome.get("version") or first.get("version") or "0.4")
    numbers = version_numbers(version)
    datasets = first.get("datasets")
    if not isinstance(datasets, Sequence) or isinstance(datasets, str) or not datasets:
        msg = f"{where}: multiscales lists no datasets"
        raise StoreReadError(msg)
    if "coordinateSystems" in first or (numbers is not None and numbers >= (0, 6)):
        multiscale = parse_coordinate_systems(first, datasets, version, where=where, into=into)
    else:
        multiscale = _parse_axes_and_transforms(first, datasets, version, ndim=ndim, where=where)
    multiscale.notices[:0] = _version_notices(version, where=where)
    name = first.get("name")
    multiscale.name = name if isinstance(name, str) else None
    multiscale.channels = _parse_channels(ome.get("omero"))
    return multiscale


def _parse_axes_and_transforms(
    first: Mapping[str, Any],
    datasets: Sequence[Any],
    version: str,
    *,
    ndim: int | None,
    where: str,
) -> Multiscale:
    """OME-Zarr 0.1 to 0.5: ``axes``, and scale/translation lists per dataset and overall."""
    axes = parse_axes(first.get("axes"), ndim, where=where)
    n_axes = len(axes)
    global_scale, global_translation = _parse_transforms(
        first.get("coordinateTransformations"), n_axes, where=where
    )
    paths, scales, translations = [], [], []
    for dataset in datasets:
        paths.append(dataset_path(dataset, where=where))
        scale, translation = _parse_transforms(
            dataset.get("coordinateTransformations"), n_axes, where=where
        )
        scales.append(tuple(g * s for g, s in zip(global_scale, scale, strict=True)))
        translations.append(
            tuple(
                g * t + gt
                for g, t, gt in zip(global_scale, translation, global_translation, strict=True)
            )
        )
    return Multiscale(
        version=version, axes=axes, paths=paths, scales=scales, translations=translations
    )


# ---------------------------------------------------------------------------------------------
# HCS plates and wells
# ---------------------------------------------------------------------------------------------


def _names(raw: object, what: str, *, where: str) -> tuple[str, ...]:
    """Row or column names of a plate (``[{"name": "A"}, ...]``)."""
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        msg = f"{where}: the plate's {what} must be a non-empty list"
        raise StoreReadError(msg)
    names = tuple(item.get("name") if isinstance(item, Mapping) else None for item in raw)
    if not all(isinstance(name, str) and name for name in names):
        msg = f"{where}: the plate's {what} must each have a name"
        raise StoreReadError(msg)
    return names  # type: ignore[return-value]


def _well(raw: object, rows: tuple[str, ...], columns: tuple[str, ...], *, where: str) -> Well:
    """One well entry, its path checked and its indices checked against its path."""
    if not isinstance(raw, Mapping):
        msg = f"{where}: a well entry of the plate is not an object"
        raise StoreReadError(msg)
    path = safe_member_path(raw.get("path"), where=where)
    parts = path.split("/")
    row, column = raw.get("rowIndex"), raw.get("columnIndex")
    if row is None and column is None and len(parts) == 2 and parts[0] in rows:
        # OME-Zarr 0.3 and earlier give the path alone: "row/column".
        row = rows.index(parts[0])
        column = columns.index(parts[1]) if parts[1] in columns else None
    valid = (
        isinstance(row, int)
        and isinstance(column, int)
        and not isinstance(row, bool)
        and not isinstance(column, bool)
        and 0 <= row < len(rows)
        and 0 <= column < len(columns)
    )
    if not valid or parts != [rows[row], columns[column]]:  # type: ignore[index]
        msg = (
            f"{where}: well {path!r} (rowIndex {row!r}, columnIndex {column!r}) does not match "
            f"the plate's rows {list(rows)[:26]} and columns {list(columns)[:48]}; a well's path "
            "must be its row name and column name joined by '/'"
        )
        raise StoreReadError(msg)
    return Well(path, row, column)  # type: ignore[arg-type]


def parse_plate(ome: Mapping[str, Any], *, where: str) -> Plate:
    """Parse the ``plate`` block of an HCS plate (OME-Zarr 0.1 to 0.6, bioformats2raw).

    Parameters
    ----------
    ome : Mapping
        The plate group's OME block, as returned by :func:`ome_attributes`.
    where : str
        The plate's path, for error messages.

    Returns
    -------
    Plate
        Row and column names and the wells, each checked to sit at its own row and column.

    Raises
    ------
    StoreReadError
        When the block is malformed, has more than :data:`MAX_WELLS` wells or
        :data:`MAX_PLATE_POSITIONS` positions, names a well path outside the store, or a well
        whose path or indices do not match the rows and columns, or two wells at one position.
    """
    raw = ome.get("plate")
    if not isinstance(raw, Mapping):
        msg = f"{where}: 'plate' must be an object"
        raise StoreReadError(msg)
    rows = _names(raw.get("rows"), "rows", where=where)
    columns = _names(raw.get("columns"), "columns", where=where)
    wells = raw.get("wells")
    if not isinstance(wells, Sequence) or isinstance(wells, str) or not wells:
        msg = f"{where}: the plate lists no wells"
        raise StoreReadError(msg)
    if len(wells) > MAX_WELLS or len(rows) * len(columns) > MAX_PLATE_POSITIONS:
        msg = (
            f"{where}: the plate declares {len(wells):,} wells in {len(rows):,} rows x "
            f"{len(columns):,} columns; at most {MAX_WELLS:,} wells and "
            f"{MAX_PLATE_POSITIONS:,} positions are read (is the metadata corrupt?)"
        )
        raise StoreReadError(msg)
    parsed = [_well(well, rows, columns, where=where) for well in wells]
    positions = {(well.row, well.column) for well in parsed}
    if len(positions) != len(parsed):
        msg = f"{where}: the plate lists two wells at the same row and column"
        raise StoreReadError(msg)
    name = raw.get("name")
    return Plate(rows, columns, tuple(parsed), name if isinstance(name, str) else None)


def parse_well_images(ome: Mapping[str, Any], *, where: str) -> list[str]:
    """Parse the image (field) paths a well lists, in order.

    Parameters
    ----------
    ome : Mapping
        The well group's OME block.
    where : str
        The well's path, for error messages.

    Returns
    -------
    list of str
        The fields' paths inside the well, each checked to stay inside it.

    Raises
    ------
    StoreReadError
        When the ``well`` block is malformed, names a path outside the store, or lists more
        than :data:`MAX_FIELDS_PER_WELL` images.
    """
    raw = ome.get("well")
    images = raw.get("images") if isinstance(raw, Mapping) else None
    if not isinstance(images, Sequence) or isinstance(images, str):
        msg = f"{where}: the well has no 'well' metadata listing its images"
        raise StoreReadError(msg)
    if len(images) > MAX_FIELDS_PER_WELL:
        msg = f"{where}: the well lists {len(images):,} images; at most {MAX_FIELDS_PER_WELL:,} are read"
        raise StoreReadError(msg)
    return [
        safe_member_path(image.get("path") if isinstance(image, Mapping) else None, where=where)
        for image in images
    ]


# ---------------------------------------------------------------------------------------------
# Label images: colours and properties
# ---------------------------------------------------------------------------------------------


def _label_value(entry: object) -> int | None:
    value = entry.get("label-value") if isinstance(entry, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _rgba(raw: object) -> tuple[float, float, float, float] | None:
    """An ``rgba`` of 3 or 4 integers 0-255 as floats 0-1 (opaque when 3), None otherwise."""
    if not isinstance(raw, Sequence) or isinstance(raw, str) or len(raw) not in (3, 4):
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw):
        return None
    values = [min(max(float(v), 0.0), 255.0) / 255.0 for v in raw if math.isfinite(v)]
    if len(values) != len(raw):
        return None
    return (*values[:3], values[3] if len(values) == 4 else 1.0)  # type: ignore[return-value]


def parse_label_hints(ome: Mapping[str, Any]) -> LabelHints:
    """Parse the colours and properties of a label image (its ``image-label`` block).

    Entries without an integer ``label-value`` or with a malformed ``rgba`` are ignored; at
    most :data:`MAX_LABEL_ENTRIES` entries of each list are read.

    Parameters
    ----------
    ome : Mapping
        The label image's OME block.

    Returns
    -------
    LabelHints
        Colours by label value, and property columns keyed by name with the label values in
        the column ``"index"`` (empty when none are given).
    """
    block = ome.get("image-label")
    if not isinstance(block, Mapping):
        return LabelHints()
    colors = {}
    raw_colors = block.get("colors")
    if isinstance(raw_colors, Sequence) and not isinstance(raw_colors, str):
        for entry in raw_colors[:MAX_LABEL_ENTRIES]:
            value, rgba = (
                _label_value(entry),
                _rgba(entry.get("rgba") if isinstance(entry, Mapping) else None),
            )
            if value is not None and rgba is not None:
                colors[value] = rgba
    return LabelHints(colors=colors, properties=_label_properties(block.get("properties")))


def _label_properties(raw: object) -> dict[str, list[Any]]:
    """Property columns (``index`` = label value) from ``[{"label-value": 1, "area": 5}, ...]``."""
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        return {}
    entries = [e for e in raw[:MAX_LABEL_ENTRIES] if _label_value(e) is not None]
    if not entries:
        return {}
    keys: dict[str, None] = {}
    for entry in entries:
        keys.update(
            (key, None)
            for key in entry
            if key not in ("label-value", "index") and isinstance(key, str)
        )
    columns: dict[str, list[Any]] = {"index": [_label_value(e) for e in entries]}
    for key in list(keys)[:256]:
        columns[key] = [_plain_value(entry.get(key)) for entry in entries]
    return columns


def _plain_value(value: object) -> object:
    """A scalar property value as is; a nested list or object as its text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)[:256]
