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
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import DestinationError, DestinationExistsError
from ..sources import is_url
from ..zarr_names import (
    COMPLETE,
    JOURNAL,
    STAGING_MARKER,
    marker_state,
    staging_path,
)
from .locks import lock_folder, locked_elsewhere
from .store_proof import is_zarr_store, remove_marked, store_refusal

__all__ = ["Staging", "StagingState", "check_destination", "write_failure"]


def local_destination(dest: str | os.PathLike[str]) -> Path:
    """``dest`` as an absolute local path; a URL is refused (it would become a local folder
    named ``s3:`` or ``https:``)."""
    if is_url(dest):
        msg = f"{os.fspath(dest)}: URLs are not supported yet as the destination; give a local folder"
        raise DestinationError(msg)
    return Path(dest).expanduser().absolute()


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
    path = local_destination(dest)
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
        if resolved.is_relative_to(source):  # the source itself included
            msg = f"{path}: the destination is inside the source {source}; choose another folder"
            raise DestinationError(msg)
        if source.is_relative_to(resolved):
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


def _busy(dest: Path) -> DestinationError:
    return DestinationError(
        f"{dest}: another conversion to this destination is running; wait for it to finish "
        "or choose another name"
    )


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def _siblings(dest: Path, kind: str) -> list[Path]:
    """Folders a conversion to ``dest`` names ``.NAME.KIND-XXXX`` beside it, newest first:
    old stores an overwrite moved aside (``replaced``), fresh staging folders (``partial``)."""
    prefix = f".{dest.name}.{kind}-"
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
        failure = remove_marked(old)
        if failure is None:
            return
        problem = _reason(failure)
    msg = (
        f"the store that {dest} replaced could not be deleted ({problem}); it is left at "
        f"{old}: delete it yourself"
    )
    warnings.warn(msg, UserWarning, stacklevel=4)


def _remove_abandoned_fresh(dest: Path) -> None:
    """Remove the uniquely named folders (``.NAME.partial-XXXX``) of runs killed before their
    folder was renamed to the staging name: empty, or marked and locked by no one."""
    for fresh in _siblings(dest, "partial"):
        if fresh.is_symlink() or not fresh.is_dir():
            continue
        if marker_state(fresh) is None:
            with contextlib.suppress(OSError):
                fresh.rmdir()  # killed between making it and marking it; fails if not empty
        elif not locked_elsewhere(fresh):
            remove_marked(fresh)


def _recover(dest: Path) -> None:
    """Finish or undo what a commit cut short by a crash left, unless a run is in progress."""
    _remove_abandoned_fresh(dest)
    staging = staging_path(dest)
    if marker_state(staging) is not None and locked_elsewhere(staging):
        return
    if marker_state(dest) == COMPLETE:
        if locked_elsewhere(dest):
            return
        for name in (JOURNAL, STAGING_MARKER):  # a committed store whose tidying was cut short
            with contextlib.suppress(OSError):
                (dest / name).unlink(missing_ok=True)
    asides = _siblings(dest, "replaced")
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
        path = local_destination(dest)
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
            lock = lock_folder(staging)
        except OSError as error:
            msg = f"{staging}: cannot open ({_reason(error)})"
            raise DestinationError(msg) from error
        if lock is None:
            raise _busy(self.dest)
        if self.resume:
            self._lock = lock
            return True
        failure = remove_marked(staging)
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
            lock = lock_folder(fresh)
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

    # -- a whole run ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self, *, settle: Callable[[], None] = lambda: None) -> Iterator[Path]:
        """Stage (:meth:`begin`), yield the folder to write into, and end the run whatever happens.

        The block ends with :meth:`commit`. If it raises, writes still in flight finish first
        (``settle``), so what is left on disk is judged only once nothing writes there; then a
        fresh run's folder is removed and a resumed run's kept (:meth:`abort`: a typo in an option
        must not throw away hours of work), and a failed write is reported as one
        :class:`DestinationError` saying what was left (:func:`write_failure`). An interrupt
        (Ctrl-C) keeps the partial store, hidden and marked incomplete, for resume. The lock is
        released in every case.
        """
        folder = self.begin()
        try:
            yield folder
        except KeyboardInterrupt:
            settle()
            raise
        except BaseException as error:
            settle()
            self.abort(keep=self.resume)
            failure = write_failure(error, self.dest, self.left_behind)
            if failure is not None:
                raise failure from error
            raise
        finally:
            self.release()

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
        failure = remove_marked(self.folder)
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


def write_failure(error: BaseException, dest: Path, left_behind: str) -> DestinationError | None:
    """A failed write (a full disk, a file-size limit) as one clear error, saying what was left;
    None for any other error."""
    # zarr-python raises OSError; the zarrs pipeline a RuntimeError naming the OS error.
    io_failure = isinstance(error, OSError) or (
        isinstance(error, RuntimeError) and "os error" in str(error)
    )
    if not io_failure or isinstance(error, DestinationError):
        return None
    full = getattr(error, "errno", None) == 28 or "os error 28" in str(error)
    reason = "the disk is full" if full else (getattr(error, "strerror", None) or str(error))
    return DestinationError(f"{dest}: writing failed ({reason}); {left_behind}")
