"""A read-only wrapper for any zarr store: keys kept inside, sizes bounded, metadata read once.

The remote (:mod:`.remote`) and zipped (:mod:`.zipped`) stores serve what a server or an archive
holds, which is as untrusted as a local folder (:mod:`.contained_store`). :class:`GuardedStore`
applies the local reader's rules to any store: a key that could climb out of the store
(``..``, ``.``, an empty component, a NUL, a backslash, and for URLs ``?``, ``#`` or ``%``) is
never asked for; a metadata document is at most ``MAX_METADATA_BYTES`` and a read at most
``MAX_READ_BYTES`` (the wrapped store should refuse earlier, before the body is transferred:
:mod:`.remote` checks the announced size); refusals read as missing, with one
:class:`~.contained_store.StoreContentWarning` per key. Metadata documents (and their absence)
are remembered, so zarr's repeated probing costs one request per document.

:func:`open_guarded_node` opens the root node of such a store as the local reader does: the
metadata checked to be a JSON object first, one error naming the location for each problem.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from typing import Any

import zarr
import zarr.errors
from zarr.abc.store import RangeByteRequest, Store, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.storage import WrapperStore

from ..errors import RemoteStoreError, StoreReadError
from ..zarr_names import MAX_METADATA_BYTES, METADATA_FILES
from .bounded_codecs import bounded_decoding
from .contained_store import (
    MAX_READ_BYTES,
    OPEN_ERRORS,
    StoreContentWarning,
    StoreFileRefused,
    _key_parts,
)
from .locate import StoreLocation, is_remote_url

#: Characters a key of a URL store may not hold: they would change the URL's meaning.
URL_UNSAFE = frozenset("?#%\\")
#: Metadata documents remembered per store (found or missing).
MAX_CACHED_DOCUMENTS = 4096
#: Order in which the root metadata is looked for: format 3 first (one request for most
#: stores), then format 2's consolidated metadata (which holds every other document).
ROOT_PROBES = ("zarr.json", ".zmetadata", ".zgroup", ".zarray", ".zattrs")


def is_metadata_key(key: str) -> bool:
    """Whether ``key`` names a metadata document (``zarr.json``, ``.zattrs``...)."""
    return key.rsplit("/", 1)[-1] in METADATA_FILES


def checked_key(key: str, *, url: bool) -> str:
    """``key`` if it is a plain key inside the store, else :class:`StoreFileRefused`.

    Parameters
    ----------
    key : str
        A ``/``-separated store key.
    url : bool
        Whether the store is a URL (``?``, ``#``, ``%`` and ``\\`` are refused too).

    Returns
    -------
    str
        The key, unchanged.

    Raises
    ------
    StoreFileRefused
        For a key with ``..``, ``.``, an empty component, a leading ``/`` or, for URLs, a
        character that changes a URL's meaning.
    """
    parts = _key_parts(key)
    plain = "/".join(parts) == key
    if not plain or (url and URL_UNSAFE.intersection(key)) or "\\" in key:
        msg = "it is not a plain key inside the store"
        raise StoreFileRefused(msg)
    return key


def read_limit(key: str) -> int:
    """Most bytes a whole read of ``key`` may hold (metadata documents are held to less)."""
    return MAX_METADATA_BYTES if is_metadata_key(key) else MAX_READ_BYTES


def _range_length(byte_range: Any) -> int | None:
    if isinstance(byte_range, RangeByteRequest):
        return byte_range.end - byte_range.start
    if isinstance(byte_range, SuffixByteRequest):
        return byte_range.suffix
    return None


class GuardedStore(WrapperStore[Store]):
    """Read-only wrapper applying the reader's containment and size rules to any zarr store.

    Parameters
    ----------
    store : zarr.abc.store.Store
        The store to read (opened read-only).
    location : str
        Its URL or file, named in warnings.
    url : bool
        Whether keys become parts of URLs (stricter key rules).
    """

    def __init__(self, store: Store, *, location: str, url: bool = False) -> None:
        super().__init__(store)
        self.location = location
        self.url = url
        self._documents: OrderedDict[str, bytes | None] = OrderedDict()
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    def _with_store(self, store: Store) -> GuardedStore:
        return type(self)(store, location=self.location, url=self.url)

    def with_read_only(self, read_only: bool = True) -> GuardedStore:
        if not read_only:
            msg = f"{self.location}: opened for reading only"
            raise ValueError(msg)
        return self

    @property
    def read_only(self) -> bool:
        return True

    def __str__(self) -> str:
        return self.location

    def _warn(self, key: str, reason: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(
                f"{self.location}/{key}: not read, {reason}; it reads as missing",
                StoreContentWarning,
                stacklevel=3,
            )

    def _remember(self, key: str, data: bytes | None) -> None:
        with self._lock:
            self._documents[key] = data
            while len(self._documents) > MAX_CACHED_DOCUMENTS:
                self._documents.popitem(last=False)

    async def get(
        self, key: str, prototype: BufferPrototype | None = None, byte_range: Any = None
    ) -> Buffer | None:
        prototype = prototype or default_buffer_prototype()
        try:
            checked_key(key, url=self.url)
            document = is_metadata_key(key) and byte_range is None
            if document and key in self._documents:
                cached = self._documents[key]
                return None if cached is None else prototype.buffer.from_bytes(cached)
            length = _range_length(byte_range)
            if length is not None and length > MAX_READ_BYTES:
                msg = f"a read of {length:,} bytes is more than is ever read at once"
                raise StoreFileRefused(msg)
            found = await self._store.get(key, prototype, byte_range)
            if found is not None and len(found) > read_limit(key):
                msg = f"it is {len(found):,} bytes, more than is ever read at once"
                raise StoreFileRefused(msg)
        except StoreFileRefused as refusal:
            self._warn(key, str(refusal))
            return None
        if document:
            self._remember(key, None if found is None else found.to_bytes())
        return found

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, Any]]
    ) -> list[Buffer | None]:
        return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

    async def exists(self, key: str) -> bool:
        try:
            checked_key(key, url=self.url)
        except StoreFileRefused:
            return False
        if is_metadata_key(key):
            return await self.get(key) is not None
        return await self._store.exists(key)

    async def getsize(self, key: str) -> int:
        checked_key(key, url=self.url)
        return await self._store.getsize(key)

    def _plain(self, key: str) -> bool:
        try:
            checked_key(key.rstrip("/"), url=self.url)
        except StoreFileRefused:
            self._warn(key, "its name is not a plain key inside the store")
            return False
        return True

    async def list(self) -> AsyncIterator[str]:
        async for key in self._store.list():
            if self._plain(key):
                yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        async for key in self._store.list_prefix(prefix):
            if self._plain(key):
                yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        async for name in self._store.list_dir(prefix):
            # one plain, non-empty name: an empty one (a member named "/x") would be the group
            # itself, listed inside itself again and again
            if name.strip("/") and "/" not in name.strip("/") and self._plain(name):
                yield name
            elif not name.strip("/"):
                self._warn(f"{prefix}/", "a member with an empty name")


def _root_document(store: GuardedStore, where: StoreLocation) -> tuple[int, dict[str, Any]]:
    """The root's zarr format and first metadata document, probed in :data:`ROOT_PROBES` order."""
    for name in ROOT_PROBES:
        raw = zarr.core.sync.sync(store.get(name))
        if raw is None:
            continue
        try:
            document = json.loads(raw.to_bytes())
        except (UnicodeDecodeError, ValueError) as error:
            head = raw.to_bytes()[:200].lstrip().lower()
            what = "an HTML page" if head.startswith((b"<!doctype html", b"<html")) else "not JSON"
            msg = f"{where / name}: not zarr metadata, the server sent {what} ({error})"
            raise (RemoteStoreError if store.url else StoreReadError)(msg) from error
        if not isinstance(document, dict):
            msg = f"{where / name}: corrupt metadata (expected a JSON object)"
            raise StoreReadError(msg)
        return (3 if name == "zarr.json" else 2), document
    msg = f"{where}: not a zarr store (no zarr.json, .zgroup or .zarray found)"
    raise (RemoteStoreError if store.url else StoreReadError)(msg)


def open_guarded_node(
    store: GuardedStore, where: StoreLocation
) -> tuple[StoreLocation, zarr.Array | zarr.Group]:
    """Open the root node of a guarded store read-only, its metadata checked first.

    Parameters
    ----------
    store : GuardedStore
        The store, rooted at the node to open.
    where : StoreLocation
        The node's location, named in errors and returned.

    Returns
    -------
    tuple of (StoreLocation, zarr.Array or zarr.Group)
        ``where`` and the node.

    Raises
    ------
    StoreReadError
        When the node has no zarr metadata, or its metadata is not a JSON object or cannot be
        parsed (:class:`~napari_zarr_tiler.errors.RemoteStoreError` for URLs, also when the
        server cannot be reached or refuses).
    """
    zarr_format, _document = _root_document(store, where)
    try:
        with bounded_decoding():
            return where, zarr.open(store=store, mode="r", zarr_format=zarr_format)
    except StoreReadError:
        raise
    except OPEN_ERRORS as error:
        msg = f"{where}: cannot open as zarr ({type(error).__name__}: {error})"
        raise StoreReadError(msg) from error


def open_remote_or_zipped_node(
    path: str | os.PathLike[str],
) -> tuple[StoreLocation, zarr.Array | zarr.Group]:
    """Open the node a URL (:mod:`.remote`) or an ``.ozx`` file (:mod:`.zipped`) designates.

    Parameters
    ----------
    path : str or PathLike
        An http(s) or s3 URL of a zarr node, or a zipped OME-Zarr file.

    Returns
    -------
    tuple of (StoreLocation, zarr.Array or zarr.Group)
        Where the node is, and the node.

    Raises
    ------
    StoreReadError
        As :func:`.remote.open_url_node` and :func:`.zipped.open_zipped_node` do.
    """
    if is_remote_url(path):
        from .remote import open_url_node

        return open_url_node(os.fspath(path))
    from .zipped import open_zipped_node

    return open_zipped_node(path)
