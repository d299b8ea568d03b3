"""The lock a running conversion holds on its staging folder (on the marker file inside it)."""

from __future__ import annotations

import errno
import fcntl
import os
import warnings
from pathlib import Path

from ..zarr_names import STAGING_MARKER

#: Where a filesystem cannot lock (some network filesystems): go on without the lock.
_NO_LOCKING = (errno.EBADF, errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


def lock_folder(folder: Path) -> int | None:
    """A descriptor of ``folder``'s marker file holding an exclusive lock on it, or None if
    another process holds one. The marker moves with the folder when it is renamed; the lock
    ends with the process. Raises FileNotFoundError without a marker."""
    descriptor = os.open(folder / STAGING_MARKER, os.O_RDWR | os.O_NOFOLLOW)  # NFS: writable
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    except OSError as error:
        if error.errno not in _NO_LOCKING:
            os.close(descriptor)
            raise
        warnings.warn(
            f"{folder}: this filesystem cannot lock files; make sure no other conversion "
            "writes to the same destination",
            stacklevel=3,
        )
    return descriptor


def locked_elsewhere(folder: Path) -> bool:
    """Whether another process holds the lock of ``folder``'s marker (a run in progress)."""
    try:
        descriptor = lock_folder(folder)
    except OSError:
        return False
    if descriptor is None:
        return True
    os.close(descriptor)
    return False
