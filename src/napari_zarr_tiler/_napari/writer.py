"""npe2 writers: File > Save Selected Layers to ``name.zarr`` writes an OME-Zarr pyramid.

One image layer, one labels layer, or one image with its labels layers (written as the image's
OME-Zarr ``labels/``, as every OME-Zarr viewer expects). Any other selection is refused with a
message that says what to select.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..converter import LevelZero, convert, plan_conversion
from ..converter.label_image import read_parent_image
from ..errors import ConversionError
from ..sources import SourceWarning
from .layer_metadata import conversion_options, level_zero

#: What Save Selected Layers can write to a .zarr store, for the refusal message.
_WHAT_FITS = (
    "select one image layer, one labels layer, or one image layer with its labels layers "
    "(they are written under the image's labels/); to write several images, save them one "
    "at a time or use the Convert to zarr widget"
)


@contextlib.contextmanager
def _reported(path: str) -> Iterator[None]:
    """Re-raise a ValueError (or a SourceWarning raised as an error) as a ConversionError:
    napari turns a writer's ValueError into "not a valid writer" and drops its message."""
    try:
        yield
    except ValueError as error:
        msg = f"cannot save {Path(path).name}: {error}"
        raise ConversionError(msg) from error
    except SourceWarning as error:  # turned into an error where the writer asks for it
        msg = f"cannot save {Path(path).name}: {error} (nothing was written)"
        raise ConversionError(msg) from error


def _write(path: str, data: Any, meta: dict[str, Any], layer_type: str) -> list[str]:
    # napari's save dialog has already asked before replacing an existing name; the engine still
    # refuses to replace anything that is not a zarr store.
    with _reported(path):
        result = convert(
            level_zero(data, meta), path, overwrite=True, **conversion_options(meta, layer_type)
        )
    return [str(result.path)]


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write an Image layer as an OME-Zarr image with default options."""
    return _write(path, data, meta, "image")


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Labels layer as an OME-Zarr label image.

    Saved as ``IMAGE.zarr/labels/NAME``, it is added to that OME-Zarr image (its level shapes
    and transforms, listed in its ``labels`` group). Saved onto an existing OME-Zarr image
    ``IMAGE.zarr`` itself, it goes into ``IMAGE.zarr/labels/<layer name>`` instead of replacing
    the image.
    """
    with _reported(path):
        parent = read_parent_image(Path(path)) if _is_group(Path(path)) else None
    if parent is not None:
        path = str(Path(path) / "labels" / _label_names([(data, meta, "labels")])[0])
    elif Path(path).suffix == ".zarr" and Path(path).parent.name == "labels":
        with _reported(path):  # napari adds ".zarr" to the name typed in labels/
            if read_parent_image(Path(path).parent.parent) is not None:
                path = str(Path(path).with_suffix(""))
    return _write(path, data, meta, "labels")


def _is_group(folder: Path) -> bool:
    return (folder / "zarr.json").is_file() or (folder / ".zgroup").is_file()


def _label_names(layers: list[tuple[Any, dict[str, Any], str]]) -> list[str]:
    """Folder names for the labels layers: their names made path-safe and unique."""
    names: list[str] = []
    for index, (_data, meta, _kind) in enumerate(layers):
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(meta.get("name") or "")).strip("._")
        name = name or f"labels{index}"
        unique, suffix = name, 1
        while unique in names:
            suffix += 1
            unique = f"{name}_{suffix}"
        names.append(unique)
    return names


def write_image_with_labels(
    path: str, layer_data: list[tuple[Any, dict[str, Any], str]]
) -> list[str]:
    """Write one Image layer and its Labels layers as one OME-Zarr image with ``labels/``.

    Every label layer's shape is checked before anything is written; the label images are
    written into the staged image, which is moved into place with them once all are complete.

    Parameters
    ----------
    path : str
        The store to write (``*.zarr``); an existing zarr store there is replaced.
    layer_data : list of (data, meta, layer_type)
        One ``"image"`` and one or more ``"labels"`` layers, as npe2 passes them.

    Returns
    -------
    list of str
        The store's path.

    Raises
    ------
    ConversionError
        When the layers are not one image and labels, or cannot be written.
    """
    images = [layer for layer in layer_data if layer[2] == "image"]
    labels = [layer for layer in layer_data if layer[2] == "labels"]
    if len(images) != 1 or len(images) + len(labels) != len(layer_data):
        refuse_layers(path, layer_data)
    (data, meta, _kind) = images[0]
    sources = {
        name: level_zero(label_data, label_meta)
        for name, (label_data, label_meta, _kind) in zip(_label_names(labels), labels, strict=True)
    }
    with _reported(path), warnings.catch_warnings():
        for layer in labels:
            _check_layer(*layer)
        # A label layer that does not fit the image is refused (the engine would leave it out
        # with a warning), before anything is written.
        warnings.simplefilter("error", SourceWarning)
        result = convert(
            level_zero(data, meta),
            path,
            overwrite=True,
            labels=sources,  # into the staged image: its level shapes, listed in labels/
            **conversion_options(meta, "image"),
        )
    return [str(result.path)]


def _check_layer(data: Any, meta: dict[str, Any], layer_type: str) -> None:
    """Refuse a layer's shape or dtype as :func:`convert` would, without writing anything."""
    level0 = LevelZero(level_zero(data, meta), rgb=bool(meta.get("rgb")) and layer_type == "image")
    plan_conversion(level0.shape, level0.dtype)


def refuse_layers(path: str, layer_data: list[tuple[Any, dict[str, Any], str]]) -> list[str]:
    """Refuse a selection the .zarr writers cannot store, saying what to select instead.

    Raises
    ------
    ConversionError
        Always (not a ValueError, which napari would replace by "not a valid writer").
    """
    counts = Counter(kind for _data, _meta, kind in layer_data)
    selected = ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items()))
    msg = f"cannot save {selected} layers to {Path(path).name}: {_WHAT_FITS}"
    raise ConversionError(msg)
