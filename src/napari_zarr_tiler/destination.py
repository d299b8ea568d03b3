"""Safe destinations: write beside the target, move into place only when complete.

A conversion writes into a hidden staging folder next to the destination
(``.NAME.partial``) and renames it to ``NAME`` only after every chunk and the metadata are written,
so an interrupted or failed conversion never leaves a store that looks complete. An existing
destination is replaced only with ``overwrite``, and only if it is a zarr store: a folder that is
not one is never deleted.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import uuid
import warnings
from pathlib import Path

from .contained_store import MAX_METADATA_BYTES
from .errors import DestinationError

STAGING_MARKER = ".napari-zarr-tiler-partial"
METADATA_FILES = ("zarr.json", ".zgroup", ".zarray")


#: Files a zarr store may hold at its root besides folders: metadata, and the chunks of a
#: bare format-2 array (``0.0``, ``3.1.2``).
_ROOT_FILE = re.compile(
    r"(zarr\.json|\.zattrs|\.zgroup|\.zarray|\.zmetadata|\.DS_Store|c?(\.?\d+)([._]\d+)*)"
)


def _zarr_metadata(file: Path) -> bool:
    try:
        if file.is_symlink() or not file.is_file() or file.stat().st_size > MAX_METADATA_BYTES:
            return False
        document = json.loads(file.read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    if not isinstance(document, dict):
        return False
    if file.name == "zarr.json":
        return document.get("zarr_format") == 3 and document.get("node_type") in ("array", "group")
    return document.get("zarr_format") == 2


def is_zarr_store(path: Path) -> bool:
    """Whether ``path`` is a folder that is a zarr store, and so may be replaced.

    Its root must hold valid zarr metadata (``zarr.json`` of format 3, or ``.zgroup`` or
    ``.zarray`` of format 2), and no file a zarr store does not have there: a folder of
    someone's files with a stray or broken ``zarr.json`` is not a store.
    """
    if path.is_symlink() or not path.is_dir():
        return False
    if not any(_zarr_metadata(path / name) for name in METADATA_FILES):
        return False
    try:
        entries = list(os.scandir(path))
    except OSError:
        return False
    return all(
        entry.is_dir(follow_symlinks=False) or _ROOT_FILE.fullmatch(entry.name)
        for entry in entries
    )


def staging_path(dest: Path) -> Path:
    """The hidden folder a conversion to ``dest`` writes into."""
    return dest.parent / f".{dest.name}.partial"


def _is_within(path: Path, ancestor: Path) -> bool:
    try:
        path.relative_to(ancestor)
    except ValueError:
        return False
    return True


def check_destination(
    dest: str | os.PathLike[str],
    *,
    overwrite: bool,
    source_paths: list[Path],
    resume: bool = False,
) -> Path:
    """Validate a destination before any work starts, and return it as an absolute path.

    Parameters
    ----------
    dest : path
        Where the store should end up.
    overwrite : bool
        Whether an existing zarr store there may be replaced.
    source_paths : list of Path
        Folders or files the source is read from; the destination may not be inside them.
    resume : bool
        Whether an interrupted conversion to ``dest`` is to be continued.

    Raises
    ------
    DestinationError
        When the destination exists (without ``overwrite``), is not a zarr store (with
        ``overwrite``), lies inside the source, or its folder cannot be written.
    """
    path = Path(dest).expanduser().absolute()
    resolved = path.resolve()
    for source in source_paths:
        source = source.resolve()
        if _is_within(resolved, source) or resolved == source:
            msg = f"{path}: the destination is inside the source {source}; choose another folder"
            raise DestinationError(msg)
        if _is_within(source, resolved):
            msg = f"{path}: the source {source} is inside the destination; choose another folder"
            raise DestinationError(msg)
    if path.exists() or path.is_symlink():
        if not overwrite and resume and not has_partial_store(path) and is_zarr_store(path):
            msg = (
                f"{path} is already complete: there is no interrupted conversion to resume "
                "(to convert again, allow overwriting: --overwrite, or overwrite=True in Python)"
            )
            raise DestinationError(msg)
        if not overwrite:
            msg = (
                f"{path} already exists; choose another name or allow overwriting "
                "(--overwrite, or overwrite=True in Python)"
            )
            raise DestinationError(msg)
        if path.is_symlink() or not is_zarr_store(path):
            msg = f"{path} exists and is not a zarr store; it will not be replaced, choose another name"
            raise DestinationError(msg)
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        msg = f"{parent}: cannot create the destination folder ({error.strerror or error})"
        raise DestinationError(msg) from error
    if not os.access(parent, os.W_OK | os.X_OK):
        msg = f"{parent}: the destination folder is not writable"
        raise DestinationError(msg)
    return path


def has_partial_store(dest: Path) -> bool:
    """Whether an interrupted conversion to ``dest`` left a partial store to resume."""
    return (staging_path(dest) / STAGING_MARKER).is_file()


#: Locks on the staging folders this process writes into (held for the whole conversion).
_HELD: dict[Path, int] = {}


#: Where a filesystem cannot lock (some network filesystems): go on without the lock.
_NO_LOCKING = (errno.EBADF, errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


def _lock_folder(folder: Path) -> int | None:
    """A descriptor of ``folder``'s marker file holding an exclusive lock on it, or None if
    another process holds one. The marker moves with the folder when it is renamed; the lock
    ends with the process. Raises FileNotFoundError without a marker."""
    descriptor = os.open(folder / STAGING_MARKER, os.O_RDWR)  # NFS locks need a writable fd
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


def _busy(dest: Path) -> DestinationError:
    return DestinationError(
        f"{dest}: another conversion to this destination is running; wait for it to finish "
        "or choose another name"
    )


def begin_staging(dest: Path, *, resume: bool = False) -> Path:
    """Create (or, with ``resume``, reuse) the staging folder of ``dest``, locked for this run.

    A stale staging folder from an earlier interrupted run is removed unless resuming; only
    folders carrying this package's marker file are ever removed, and never one that another
    conversion is writing into (its lock is held). The new folder is prepared under a unique
    name and renamed into place, so two runs cannot both take it.
    """
    staging = staging_path(dest)
    if staging.exists():
        if staging.is_symlink() or not (staging / STAGING_MARKER).is_file():
            msg = f"{staging} exists and was not made by napari-zarr-tiler; remove it or choose another name"
            raise DestinationError(msg)
        try:
            lock = _lock_folder(staging)
        except OSError as error:
            msg = f"{staging}: cannot open ({error.strerror or error})"
            raise DestinationError(msg) from error
        if lock is None:
            raise _busy(dest)
        if resume:
            _HELD[staging] = lock
            return staging
        shutil.rmtree(staging)
        os.close(lock)
    fresh = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:8]}"
    lock = None
    try:
        fresh.mkdir()
        (fresh / STAGING_MARKER).write_text("incomplete conversion; safe to delete\n")
        lock = _lock_folder(fresh)
        fresh.rename(staging)  # fails if another run took the name meanwhile
    except OSError as error:
        if lock is not None:
            os.close(lock)
        shutil.rmtree(fresh, ignore_errors=True)
        if staging.exists():
            raise _busy(dest) from error
        msg = f"{staging}: cannot write ({error.strerror or error})"
        raise DestinationError(msg) from error
    assert lock is not None
    _HELD[staging] = lock
    return staging


def release_staging(staging: Path) -> None:
    """Let go of the lock :func:`begin_staging` took (the folder itself stays as it is)."""
    lock = _HELD.pop(staging, None)
    if lock is not None:
        os.close(lock)


def commit_staging(staging: Path, dest: Path) -> None:
    """Move a complete staging folder into place, replacing an existing zarr store at ``dest``."""
    (staging / STAGING_MARKER).unlink(missing_ok=True)
    old = None
    if dest.exists():
        if not is_zarr_store(dest):  # checked before, but the disk may have changed since
            msg = f"{dest} exists and is not a zarr store; the new store is left at {staging}"
            raise DestinationError(msg)
        old = dest.parent / f".{dest.name}.replaced-{uuid.uuid4().hex[:8]}"
        dest.rename(old)
    staging.rename(dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def abort_staging(staging: Path) -> None:
    """Remove a staging folder this package made (never anything else)."""
    if (staging / STAGING_MARKER).is_file():
        shutil.rmtree(staging, ignore_errors=True)
