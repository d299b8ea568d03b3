"""Map the compressor names users choose to zarr v3 codecs or zarr v2 (numcodecs) compressors."""

from __future__ import annotations

import contextlib
import numbers
from typing import Any, Literal

import numcodecs
from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

from ..errors import InvalidOptionError

Compressor = Literal["zstd", "blosc-lz4", "blosc-zstd", "gzip", "none"]
COMPRESSORS: tuple[str, ...] = ("zstd", "blosc-lz4", "blosc-zstd", "gzip", "none")
DEFAULT_LEVELS = {"zstd": 3, "blosc-lz4": 5, "blosc-zstd": 3, "gzip": 6, "none": 0}
LEVEL_RANGES = {"zstd": (-131072, 22), "blosc-lz4": (0, 9), "blosc-zstd": (0, 9), "gzip": (0, 9)}


def compressor_codecs(
    compressor: str, clevel: int | None, *, zarr_format: int, itemsize: int
) -> list[Any] | None:
    """Return the ``compressors`` argument of ``zarr.create_array`` for a named compressor.

    Parameters
    ----------
    compressor : {"zstd", "blosc-lz4", "blosc-zstd", "gzip", "none"}
        Codec name.
    clevel : int or None
        Compression level; None picks the codec's usual default.
    zarr_format : {2, 3}
        Which zarr format the array is written in.
    itemsize : int
        Bytes per pixel (blosc's byte shuffle needs it).

    Raises
    ------
    InvalidOptionError
        When the name is unknown or the level is out of the codec's range.
    """
    if compressor not in COMPRESSORS:
        msg = f"unknown compressor {compressor!r}; choose one of {', '.join(COMPRESSORS)}"
        raise InvalidOptionError(msg)
    if compressor == "none":
        if clevel is not None:
            msg = f"clevel {clevel} has no effect without a compressor (compressor 'none')"
            raise InvalidOptionError(msg)
        return None
    level = compression_level(compressor, clevel)
    if zarr_format == 3:
        if compressor == "zstd":
            return [ZstdCodec(level=level)]
        if compressor == "gzip":
            return [GzipCodec(level=level)]
        cname = compressor.removeprefix("blosc-")
        return [BloscCodec(cname=cname, clevel=level, shuffle="shuffle", typesize=itemsize)]
    if compressor == "zstd":
        return [numcodecs.Zstd(level=level)]
    if compressor == "gzip":
        return [numcodecs.GZip(level=level)]
    cname = compressor.removeprefix("blosc-")
    return [numcodecs.Blosc(cname=cname, clevel=level, shuffle=numcodecs.Blosc.SHUFFLE)]


def compression_level(compressor: str, clevel: Any) -> int:
    """Check a compression level for a (known, not ``"none"``) compressor; None is its default.

    Whole numbers are accepted as int, float or text (``"5"``, from a form or a config file).

    Raises
    ------
    InvalidOptionError
        When the level is not a whole number in the compressor's range.
    """
    if clevel is None:
        return DEFAULT_LEVELS[compressor]
    low, high = LEVEL_RANGES[compressor]
    level: int | None = None
    if isinstance(clevel, str):
        with contextlib.suppress(ValueError):
            level = int(clevel.strip())
    elif isinstance(clevel, numbers.Real) and not isinstance(clevel, bool):
        level = int(clevel) if float(clevel).is_integer() else None
    if level is None:
        msg = (
            f"clevel must be a whole number from {low} to {high} for {compressor}, got {clevel!r}"
        )
        raise InvalidOptionError(msg)
    if not low <= level <= high:
        msg = f"clevel {level} is out of range for {compressor} (a whole number from {low} to {high})"
        raise InvalidOptionError(msg)
    return level
