"""A source named by path, and the source it opens: the sources wing's one type.

A :class:`SourceSpec` names a source by path and can be opened again anywhere (in a dask worker
process, for instance); :meth:`SourceSpec.open` gives an :class:`OpenSource`: a lazily read array
(positioned reads of a file, tifffile's zarr interface, a zarr array, or a memory map) plus the
metadata to carry into the OME-Zarr (axes, physical pixel sizes, units, channel names, RGB). Each
format opens in its own module (``tiff``, ``zarr_source``, ``npy``, ``samples``), imported only
when a source of its kind is opened.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import SourceError
from ..zarr_names import METADATA_FILES

SourceKind = Literal["sample", "tiff", "zarr", "npy", "czi"]

#: File formats read only from the local disk (a URL ending so is refused, not tried as zarr).
_LOCAL_ONLY_SUFFIXES = frozenset((".tif", ".tiff", ".btf", ".npy", ".czi"))
#: ``scheme://`` (http, https, s3, gs, ftp, file ...): a URL, not a local path.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass
class OpenSource:
    """An opened source: the array (read lazily) and the metadata for :func:`convert`.

    Attributes
    ----------
    array : array-like
        Level 0, read lazily region by region (numpy-style basic indexing).
    options : dict
        Keyword arguments of :func:`convert` the source's metadata implies (``name``, ``axes``,
        ``scale``, ``units``, ``channel_names``, ``colors``, ...).
    description : str
        One line saying what was opened and how it is read.
    single_file : bool
        Whether every pixel comes from the file named (False for a multi-file OME-TIFF series,
        whose planes are read from companion files too).
    """

    array: Any
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    _closers: list[Any] = field(default_factory=list, repr=False)
    single_file: bool = True

    def close(self) -> None:
        """Release the files the source holds open."""
        for closer in self._closers:
            closer.close()
        self._closers.clear()


@dataclass(frozen=True)
class SourceSpec:
    """A source named by path (picklable: dask workers re-open it).

    Attributes
    ----------
    path : str
        A TIFF or ``.npy`` file, a zarr store (folder or metadata file), or ``sample:NAME``.
    series : int
        The series of a multi-series TIFF, or the scene of a CZI (0-based, in scene order).
    """

    path: str
    series: int = 0

    def __getstate__(self) -> dict[str, Any]:
        # Never the opened source: each process opens its own.
        return {"path": self.path, "series": self.series}

    @functools.cached_property
    def opened(self) -> OpenSource:
        """The source opened once in this process (see :meth:`open`)."""
        return self.open()

    @property
    def kind(self) -> SourceKind:
        """``"sample"``, ``"tiff"``, ``"zarr"``, ``"npy"`` or ``"czi"``."""
        return source_kind(self.path)

    def open(self) -> OpenSource:
        """Open the source lazily.

        Returns
        -------
        OpenSource
            The level-0 array, read lazily, with the options its metadata implies.

        Raises
        ------
        SourceError
            When the path is missing, unreadable, or holds no image this package can read.
        """
        kind = self.kind
        if kind == "sample":
            from .samples import open_sample

            return open_sample(self.path.removeprefix("sample:"))
        if kind == "zarr" and is_url(self.path):  # http(s) or s3: through the remote reader
            from .zarr_source import open_zarr

            return open_zarr(self.path)  # type: ignore[arg-type]
        path = _readable_local_path(self.path)
        if kind == "zarr":
            from .zarr_source import open_zarr

            return open_zarr(path)
        if kind == "npy":
            from .npy import open_npy

            return open_npy(path)
        if kind == "czi":
            from .czi import open_czi

            return open_czi(path, self.series)
        from .tiff import open_tiff

        return open_tiff(path, self.series)


def source_kind(path: str) -> SourceKind:
    """The kind of source a path names, by its form (a folder is a zarr store).

    Parameters
    ----------
    path : str
        The source as given.

    Returns
    -------
    {"sample", "tiff", "zarr", "npy", "czi"}
        ``sample:`` names, folders and zarr metadata files, ``.npy`` and ``.czi`` files;
        anything else is tried as a TIFF.
    """
    if path.startswith("sample:"):
        return "sample"
    if is_url(path) and Path(path).suffix.lower() not in _LOCAL_ONLY_SUFFIXES:
        return "zarr"  # a URL names a zarr store (read remotely); files must be local
    local = Path(path)
    if local.is_dir() or local.name in METADATA_FILES:
        return "zarr"
    if local.suffix.lower() == ".npy":
        return "npy"
    if local.suffix.lower() == ".czi":
        return "czi"
    return "tiff"


def is_url(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a URL (``scheme://...``) rather than a local path."""
    return _URL.match(os.fspath(path)) is not None


def check_local(path: str | os.PathLike[str], *, role: str = "source") -> None:
    """Refuse a URL where a local path is needed (converting from or to a URL: not yet).

    Parameters
    ----------
    path : str or os.PathLike
        The path as given.
    role : str
        What the path is for (``"source"`` or ``"destination"``), named in the message.

    Raises
    ------
    SourceError
        When ``path`` is a URL.
    """
    if is_url(path):
        advice = (
            "download the data and give its local path (a remote zarr store can be opened in "
            "napari or described with `napari-zarr-tiler info URL`)"
            if role == "source"
            else "give a local folder"
        )
        msg = f"{os.fspath(path)}: URLs are not supported yet as the {role}; {advice}"
        raise SourceError(msg)


def _readable_local_path(text: str) -> Path:
    """``text`` as a local path that exists and can be read, else a SourceError saying why."""
    check_local(text)
    path = Path(text)
    if not path.exists():
        msg = f"{path}: no such file or folder"
        raise SourceError(msg)
    if not os.access(path, os.R_OK):
        msg = f"{path}: permission denied"
        raise SourceError(msg)
    return path
