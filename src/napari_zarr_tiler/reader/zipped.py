"""Zipped OME-Zarr (``.ozx``, RFC-9): a store read lazily from one zip file, never extracted.

zarr-python's :class:`zarr.storage.ZipStore` (read-only) reads each member where it lies in the
file: stored members (as RFC-9 writes them) by seeking, compressed ones by inflating just that
member. Before it opens the file, the end-of-central-directory record is read to refuse an
archive whose directory is too large to hold in memory (:data:`MAX_ENTRIES`,
:data:`MAX_DIRECTORY_BYTES`); each member read is held to the sizes the reader allows anywhere
(its declared size is checked before any byte is inflated). Members named with ``..``, ``.``,
an absolute path or a backslash are never read (:class:`~.guarded_store.GuardedStore`): they
are not part of the store. A zip whose root holds no zarr metadata but a single folder that does
(a zipped ``image.zarr/`` folder) is read from that folder.
"""

from __future__ import annotations

import functools
import os
import struct
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from zarr.abc.store import RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import ZipStore

from ..errors import StoreReadError
from ..zarr_names import NODE_METADATA
from .contained_store import StoreFileRefused
from .guarded_store import GuardedStore, open_guarded_node, read_limit
from .locate import StoreLocation

#: Most members an archive may list (a 65,536 x 65,536 pyramid in 256 x 256 chunks has ~90,000).
MAX_ENTRIES = 10_000_000
#: Largest central directory read into memory.
MAX_DIRECTORY_BYTES = 1 << 30
_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"


def _directory_size(path: Path) -> tuple[int, int]:
    """(entries, bytes) of the zip's central directory, from its end records; ValueError if none."""
    with open(path, "rb") as file:
        size = file.seek(0, os.SEEK_END)
        tail_start = max(size - (22 + 65535 + 20), 0)
        file.seek(tail_start)
        tail = file.read()
        at = tail.rfind(_EOCD)
        if at < 0 or len(tail) - at < 22:
            msg = "no end-of-central-directory record (not a zip file, or truncated)"
            raise ValueError(msg)
        entries, directory_bytes = struct.unpack_from("<HI", tail, at + 10)
        locator = at - 20
        if locator >= 0 and tail[locator : locator + 4] == _ZIP64_LOCATOR:
            (record,) = struct.unpack_from("<Q", tail, locator + 8)
            file.seek(record)
            head = file.read(56)
            if head[:4] == _ZIP64_EOCD:
                entries, directory_bytes = struct.unpack_from("<QQ", head, 32)
    return entries, directory_bytes


class BoundedZipStore(ZipStore):
    """zarr's read-only ZipStore, checking a member's declared size before reading it."""

    def _get(self, key: str, prototype: BufferPrototype, byte_range: Any = None) -> Buffer | None:
        if not self._is_open:
            self._sync_open()
        try:
            info = self._zf.getinfo(key)
        except KeyError:
            return None
        if isinstance(byte_range, RangeByteRequest):
            wanted = max(min(byte_range.end, info.file_size) - byte_range.start, 0)
        elif isinstance(byte_range, SuffixByteRequest):
            wanted = min(byte_range.suffix, info.file_size)
        else:
            wanted = info.file_size
        if wanted > read_limit(key):
            msg = f"it is {info.file_size:,} bytes, more than is ever read at once"
            raise StoreFileRefused(msg)
        return super()._get(key, prototype, byte_range)


def _root_prefix(store: BoundedZipStore) -> str:
    """``""`` when the zip's root is the store; ``"name/"`` when only one folder of it is."""
    names = store._zf.namelist()
    if any(name in NODE_METADATA for name in names):
        return ""
    tops = {name.split("/", 1)[0] for name in names if "/" in name}
    if len(tops) == 1:
        top = tops.pop()
        if any(f"{top}/{meta}" in names for meta in NODE_METADATA):
            return f"{top}/"
    return ""


class _PrefixedZipStore(BoundedZipStore):
    """A BoundedZipStore whose keys live below a folder of the archive (``prefix``)."""

    prefix = ""

    def _get(self, key: str, prototype: BufferPrototype, byte_range: Any = None) -> Buffer | None:
        return super()._get(self.prefix + key, prototype, byte_range)

    async def exists(self, key: str) -> bool:
        return await super().exists(self.prefix + key)

    async def list(self) -> AsyncIterator[str]:
        with self._lock:
            names = self._zf.namelist()
        for name in names:
            if name.startswith(self.prefix) and not name.endswith("/"):
                yield name[len(self.prefix) :]

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        async for key in self.list():
            if key.startswith(prefix):
                yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        async for name in super().list_dir(self.prefix + prefix.strip("/")):
            yield name


def open_zipped_node(path: str | os.PathLike[str]) -> tuple[StoreLocation, Any]:
    """Open the root node of a zipped OME-Zarr file, read-only and lazily.

    Parameters
    ----------
    path : str or PathLike
        An ``.ozx`` file (RFC-9: a zip of a zarr store, stored entries, root metadata at the
        top; a single top folder holding the store is accepted too).

    Returns
    -------
    tuple of (StoreLocation, zarr.Array or zarr.Group)
        The file's location and the root node.

    Raises
    ------
    StoreReadError
        When the file is not a zip, lists more entries than :data:`MAX_ENTRIES` (or a central
        directory over :data:`MAX_DIRECTORY_BYTES`), cannot be read, or holds no zarr store.
    """
    file = Path(path)
    store = _open_zip_store(file)
    return open_guarded_node(GuardedStore(store, location=str(file)), StoreLocation(str(file)))


def _open_zip_store(file: Path) -> _PrefixedZipStore:
    """The zip store of ``file``, its directory's size checked first; StoreReadError if not."""
    try:
        entries, directory_bytes = _directory_size(file)
        if entries > MAX_ENTRIES or directory_bytes > MAX_DIRECTORY_BYTES:
            msg = (
                f"{file}: the zip lists {entries:,} members in {directory_bytes:,} bytes, more "
                f"than the reader holds in memory ({MAX_ENTRIES:,} members)"
            )
            raise StoreReadError(msg)
        store = _PrefixedZipStore(file, mode="r")
        store._sync_open()
    except PermissionError as error:
        msg = f"{file}: permission denied"
        raise StoreReadError(msg) from error
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        msg = f"{file}: not a readable zip file, or a damaged one ({error})"
        raise StoreReadError(msg) from error
    store.prefix = _root_prefix(store)
    return store


def stored_bytes(location: StoreLocation) -> int | None:
    """Bytes the members of a zipped store's node take in its file (as stored, compressed).

    Parameters
    ----------
    location : StoreLocation
        A node of an ``.ozx`` file (or of a URL store).

    Returns
    -------
    int or None
        The sum of the stored sizes of the members under the node; None for a URL store or a
        file that cannot be read (sizes not measured).
    """
    file = Path(location.store)
    if not file.is_file():
        return None
    try:
        sizes = _member_sizes(file, file.stat().st_mtime_ns)
    except StoreReadError:
        return None
    prefix = f"{location.key}/" if location.key else ""
    return sum(size for name, size in sizes if name.startswith(prefix))


@functools.lru_cache(maxsize=4)
def _member_sizes(file: Path, _mtime_ns: int) -> tuple[tuple[str, int], ...]:
    """(key, stored size) of every member of a zipped store, keys relative to its root."""
    store = _open_zip_store(file)
    try:
        return tuple(
            (info.filename[len(store.prefix) :], info.compress_size)
            for info in store._zf.infolist()
            if info.filename.startswith(store.prefix) and not info.is_dir()
        )
    finally:
        store.close()
