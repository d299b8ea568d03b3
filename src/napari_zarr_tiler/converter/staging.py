"""Safe destinations: write beside the target, move into place only when complete.

A conversion writes into a hidden staging folder next to the destination (``.NAME.partial``)
and moves it to ``NAME`` only after every chunk and the metadata are written, so an interrupted
or failed conversion never leaves a store that looks complete. :class:`Staging` owns that
lifecycle, as a small state machine:

``CHECKED`` (destination validated, leftovers of a crashed commit recovered)
-> ``STAGED`` (staging folder made or reused, locked, marker "partial")
-> ``COMPLETE`` (everything written, marker "complete": a commit may be retried with resume)
-> ``COMMITTED`` (moved into place, an old store replaced and deleted);
any state before ``COMMITTED`` -> ``ABORTED`` (removed, or kept for resume).

Every state a crash can leave on disk is recognised by the next run: a staging folder carrying
the marker is resumed (``resume``) or replaced (a plain run or an overwrite); an old store moved
aside (``.NAME.replaced-XXXX``) is put back if the new one never arrived, or deleted once it did;
a finished store still carrying a "complete" marker is tidied. An existing destination is
replaced only with ``overwrite``, and only if every entry in it, recursively, is a zarr node,
metadata file or chunk: a folder holding anything else is never deleted.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import json
import os
import re
import shutil
import uuid
import warnings
from pathlib import Path

from ..errors import DestinationError, DestinationExistsError
from ..zarr_names import (
    COMPLETE,
    JOURNAL,
    MAX_METADATA_BYTES,
    METADATA_FILES,
    NODE_METADATA,
    STAGING_MARKER,
    is_partial_store,
    marker_state,
    staging_path,
)

__all__ = ["JOURNAL", "STAGING_MARKER", "is_partial_store", "marker_state", "staging_path"]

#: Every metadata file a zarr node may hold.
_NODE_FILES = frozenset(METADATA_FILES)
#: Files of this package (or of the system) that a zarr store written here may hold.
_OWN_FILES = frozenset((STAGING_MARKER, JOURNAL, ".DS_Store"))

#: Chunk keys at the root of an array: v3 ``c`` / ``c.0.1`` / ``c/...``, v2 ``0.1`` / ``0/...``.
_ARRAY_FILE = re.compile(r"c|c(\.\d+)+|\d+(\.\d+)*")
_ARRAY_DIR = re.compile(r"c|\d+")
#: Below an array's first chunk folder: only chunk coordinates.
_CHUNK_FILE = re.compile(r"\d+(\.\d+)*")
_CHUNK_DIR = re.compile(r"\d+")


def _read_metadata(file: Path) -> dict | None:
    try:
        if file.is_symlink() or not file.is_file() or file.stat().st_size > MAX_METADATA_BYTES:
            return None
        document = json.loads(file.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _zarr_metadata(file: Path) -> bool:
    document = _read_metadata(file)
    if document is None:
        return False
    if file.name == "zarr.json":
        return document.get("zarr_format") == 3 and document.get("node_type") in ("array", "group")
    return document.get("zarr_format") == 2


def _node_kind(folder: Path) -> str | None:
    """``"array"`` or ``"group"`` for a folder holding valid zarr metadata, else None."""
    document = _read_metadata(folder / "zarr.json")
    if document is not None and document.get("zarr_format") == 3:
        kind = document.get("node_type")
        return kind if kind in ("array", "group") else None
    for name, kind in ((".zarray", "array"), (".zgroup", "group")):
        if _zarr_metadata(folder / name):
            return kind
    return None


def _not_a_node(folder: Path) -> str:
    """Why a folder in a group is refused, naming a file in it (what would have been lost)."""
    for root, _, files in os.walk(folder):
        if files:
            return f"{Path(root) / files[0]} is not a zarr file"
    return f"{folder} is a folder that is not a zarr node"


def _entry_refusal(entry: os.DirEntry[str], kind: str) -> tuple[str | None, str | None]:
    """(why ``entry`` of a node of ``kind`` is not part of a zarr store, or None; the kind of
    folder it is, to walk into)."""
    name = entry.name
    if entry.is_symlink():
        return f"{entry.path} is a link", None
    if entry.is_file(follow_symlinks=False):
        allowed = (
            name in _OWN_FILES
            or (kind != "chunks" and name in _NODE_FILES)
            or (kind == "array" and _ARRAY_FILE.fullmatch(name) is not None)
            or (kind == "chunks" and _CHUNK_FILE.fullmatch(name) is not None)
        )
        return (None if allowed else f"{entry.path} is not a zarr file"), None
    if not entry.is_dir(follow_symlinks=False):
        return f"{entry.path} is not a regular file or folder", None
    if kind == "group":
        sub = _node_kind(Path(entry.path))
        return (None, sub) if sub else (_not_a_node(Path(entry.path)), None)
    pattern = _ARRAY_DIR if kind == "array" else _CHUNK_DIR
    if pattern.fullmatch(name):
        return None, "chunks"
    return f"{entry.path} is not a zarr chunk folder", None


def store_refusal(path: Path) -> str | None:
    """Why ``path`` is not only a zarr store (naming the first offending entry), or None.

    Walks the whole tree, stopping at the first entry that is not a zarr node (a folder with
    valid metadata), metadata file, chunk file or chunk folder named as zarr names them, or
    one of this package's own files. Links and special files are refused.
    """
    if path.is_symlink() or not path.is_dir():
        return f"{path} is not a folder"
    if not any(_zarr_metadata(path / name) for name in NODE_METADATA):
        return f"{path} has no valid zarr metadata at its root"
    pending = [(path, _node_kind(path) or "group")]
    while pending:
        folder, kind = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as error:
            return f"{folder} cannot be read ({error.strerror or error})"
        for entry in entries:
            refusal, sub = _entry_refusal(entry, kind)
            if refusal is not None:
                return refusal
            if sub is not None:
                pending.append((Path(entry.path), sub))
    return None


def is_zarr_store(path: Path) -> bool:
    """Whether ``path`` is a folder that is only a zarr store, and so may be replaced.

    Its root must hold valid zarr metadata and every entry in it, recursively, must be a zarr
    node, metadata file or chunk (see :func:`store_refusal`): a folder of someone's files with
    a stray or broken ``zarr.json`` is not a store.
    """
    return store_refusal(path) is None


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
        When the destination exists (without ``overwrite``), is not only a zarr store (with
        ``overwrite``), lies inside the source, or its folder cannot be written.
    """
    path = Path(dest).expanduser().absolute()
    _check_overlap(path, source_paths)
    if path.exists() or path.is_symlink():
        _check_existing(path, overwrite=overwrite, resume=resume)
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


def _check_overlap(path: Path, source_paths: list[Path]) -> None:
    """Refuse a destination inside a source, or a source inside the destination."""
    resolved = path.resolve()
    for source in source_paths:
        source = Path(source).expanduser().absolute().resolve()
        if _is_within(resolved, source) or resolved == source:
            msg = f"{path}: the destination is inside the source {source}; choose another folder"
            raise DestinationError(msg)
        if _is_within(source, resolved):
            msg = f"{path}: the source {source} is inside the destination; choose another folder"
            raise DestinationError(msg)


def _check_existing(path: Path, *, overwrite: bool, resume: bool) -> None:
    """Refuse an existing destination unless it may be, and can provably be, replaced."""
    if not overwrite and resume and not has_partial_store(path) and is_zarr_store(path):
        msg = (
            f"{path} is already complete: there is no interrupted conversion to resume "
            "(to convert again, allow overwriting: --overwrite, or overwrite=True in Python)"
        )
        raise DestinationExistsError(msg, str(path))
    if not overwrite:
        msg = (
            f"{path} already exists; choose another name or allow overwriting "
            "(--overwrite, or overwrite=True in Python)"
        )
        raise DestinationExistsError(msg, str(path))
    refusal = store_refusal(path)
    if refusal is not None:
        msg = (
            f"{path} exists and is not a zarr store; it will not be replaced, choose another "
            f"name ({refusal})"
        )
        raise DestinationError(msg)


def has_partial_store(dest: Path) -> bool:
    """Whether an interrupted conversion to ``dest`` left a partial store to resume."""
    return marker_state(staging_path(dest)) is not None


#: Where a filesystem cannot lock (some network filesystems): go on without the lock.
_NO_LOCKING = (errno.EBADF, errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


def _lock_folder(folder: Path) -> int | None:
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


def _locked_elsewhere(folder: Path) -> bool:
    """Whether another process holds the lock of ``folder``'s marker (a run in progress)."""
    try:
        descriptor = _lock_folder(folder)
    except OSError:
        return False
    if descriptor is None:
        return True
    os.close(descriptor)
    return False


def _busy(dest: Path) -> DestinationError:
    return DestinationError(
        f"{dest}: another conversion to this destination is running; wait for it to finish "
        "or choose another name"
    )


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def _remove_marked(folder: Path) -> OSError | None:
    """Delete a folder this package made or moved aside, bottom-up, with the files that mark
    each folder (our marker, zarr metadata) deleted after everything else in it: a removal cut
    short (by a kill or an error) still leaves a folder a later run recognises and removes.
    Returns the first error, or None."""
    try:
        entries = list(os.scandir(folder))
    except OSError as error:
        return error
    marks = [e for e in entries if e.name in _NODE_FILES or e.name == STAGING_MARKER]
    for entry in [e for e in entries if e not in marks] + marks:
        try:
            if entry.is_dir(follow_symlinks=False):
                failure = _remove_marked(Path(entry.path))
                if failure is not None:
                    return failure
            else:
                os.unlink(entry.path)
        except OSError as error:
            return error
    try:
        folder.rmdir()
    except OSError as error:
        return error
    return None


def _aside_folders(dest: Path) -> list[Path]:
    """Old stores an overwrite moved aside (``.NAME.replaced-XXXX``), newest first."""
    prefix = f".{dest.name}.replaced-"
    try:
        found = [p for p in dest.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return []
    return sorted(found, key=lambda p: p.lstat().st_mtime_ns, reverse=True)


def _delete_replaced(old: Path, dest: Path) -> None:
    """Delete a store an overwrite replaced; say so when it cannot be (never left unmentioned)."""
    refusal = store_refusal(old)
    if refusal is not None:
        problem = f"it is no longer only a zarr store: {refusal}"
    else:
        failure = _remove_marked(old)
        if failure is None:
            return
        problem = _reason(failure)
    msg = (
        f"the store that {dest} replaced could not be deleted ({problem}); it is left at "
        f"{old}: delete it yourself"
    )
    warnings.warn(msg, UserWarning, stacklevel=4)


def _recover(dest: Path) -> None:
    """Finish or undo what a commit cut short by a crash left, unless a run is in progress."""
    staging = staging_path(dest)
    if marker_state(staging) is not None and _locked_elsewhere(staging):
        return
    if marker_state(dest) == COMPLETE:
        if _locked_elsewhere(dest):
            return
        for name in (JOURNAL, STAGING_MARKER):  # a committed store whose tidying was cut short
            with contextlib.suppress(OSError):
                (dest / name).unlink(missing_ok=True)
    asides = _aside_folders(dest)
    if asides and not (dest.exists() or dest.is_symlink()):
        newest = asides.pop(0)
        try:  # killed between moving the old store aside and the new one into place
            newest.rename(dest)
        except OSError as error:
            msg = f"{dest}: the replaced store at {newest} cannot be put back ({_reason(error)})"
            raise DestinationError(msg) from error
    for old in asides:
        _delete_replaced(old, dest)


class StagingState(enum.Enum):
    """Where a :class:`Staging` is in its lifecycle."""

    CHECKED = "checked"
    STAGED = "staged"
    COMPLETE = "complete"
    COMMITTED = "committed"
    ABORTED = "aborted"


class Staging:
    """The staging lifecycle of one conversion: check, stage, lock, commit, abort, resume.

    Parameters
    ----------
    dest : path
        Where the store should end up.
    overwrite : bool
        Whether an existing zarr store there may be replaced.
    resume : bool
        Whether an interrupted conversion to ``dest`` is to be continued.
    source_paths : list of Path
        Folders or files the source is read from; the destination may not overlap them.

    Raises
    ------
    DestinationError
        As :func:`check_destination`; also when a crashed commit's old store cannot be put back.
    """

    def __init__(
        self,
        dest: str | os.PathLike[str],
        *,
        overwrite: bool,
        resume: bool = False,
        source_paths: list[Path] | None = None,
    ) -> None:
        path = Path(dest).expanduser().absolute()
        _check_overlap(path, list(source_paths or []))
        _recover(path)
        self.dest = check_destination(path, overwrite=overwrite, source_paths=[], resume=resume)
        self.folder = staging_path(self.dest)
        self.resume = resume
        #: Whether :meth:`begin` reused an interrupted conversion's folder.
        self.resuming = False
        self.state = StagingState.CHECKED
        self._lock: int | None = None
        #: What :meth:`abort` left behind, for messages.
        self.left_behind = "nothing was left behind"

    # -- stage -----------------------------------------------------------------------------------

    def begin(self) -> Path:
        """Create (or, resuming, reuse) the staging folder, locked for this run; return it.

        A staging folder from an earlier run is replaced unless resuming; only folders carrying
        this package's marker (or empty ones) are ever removed, and never one that another
        conversion is writing into (its lock is held). A new folder is prepared, marker first,
        under a unique name and renamed into place, so two runs cannot both take it.
        """
        self._expect(StagingState.CHECKED)
        staging = self.folder
        if (staging.exists() or staging.is_symlink()) and self._take_existing():
            self.resuming = True
            self.state = StagingState.STAGED
            return staging
        self._create()
        self.state = StagingState.STAGED
        return staging

    def _take_existing(self) -> bool:
        """Lock an existing staging folder; True to reuse it (resume), else it is removed."""
        staging = self.folder
        if staging.is_symlink() or marker_state(staging) is None:
            if staging.is_dir() and not staging.is_symlink():
                with contextlib.suppress(OSError):
                    staging.rmdir()  # empty: a removal cut short after its marker
                if not staging.exists():
                    return False
            msg = f"{staging} exists and was not made by napari-zarr-tiler; remove it or choose another name"
            raise DestinationError(msg)
        try:
            lock = _lock_folder(staging)
        except OSError as error:
            msg = f"{staging}: cannot open ({_reason(error)})"
            raise DestinationError(msg) from error
        if lock is None:
            raise _busy(self.dest)
        if self.resume:
            self._lock = lock
            return True
        failure = _remove_marked(staging)
        os.close(lock)
        if failure is not None:
            msg = f"{staging}: the earlier partial store cannot be removed ({_reason(failure)})"
            raise DestinationError(msg) from failure
        return False

    def _create(self) -> None:
        dest, staging = self.dest, self.folder
        fresh = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:8]}"
        lock = None
        try:
            fresh.mkdir()
            (fresh / STAGING_MARKER).write_text("partial conversion; safe to delete\n")
            lock = _lock_folder(fresh)
            fresh.rename(staging)  # fails if another run took the name meanwhile
        except OSError as error:
            if lock is not None:
                os.close(lock)
            shutil.rmtree(fresh, ignore_errors=True)
            if staging.exists():
                raise _busy(dest) from error
            msg = f"{staging}: cannot write ({_reason(error)})"
            raise DestinationError(msg) from error
        self._lock = lock

    # -- commit ----------------------------------------------------------------------------------

    def commit(self) -> Path:
        """Move the complete staging folder into place, replacing an existing zarr store.

        The marker stays (saying "complete") until the store is in place, so a kill at any
        point leaves a state the next run recognises. If the store cannot be moved into place,
        the old one is put back and the new one kept (``resume`` finishes the move).

        Raises
        ------
        DestinationError
            When the destination cannot be replaced; the message says where both stores are.
        """
        self._expect(StagingState.STAGED, StagingState.COMPLETE)
        self._mark_complete()
        self.state = StagingState.COMPLETE
        dest, staging = self.dest, self.folder
        old = self._move_old_aside() if dest.exists() or dest.is_symlink() else None
        try:
            staging.rename(dest)
        except OSError as error:
            self._put_back(old)
            msg = (
                f"{dest}: cannot move the new store into place ({_reason(error)}); "
                f"{'the old store is unchanged; ' if old else ''}the new store is kept at "
                f"{staging}: run the same command with --resume to finish"
            )
            raise DestinationError(msg) from error
        self.state = StagingState.COMMITTED
        for name in (JOURNAL, STAGING_MARKER):
            with contextlib.suppress(
                OSError
            ):  # a leftover "complete" marker is tidied by the next run
                (dest / name).unlink(missing_ok=True)
        if old is not None:
            _delete_replaced(old, dest)
        return dest

    def _mark_complete(self) -> None:
        text = f"{COMPLETE} conversion, not yet moved into place\n".encode()
        try:
            if self._lock is not None:
                os.ftruncate(self._lock, 0)
                os.pwrite(self._lock, text, 0)
            else:
                (self.folder / STAGING_MARKER).write_bytes(text)
        except OSError as error:
            msg = f"{self.folder}: cannot mark the store complete ({_reason(error)})"
            raise DestinationError(msg) from error

    def _move_old_aside(self) -> Path:
        dest, staging = self.dest, self.folder
        refusal = store_refusal(dest)  # checked before, but the disk may have changed since
        if refusal is not None:
            msg = (
                f"{dest} exists and is not a zarr store ({refusal}); it was not replaced, "
                f"the new store is kept at {staging}"
            )
            raise DestinationError(msg)
        old = dest.parent / f".{dest.name}.replaced-{uuid.uuid4().hex[:8]}"
        try:
            dest.rename(old)
        except OSError as error:
            msg = (
                f"{dest}: cannot replace it ({_reason(error)}); the old store is unchanged "
                f"and the new store is kept at {staging}: run the same command with --resume "
                "once it can be replaced"
            )
            raise DestinationError(msg) from error
        return old

    def _put_back(self, old: Path | None) -> None:
        if old is None:
            return
        try:
            old.rename(self.dest)
        except OSError as error:
            msg = (
                f"{self.dest}: the new store could not be moved into place and the old one "
                f"not back ({_reason(error)}); the old store is at {old}, the new one at "
                f"{self.folder}"
            )
            raise DestinationError(msg) from error

    # -- abort -----------------------------------------------------------------------------------

    def abort(self, *, keep: bool) -> None:
        """End a failed or interrupted run: remove the staging folder, or keep it (``keep``,
        for resume; and always once complete, since it then holds a finished store).

        Call it only once every write has finished, so what it reports is true.
        """
        if self.state not in (StagingState.STAGED, StagingState.COMPLETE):
            return
        complete = self.state is StagingState.COMPLETE
        self.state = StagingState.ABORTED
        if keep or complete:
            self.left_behind = f"the partial store is kept at {self.folder} for --resume"
            return
        failure = _remove_marked(self.folder)
        if failure is not None:
            self.left_behind = (
                f"the partial store at {self.folder} could not be removed "
                f"({_reason(failure)}); the next conversion to this name replaces it"
            )

    def release(self) -> None:
        """Let go of the lock (the folder stays as it is)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def _expect(self, *states: StagingState) -> None:
        if self.state not in states:
            msg = f"staging of {self.dest} is {self.state.value}, not {states[0].value}"
            raise RuntimeError(msg)
