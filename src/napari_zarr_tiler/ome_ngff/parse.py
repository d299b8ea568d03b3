"""Parse what a store declares: the multiscale image of OME-Zarr 0.1 to 0.6, untrusted input."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import StoreReadError
from .coordinate_systems import parse_coordinate_systems
from .fields import as_float_tuple, dataset_path, parse_axes
from .model import NEWEST_KNOWN_VERSION, VERSION_NUMBERS, Channel, Multiscale


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


def parse_multiscale(ome: Mapping[str, Any], *, where: str, ndim: int | None = None) -> Multiscale:
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
        multiscale = parse_coordinate_systems(first, datasets, version, where=where)
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
