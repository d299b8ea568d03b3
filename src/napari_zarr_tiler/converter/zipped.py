"""Zipped OME-Zarr destinations (``*.ozx``, RFC-9): staged as a folder, zipped, moved into place.

A conversion to ``NAME.ozx`` writes its store into a hidden staging folder exactly as a folder
destination does (:class:`~.staging.Staging`, so an interrupted run is resumed the same way),
then streams it into a hidden zip beside the destination (``.NAME.ozx.zip-XXXX``), flushes it
to disk and renames it to ``NAME.ozx``. Until that rename there is no ``NAME.ozx``: a file by
that name is always a finished one. The zip follows RFC-9's recommendations: zip64 entries,
stored (uncompressed, the chunks are compressed already), the root ``zarr.json`` first and the
other ``zarr.json`` files next in breadth-first order, and an archive comment
``{"ome": {"version": ..., "zipFile": {"centralDirectory": {"jsonFirst": true}}}}`` (the flag
that says so, spelled as ngff-zarr and iohub write and read it).

An existing ``NAME.ozx`` is replaced only with ``overwrite``, and only if it is a zip holding a
valid root ``zarr.json`` (:func:`zip_refusal`): any other file is never deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DestinationError, DestinationExistsError, InvalidOptionError
from ..zarr_names import JOURNAL, MAX_METADATA_BYTES, STAGING_MARKER, marker_state, staging_path
from .staging import Staging, local_destination

if TYPE_CHECKING:
    from .options import ConversionOptions

__all__ = [
    "OZX_SUFFIX",
    "ZippedStaging",
    "is_zip_destination",
    "stage_destination",
    "staging_folder",
    "write_ozx",
    "zip_refusal",
]

#: The file name ending that asks for a zipped OME-Zarr.
OZX_SUFFIX = ".ozx"
#: Bytes copied at a time from a store file into the zip.
_COPY_BYTES = 1 << 20
#: Our own files in a staging folder, never part of the store.
_OWN_FILES = frozenset((STAGING_MARKER, JOURNAL))


def is_zip_destination(dest: str | os.PathLike[str]) -> bool:
    """Whether ``dest`` names a zipped OME-Zarr (its name ends with ``.ozx``)."""
    return os.fspath(dest).lower().endswith(OZX_SUFFIX)


def stage_destination(
    dest: str | os.PathLike[str], options: ConversionOptions, *, source_paths: list[Path]
) -> Staging | ZippedStaging:
    """The staging lifecycle of a conversion to ``dest``: a folder store, or a ``.ozx`` file.

    Raises
    ------
    InvalidOptionError
        For a ``.ozx`` destination with options it cannot hold (zarr format 2, a bare array).
    DestinationError
        As :class:`~.staging.Staging` and :class:`ZippedStaging` do.
    """
    if is_zip_destination(dest):
        return ZippedStaging(dest, options, source_paths=source_paths)
    return Staging(
        dest, overwrite=options.overwrite, resume=options.resume, source_paths=source_paths
    )


def staging_folder(dest: Path) -> Path:
    """The hidden folder a conversion to ``dest`` (a folder or a ``.ozx`` file) writes into,
    and an interrupted one keeps for resume."""
    return staging_path(_hidden_store_name(dest) if is_zip_destination(dest) else dest)


def check_zip_options(options: ConversionOptions, dest: Path) -> None:
    """Refuse options a zipped OME-Zarr cannot hold: zarr format 2 (OME-Zarr 0.4), a bare array.

    Raises
    ------
    InvalidOptionError
        Naming the option to change.
    """
    if options.plan.zarr_format != 3:
        msg = (
            f"{dest.name}: a .ozx file (RFC-9) holds zarr format 3 (OME-Zarr 0.5 or 0.6); "
            f"choose ome_version 0.5 or 0.6 (--ome-version), or a .zarr destination for 0.4"
        )
        raise InvalidOptionError(msg)
    if options.plan.layout != "ome":
        msg = (
            f"{dest.name}: a .ozx file holds an OME-Zarr image; use layout 'ome' (--layout ome) "
            "or a .zarr destination for a bare array"
        )
        raise InvalidOptionError(msg)


def zip_refusal(path: Path) -> str | None:
    """Why ``path`` is not provably a zipped zarr store (so may not be replaced), or None.

    It must be a regular file (not a link) that opens as a zip and holds a root ``zarr.json``
    of a zarr format 3 group or array.
    """
    if path.is_symlink() or not path.is_file():
        return f"{path} is not a regular file"
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("zarr.json")
            if info.file_size > MAX_METADATA_BYTES:
                return f"{path}: its zarr.json is too large to be zarr metadata"
            document = json.loads(archive.read(info))
    except KeyError:
        return f"{path} is a zip without a zarr.json at its root"
    except (OSError, ValueError, RecursionError, zipfile.BadZipFile) as error:
        return f"{path} is not a readable zip file ({error})"
    valid = (
        isinstance(document, dict)
        and document.get("zarr_format") == 3
        and document.get("node_type") in ("group", "array")
    )
    return None if valid else f"{path}: its zarr.json is not zarr format 3 metadata"


def _store_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """Every file of the store in ``folder`` as (member name, path); our own files left out.

    Raises
    ------
    DestinationError
        For a link or special file in the store (never written by a conversion).
    """
    pending = [(folder, "")]
    while pending:
        current, prefix = pending.pop()
        with os.scandir(current) as entries:
            for entry in entries:
                name = f"{prefix}{entry.name}"
                if entry.is_symlink() or not (entry.is_file() or entry.is_dir()):
                    msg = f"{entry.path} is a link or special file; a store holds only files"
                    raise DestinationError(msg)
                if entry.is_dir():
                    pending.append((Path(entry.path), f"{name}/"))
                elif not (prefix == "" and entry.name in _OWN_FILES):
                    yield name, Path(entry.path)


def rfc9_order(names: Sequence[str]) -> list[str]:
    """Member names in RFC-9 order: the root ``zarr.json``, the other ``zarr.json`` files
    breadth-first, then everything else (sorted, so the zip does not depend on listing order)."""
    metadata = sorted(
        (n for n in names if n == "zarr.json" or n.endswith("/zarr.json")),
        key=lambda n: (n.count("/"), n),
    )
    return metadata + sorted(n for n in names if n != "zarr.json" and not n.endswith("/zarr.json"))


def write_ozx(folder: Path, target: Path, *, version: str) -> None:
    """Stream the store in ``folder`` into a new RFC-9 zip file ``target``, flushed to disk.

    Members are copied a megabyte at a time, so memory stays small whatever the store's size.

    Parameters
    ----------
    folder : Path
        A zarr format 3 store (a conversion's staging folder: its marker and journal are left
        out).
    target : Path
        The zip file to create (it must not exist).
    version : str
        The OME-Zarr version the store's metadata declares, recorded in the archive comment.

    Raises
    ------
    DestinationError
        When the store has no root ``zarr.json`` or holds a link.
    OSError
        When writing fails (the caller removes ``target``).
    """
    files = dict(_store_files(folder))
    if "zarr.json" not in files:
        msg = f"{folder}: the store has no zarr.json at its root; it cannot be zipped as OME-Zarr"
        raise DestinationError(msg)
    with open(target, "xb") as raw:
        with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name in rfc9_order(list(files)):
                _add_member(archive, files[name], name)
            archive.comment = rfc9_comment(version)
        raw.flush()
        os.fsync(raw.fileno())


def rfc9_comment(version: str) -> bytes:
    """The archive comment of an ``.ozx`` file: its OME-Zarr version, and that its ``zarr.json``
    files come first in the central directory (``jsonFirst``), as :func:`rfc9_order` puts them."""
    zip_file = {"centralDirectory": {"jsonFirst": True}}
    return json.dumps({"ome": {"version": version, "zipFile": zip_file}}).encode()


def _add_member(archive: zipfile.ZipFile, path: Path, name: str) -> None:
    """Copy one file into the zip, stored, with zip64 sizes whatever its size."""
    info = zipfile.ZipInfo.from_file(path, arcname=name)
    info.compress_type = zipfile.ZIP_STORED
    with open(path, "rb") as source, archive.open(info, "w", force_zip64=True) as member:
        shutil.copyfileobj(source, member, _COPY_BYTES)


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk, where the platform allows it."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


class ZippedStaging:
    """The staging lifecycle of a conversion to a ``.ozx`` file.

    It checks the destination, then stages the store in a hidden folder as
    :class:`~.staging.Staging` does (resume included), and commits by zipping that folder into
    a hidden file beside the destination and renaming it into place. It offers the members of
    :class:`~.staging.Staging` the engine uses: ``dest``, ``folder``, ``resuming``,
    :meth:`session` and :meth:`commit`.

    Parameters
    ----------
    dest : path
        The ``.ozx`` file to create.
    options : ConversionOptions
        The conversion's checked options (overwrite, resume, zarr format, OME-Zarr version).
    source_paths : list of Path
        Files or folders the source is read from; the destination may not overlap them.

    Raises
    ------
    InvalidOptionError
        For options a ``.ozx`` file cannot hold (:func:`check_zip_options`).
    DestinationError
        When ``dest`` exists (without ``overwrite``; with it, when it is not provably a zipped
        zarr store), overlaps the source, or its folder cannot be written.
    """

    def __init__(
        self,
        dest: str | os.PathLike[str],
        options: ConversionOptions,
        *,
        source_paths: list[Path],
    ) -> None:
        self.dest = local_destination(dest)
        check_zip_options(options, self.dest)
        self.overwrite = options.overwrite
        self.version = options.metadata.version
        _check_sources(self.dest, source_paths)
        if self.dest.exists() or self.dest.is_symlink():
            self._check_existing(resume=options.resume)
        # The store is staged for a hidden name beside dest (never created itself), so the
        # staging folder (``..NAME.ozx.partial``) and its resume behave as for a folder store.
        self._inner = Staging(
            _hidden_store_name(self.dest),
            overwrite=False,
            resume=options.resume,
            source_paths=source_paths,
        )

    @property
    def folder(self) -> Path:
        """The hidden folder the store is written into before it is zipped."""
        return self._inner.folder

    @property
    def resuming(self) -> bool:
        """Whether the staging folder of an interrupted conversion was reused."""
        return self._inner.resuming

    def session(
        self, *, settle: Callable[[], None] = lambda: None
    ) -> contextlib.AbstractContextManager[Path]:
        """Stage the store and end the run whatever happens, as :meth:`Staging.session`."""
        return self._inner.session(settle=settle)

    def _check_existing(self, *, resume: bool) -> None:
        dest = self.dest
        if not self.overwrite:
            partial = marker_state(staging_folder(dest)) is not None
            state = (
                "already complete: there is no interrupted conversion to resume"
                if resume and not partial
                else "already exists"
            )
            msg = (
                f"{dest} is {state}; choose another name or allow overwriting "
                "(--overwrite, or overwrite=True in Python)"
            )
            raise DestinationExistsError(msg, str(dest))
        refusal = zip_refusal(dest)
        if refusal is not None:
            msg = (
                f"{dest} exists and is not a zipped zarr store; it will not be replaced, "
                f"choose another name ({refusal})"
            )
            raise DestinationError(msg)

    def commit(self) -> Path:
        """Zip the complete staged store beside the destination, move it into place, and remove
        the staging folder.

        Raises
        ------
        DestinationError
            When the destination changed meanwhile into something that may not be replaced.
        OSError
            When writing the zip fails (the partial zip is removed).
        """
        dest = self.dest
        _remove_stale_zips(dest)  # of killed runs: this run holds the staging lock
        temp = dest.parent / f".{dest.name}.zip-{uuid.uuid4().hex[:8]}"
        try:
            write_ozx(self.folder, temp, version=self.version)
            if dest.exists() or dest.is_symlink():
                self._check_existing(resume=False)  # the disk may have changed since
            os.replace(temp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        _fsync_folder(dest.parent)
        self._inner.abort(keep=False)  # the staged folder is now in the zip
        return dest


def _hidden_store_name(dest: Path) -> Path:
    """The (never created) folder name a ``.ozx`` destination's store is staged for."""
    return dest.parent / f".{dest.name}"


def _check_sources(dest: Path, source_paths: list[Path]) -> None:
    """Refuse a destination that is a source file or lies inside a source folder."""
    resolved = dest.resolve()
    for source in source_paths:
        source = Path(source).expanduser().absolute().resolve()
        if resolved.is_relative_to(source):
            msg = (
                f"{dest}: the destination is the source or inside it ({source}); "
                "choose another name"
            )
            raise DestinationError(msg)


def _remove_stale_zips(dest: Path) -> None:
    """Delete the hidden zips (``.NAME.ozx.zip-XXXX``) runs killed while zipping left behind."""
    prefix = f".{dest.name}.zip-"
    with contextlib.suppress(OSError):
        for entry in os.scandir(dest.parent):
            if entry.name.startswith(prefix) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
