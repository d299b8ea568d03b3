"""Find the zarr node a path designates, without opening it (a few ``stat`` calls, no zarr).

The npe2 reader asks this for every path napari is given, so it stays cheap: importing this
module imports neither zarr nor dask, and a URL is recognised by its form alone (no request).

Three kinds of store are told apart here: a local folder, a URL (``http://``, ``https://``,
``s3://``: :mod:`.remote`) and a zipped OME-Zarr file (``.ozx``, RFC-9: :mod:`.zipped`). The
last two have no folder on disk; :class:`StoreLocation` names a node inside them the way a
:class:`~pathlib.Path` names a folder (``location / "0"``, ``.name``, ``str()``), so errors and
layer names read the same for every kind.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..zarr_names import METADATA_FILES, has_node_metadata

#: URL schemes the reader opens (``s3a`` is Hadoop's spelling of ``s3``).
REMOTE_SCHEMES = ("http", "https", "s3", "s3a")
#: Suffix of a zipped OME-Zarr store (RFC-9).
ZIPPED_SUFFIX = ".ozx"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
#: A URL ending in one of these names a single image file, not a store: left to other readers.
_FILE_SUFFIXES = frozenset(
    [
        ".tif",
        ".tiff",
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".bmp",
        ".czi",
        ".nd2",
        ".lif",
        ".svs",
        ".ndpi",
        ".npy",
        ".h5",
        ".hdf5",
        ".html",
        ".htm",
        ".txt",
        ".csv",
        ".mp4",
        ".avi",
        ".zip",
        ".gz",
        ".ims",
        ".vsi",
        ".scn",
        ".mrxs",
        ".lsm",
        ".oib",
        ".oir",
        ".dv",
        ".mrc",
    ]
)


def url_scheme(path: str | os.PathLike[str]) -> str | None:
    """The lower-case scheme of a URL (``"https"``, ``"s3"``...), or None for a local path."""
    match = _SCHEME.match(os.fspath(path)) if isinstance(path, str | os.PathLike) else None
    return match.group(1).lower() if match else None


def is_remote_url(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a URL the reader opens remotely (http, https, s3)."""
    return url_scheme(path) in REMOTE_SCHEMES


def is_zipped_store(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a zipped OME-Zarr file (``*.ozx``, RFC-9) on the local disk."""
    try:
        return (
            url_scheme(path) is None
            and os.fspath(path).lower().endswith(ZIPPED_SUFFIX)
            and Path(path).is_file()
        )
    except (OSError, ValueError, TypeError):
        return False


def is_remote_or_zipped(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` opens through a store of its own (a URL or an ``.ozx`` file)."""
    return is_remote_url(path) or is_zipped_store(path)


def may_be_remote_store(url: str) -> bool:
    """Whether a URL may name a zarr node: not one whose last name is an image file's.

    Decided by the URL's form alone (no request), so that the npe2 reader does not claim
    ``https://.../scan.tif``; anything else is tried, and fails with a clear message if it is
    not zarr.
    """
    if not is_remote_url(url):
        return False
    path = url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    name = path.rsplit("/", 1)[-1].lower()
    return "." + name.rsplit(".", 1)[-1] not in _FILE_SUFFIXES if "." in name else True


@dataclass(frozen=True)
class StoreLocation:
    """Where a node of a URL or zipped store is: the store, then a key inside it.

    Reads like a :class:`~pathlib.Path` where the reader names places (``/``, ``name``,
    ``relative_to``, ``str``) but has no folder on disk: ``rglob`` finds nothing, and it is
    not an ``os.PathLike`` (no local file function can open it by mistake).

    Attributes
    ----------
    store : str
        The URL (without a trailing ``/``) or the ``.ozx`` file's path.
    key : str
        The node's ``/``-separated path inside the store (``""`` for the root).
    """

    store: str
    key: str = ""

    def __truediv__(self, other: str | os.PathLike[str]) -> StoreLocation:
        parts = [p for p in (self.key, str(other).strip("/")) if p]
        return StoreLocation(self.store, "/".join(parts))

    def __str__(self) -> str:
        return f"{self.store}/{self.key}" if self.key else self.store

    @property
    def name(self) -> str:
        """The node's last name; for the root, the store's (without ``.ozx``)."""
        if self.key:
            return self.key.rsplit("/", 1)[-1]
        last = self.store.rstrip("/").rsplit("/", 1)[-1]
        if last.lower().endswith(ZIPPED_SUFFIX):
            last = last[: -len(ZIPPED_SUFFIX)]
        return last or self.store

    @property
    def parent(self) -> StoreLocation:
        """The node containing this one (the root is its own parent)."""
        return StoreLocation(self.store, self.key.rpartition("/")[0])

    @property
    def parents(self) -> tuple[StoreLocation, ...]:
        """Every node containing this one, nearest first (none for the root)."""
        found, current = [], self
        while current.key:
            current = current.parent
            found.append(current)
        return tuple(found)

    def relative_to(self, other: StoreLocation) -> PurePosixPath:
        """This node's path below ``other`` (a node of the same store containing it)."""
        if other.store != self.store:
            msg = f"{self} is not in the store {other.store}"
            raise ValueError(msg)
        return PurePosixPath(self.key).relative_to(PurePosixPath(other.key or "."))

    def rglob(self, pattern: str) -> Iterator[Path]:
        """No local files: sizes on disk of remote and zipped stores are not measured."""
        return iter(())


def find_zarr_node(path: str | os.PathLike[str]) -> Path | None:
    """Return the zarr node folder ``path`` designates, or None if it designates none.

    Cheap (a few ``stat`` calls) and never raises. URLs and ``.ozx`` files are not folders:
    see :func:`accepts` for the npe2 reader's question, which they answer too.

    Parameters
    ----------
    path : str or PathLike
        A store folder, a group or array folder inside a store, or one of the metadata files
        (``zarr.json``, ``.zattrs``, ``.zgroup``, ``.zarray``, ``.zmetadata``) in such a folder.

    Returns
    -------
    Path or None
        The folder holding the node's metadata, or None when ``path`` is not a zarr node.
    """
    try:
        if url_scheme(path) is not None:
            return None
        candidate = Path(path)
        if candidate.name in METADATA_FILES and candidate.is_file():
            candidate = candidate.parent
        if candidate.is_dir() and has_node_metadata(candidate):
            return candidate
    except (OSError, ValueError, TypeError):
        return None
    return None


def accepts(path: str | os.PathLike[str]) -> bool:
    """Whether the reader takes ``path``: a zarr node folder, a store URL or an ``.ozx`` file.

    Cheap and never raises: a URL is judged by its form (:func:`may_be_remote_store`), so a
    URL that turns out not to be zarr fails when read, with a message naming it.

    Parameters
    ----------
    path : str or PathLike
        What napari was asked to open.

    Returns
    -------
    bool
        True for a local zarr node, an http(s) or s3 URL not naming an image file, or a
        zipped OME-Zarr file.
    """
    if isinstance(path, str) and is_remote_url(path):
        return may_be_remote_store(path)
    return is_zipped_store(path) or find_zarr_node(path) is not None
