"""Level 0 of what the user gave, read region by region: the one source abstraction of the converter.

:class:`LevelZero` takes a numpy, dask or zarr array, a list of levels (napari's multiscale data
included: any non-array sequence of arrays) or a :class:`~napari_zarr_tiler.sources.SourceSpec`.
It knows its shape (RGB(A) samples moved once to a channel axis), its dtype and the files it
reads from, describes itself for the resume journal, reads a region, and pickles to its spec so
that a dask worker re-opens the file instead of receiving the array.

Chunked sources (dask, zarr) whose blocks do not match the regions are read through a
:class:`~.source_blocks.BlockCache`, so that each source block is read (decoded, or computed by
dask) once, whatever its shape relative to the regions; a dask array that only wraps a zarr array
or a numpy array (``da.from_zarr``, ``da.from_array``) is read from that array, in parts.
"""

from __future__ import annotations

import functools
import mmap
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from ..errors import ConversionCancelled, InvalidOptionError, SourceError
from ..sources import SourceSpec
from ..zarr_names import GROUP_METADATA
from .regions import Region
from .source_blocks import BLOCK_CACHE_BYTES, BlockCache, block_edges

__all__ = [
    "BlockCache",
    "LevelZero",
    "block_edges",
    "channels_first_shape",
    "rgb_channel_position",
    "unwrapped_source",
]


def rgb_channel_position(ndim: int) -> int:
    """Where the colour samples of an RGB(A) image of ``ndim`` axes go (OME order t, c, z, y, x)."""
    return 0 if ndim <= 4 else 1


def channels_first_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """The shape of an RGB(A) image (samples last) with its samples moved to a channel axis."""
    dims = list(shape)
    dims.insert(rgb_channel_position(len(dims)), dims.pop())
    return tuple(dims)


def _is_levels(source: Any) -> bool:
    """Whether ``source`` is a list of levels: a sequence that is not itself an array.

    Arrays (numpy, dask, zarr) are not registered as :class:`collections.abc.Sequence`; lists,
    tuples and napari's multiscale data are.
    """
    return isinstance(source, Sequence) and not isinstance(source, str | bytes)


def _level_zero_array(source: Any) -> Any:
    """The array of level 0 in what the user gave (a list of levels or an array)."""
    if _is_levels(source):
        if len(source) == 0:
            msg = "the source is an empty list of levels"
            raise InvalidOptionError(msg)
        source = source[0]
    if not hasattr(source, "shape") or not hasattr(source, "dtype"):
        msg = (
            "the source must be an array (numpy, dask, zarr) or a list of levels, "
            f"got {type(source).__name__}"
        )
        raise InvalidOptionError(msg)
    return source


def _file_version(path: str) -> tuple[int, int]:
    try:
        status = os.stat(path)
    except OSError:
        return (0, 0)
    return (status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=8)
def _open_in_worker(spec: Any, version: tuple[int, int]) -> Any:
    """The source array, opened once per worker process (``version`` invalidates a changed file)."""
    return spec.opened.array


class LevelZero:
    """Level 0 of a conversion's source, read by region (RGB samples moved to a channel axis).

    Parameters
    ----------
    source : array-like, sequence of array-likes or SourceSpec
        A numpy, dask or zarr array; a list of levels (level 0 is read); or a source file's
        spec, re-opened in each worker process when the reader is sent to a cluster.
    rgb : bool
        The source's last axis holds RGB(A) samples; it is read as a channel axis.

    Raises
    ------
    InvalidOptionError
        When ``source`` is not an array or a non-empty list of them, or ``rgb`` is given for an
        image whose last axis does not hold 3 or 4 samples.
    """

    def __init__(self, source: Any, *, rgb: bool = False) -> None:
        self.spec: SourceSpec | None = source if isinstance(source, SourceSpec) else None
        array = _level_zero_array(self.spec.opened.array if self.spec is not None else source)
        self._array = array
        self._blocks: BlockCache | None = None
        shape = tuple(int(s) for s in array.shape)
        #: Where the RGB(A) sample axis (the source's last) goes, or None.
        self.channel_position: int | None = None
        if rgb:
            if len(shape) < 3 or shape[-1] not in (3, 4):
                msg = f"an RGB image needs a last axis of 3 or 4 channels, got shape {shape}"
                raise InvalidOptionError(msg)
            self.channel_position = rgb_channel_position(len(shape))
            shape = channels_first_shape(shape)
        #: The image's shape, RGB(A) samples on a channel axis.
        self.shape: tuple[int, ...] = shape
        self.dtype = np.dtype(array.dtype)
        self._pin = self._source_pin()  # right after opening: a file replaced later is noticed

    # -- pickling: a worker re-opens the source from its spec -------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.spec is not None:
            state["_array"] = None  # workers re-open the source from its spec
        state["_blocks"] = None  # each process keeps its own blocks
        state["_in_worker"] = True
        return state

    @property
    def array(self) -> Any:
        """The array read (in a worker process: opened once per process and file version)."""
        if self._array is None:
            assert self.spec is not None
            self._array = _open_in_worker(self.spec, _file_version(self.spec.path))
        return self._array

    @property
    def in_memory(self) -> bool:
        """Whether the source is a numpy array that no worker process could open by itself."""
        return isinstance(self._array, np.ndarray) and self.spec is None

    # -- what it is ------------------------------------------------------------------------------

    def paths(self) -> list[Path]:
        """Files or folders the source is read from, as far as they can be known."""
        paths = (
            [Path(self.spec.path)]
            if self.spec is not None and not self.spec.path.startswith("sample:")
            else []
        )
        for array in (self.array, *_arrays_in_dask_graph(self.array)):
            paths.extend(_local_paths_of(array))
        return paths

    def describe(self) -> str:
        """Identifies the source in the resume journal."""
        origin = repr(self.spec) if self.spec is not None else type(self.array).__name__
        return f"{origin} {self.shape} {self.dtype}"

    def pin(self) -> str | None:
        """What proves, on resume, that the source still holds the pixels it held: the file it
        is read from (absolute path, inode, size and modification time; a TIFF, a CZI, a
        ``.npy``, a whole read-only memory map) or a built-in sample's name; None when nothing
        can (an array in memory, a computed dask array, a view into a memory map, a multi-file
        OME-TIFF series, a zarr store, which can be rewritten chunk by chunk without a trace in
        any file that could be checked at once). Taken when the source was opened.

        A resume trusts the checksums of the chunks a pinned source's regions stored; the
        regions of an unpinned one are computed again from the source and compared.
        """
        return self._pin

    def _source_pin(self) -> str | None:
        if self.spec is not None:
            kind = self.spec.kind
            if kind == "sample":
                return self.spec.path
            if kind == "zarr" or not self.spec.opened.single_file:
                return None
            return _file_pin(self.spec.path)
        array = self._array
        whole_mapping = isinstance(getattr(array, "base", None), mmap.mmap)
        if isinstance(array, np.memmap) and whole_mapping and array.mode in ("r", "r+"):
            return _file_pin(os.fspath(array.filename))
        return None

    # -- reading ---------------------------------------------------------------------------------

    def __call__(self, region: Region) -> np.ndarray:
        """Read one region of level 0 (in the channels-first shape)."""
        position = self.channel_position
        if position is None:
            return self._read(region)
        source_region = (*region[:position], *region[position + 1 :], region[position])
        return np.ascontiguousarray(np.moveaxis(self._read(source_region), -1, position))

    def _read(self, region: Region) -> np.ndarray:
        """Read a region of the array as stored, naming the region when the read fails."""
        try:
            return self._block_cache().read(region)
        except (ConversionCancelled, MemoryError):
            raise
        except Exception as error:  # codecs and file readers raise many kinds of errors
            where = getattr(self.spec, "path", "the source")
            msg = (
                f"{where}: reading the region {_region_text(region)} failed "
                f"({type(error).__name__}: {error}); the file may be truncated or corrupt"
            )
            raise SourceError(msg) from error

    def _block_cache(self) -> BlockCache:
        """The reader of this process's source blocks (each read once), made on first use."""
        if self._blocks is None:
            array = unwrapped_source(self.array)
            # A cluster worker gets regions of many blocks: it keeps none (it could never
            # tell which of its blocks other workers' regions use up).
            budget = 0 if getattr(self, "_in_worker", False) else BLOCK_CACHE_BYTES
            self._blocks = BlockCache(array, block_edges(array), budget)
        return self._blocks


def _file_pin(path: str) -> str | None:
    """A regular file's absolute path, inode, size and modification time (None for a folder or
    a URL)."""
    try:
        status = os.stat(path)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(status.st_mode):
        return None
    return f"{os.path.abspath(path)} {status.st_ino} {status.st_size} {status.st_mtime_ns}"


def _region_text(region: Region) -> str:
    return "[" + ", ".join(f"{s.start}:{s.stop}" for s in region) + "]"


# -- where a source is read from (so that the destination never overlaps it) ---------------------


def _local_paths_of(array: Any) -> list[Path]:
    """The local folder of a zarr array (or of the array a preview view wraps), or a memmap's file."""
    if not isinstance(array, zarr.Array):
        array = getattr(array, "array", array)
    if isinstance(array, zarr.Array):
        if isinstance(array.store, zarr.storage.LocalStore):
            # A store opened by a relative path has a relative root: resolve it now (against
            # the working directory it was opened from, as far as it can be known).
            return [_store_root(Path(array.store.root).absolute())]
        # An fsspec store on the local disk has an absolute path (a remote one is not local).
        root = getattr(array.store, "path", None)
        return [Path(root)] if root is not None and Path(root).is_absolute() else []
    filename = getattr(array, "filename", None)  # numpy memmap (a str or a resolved Path)
    return [Path(filename)] if isinstance(filename, str | os.PathLike) else []


def _store_root(folder: Path) -> Path:
    """The outermost folder of the zarr hierarchy ``folder`` belongs to (an array opened by the
    path of a node inside a store belongs to the whole store)."""
    root = folder
    while any((root.parent / name).is_file() for name in GROUP_METADATA):
        if root.parent == root:
            break
        root = root.parent
    return root


def _arrays_in_dask_graph(array: Any) -> list[Any]:
    """Arrays a dask array reads from, found without materialising its graph.

    ``da.from_array`` keeps its source in a Blockwise layer's ``indices`` (``inline_array=True``)
    or in a one-task layer (the default); layers with many tasks are not scanned.
    """
    graph_of = getattr(array, "__dask_graph__", None)
    if graph_of is None:
        return []
    found: list[Any] = []
    for layer in getattr(graph_of(), "layers", {}).values():
        for index in getattr(layer, "indices", None) or ():
            found.append(index[0])
        mapping = getattr(layer, "mapping", None)
        if isinstance(mapping, dict) and len(mapping) <= 4:
            for task in mapping.values():
                found.append(task)
                found.extend(getattr(task, "args", ()) or ())
                found.append(getattr(task, "value", None))
    return [
        item for item in found if hasattr(item, "shape") and not hasattr(item, "__dask_graph__")
    ]


# -- source blocks, each read once -----------------------------------------------------------


def unwrapped_source(array: Any) -> Any:
    """The zarr or numpy array a dask array only wraps (``da.from_zarr``, ``da.from_array``),
    read directly by region and chunk; any other array as it is.

    Only a graph of a single ``from_array``-style read (at most two layers, holding one array
    of the same shape and dtype) is unwrapped: a computed dask array keeps its own blocks.
    """
    if not _only_reads(array):
        return array
    found = _arrays_in_dask_graph(array)
    if len(found) != 1 or not isinstance(found[0], zarr.Array | np.ndarray):
        return array
    inner = found[0]
    if tuple(inner.shape) != tuple(array.shape) or np.dtype(inner.dtype) != array.dtype:
        return array
    return inner


def _only_reads(array: Any) -> bool:
    """Whether a dask array's graph is one array read by ``getter`` tasks (``from_array``), or
    a single block of data (``from_array`` of a small numpy array)."""
    graph_of = getattr(array, "__dask_graph__", None)
    layers = getattr(graph_of(), "layers", {}) if graph_of is not None else {}
    top = layers.get(getattr(array, "name", None))
    if top is None or len(layers) > 2:
        return False
    if len(layers) == 1:
        values = list(getattr(top, "mapping", {}).values())
        return len(values) == 1 and isinstance(values[0], np.ndarray)
    from dask.array.core import getter, getter_inline, getter_nofancy

    return getattr(getattr(top, "task", None), "func", None) in (
        getter,
        getter_inline,
        getter_nofancy,
    )
