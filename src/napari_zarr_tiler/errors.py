"""Exceptions raised by napari-zarr-tiler; each message says what is wrong and where."""

from __future__ import annotations


class ZarrTilerError(Exception):
    """Base class of every error this package raises on purpose."""


class StoreReadError(ZarrTilerError, ValueError):
    """A zarr store (or a node in it) cannot be read or described as layers."""


class SourceError(ZarrTilerError, ValueError):
    """A conversion source is missing, unreadable, truncated, or not an image."""


class ConversionError(ZarrTilerError):
    """A conversion cannot start or could not finish."""


class InvalidOptionError(ConversionError, ValueError):
    """A conversion option is out of range or inconsistent with the image."""


class UnsupportedDtypeError(ConversionError, TypeError):
    """The image's data type cannot be stored as an OME-Zarr image."""


class DestinationError(ConversionError, OSError):
    """The destination exists, is not writable, or would overlap the source."""


class DestinationExistsError(DestinationError):
    """The destination exists and replacing it was not allowed.

    The message gives the command line's and Python's way to allow it; other front ends (the
    napari widget) name their own control, from ``path``.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class ConversionCancelled(ZarrTilerError):
    """The conversion was cancelled by its caller; the destination holds no complete store."""


class ChunkSizeError(StoreReadError):
    """A stored chunk would decode to far more bytes than its declared shape holds."""


class RemoteStoreError(StoreReadError):
    """A store URL cannot be read: not found, access denied, not zarr, timed out, unreachable."""
