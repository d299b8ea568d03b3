"""A read-only zarr LocalStore that serves only regular files inside its own folder.

Stores are untrusted input. zarr's LocalStore follows symbolic links wherever they point and
reads whatever it finds, so a store could show another folder's files (``0.0 -> /etc/passwd``),
stream ``/dev/zero`` into memory, block forever on a named pipe, or loop through a link to its
own folder. This store opens every file through descriptors: each component of a key is opened
relative to the descriptor of the folder before it, without following links
(``O_NOFOLLOW``), and the file read is the very one checked (``fstat`` on its descriptor), so a
file swapped for a link between the check and the read cannot lead outside. Links are followed
by the store itself, component by component, and only while they stay inside the store. A key
is served only when it names a regular file of at most :data:`MAX_READ_BYTES` read at once
(:data:`MAX_METADATA_BYTES` for metadata); anything else reads as missing (a chunk shows its
fill value, metadata is absent) and a :class:`StoreContentWarning` says why, once per key.
Listing never follows a link to a folder, so a link loop lists once.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import warnings
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import zarr.errors
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.storage import LocalStore

from ..zarr_names import MAX_METADATA_BYTES, METADATA_FILES

#: Largest read the store serves: a chunk is refused above 1 GiB decoded anyway (the reader's
#: ``MAX_CHUNK_BYTES``), and compressed data is never much larger than that. A shard file may
#: be larger: it is read in ranges, each of which is held to this.
MAX_READ_BYTES = (1 << 30) + (1 << 20)
#: Links followed at most while opening one key (the kernel's own limit is 40).
MAX_LINK_HOPS = 40
_METADATA_KEYS = METADATA_FILES
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_ROOT_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC
_DIR_FLAGS = _ROOT_FLAGS | getattr(os, "O_NOFOLLOW", 0)
_FILE_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC
#: Whether this platform can open relative to a folder descriptor (not Windows).
DESCRIPTOR_WALK = (
    os.open in os.supports_dir_fd
    and os.readlink in os.supports_dir_fd
    and hasattr(os, "O_NOFOLLOW")
    and hasattr(os, "O_DIRECTORY")
)

#: What zarr raises on a store whose metadata it cannot use: opening it is refused with the cause.
OPEN_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    OSError,
    NotImplementedError,
    zarr.errors.BaseZarrError,
)


class StoreContentWarning(UserWarning):
    """A file in a store was not read: it leads outside the store, is not a file, or is huge."""


class StoreFileRefused(ValueError):
    """A store file that must not be read; the message says why."""


def file_inside(
    root: str, path: str | os.PathLike[str], *, max_bytes: int | None = MAX_READ_BYTES
) -> str | None:
    """Why ``path`` may not be read as part of the store at ``root``, or None when it may.

    A path-based check (the answer can change before the path is opened): read through
    :func:`read_inside` instead where the bytes matter. ``root`` must already be a resolved path
    (``os.path.realpath``). A missing file is fine (None): it reads as missing anyway.

    Parameters
    ----------
    root : str
        The store's folder, resolved.
    path : str or PathLike
        The file to check.
    max_bytes : int or None
        Files larger than this are refused (None: any size).

    Returns
    -------
    str or None
        Why the file is refused, or None when it may be read.
    """
    try:
        real = os.path.realpath(path)
    except OSError:  # a link changing while it is resolved
        return "it changed while it was checked"
    if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
        return f"it leads outside the store (to {real})"
    try:
        status = os.stat(real)
    except OSError:
        return None
    if stat.S_ISDIR(status.st_mode):
        return None
    if not stat.S_ISREG(status.st_mode):
        return "it is not a regular file"
    if max_bytes is not None and status.st_size > max_bytes:
        return f"it is {status.st_size / 2**20:,.0f} MiB, more than is ever read at once"
    return None


def _key_parts(key: str) -> list[str]:
    """The components of a store key; a key that could climb out or is not plain is refused."""
    parts = [part for part in key.split("/") if part] if key else []
    if any(part in {".", ".."} or "\x00" in part for part in parts):
        msg = "it is not a plain key inside the store"
        raise StoreFileRefused(msg)
    return parts


class _Walk:
    """Open an entry of the store by walking folder descriptors, following links only inside."""

    def __init__(self, root: str, real_root: str) -> None:
        self.root = root
        self.real_root = real_root

    def open(self, parts: list[str], *, directory: bool = False) -> int:
        """A descriptor of the entry at ``parts`` (a folder when ``directory``); caller closes.

        Every component is opened relative to its folder's descriptor without following links;
        a link met on the way is replaced by its target's components while those stay inside.

        Raises
        ------
        FileNotFoundError, NotADirectoryError
            For what is missing.
        StoreFileRefused
            For what leads outside the store, or takes too many links to reach.
        """
        chain = [os.open(self.root, _ROOT_FLAGS)]
        pending = list(parts)
        hops = 0
        try:
            while pending:
                name = pending.pop(0)
                if name == "..":
                    if len(chain) == 1:
                        msg = "it leads outside the store"
                        raise StoreFileRefused(msg)
                    os.close(chain.pop())
                elif name not in {"", "."}:
                    flags = _DIR_FLAGS if pending or directory else _FILE_FLAGS
                    try:
                        chain.append(os.open(name, flags, dir_fd=chain[-1]))
                    except OSError as error:
                        hops += 1
                        pending = self._instead_of(name, error, chain, hops) + pending
            return chain.pop()
        finally:
            for descriptor in chain:
                os.close(descriptor)

    def _instead_of(self, name: str, error: OSError, chain: list[int], hops: int) -> list[str]:
        """Components to walk instead of ``name``, whose opening failed with ``error``.

        A link (``ELOOP``; ``ENOTDIR`` where a folder was asked for) gives its target; an
        absolute target inside the store restarts at the root. An entry that stopped being a
        link in the meantime is tried again.
        """
        if error.errno not in {errno.ELOOP, errno.ENOTDIR}:
            raise error
        if hops > MAX_LINK_HOPS:
            msg = f"more than {MAX_LINK_HOPS} links are followed to reach it"
            raise StoreFileRefused(msg) from error
        try:
            target = os.readlink(name, dir_fd=chain[-1])
        except OSError as not_a_link:
            if not_a_link.errno != errno.EINVAL:
                raise
            if error.errno == errno.ENOTDIR:
                raise error from None  # a file where a folder was asked for
            return [name]  # swapped back from a link while we looked: try again
        if not os.path.isabs(target):
            return target.split("/")
        if target != self.real_root and not target.startswith(self.real_root.rstrip("/") + "/"):
            msg = f"it leads outside the store (to {target})"
            raise StoreFileRefused(msg)
        while len(chain) > 1:
            os.close(chain.pop())
        return target[len(self.real_root) :].split("/")


def _span(size: int, byte_range: Any) -> tuple[int, int]:
    """The (start, stop) bytes of a file of ``size`` bytes a read asks for, as LocalStore does."""
    if byte_range is None:
        return 0, size
    if isinstance(byte_range, RangeByteRequest):
        start = min(byte_range.start, size)
        return start, max(min(byte_range.end, size), start)
    if isinstance(byte_range, OffsetByteRequest):
        return min(byte_range.offset, size), size
    if isinstance(byte_range, SuffixByteRequest):
        return max(size - byte_range.suffix, 0), size
    msg = f"Unexpected byte_range, got {byte_range}."
    raise TypeError(msg)


def _pread_all(descriptor: int, start: int, count: int) -> memoryview:
    """Read ``count`` bytes from ``start`` (fewer at the end of the file), without copying."""
    buffer = bytearray(count)
    view = memoryview(buffer)
    done = 0
    while done < count:
        got = os.preadv(descriptor, [view[done:]], start + done)
        if got == 0:
            break
        done += got
    return view[:done]


def _read_contained(
    walk: _Walk, key: str, byte_range: Any, *, max_bytes: int, whole_file_limit: bool
) -> memoryview | None:
    """Read a key through descriptors: None when missing, :class:`StoreFileRefused` when refused.

    ``max_bytes`` holds the whole file when ``whole_file_limit``, else only the range read.
    """
    parts = _key_parts(key)
    if not DESCRIPTOR_WALK:
        return _read_by_path(walk, parts, byte_range, max_bytes, whole_file_limit)
    try:
        descriptor = walk.open(parts)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        status = os.fstat(descriptor)
        if stat.S_ISDIR(status.st_mode):
            return None
        if not stat.S_ISREG(status.st_mode):
            msg = "it is not a regular file"
            raise StoreFileRefused(msg)
        start, stop = _span(status.st_size, byte_range)
        _check_size(status.st_size if whole_file_limit else stop - start, max_bytes)
        return _pread_all(descriptor, start, stop - start)
    finally:
        os.close(descriptor)


def _check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        msg = f"it is {size / 2**20:,.0f} MiB, more than is ever read at once"
        raise StoreFileRefused(msg)


def _read_by_path(
    walk: _Walk, parts: list[str], byte_range: Any, max_bytes: int, whole_file_limit: bool
) -> memoryview | None:
    """Where folders cannot be walked by descriptor (Windows): check the path, then read it."""
    path = os.path.join(walk.root, *parts)
    reason = file_inside(walk.real_root, path, max_bytes=None)
    if reason is not None:
        raise StoreFileRefused(reason)
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            start, stop = _span(size, byte_range)
            _check_size(size if whole_file_limit else stop - start, max_bytes)
            file.seek(start)
            return memoryview(file.read(stop - start))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def read_inside(root: str | os.PathLike[str], key: str, *, max_bytes: int) -> bytes | None:
    """Read the whole file ``key`` of the store at ``root`` as :class:`ContainedLocalStore` does.

    Parameters
    ----------
    root : str or PathLike
        The store's folder.
    key : str
        A ``/``-separated key inside it.
    max_bytes : int
        Files larger than this are refused.

    Returns
    -------
    bytes or None
        The file's bytes; None when it is missing (or is a folder).

    Raises
    ------
    StoreFileRefused
        With the reason, when the file leads outside the store, is not a regular file or is
        larger than ``max_bytes``.
    PermissionError
        When the file cannot be opened.
    """
    walk = _Walk(str(root), os.path.realpath(root))
    data = _read_contained(walk, key, None, max_bytes=max_bytes, whole_file_limit=True)
    return None if data is None else bytes(data)


class ContainedLocalStore(LocalStore):
    """Read-only :class:`zarr.storage.LocalStore` limited to regular files inside ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__(root, read_only=True)
        self._real_root = os.path.realpath(self.root)
        self._walk = _Walk(str(self.root), self._real_root)
        self._warned: set[str] = set()

    # -- refusals ------------------------------------------------------------------------------

    def _warn(self, key: str, reason: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(
                f"{self.root / key}: not read, {reason}; it reads as missing",
                StoreContentWarning,
                stacklevel=3,
            )

    def _read(self, key: str, byte_range: Any = None) -> memoryview | None:
        """The bytes of ``key`` (or of a range of it), or None when missing or refused."""
        metadata = key.rsplit("/", 1)[-1] in _METADATA_KEYS
        try:
            return _read_contained(
                self._walk,
                key,
                byte_range,
                max_bytes=MAX_METADATA_BYTES if metadata else MAX_READ_BYTES,
                whole_file_limit=byte_range is None or metadata,
            )
        except StoreFileRefused as refusal:
            self._warn(key, str(refusal))
            return None

    def _file_size(self, key: str) -> int | None:
        """The size of the regular file ``key`` names inside the store, or None."""
        if not DESCRIPTOR_WALK:
            path = self.root / key
            if file_inside(self._real_root, path, max_bytes=None) or not path.is_file():
                return None
            return path.stat().st_size
        try:
            descriptor = self._walk.open(_key_parts(key))
        except StoreFileRefused as refusal:
            self._warn(key, str(refusal))
            return None
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            status = os.fstat(descriptor)
        finally:
            os.close(descriptor)
        return status.st_size if stat.S_ISREG(status.st_mode) else None

    # -- reads ---------------------------------------------------------------------------------

    def get_sync(
        self, key: str, *, prototype: BufferPrototype | None = None, byte_range: Any = None
    ) -> Buffer | None:
        data = self._read(key, byte_range)
        if data is None:
            return None
        return (prototype or default_buffer_prototype()).buffer.from_bytes(data)

    async def get(
        self, key: str, prototype: BufferPrototype | None = None, byte_range: Any = None
    ) -> Buffer | None:
        data = await asyncio.to_thread(self._read, key, byte_range)
        if data is None:
            return None
        return (prototype or default_buffer_prototype()).buffer.from_bytes(data)

    async def get_partial_values(
        self, prototype: Any, key_ranges: Iterable[tuple[str, Any]]
    ) -> list[Any]:
        reads = [self.get(key, prototype, byte_range) for key, byte_range in key_ranges]
        return list(await asyncio.gather(*reads))

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._file_size, key) is not None

    async def getsize(self, key: str) -> int:
        size = await asyncio.to_thread(self._file_size, key)
        if size is None:
            raise FileNotFoundError(str(self.root / key))
        return size

    # -- listing -------------------------------------------------------------------------------

    def _list_files(self, prefix: str) -> list[str]:
        """Keys of the files under ``prefix``, walking real folders only (never a folder link)."""
        try:
            descriptor = self._walk.open(_key_parts(prefix), directory=True)
        except (StoreFileRefused, FileNotFoundError, NotADirectoryError):
            return []
        base = "/".join(_key_parts(prefix))
        keys = []
        try:
            for folder, _dirs, files, _fd in os.fwalk(
                ".", dir_fd=descriptor, follow_symlinks=False
            ):
                relative = folder.removeprefix(".").strip("/")
                inside = "/".join(part for part in (base, relative) if part)
                keys.extend(f"{inside}/{name}" if inside else name for name in files)
        finally:
            os.close(descriptor)
        return sorted(keys)

    def _list_entries(self, prefix: str) -> list[str]:
        """Names directly under ``prefix``: real folders, and files (links to folders skipped)."""
        try:
            descriptor = self._walk.open(_key_parts(prefix), directory=True)
        except (StoreFileRefused, FileNotFoundError, NotADirectoryError):
            return []
        names = []
        try:
            with os.scandir(descriptor) as entries:
                for entry in entries:
                    if entry.is_symlink() and entry.is_dir():
                        self._warn(
                            f"{prefix.rstrip('/')}/{entry.name}".lstrip("/"),
                            "it is a link to a folder, which is not listed (it could loop)",
                        )
                        continue
                    names.append(entry.name)
        finally:
            os.close(descriptor)
        return sorted(names)

    async def list(self) -> AsyncIterator[str]:
        async for key in self.list_prefix(""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        if not DESCRIPTOR_WALK:
            async for key in super().list_prefix(prefix):
                yield key
            return
        for key in await asyncio.to_thread(self._list_files, prefix):
            yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        if not DESCRIPTOR_WALK:
            async for name in super().list_dir(prefix):
                yield name
            return
        for name in await asyncio.to_thread(self._list_entries, prefix):
            yield name

    def with_read_only(self, read_only: bool = True) -> ContainedLocalStore:
        return type(self)(self.root)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ContainedLocalStore) and self.root == other.root

    def __hash__(self) -> int:
        return hash(Path(self.root))
