"""A read-only zarr LocalStore that serves only regular files inside its own folder.

Stores are untrusted input. zarr's LocalStore follows symbolic links wherever they point and
reads whatever it finds, so a store could show another folder's files (``0.0 -> /etc/passwd``),
stream ``/dev/zero`` into memory, or block forever on a named pipe. This store serves a key only
when the file it names, with every link resolved, is a regular file inside the store's root and
what is read of it is no larger than :data:`MAX_READ_BYTES` (:data:`MAX_METADATA_BYTES` for
metadata); anything else reads as missing (a chunk shows its fill
value, metadata is absent) and a :class:`StoreContentWarning` says why, once per file.
"""

from __future__ import annotations

import asyncio
import functools
import os
import stat
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.storage import LocalStore

#: Largest read the store serves: a chunk is refused above 1 GiB decoded anyway (the reader's
#: ``MAX_CHUNK_BYTES``), and compressed data is never much larger than that. A shard file may
#: be larger: it is read in ranges, each of which is held to this.
MAX_READ_BYTES = (1 << 30) + (1 << 20)
#: Largest metadata document served (OME-Zarr metadata is kilobytes).
MAX_METADATA_BYTES = 64 << 20
_METADATA_KEYS = ("zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata")


class StoreContentWarning(UserWarning):
    """A file in a store was not read: it leads outside the store, is not a file, or is huge."""


def file_inside(
    root: str, path: str | os.PathLike[str], *, max_bytes: int | None = MAX_READ_BYTES
) -> str | None:
    """Why ``path`` may not be read as part of the store at ``root``, or None when it may.

    ``root`` must already be a resolved path (``os.path.realpath``). A missing file is fine
    (None): it reads as missing anyway. Files larger than ``max_bytes`` (None: any size) are
    refused.
    """
    real = os.path.realpath(path)
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


def _wanted_bytes(path: Path, byte_range: Any) -> int:
    """Bytes a ranged read of ``path`` asks for."""
    if isinstance(byte_range, RangeByteRequest):
        return max(byte_range.end - byte_range.start, 0)
    if isinstance(byte_range, SuffixByteRequest):
        return byte_range.suffix
    try:
        size = os.stat(path).st_size
    except OSError:
        return 0
    offset = byte_range.offset if isinstance(byte_range, OffsetByteRequest) else 0
    return max(size - offset, 0)


class ContainedLocalStore(LocalStore):
    """Read-only :class:`zarr.storage.LocalStore` limited to regular files inside ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__(root, read_only=True)
        self._real_root = os.path.realpath(self.root)
        self._warned: set[str] = set()

    def _refusal(self, key: str, byte_range: Any = None, *, reading: bool = True) -> str | None:
        path = self.root / key
        metadata = key.rsplit("/", 1)[-1] in _METADATA_KEYS
        limit = MAX_METADATA_BYTES if metadata else MAX_READ_BYTES
        if not reading:
            reason = file_inside(self._real_root, path, max_bytes=None)
        elif byte_range is not None and not metadata:
            # A range of a shard: what is read is the range, whatever the file's size.
            reason = file_inside(self._real_root, path, max_bytes=None)
            wanted = _wanted_bytes(path, byte_range)
            if reason is None and wanted > limit:
                reason = f"a read of {wanted / 2**20:,.0f} MiB, more than is ever read at once"
        else:
            reason = file_inside(self._real_root, path, max_bytes=limit)
        if reason is not None and key not in self._warned:
            self._warned.add(key)
            warnings.warn(
                f"{self.root / key}: not read, {reason}; it reads as missing",
                StoreContentWarning,
                stacklevel=2,
            )
        return reason

    async def get(self, key: str, prototype: Any = None, byte_range: Any = None) -> Any:
        if await asyncio.to_thread(self._refusal, key, byte_range) is not None:
            return None
        return await super().get(key, prototype, byte_range)

    async def get_partial_values(
        self, prototype: Any, key_ranges: Iterable[tuple[str, Any]]
    ) -> list[Any]:
        reads = [self.get(key, prototype, byte_range) for key, byte_range in key_ranges]
        return list(await asyncio.gather(*reads))

    async def exists(self, key: str) -> bool:
        if await asyncio.to_thread(functools.partial(self._refusal, key, reading=False)):
            return False
        return await super().exists(key)

    def with_read_only(self, read_only: bool = True) -> ContainedLocalStore:
        return type(self)(self.root)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ContainedLocalStore) and self.root == other.root

    def __hash__(self) -> int:
        return hash(Path(self.root))
