"""A label image inside an OME-Zarr image: the image it belongs to, its metadata, the labels list.

:func:`find_parent_image` recognises a destination ``IMAGE/labels/NAME`` whose ``IMAGE`` is an
OME-Zarr image group (0.4 on zarr 2, 0.5 or 0.6 on zarr 3; ours or another writer's) and reads
what a label image of it must copy: its zarr format, OME version, level shapes and multiscale
entry. :func:`label_attributes` builds the label image's attributes (the image's multiscales,
levels renamed ``"0"``, ``"1"``, ..., plus ``image-label``); :func:`add_to_labels_list` lists
the name in the ``labels`` group, written atomically (a temporary file moved over the old one).
Nothing here writes outside ``IMAGE/labels``.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zarr

from .. import ome_ngff
from ..errors import DestinationError, InvalidOptionError, StoreReadError
from ..zarr_names import MAX_METADATA_BYTES, has_node_metadata, is_partial_store

__all__ = [
    "ParentImage",
    "add_to_labels_list",
    "find_parent_image",
    "label_attributes",
    "label_colors",
    "label_shape_in",
    "read_parent_image",
]

#: Keys of the image's multiscale entry that describe how its levels were computed (not ours).
_DOWNSAMPLING_KEYS = ("type", "metadata", "@type")


@dataclass(frozen=True)
class ParentImage:
    """The OME-Zarr image a label image is written into."""

    #: The image group's folder.
    folder: Path
    zarr_format: int
    #: The OME-Zarr version as the image spells it ("0.4", "0.5", "0.6", "0.6.dev3", ...).
    version: str
    #: The image's first multiscale entry, as stored (copied into the label image).
    multiscale: dict[str, Any]
    #: Shape of every level, level 0 first.
    level_shapes: tuple[tuple[int, ...], ...]
    #: Index of the channel axis, or None.
    channel_axis: int | None
    #: Dimension names of level 0 (zarr 3), for the label's arrays.
    dimension_names: tuple[str, ...] | None
    #: Whether the image's metadata is consolidated (a listing other tools read instead).
    consolidated: bool = False
    #: How messages name the image (its destination, when ``folder`` is a staging folder).
    shown_as: Path | None = None

    @property
    def shown(self) -> Path:
        """The image as messages name it."""
        return self.shown_as or self.folder

    @property
    def labels_folder(self) -> Path:
        """The image's ``labels`` group."""
        return self.folder / "labels"


def find_parent_image(dest: str | os.PathLike[str]) -> ParentImage | None:
    """The OME-Zarr image whose ``labels`` group ``dest`` is in, or None for any other path.

    Parameters
    ----------
    dest : path
        Where a label image is to be written.

    Raises
    ------
    InvalidOptionError
        When ``dest`` is an image's ``labels`` folder itself, or names a label ``""``, ``"."``,
        ``".."`` or a hidden name (starting with a dot) in it; nothing is written then.
    DestinationError
        When the image is an incomplete conversion, or its metadata cannot be read.
    """
    _check_label_name(dest)
    path = Path(dest).expanduser().absolute()
    labels, image = path.parent, path.parent.parent
    if labels.name != "labels" or not has_node_metadata(image):
        return None
    if labels.is_symlink() or (labels.exists() and not labels.is_dir()):
        msg = f"{labels} is not a folder inside the image; labels are not written through links"
        raise DestinationError(msg)
    if is_partial_store(image):
        msg = f"{image}: an incomplete conversion; finish it (--resume) before adding labels to it"
        raise DestinationError(msg)
    return read_parent_image(image)


def _check_label_name(dest: str | os.PathLike[str]) -> None:
    """Refuse ``IMAGE/labels`` itself, and ``IMAGE/labels/NAME`` with an empty, ``.``, ``..``
    or hidden ``NAME`` (it would write the labels group, the image, or a hidden folder)."""
    text = os.fspath(dest)
    head, _, name = text.replace(os.sep, "/").rpartition("/")
    whole = Path(os.path.normpath(Path(text).expanduser().absolute()))
    if whole.name == "labels" and has_node_metadata(whole.parent):
        shown = name if name in ("", ".", "..") else None
    elif name.startswith("."):
        labels = Path(os.path.normpath(Path(head or ".").expanduser().absolute()))
        is_label_path = labels.name == "labels" and has_node_metadata(labels.parent)
        shown = name if is_label_path else None
        if shown is None:
            return
    else:
        return
    what = (
        f"label name {shown!r} is not a plain folder name"
        if shown is not None
        else f"the labels folder of the image {whole.parent}, not a label image"
    )
    msg = f"{text}: {what}; write labels to IMAGE/labels/NAME, a NAME not starting with '.'"
    raise InvalidOptionError(msg)


def read_parent_image(folder: Path, *, shown_as: Path | None = None) -> ParentImage | None:
    """Read the OME-Zarr image in ``folder`` (None when it is not an image, or is a label image).

    Parameters
    ----------
    folder : Path
        The image group's folder.
    shown_as : Path, optional
        How messages name the image (its destination, for an image still being staged).

    Raises
    ------
    DestinationError
        When its metadata is corrupt or names levels that are not there.
    InvalidOptionError
        When a level is larger than the level before it on some axis (or has other axes).
    """
    from ..reader import ContainedLocalStore, member_array  # the reader's containment rules

    shown = shown_as or folder
    try:
        group = zarr.open_group(store=ContainedLocalStore(folder), mode="r")
        ome = ome_ngff.ome_attributes(group.attrs.asdict())
        if "multiscales" not in ome or "image-label" in ome:
            return None
        multiscale = ome_ngff.parse_multiscale(ome, where=str(shown))
        levels = [member_array(group, p, where=folder) for p in multiscale.paths]
    except (StoreReadError, OSError, ValueError, TypeError, KeyError) as error:
        msg = f"{shown}: cannot read the image to add labels to ({error})"
        raise DestinationError(msg) from error
    shapes = tuple(tuple(int(s) for s in level.shape) for level in levels)
    _check_level_shapes(shapes, shown)
    zarr_format = group.metadata.zarr_format
    names = getattr(levels[0].metadata, "dimension_names", None) if zarr_format == 3 else None
    return ParentImage(
        folder=folder,
        zarr_format=zarr_format,
        version=multiscale.version,
        multiscale=copy.deepcopy(dict(ome["multiscales"][0])),
        level_shapes=shapes,
        channel_axis=multiscale.channel_axis,
        dimension_names=tuple(str(n) for n in names) if names and all(names) else None,
        consolidated=_is_consolidated(group, folder),
        shown_as=shown_as,
    )


def _check_level_shapes(shapes: tuple[tuple[int, ...], ...], shown: Path) -> None:
    """Refuse levels that are not each at most as large as the one before, on every axis."""
    for level, (before, shape) in enumerate(itertools.pairwise(shapes), start=1):
        if len(shape) != len(before) or any(s > b for s, b in zip(shape, before, strict=True)):
            msg = (
                f"{shown}: level {level} of the image has shape {shape}, not within the shape "
                f"{before} of level {level - 1}; labels are added only to an image whose levels "
                "shrink (rewrite the image, e.g. convert it with napari-zarr-tiler, first)"
            )
            raise InvalidOptionError(msg)


def _is_consolidated(group: zarr.Group, folder: Path) -> bool:
    """Whether the image's metadata is consolidated (zarr 3 ``consolidated_metadata`` in its
    ``zarr.json``, or a zarr 2 ``.zmetadata``)."""
    if getattr(group.metadata, "consolidated_metadata", None) is not None:
        return True
    return (folder / ".zmetadata").is_file()


def label_shape_in(
    image_shape: Sequence[int], channel_axis: int | None, shape: Sequence[int]
) -> tuple[int, ...] | None:
    """The level-0 shape labels of ``shape`` get in an image of ``image_shape``, or None.

    Labels fit when they have the image's shape, or its shape with one channel, or its shape
    without its channel axis (ome-zarr-py's ``yx`` labels of a ``cyx`` image); the last two
    get a channel axis of 1, as the OME-Zarr specification asks of a dimension a label lacks.
    """
    image0 = tuple(int(s) for s in image_shape)
    shape = tuple(int(s) for s in shape)
    if shape == image0:
        return image0
    if channel_axis is None:
        return None
    one_channel = (*image0[:channel_axis], 1, *image0[channel_axis + 1 :])
    without = (*image0[:channel_axis], *image0[channel_axis + 1 :])
    return one_channel if shape in (one_channel, without) else None


def label_level_shapes(parent: ParentImage, shape: Sequence[int]) -> list[tuple[int, ...]]:
    """The label image's level shapes: the image's, with a channel axis of 1 unless ``shape``
    has the image's channels (see :func:`label_shape_in`).

    Raises
    ------
    InvalidOptionError
        When labels of ``shape`` do not fit the image (:func:`label_shape_in`).
    """
    image0 = parent.level_shapes[0]
    fitted = label_shape_in(image0, parent.channel_axis, shape)
    if fitted is None:
        msg = (
            f"the labels have shape {tuple(int(s) for s in shape)} but the image "
            f"{parent.shown} has shape {image0} at level 0; labels written into an image "
            "must have its shape (with one channel, or without its channel axis)"
        )
        raise InvalidOptionError(msg)
    if fitted == image0:
        return list(parent.level_shapes)
    axis = parent.channel_axis
    assert axis is not None  # a channel of 1 is only ever added on the channel axis
    return [(*s[:axis], 1, *s[axis + 1 :]) for s in parent.level_shapes]


def _rename_path(node: Any, old: str, new: str) -> Any:
    """``node`` with every ``{"path": old}`` reference (0.6 transformation inputs) renamed."""
    if isinstance(node, dict):
        return {
            k: (new if k == "path" and v == old else _rename_path(v, old, new))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rename_path(v, old, new) for v in node]
    return node


def label_multiscale(parent: ParentImage, name: str) -> dict[str, Any]:
    """The image's multiscale entry for a label image ``name``: levels ``"0"``, ``"1"``, ...,
    the image's axes or coordinate systems and transforms, nearest downsampling."""
    entry = {k: v for k, v in parent.multiscale.items() if k not in _DOWNSAMPLING_KEYS}
    datasets = []
    for level, dataset in enumerate(entry.get("datasets", [])):
        old = dataset.get("path")
        renamed = _rename_path(dict(dataset), old, str(level))
        renamed["path"] = str(level)
        datasets.append(renamed)
    return {**entry, "name": name, "datasets": datasets, "type": "nearest"}


def label_colors(colors: Mapping[int, Any] | None) -> list[dict[str, Any]] | None:
    """``image-label`` colours from ``{label value: colour}`` (``"RRGGBB"``/``"#RRGGBBAA"`` or
    an RGB(A) sequence of 0-255 integers).

    Raises
    ------
    InvalidOptionError
        For a colour that cannot be read.
    """
    if colors is None:
        return None
    if not isinstance(colors, Mapping):
        msg = "colors of labels written into an image must map label values to colours"
        raise InvalidOptionError(msg)
    return [{"label-value": int(v), "rgba": _rgba(c, v)} for v, c in colors.items()]


def _rgba(color: Any, value: Any) -> list[int]:
    if isinstance(color, str):
        text = color.lstrip("#")
        if len(text) in (6, 8) and all(ch in "0123456789abcdefABCDEF" for ch in text):
            rgba = [int(text[i : i + 2], 16) for i in range(0, len(text), 2)]
            return rgba + [255] * (4 - len(rgba))
    elif isinstance(color, Sequence) and len(color) in (3, 4):
        rgba = [int(c) for c in color]
        if all(0 <= c <= 255 for c in rgba):
            return rgba + [255] * (4 - len(rgba))
    msg = f"colour {color!r} of label {value} is not RRGGBB, RRGGBBAA or 3-4 integers 0-255"
    raise InvalidOptionError(msg)


def label_attributes(
    parent: ParentImage,
    name: str,
    *,
    colors: list[dict[str, Any]] | None = None,
    properties: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The attributes of label image ``name`` of ``parent``: multiscales and ``image-label``."""
    image_label: dict[str, Any] = {}
    if parent.zarr_format == 2:
        image_label["version"] = parent.version
    if colors:
        image_label["colors"] = colors
    if properties:
        image_label["properties"] = [dict(p) for p in properties]
    image_label["source"] = {"image": "../../"}
    block = {"multiscales": [label_multiscale(parent, name)], "image-label": image_label}
    if parent.zarr_format == 2:
        return block
    return {"ome": {"version": parent.version, **block}}


# -- the labels group --------------------------------------------------------------------------


def _read_json(file: Path) -> dict[str, Any]:
    """A small JSON object file of the labels group ({} when missing)."""
    if not file.exists():
        return {}
    if file.is_symlink() or not file.is_file() or file.stat().st_size > MAX_METADATA_BYTES:
        msg = f"{file}: not a small regular file; the labels list cannot be updated"
        raise DestinationError(msg)
    try:
        document = json.loads(file.read_bytes())
    except ValueError as error:
        msg = f"{file}: corrupt metadata ({error}); the labels list cannot be updated"
        raise DestinationError(msg) from error
    if not isinstance(document, dict):
        msg = f"{file}: corrupt metadata (not a JSON object); the labels list cannot be updated"
        raise DestinationError(msg)
    return document


def _write_json_atomically(file: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to a temporary file beside ``file``, then move it over ``file``."""
    temporary = file.with_name(f".{file.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        temporary.write_text(json.dumps(document, indent=2))
        os.replace(temporary, file)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        msg = f"{file}: cannot write the labels list ({error.strerror or error})"
        raise DestinationError(msg) from error


def ensure_labels_group(parent: ParentImage) -> None:
    """Create the image's ``labels`` group (listing nothing yet) if it has none."""
    folder = parent.labels_folder
    folder.mkdir(exist_ok=True)
    if parent.zarr_format == 3:
        if not (folder / "zarr.json").exists():
            ome = {"version": parent.version, "labels": []}
            group = {"zarr_format": 3, "node_type": "group", "attributes": {"ome": ome}}
            _write_json_atomically(folder / "zarr.json", group)
        return
    if not (folder / ".zgroup").exists():
        _write_json_atomically(folder / ".zgroup", {"zarr_format": 2})
    if not (folder / ".zattrs").exists():
        _write_json_atomically(folder / ".zattrs", {"labels": []})


def add_to_labels_list(parent: ParentImage, name: str) -> None:
    """List ``name`` (once) in the ``labels`` group, keeping its other attributes.

    Raises
    ------
    DestinationError
        When the group's metadata cannot be read or written.
    """
    ensure_labels_group(parent)
    folder = parent.labels_folder
    if parent.zarr_format == 3:
        file = folder / "zarr.json"
        document = _read_json(file)
        attributes = document.setdefault("attributes", {})
        ome = attributes.setdefault("ome", {})
        ome.setdefault("version", parent.version)
        block = ome
    else:
        file = folder / ".zattrs"
        document = _read_json(file)
        block = document
    listed = block.get("labels")
    listed = [n for n in listed if isinstance(n, str)] if isinstance(listed, list) else []
    if name in listed:
        return
    block["labels"] = [*listed, name]
    _write_json_atomically(file, document)
