"""Sources named by path or URL in :func:`~napari_zarr_tiler.convert`: opened as the CLI opens them.

``convert("slide.czi", ...)``, ``convert("scan.ome.tif", ...)``, ``convert("in.zarr", ...)``,
``convert("s3://bucket/in.zarr", ...)`` and ``convert(SourceSpec("slide.czi", series=1), ...)``
read the source lazily through :class:`~napari_zarr_tiler.sources.SourceSpec`, and the metadata
the file carries (axes, scale, units, channel names and colours, labels ...) fills every option
the caller left unset: what the caller gives wins.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..sources import SourceSpec, is_url

__all__ = ["is_named_source", "open_named_source"]


def is_named_source(source: Any) -> bool:
    """Whether ``source`` names a file, store, URL or sample rather than being an array."""
    return isinstance(source, str | os.PathLike | SourceSpec)


def open_named_source(source: Any, given: dict[str, Any]) -> tuple[SourceSpec, dict[str, Any]]:
    """Open a named source and find the options its metadata implies that the caller left unset.

    Parameters
    ----------
    source : str, path or SourceSpec
        A TIFF, CZI, ``.npy`` file, zarr store (local or URL) or ``sample:NAME``.
    given : dict
        The keyword arguments of :func:`~napari_zarr_tiler.convert` as called.

    Returns
    -------
    spec : SourceSpec
        The source, picklable for dask workers (a local path made absolute, so that workers and
        a later resume name the same file).
    implied : dict
        The options the source's metadata sets and ``given`` leaves unset (None or False).

    Raises
    ------
    SourceError
        When the source is missing, unreadable or holds no image this package can read.
    """
    spec = source if isinstance(source, SourceSpec) else SourceSpec(_absolute(os.fspath(source)))
    implied = {
        key: value
        for key, value in spec.opened.options.items()
        if _unset(given.get(key)) and not _unset(value)
    }
    return spec, implied


def _unset(value: Any) -> bool:
    """Whether an option has its "not given" value (None, or False for a flag)."""
    return value is None or value is False


def _absolute(text: str) -> str:
    """A local path made absolute; samples and URLs as given."""
    if text.startswith("sample:") or is_url(text):
        return text
    return str(Path(text).absolute())
