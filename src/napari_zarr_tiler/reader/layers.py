"""Describe what a zarr store holds as lazily loaded layers, without napari.

:func:`read_zarr` turns a store (zarr format 2 or 3: a bare array, a plain group, an OME-Zarr
0.1-0.6 image with labels, or a bioformats2raw collection) into :class:`LayerSpec` objects: dask
arrays whose chunks follow the stored chunks, plus the keyword arguments napari's ``add_image`` /
``add_labels`` take. No pixel is read except for the smallest pyramid level, when the metadata has no
contrast window.

This module walks the store and picks a builder per node; the builders' parts live beside it:
opening nodes (:mod:`.nodes`), arrays as dask (:mod:`.arrays`), contrast limits
(:mod:`.contrast`) and OME multiscale images (:mod:`.multiscale`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import zarr
import zarr.errors

from ..errors import StoreReadError
from ..ome_ngff import ome_attributes, parse_scene, place_scene_images, safe_member_path
from ..ome_ngff.coordinate_systems import Placement
from .arrays import (
    UndisplayableArrayError,
    check_displayable,
    lazy_array,
    lazy_pyramid,
    no_pyramid_notice,
)
from .bounded_codecs import bounded_decoding
from .contrast import contrast_limits_from
from .multiscale import multiscale_layer
from .nodes import member, member_group_unlisted, open_zarr_node
from .plates import plate_layers
from .previews import needs_lazy_pyramid
from .specs import LayerSpec, StoreContents

#: A plain group with more arrays than this opens the first ones only.
MAX_LAYERS = 64


def read_zarr(path: str | os.PathLike[str]) -> StoreContents:
    """Describe the layers a zarr store (or a node inside one) holds, lazily.

    Parameters
    ----------
    path : str or PathLike
        A store folder, a group or array folder inside one, or a metadata file
        (``zarr.json``, ``.zattrs``, ``.zgroup``, ``.zarray``) in such a folder.

    Returns
    -------
    StoreContents
        The layers (dask-backed, nothing loaded) and notices for the user.

    Raises
    ------
    StoreReadError
        With a message naming the path and the problem: missing folder, not a zarr store,
        corrupt metadata, metadata naming missing or out-of-store arrays, unsupported dtype.
    """
    try:
        with bounded_decoding():
            return _read_zarr(path)
    except StoreReadError:
        raise
    except (
        ArithmeticError,
        LookupError,
        MemoryError,
        OSError,
        RecursionError,
        RuntimeError,
        TypeError,
        ValueError,
        zarr.errors.BaseZarrError,
    ) as error:  # corrupt or hostile metadata or chunks that zarr or a codec chokes on
        msg = f"{path}: cannot read the store ({type(error).__name__}: {error})"
        raise StoreReadError(msg) from error


class _LayerBudgetSpent(Exception):
    """More layers than :data:`MAX_LAYERS`: stop adding."""


def _room_for_a_layer(contents: StoreContents) -> None:
    """Stop the walk (:class:`_LayerBudgetSpent`) once :data:`MAX_LAYERS` layers are found."""
    if len(contents.layers) >= MAX_LAYERS:
        raise _LayerBudgetSpent


def _read_zarr(path: str | os.PathLike[str]) -> StoreContents:
    """Open the node ``path`` designates and collect its layers (at most :data:`MAX_LAYERS`)."""
    node_dir, node = open_zarr_node(path)
    contents = StoreContents(layers=[])
    name = node_dir.name.removesuffix(".zarr").removesuffix(".ome") or str(node_dir)
    if isinstance(node, zarr.Array):
        contents.layers.append(
            _bare_array_layer(node, name=name, where=node_dir, notices=contents.notices)
        )
    else:
        try:
            _group_layers(node, name=name, where=node_dir, contents=contents)
        except _LayerBudgetSpent:
            contents.notices.append(
                f"{node_dir}: the store holds more than {MAX_LAYERS} images, labels or arrays; "
                f"opened the first {MAX_LAYERS}. Open a sub-path for the others."
            )
    if not contents.layers:
        skipped = "; ".join(contents.notices)
        msg = f"{node_dir}: the zarr group holds no arrays to display" + (
            f" ({skipped})" if skipped else ""
        )
        raise StoreReadError(msg)
    return contents


@contextmanager
def _skipped_if_undisplayable(contents: StoreContents) -> Iterator[None]:
    """Inside a group, an array napari cannot show becomes a notice instead of an error."""
    try:
        yield
    except UndisplayableArrayError as error:
        contents.notices.append(f"{error} (skipped)")


def _natural_key(key: str) -> tuple[int, str]:
    """Sort key putting numbered members in numeric order (2 before 10), named ones after."""
    return (int(key), "") if key.isdigit() else (1 << 62, key)


def _bare_array_layer(
    array: zarr.Array, *, name: str, where: Path, notices: list[str]
) -> LayerSpec:
    """One image layer for an array without OME metadata (with previews when it is large)."""
    check_displayable(array.shape, where=where)
    base = lazy_array(array, where=where)
    levels = [base]
    if needs_lazy_pyramid(array.shape):
        levels = lazy_pyramid(array, base, where=where)
        notices.append(no_pyramid_notice(where, array.shape, partial=False))
    kwargs: dict[str, Any] = {"name": name, "multiscale": len(levels) > 1}
    axis_labels = _dimension_names(array)
    if axis_labels is not None:
        kwargs["axis_labels"] = axis_labels
    kwargs["contrast_limits"] = contrast_limits_from(levels[-1])
    return LayerSpec(levels, kwargs, "image")


def _dimension_names(array: zarr.Array) -> tuple[str, ...] | None:
    """Axis names: zarr v3 ``dimension_names``, or xarray's ``_ARRAY_DIMENSIONS`` (zarr v2)."""
    names = getattr(array.metadata, "dimension_names", None)
    if not names:
        names = array.attrs.get("_ARRAY_DIMENSIONS")
    if (
        isinstance(names, list | tuple)
        and len(names) == array.ndim
        and all(isinstance(n, str) and n for n in names)
    ):
        return tuple(names)
    return None


def _group_layers(group: zarr.Group, *, name: str, where: Path, contents: StoreContents) -> None:
    """Add the layers of a group: an OME image, a labels group, a collection, or plain arrays."""
    ome = ome_attributes(group.attrs.asdict())
    if "multiscales" in ome:
        _ome_image_layers(group, ome, name=name, where=where, contents=contents)
    elif "scene" in ome:  # OME-Zarr 0.6: images placed in shared coordinate systems
        _scene_layers(group, ome, name=name, where=where, contents=contents)
    elif "plate" in ome:  # bioformats2raw plates carry "bioformats2raw.layout" too
        _room_for_a_layer(contents)
        plate_layers(group, ome, name=name, where=where, contents=contents)
    elif "labels" in ome:
        _label_layers(group, ome, name_prefix="", where=where, contents=contents)
    elif "bioformats2raw.layout" in ome:
        _collection_layers(group, name=name, where=where, contents=contents)
    else:
        _plain_group_layers(group, name=name, where=where, contents=contents)


# ---------------------------------------------------------------------------------------------
# bioformats2raw collections and plain groups
# ---------------------------------------------------------------------------------------------


def _iter_ome_images(
    group: zarr.Group, *, where: Path, depth: int = 0
) -> Iterator[tuple[zarr.Group, Path, dict[str, Any]]]:
    """Yield (group, path, ome block) for OME images at or below a bioformats2raw root."""
    ome = ome_attributes(group.attrs.asdict())
    if "multiscales" in ome:
        yield group, where, ome
        return
    if depth >= 1:
        return
    for key in sorted(group.group_keys(), key=_natural_key):
        if key == "OME":
            continue
        child = member(group, safe_member_path(key, where=str(where)), where=where)
        if isinstance(child, zarr.Group):
            yield from _iter_ome_images(child, where=where / key, depth=depth + 1)


def _collection_layers(
    group: zarr.Group, *, name: str, where: Path, contents: StoreContents
) -> None:
    """Add every image of a bioformats2raw collection, named by its path in the collection."""
    for image_group, image_where, image_ome in _iter_ome_images(group, where=where):
        image_name = f"{name}/{image_where.relative_to(where)}"
        with _skipped_if_undisplayable(contents):
            _ome_image_layers(
                image_group, image_ome, name=image_name, where=image_where, contents=contents
            )


def _plain_group_layers(
    group: zarr.Group, *, name: str, where: Path, contents: StoreContents
) -> None:
    """Open every array of a group without OME metadata as one layer named by its path.

    Arrays napari cannot show (xarray's 1-D and string coordinates, say) are named in one
    notice, not one each.
    """
    skipped = StoreContents(layers=[])
    try:
        _walk_plain_group(group, name=name, where=where, contents=contents, skipped=skipped)
    finally:
        if len(skipped.notices) == 1:
            contents.notices.extend(skipped.notices)
        elif skipped.notices:
            contents.notices.append(
                f"{len(skipped.notices)} arrays napari cannot show were skipped: "
                + "; ".join(notice.removesuffix(" (skipped)") for notice in skipped.notices)
            )


def _walk_plain_group(
    group: zarr.Group,
    *,
    name: str,
    where: Path,
    contents: StoreContents,
    skipped: StoreContents,
) -> None:
    """Add the layers of a plain group and its plain sub-groups; undisplayable arrays to ``skipped``."""
    pending: list[tuple[zarr.Group, str]] = [(group, "")]
    while pending:
        current, prefix = pending.pop(0)
        for key, node in sorted(current.members(), key=lambda item: _natural_key(item[0])):
            node_path = f"{prefix}{key}"
            if isinstance(node, zarr.Array):
                _room_for_a_layer(contents)
                with _skipped_if_undisplayable(skipped):
                    contents.layers.append(
                        _bare_array_layer(
                            node,
                            name=f"{name}/{node_path}",
                            where=where / node_path,
                            notices=contents.notices,
                        )
                    )
            elif isinstance(node, zarr.Group) and not _added_ome_image(
                node, name=name, path=node_path, where=where, contents=contents
            ):
                pending.append((node, f"{node_path}/"))  # a plain group: walk it too


def _added_ome_image(
    group: zarr.Group, *, name: str, path: str, where: Path, contents: StoreContents
) -> bool:
    """Add the OME image a member group of a plain group holds; False when it holds none."""
    ome = ome_attributes(group.attrs.asdict())
    if "multiscales" not in ome:
        return False
    _room_for_a_layer(contents)
    with _skipped_if_undisplayable(contents):
        _ome_image_layers(group, ome, name=f"{name}/{path}", where=where / path, contents=contents)
    return True


# ---------------------------------------------------------------------------------------------
# OME images and their labels
# ---------------------------------------------------------------------------------------------


def _ome_image_layers(
    group: zarr.Group,
    ome: dict[str, Any],
    *,
    name: str,
    where: Path,
    contents: StoreContents,
    into: Placement | None = None,
) -> None:
    """Add an OME image (or label image) and the label images its ``labels`` group lists.

    ``into`` places an image of a scene (and its labels) in the scene's coordinate system.
    """
    is_label = "image-label" in ome
    _room_for_a_layer(contents)
    layer = multiscale_layer(
        group, ome, name=name, where=where, labels=is_label, notices=contents.notices, into=into
    )
    contents.layers.append(layer)
    if is_label:
        return
    # Read from the store: labels may have been added after a consolidated listing was written.
    labels_group = member_group_unlisted(group, "labels", where=where)
    if labels_group is None:
        return
    labels_ome = ome_attributes(labels_group.attrs.asdict())
    _label_layers(
        labels_group,
        labels_ome,
        name_prefix=f"{name} ",
        where=where / "labels",
        contents=contents,
        into=into,
    )


def _label_layers(
    labels_group: zarr.Group,
    ome: dict[str, Any],
    *,
    name_prefix: str,
    where: Path,
    contents: StoreContents,
    into: Placement | None = None,
) -> None:
    """Add the label images an OME ``labels`` group lists, as Labels layers."""
    label_names = ome.get("labels")
    if not isinstance(label_names, list):
        return
    for label_name in label_names:
        safe = safe_member_path(label_name, where=str(where))
        label_group = member(labels_group, safe, where=where)
        if not isinstance(label_group, zarr.Group):
            continue
        label_ome = ome_attributes(label_group.attrs.asdict())
        if "multiscales" in label_ome:
            _room_for_a_layer(contents)
            with _skipped_if_undisplayable(contents):
                contents.layers.append(
                    multiscale_layer(
                        label_group,
                        label_ome,
                        name=f"{name_prefix}{safe}",
                        where=where / safe,
                        labels=True,
                        notices=contents.notices,
                        into=into,
                    )
                )


# ---------------------------------------------------------------------------------------------
# OME-Zarr 0.6 scenes
# ---------------------------------------------------------------------------------------------


def _scene_layers(
    group: zarr.Group, ome: dict[str, Any], *, name: str, where: Path, contents: StoreContents
) -> None:
    """Add the images an OME-Zarr 0.6 scene names, each placed in the scene's coordinate system."""
    scene = parse_scene(ome, where=str(where))
    images: dict[str, tuple[zarr.Group, dict[str, Any]]] = {}
    if len(scene.images) > MAX_LAYERS:  # each image is at least one layer
        contents.notices.append(
            f"{where}: the scene names {len(scene.images):,} images; opened the first "
            f"{MAX_LAYERS}. Open a sub-path for the others."
        )
    for path in scene.images[:MAX_LAYERS]:
        try:
            child = member(group, path, where=where)
        except StoreReadError as error:  # a missing image: the others are still shown
            contents.notices.append(f"{error} (skipped)")
            continue
        child_ome = ome_attributes(child.attrs.asdict()) if isinstance(child, zarr.Group) else {}
        multiscales = child_ome.get("multiscales")
        if not (
            isinstance(multiscales, list) and multiscales and isinstance(multiscales[0], dict)
        ):
            contents.notices.append(
                f"{where / path}: named by the scene but holds no OME image (skipped)"
            )
            continue
        images[path] = (child, child_ome)
    firsts = {path: image_ome["multiscales"][0] for path, (_, image_ome) in images.items()}
    placements, notices = place_scene_images(scene, firsts, where=str(where))
    contents.notices.extend(notices)
    for path, (child, child_ome) in images.items():
        with _skipped_if_undisplayable(contents):
            _ome_image_layers(
                child,
                child_ome,
                name=f"{name}/{path}",
                where=where / path,
                contents=contents,
                into=placements.get(path),
            )
