"""Describe what a zarr store holds as lazily loaded layers, without napari.

:func:`read_zarr` turns a store (zarr format 2 or 3: a bare array, a plain group, an OME-Zarr
0.1-0.5 image with labels, or a bioformats2raw collection) into :class:`LayerSpec` objects: dask
arrays whose chunks follow the stored chunks, plus the keyword arguments napari's ``add_image`` /
``add_labels`` take. No pixel is read except for the smallest pyramid level, when the metadata has no
contrast window.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import zarr
import zarr.errors

from ..errors import StoreReadError
from ..ome_ngff import (
    TILER_ATTRIBUTE,
    ome_attributes,
    parse_multiscale,
    safe_member_path,
    valid_unit,
)
from ..zarr_names import MAX_METADATA_BYTES, METADATA_FILES, has_node_metadata, is_partial_store
from .bounded_codecs import bounded_decoding, limit_format2_compressor
from .contained_store import (
    ContainedLocalStore,
    StoreFileRefused,
    read_inside,
)
from .previews import (
    StridedView,
    minimum_sample_step,
    needs_lazy_pyramid,
    strided_level_factors,
)

if TYPE_CHECKING:  # dask is imported where it is used: converting a TIFF never needs it
    import dask.array as da


#: A single stored chunk larger than this is refused: displaying any pixel would decode it all.
MAX_CHUNK_BYTES = 1 << 30
#: Dask chunks are grown (by whole stored chunks) until an array has at most this many.
MAX_DASK_BLOCKS = 1 << 16
#: More dask blocks than this along one axis is refused: the chunk grid alone would fill memory.
MAX_BLOCKS_PER_AXIS = 1 << 16
#: Largest dask chunk we build by grouping stored chunks.
MAX_DASK_CHUNK_BYTES = 64 << 20
#: Contrast limits are computed from the smallest level only when it is at most this many pixels.
MAX_CONTRAST_PIXELS = 1 << 24
#: A plain group with more arrays than this opens the first ones only.
MAX_LAYERS = 64
#: Blocks of one lazy array at most (metadata far beyond any real image: 2^32 blocks of even
#: 64 x 64 pixels are 2^44 pixels).
MAX_TOTAL_BLOCKS = 1 << 32
#: Levels of one multiscale image at most (a 2^60-pixel image has 60).
MAX_LEVELS = 64
#: Channels split into layers of their own at most; more stay one layer with a channel slider.
MAX_CHANNEL_LAYERS = 64
#: Dask blocks read at most to find contrast limits (a central crop when there are more).
MAX_CONTRAST_BLOCKS = 256
#: Pixel sizes napari can draw (it renders in single precision: below about 3e-10 the canvas
#: stays black, far above 1e35 or at 1e300 it fails), with a margin.
SCALE_RANGE = (1e-9, 1e20)
#: Farthest translation napari draws, in pixels of the finest level (beyond 1e8 pixels single
#: precision moves or hides the image).
MAX_TRANSLATION_PIXELS = 1e7

LayerType = Literal["image", "labels"]


class UndisplayableArrayError(StoreReadError):
    """An array napari cannot show as an image (0-D, 1-D or empty); skipped inside a group."""


@dataclass
class LayerSpec:
    """One layer to add: its levels (finest first), napari keyword arguments and layer type."""

    data: list[da.Array]
    kwargs: dict[str, Any]
    layer_type: LayerType = "image"

    def as_layer_data(self) -> tuple[Any, dict[str, Any], str]:
        """Return napari's ``LayerData`` tuple (a list of levels only when multiscale)."""
        data: Any = self.data if len(self.data) > 1 else self.data[0]
        return data, dict(self.kwargs), self.layer_type


@dataclass
class StoreContents:
    """Everything :func:`read_zarr` found: the layers, and notices worth showing the user."""

    layers: list[LayerSpec]
    notices: list[str] = field(default_factory=list)


def find_zarr_node(path: str | os.PathLike[str]) -> Path | None:
    """Return the zarr node folder ``path`` designates, or None if it designates none.

    ``path`` may be a store folder, a group or array folder inside a store, or one of the
    metadata files in such a folder. Cheap (a few ``stat`` calls) and never raises.
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
    if len(contents.layers) >= MAX_LAYERS:
        raise _LayerBudgetSpent


def _read_zarr(path: str | os.PathLike[str]) -> StoreContents:
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


# ---------------------------------------------------------------------------------------------
# Opening nodes with clear errors
# ---------------------------------------------------------------------------------------------


def open_zarr_node(path: str | os.PathLike[str]) -> tuple[Path, zarr.Array | zarr.Group]:
    """Open the zarr node ``path`` designates, read-only, with a clear error for each problem.

    Raises
    ------
    StoreReadError
        For a missing path, a folder that is not zarr, an incomplete conversion, a folder that
        cannot be read, or corrupt metadata.
    """
    requested = Path(path)
    if not requested.exists():
        msg = f"{requested}: no such file or folder"
        raise StoreReadError(msg)
    node_dir = find_zarr_node(requested)
    if node_dir is None:
        msg = f"{requested}: not a zarr store (no zarr.json, .zgroup or .zarray found)"
        raise StoreReadError(msg)
    partial = next((p for p in (node_dir, *node_dir.parents) if is_partial_store(p)), None)
    if partial is not None:
        msg = (
            f"{partial}: an incomplete conversion (interrupted or still running), not a store; "
            "finish it with `napari-zarr-tiler convert ... --resume`"
        )
        raise StoreReadError(msg)
    if not os.access(node_dir, os.R_OK | os.X_OK):
        msg = f"{node_dir}: permission denied"
        raise StoreReadError(msg)
    return node_dir, _open_node(node_dir)


def _zarr_format(node_dir: Path) -> int:
    return 3 if (node_dir / "zarr.json").is_file() else 2


def _check_metadata_json(node_dir: Path) -> None:
    for name in METADATA_FILES:
        file = node_dir / name
        if not os.path.lexists(file):
            continue
        try:
            raw = read_inside(node_dir, name, max_bytes=MAX_METADATA_BYTES)
            if raw is None:  # a dangling link, or a folder
                msg = "it is not a file"
                raise StoreFileRefused(msg)
            document = json.loads(raw)
        except StoreFileRefused as refusal:
            msg = f"{file}: not read, {refusal}"
            raise StoreReadError(msg) from refusal
        except PermissionError as error:
            msg = f"{file}: permission denied"
            raise StoreReadError(msg) from error
        except (OSError, UnicodeDecodeError, ValueError) as error:
            msg = f"{file}: corrupt or truncated metadata ({error})"
            raise StoreReadError(msg) from error
        if not isinstance(document, dict):
            msg = f"{file}: corrupt metadata (expected a JSON object)"
            raise StoreReadError(msg)


def _open_node(node_dir: Path) -> zarr.Array | zarr.Group:
    _check_metadata_json(node_dir)
    try:
        store = ContainedLocalStore(node_dir)
        with bounded_decoding():
            return zarr.open(store=store, mode="r", zarr_format=_zarr_format(node_dir))
    except (
        ValueError,
        TypeError,
        KeyError,
        OSError,
        NotImplementedError,
        zarr.errors.BaseZarrError,
    ) as error:
        msg = f"{node_dir}: cannot open as zarr ({type(error).__name__}: {error})"
        raise StoreReadError(msg) from error


def _member(group: zarr.Group, path: str, *, where: Path) -> zarr.Array | zarr.Group:
    try:
        with bounded_decoding():
            return group[path]
    except KeyError as error:
        msg = f"{where}: metadata names '{path}', which is missing from the store"
        raise StoreReadError(msg) from error
    except (ValueError, TypeError, OSError, zarr.errors.BaseZarrError) as error:
        msg = f"{where / path}: cannot open ({type(error).__name__}: {error})"
        raise StoreReadError(msg) from error


def member_array(group: zarr.Group, path: str, *, where: Path) -> zarr.Array:
    """The array at ``path`` in ``group``, or a :class:`StoreReadError` naming the problem."""
    node = _member(group, path, where=where)
    if not isinstance(node, zarr.Array):
        msg = f"{where / path}: expected an array, found a group"
        raise StoreReadError(msg)
    return node


# ---------------------------------------------------------------------------------------------
# Arrays as dask, safely
# ---------------------------------------------------------------------------------------------


def _check_dtype(array: zarr.Array, *, where: Path) -> np.dtype:
    try:
        dtype = np.dtype(array.dtype)
    except TypeError as error:
        msg = f"{where}: data type {array.dtype} is not supported; napari displays integer, float and bool arrays"
        raise StoreReadError(msg) from error
    if dtype.kind not in "biuf":
        msg = (
            f"{where}: data type {dtype} is not supported; napari displays integer, "
            "float and bool arrays"
        )
        raise StoreReadError(msg)
    return dtype


def _dask_chunks(array: zarr.Array, itemsize: int) -> tuple[int, ...]:
    """Stored chunks, grown by whole chunks on the last two axes while there are too many."""
    chunks = list(array.chunks)
    shape = array.shape
    if not shape:
        return ()

    def n_blocks() -> int:
        return math.prod(math.ceil(s / max(c, 1)) for s, c in zip(shape, chunks, strict=True))

    while (
        n_blocks() > MAX_DASK_BLOCKS and math.prod(chunks) * itemsize * 4 <= MAX_DASK_CHUNK_BYTES
    ):
        grown = False
        for axis in range(max(len(shape) - 2, 0), len(shape)):
            if chunks[axis] < shape[axis]:
                chunks[axis] = min(chunks[axis] * 2, shape[axis])
                grown = True
        if not grown:
            break
    return tuple(chunks)


def _check_block_grid(shape: tuple[int, ...], chunks: tuple[int, ...], *, where: Path) -> None:
    """Refuse a dask chunk grid too large to index (only corrupt or hostile metadata makes one)."""
    blocks = [math.ceil(s / max(c, 1)) for s, c in zip(shape, chunks, strict=True)]
    if any(count > MAX_BLOCKS_PER_AXIS for count in blocks):
        msg = (
            f"{where}: shape {shape} in blocks of {chunks} makes {max(blocks):,} blocks along one "
            "axis; refusing to index that many (is the metadata corrupt?)"
        )
        raise StoreReadError(msg)
    if math.prod(blocks) > MAX_TOTAL_BLOCKS:
        msg = (
            f"{where}: shape {shape} in blocks of {chunks} makes {math.prod(blocks):,} blocks; "
            f"refusing to index more than {MAX_TOTAL_BLOCKS:,} (re-tile the store with larger "
            "chunks: `napari-zarr-tiler convert`)"
        )
        raise StoreReadError(msg)


def lazy_array(array: zarr.Array, *, where: Path) -> da.Array:
    """Wrap a zarr array as a dask array that reads only the chunks a slice touches.

    Raises
    ------
    StoreReadError
        When the dtype cannot be displayed or a single stored chunk is larger than
        :data:`MAX_CHUNK_BYTES` (any read would allocate it all).
    """
    dtype = _check_dtype(array, where=where)
    chunk_bytes = math.prod(array.chunks) * dtype.itemsize
    if chunk_bytes > MAX_CHUNK_BYTES:
        msg = (
            f"{where}: one stored chunk {array.chunks} is {chunk_bytes / 2**30:.1f} GiB; "
            "displaying any pixel would load it whole. Re-tile the store with "
            "`napari-zarr-tiler convert` first."
        )
        raise StoreReadError(msg)
    limit_format2_compressor(array)
    chunks = _dask_chunks(array, dtype.itemsize)
    _check_block_grid(array.shape, chunks, where=where)
    import dask.array as da

    # A fresh name per open: a store rewritten in place must not be served from dask's cache.
    name = f"zarr-tiler-{uuid.uuid4().hex}"
    return da.from_array(array, chunks=chunks, name=name, asarray=False, inline_array=True)


def _lazy_pyramid(array: zarr.Array, base: da.Array, *, where: Path) -> list[da.Array]:
    import dask.array as da

    levels = [base]
    step = minimum_sample_step(array.shape, array.chunks, np.dtype(array.dtype).itemsize)
    for factor in strided_level_factors(array.shape):
        view = StridedView(array, factor, step)
        _check_block_grid(view.shape, view.chunks, where=where)
        levels.append(
            da.from_array(
                view,
                chunks=view.chunks,
                name=f"zarr-tiler-strided-{factor}-{uuid.uuid4().hex}",
                asarray=False,
                inline_array=True,
                meta=np.empty((0,) * array.ndim, dtype=array.dtype),
            )
        )
    return levels


# ---------------------------------------------------------------------------------------------
# Contrast limits
# ---------------------------------------------------------------------------------------------


def contrast_limits_from(level: da.Array) -> tuple[float, float]:
    """Contrast limits from one (small) level: its min and max, widened when they are equal.

    NaN and infinite pixels are ignored; a level without a finite pixel gets (0, 1) (floats)
    or its dtype's range (integers).
    """
    dtype = np.dtype(level.dtype)
    if dtype.kind == "b":
        return 0.0, 1.0
    if level.size == 0:
        return _dtype_range(dtype)
    if level.size > MAX_CONTRAST_PIXELS:
        # Too large to scan: use a central crop of the first plane (a bounded, chunk-aligned read).
        side = math.isqrt(MAX_CONTRAST_PIXELS)
        crop = [0] * max(level.ndim - 2, 0)
        for extent in level.shape[-2:]:
            start = max((extent - side) // 2, 0)
            crop.append(slice(start, start + side))
        level = level[tuple(crop)]
    if math.prod(level.numblocks) > MAX_CONTRAST_BLOCKS:
        # Small chunks: a central square of blocks of the first plane instead.
        side = math.isqrt(MAX_CONTRAST_BLOCKS)
        blocks: list[int | slice] = [0] * max(level.ndim - 2, 0)
        for count in level.numblocks[-2:]:
            start = max((count - side) // 2, 0)
            blocks.append(slice(start, start + side))
        level = level.blocks[tuple(blocks)]
    # The bounded crop is read first and reduced in numpy: a dask reduction of a slice would
    # build the graph of every block of the whole array (800 MB for 4 million blocks).
    pixels = np.asarray(level.compute())
    if dtype.kind == "f":
        pixels = pixels[np.isfinite(pixels)]  # one inf or NaN must not decide the window
    if pixels.size == 0:
        return _dtype_range(dtype)
    low, high = float(pixels.min()), float(pixels.max())
    if high <= low:
        high = low + max(1.0, abs(low) * 2**-20)  # + 1 is lost on huge values
    return low, high


def _dtype_range(dtype: np.dtype) -> tuple[float, float]:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return 0.0, 1.0


# ---------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------


def _no_pyramid_notice(where: Path, shape: tuple[int, ...], *, partial: bool) -> str:
    what = "its smallest pyramid level is" if partial else "it has no pyramid, so it is"
    return (
        f"{where}: {' x '.join(map(str, shape))}: {what} shown through downsampled previews that "
        "read many chunks when zoomed out. Convert it with Plugins > Zarr Tiler > Convert to zarr "
        "(or `napari-zarr-tiler convert`) to build a full pyramid and browse it fast."
    )


def check_displayable(shape: tuple[int, ...], *, where: Path) -> None:
    """Refuse an array napari cannot show: fewer than two dimensions, or no pixel.

    Raises
    ------
    UndisplayableArrayError
        Naming the array and its shape.
    """
    if len(shape) < 2:
        what = "a single value" if not shape else f"1-D (shape {shape})"
        msg = (
            f"{where}: cannot be shown, it is {what}; napari shows arrays of at least 2 dimensions"
        )
        raise UndisplayableArrayError(msg)
    if 0 in shape:
        msg = f"{where}: cannot be shown, it is empty (shape {shape})"
        raise UndisplayableArrayError(msg)


@contextmanager
def _skipped_if_undisplayable(contents: StoreContents) -> Iterator[None]:
    """Inside a group, an array napari cannot show becomes a notice instead of an error."""
    try:
        yield
    except UndisplayableArrayError as error:
        contents.notices.append(f"{error} (skipped)")


def _bare_array_layer(
    array: zarr.Array, *, name: str, where: Path, notices: list[str]
) -> LayerSpec:
    check_displayable(array.shape, where=where)
    base = lazy_array(array, where=where)
    levels = [base]
    if needs_lazy_pyramid(array.shape):
        levels = _lazy_pyramid(array, base, where=where)
        notices.append(_no_pyramid_notice(where, array.shape, partial=False))
    kwargs: dict[str, Any] = {"name": name, "multiscale": len(levels) > 1}
    dimension_names = getattr(array.metadata, "dimension_names", None)
    if dimension_names and all(isinstance(n, str) for n in dimension_names):
        kwargs["axis_labels"] = tuple(dimension_names)
    kwargs["contrast_limits"] = contrast_limits_from(levels[-1])
    return LayerSpec(levels, kwargs, "image")


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
        child = _member(group, safe_member_path(key, where=str(where)), where=where)
        if isinstance(child, zarr.Group):
            yield from _iter_ome_images(child, where=where / key, depth=depth + 1)


def _natural_key(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (1 << 62, key)


def _group_layers(group: zarr.Group, *, name: str, where: Path, contents: StoreContents) -> None:
    ome = ome_attributes(group.attrs.asdict())
    if "multiscales" in ome:
        _ome_image_layers(group, ome, name=name, where=where, contents=contents)
        return
    if "labels" in ome:
        _label_layers(group, ome, name_prefix="", where=where, contents=contents)
        return
    if "bioformats2raw.layout" in ome:
        for image_group, image_where, image_ome in _iter_ome_images(group, where=where):
            image_name = f"{name}/{image_where.relative_to(where)}"
            with _skipped_if_undisplayable(contents):
                _ome_image_layers(
                    image_group, image_ome, name=image_name, where=image_where, contents=contents
                )
        return
    _plain_group_layers(group, name=name, where=where, contents=contents)


def _plain_group_layers(
    group: zarr.Group, *, name: str, where: Path, contents: StoreContents
) -> None:
    """Open every array of a group without OME metadata as one layer named by its path."""
    pending: list[tuple[zarr.Group, str]] = [(group, "")]
    while pending:
        current, prefix = pending.pop(0)
        for key, member in sorted(current.members(), key=lambda item: _natural_key(item[0])):
            member_path = f"{prefix}{key}"
            member_where = where / member_path
            if isinstance(member, zarr.Array):
                _room_for_a_layer(contents)
                with _skipped_if_undisplayable(contents):
                    contents.layers.append(
                        _bare_array_layer(
                            member,
                            name=f"{name}/{member_path}",
                            where=member_where,
                            notices=contents.notices,
                        )
                    )
            elif isinstance(member, zarr.Group):
                member_ome = ome_attributes(member.attrs.asdict())
                if "multiscales" in member_ome:
                    _room_for_a_layer(contents)
                    with _skipped_if_undisplayable(contents):
                        _ome_image_layers(
                            member,
                            member_ome,
                            name=f"{name}/{member_path}",
                            where=member_where,
                            contents=contents,
                        )
                else:
                    pending.append((member, f"{member_path}/"))


def _ome_image_layers(
    group: zarr.Group, ome: dict[str, Any], *, name: str, where: Path, contents: StoreContents
) -> None:
    is_label = "image-label" in ome
    _room_for_a_layer(contents)
    layer = _multiscale_layer(
        group, ome, name=name, where=where, labels=is_label, notices=contents.notices
    )
    contents.layers.append(layer)
    if is_label or "labels" not in group:
        return
    labels_group = _member(group, "labels", where=where)
    if not isinstance(labels_group, zarr.Group):
        return
    labels_ome = ome_attributes(labels_group.attrs.asdict())
    _label_layers(
        labels_group, labels_ome, name_prefix=f"{name} ", where=where / "labels", contents=contents
    )


def _label_layers(
    labels_group: zarr.Group,
    ome: dict[str, Any],
    *,
    name_prefix: str,
    where: Path,
    contents: StoreContents,
) -> None:
    """Add the label images an OME ``labels`` group lists, as Labels layers."""
    label_names = ome.get("labels")
    if not isinstance(label_names, list):
        return
    for label_name in label_names:
        safe = safe_member_path(label_name, where=str(where))
        label_group = _member(labels_group, safe, where=where)
        if not isinstance(label_group, zarr.Group):
            continue
        label_ome = ome_attributes(label_group.attrs.asdict())
        if "multiscales" in label_ome:
            _room_for_a_layer(contents)
            with _skipped_if_undisplayable(contents):
                contents.layers.append(
                    _multiscale_layer(
                        label_group,
                        label_ome,
                        name=f"{name_prefix}{safe}",
                        where=where / safe,
                        labels=True,
                        notices=contents.notices,
                    )
                )


def _check_transform(scale: list[float], translate: list[float], *, where: Path) -> None:
    """Refuse a finest-level scale and translation napari cannot draw, saying why."""
    given = (
        f"{where}: the coordinate transformations give scale {scale} and translation {translate}"
    )
    if not all(math.isfinite(v) and v > 0 for v in scale) or not all(
        math.isfinite(v) for v in translate
    ):
        msg = f"{given}; scales must be positive and finite, translations finite"
        raise StoreReadError(msg)
    low, high = SCALE_RANGE
    far = any(abs(t) > MAX_TRANSLATION_PIXELS * s for s, t in zip(scale, translate, strict=True))
    if far or not all(low <= v <= high for v in scale):
        msg = (
            f"{given}; napari draws scales between {low:g} and {high:g} and translations of "
            f"up to {MAX_TRANSLATION_PIXELS:g} pixels, and would show nothing or fail. Fix the "
            "metadata's coordinateTransformations (or convert the pixels with "
            "`napari-zarr-tiler convert`)."
        )
        raise StoreReadError(msg)


def _multiscale_layer(
    group: zarr.Group,
    ome: dict[str, Any],
    *,
    name: str,
    where: Path,
    labels: bool,
    notices: list[str],
) -> LayerSpec:
    import dask.array as da

    first_path = None
    raw = ome.get("multiscales")
    if isinstance(raw, list) and raw and isinstance(raw[0], dict):
        datasets = raw[0].get("datasets")
        if isinstance(datasets, list) and datasets and isinstance(datasets[0], dict):
            first_path = datasets[0].get("path")
    ndim = None
    if isinstance(first_path, str):
        ndim = member_array(
            group, safe_member_path(first_path, where=str(where)), where=where
        ).ndim
    multiscale = parse_multiscale(ome, where=str(where), ndim=ndim)
    if len(multiscale.paths) > MAX_LEVELS:
        msg = f"{where}: {len(multiscale.paths):,} levels declared; at most {MAX_LEVELS} are read"
        raise StoreReadError(msg)
    arrays = [member_array(group, path, where=where) for path in multiscale.paths]
    n_axes = len(multiscale.axes)
    for path, array in zip(multiscale.paths, arrays, strict=True):
        if array.ndim != n_axes:
            msg = f"{where / path}: array has {array.ndim} dimensions but the metadata declares {n_axes} axes"
            raise StoreReadError(msg)
    check_displayable(arrays[0].shape, where=where / multiscale.paths[0])
    levels = [
        lazy_array(array, where=where / path)
        for path, array in zip(multiscale.paths, arrays, strict=True)
    ]
    # Keep levels that really shrink along no axis growing (napari expects decreasing sizes),
    # finest first; empty ones are dropped.
    kept = [0]
    for index, level in enumerate(levels[1:], start=1):
        previous = levels[kept[-1]].shape
        if 0 < math.prod(level.shape) < math.prod(previous) and all(
            side <= last for side, last in zip(level.shape, previous, strict=True)
        ):
            kept.append(index)
    smallest = arrays[kept[-1]]
    levels = [levels[index] for index in kept]
    if needs_lazy_pyramid(smallest.shape):
        # The stored pyramid stops while still too large to draw whole: extend it lazily.
        levels = levels[:-1] + _lazy_pyramid(smallest, levels[-1], where=where)
        notices.append(_no_pyramid_notice(where, smallest.shape, partial=len(kept) > 1))

    scale = list(multiscale.scales[0])
    translate = list(multiscale.translations[0])
    axis_labels = [axis.name for axis in multiscale.axes]
    units = [valid_unit(axis) for axis in multiscale.axes]
    _check_transform(scale, translate, where=where)
    display_name = name
    kwargs: dict[str, Any] = {"multiscale": len(levels) > 1}
    channel_axis = None if labels else multiscale.channel_axis
    tiler = group.attrs.get(TILER_ATTRIBUTE)
    if (
        channel_axis is not None
        and isinstance(tiler, dict)
        and tiler.get("rgb") is True
        and levels[0].shape[channel_axis] in (3, 4)
        and levels[0].ndim >= 3
    ):
        # Written from an RGB layer: give napari the colour samples as the last axis again.
        levels = [da.moveaxis(level, channel_axis, -1) for level in levels]
        for values in (scale, translate, units):
            del values[channel_axis]
        del axis_labels[channel_axis]
        kwargs.update(
            name=name,
            rgb=True,
            scale=tuple(scale),
            translate=tuple(translate),
            axis_labels=tuple(axis_labels),
        )
        if any(units):
            kwargs["units"] = tuple(unit or "pixel" for unit in units)
        return LayerSpec(levels, kwargs, "image")
    if channel_axis is not None and levels[0].shape[channel_axis] > MAX_CHANNEL_LAYERS:
        notices.append(
            f"{where}: {levels[0].shape[channel_axis]:,} channels are shown as one layer with a "
            f"channel slider (more than {MAX_CHANNEL_LAYERS} would each need a layer)"
        )
        channel_axis = None
    if channel_axis is not None:
        n_channels = levels[0].shape[channel_axis]
        for values in (scale, translate, axis_labels, units):
            del values[channel_axis]
        channels = multiscale.channels if len(multiscale.channels) == n_channels else []
        kwargs["channel_axis"] = channel_axis
        kwargs["name"] = (
            [
                (channel.label if channel.label else f"{display_name} c{index}")
                for index, channel in enumerate(channels or [None] * n_channels)  # type: ignore[list-item]
            ]
            if channels
            else [f"{display_name} c{index}" for index in range(n_channels)]
        )
        if channels and all(channel.color for channel in channels):
            kwargs["colormap"] = [channel.color for channel in channels]
        windows = [channel.window for channel in channels] if channels else []
        if windows and all(windows):
            kwargs["contrast_limits"] = [list(window) for window in windows]  # type: ignore[arg-type]
        else:
            smallest = levels[-1]
            kwargs["contrast_limits"] = [
                list(contrast_limits_from(da.take(smallest, index, axis=channel_axis)))
                for index in range(n_channels)
            ]
        if channels:
            kwargs["visible"] = [channel.visible for channel in channels]
    else:
        kwargs["name"] = display_name
        if not labels:
            channel = multiscale.channels[0] if len(multiscale.channels) == 1 else None
            if channel is not None and channel.window is not None:
                kwargs["contrast_limits"] = list(channel.window)
            else:
                kwargs["contrast_limits"] = list(contrast_limits_from(levels[-1]))
            if channel is not None and channel.color:
                kwargs["colormap"] = channel.color
    kwargs["scale"] = tuple(scale)
    kwargs["translate"] = tuple(translate)
    kwargs["axis_labels"] = tuple(axis_labels)
    if any(units):
        kwargs["units"] = tuple(unit or "pixel" for unit in units)
    return LayerSpec(levels, kwargs, "labels" if labels else "image")
