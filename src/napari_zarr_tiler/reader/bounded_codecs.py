"""Decompression with a bound: a stored chunk may not decode to more than its declared size.

A few kilobytes of zstd, gzip or blosc can declare or produce gigabytes ("decompression
bombs"); decoding them allocates it all before any check. Within :func:`bounded_decoding`,
the zstd, gzip and blosc codecs of the arrays opened (zarr format 3 codecs, and the numcodecs
compressors of format 2) first work out how large the chunk will decode (the zstd frame and
block headers, the blosc header) or stop decompressing (gzip, zlib) past a limit proportional
to the chunk's declared size, and raise :class:`ChunkSizeError` instead of allocating more.
Other codecs decode as zarr and numcodecs do.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import math
import struct
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import numcodecs
import numcodecs.registry
import numpy as np
import zarr
import zarr.registry
from numcodecs.compat import ensure_bytes, ensure_contiguous_ndarray, ndarray_copy
from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

from ..errors import ChunkSizeError, StoreReadError

#: Room above a chunk's declared size: checksums and headers of chained codecs, and one zstd
#: block of up to 128 KiB (a frame without a declared size is bounded block by block).
SLACK_BYTES = 192 << 10
#: Limit of a format-2 compressor before the array it belongs to is known (1 GiB: the reader
#: refuses larger chunks anyway).
DEFAULT_LIMIT = 1 << 30

_ZSTD_MAGIC = 0xFD2FB528
_ZSTD_BLOCK_MAX = 128 << 10


def decoded_limit(nbytes: int, factor: int = 2) -> int:
    """Most bytes a chunk of ``nbytes`` declared bytes may decode to.

    Parameters
    ----------
    nbytes : int
        The chunk's size from its shape and dtype.
    factor : int
        Headroom for filters that widen the data before compression.

    Returns
    -------
    int
        ``factor * nbytes`` plus :data:`SLACK_BYTES`.
    """
    return factor * nbytes + SLACK_BYTES


def zstd_decoded_bound(data: bytes | memoryview | np.ndarray) -> int | None:
    """An upper bound of what the zstd frames in ``data`` decode to, or None if not zstd.

    A frame's declared content size when it has one; otherwise the sum over its blocks (raw
    and RLE blocks state their size, a compressed block decodes to at most 128 KiB).

    Parameters
    ----------
    data : bytes, memoryview or numpy.ndarray
        Compressed chunk bytes.

    Returns
    -------
    int or None
        The bound over every frame, or None when ``data`` is not (complete) zstd frames.
    """
    view = memoryview(data).cast("B")
    total, position = 0, 0
    while position < len(view):
        if len(view) - position < 6:
            return None
        (magic,) = struct.unpack_from("<I", view, position)
        if magic & 0xFFFFFFF0 == 0x184D2A50:  # skippable frame
            (size,) = struct.unpack_from("<I", view, position + 4)
            position += 8 + size
            continue
        if magic != _ZSTD_MAGIC:
            return None
        descriptor = view[position + 4]
        fcs_flag, single_segment = descriptor >> 6, (descriptor >> 5) & 1
        checksum, dict_flag = (descriptor >> 2) & 1, descriptor & 3
        position += 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[dict_flag]
        fcs_bytes = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
        if position + fcs_bytes > len(view):
            return None
        declared = int.from_bytes(view[position : position + fcs_bytes], "little")
        declared += 256 if fcs_bytes == 2 else 0
        position += fcs_bytes
        from_blocks = 0
        while True:
            if position + 3 > len(view):
                return None
            header = int.from_bytes(view[position : position + 3], "little")
            last, kind, size = header & 1, (header >> 1) & 3, header >> 3
            position += 3 + (1 if kind == 1 else size)
            from_blocks += _ZSTD_BLOCK_MAX if kind == 2 else size
            if last:
                break
        position += 4 * checksum
        total += declared if fcs_bytes else from_blocks
    return total


def blosc_decoded_size(data: bytes | memoryview | np.ndarray) -> int | None:
    """The uncompressed size a blosc header states, or None when there is no header."""
    view = memoryview(data).cast("B")
    if len(view) < 16:
        return None
    return struct.unpack_from("<I", view, 4)[0]


def inflate_bounded(data: bytes, limit: int) -> bytes:
    """Decompress gzip or zlib ``data``; raise :class:`ChunkSizeError` past ``limit`` bytes.

    Parameters
    ----------
    data : bytes
        A gzip stream or a zlib stream.
    limit : int
        Most bytes it may decode to.

    Returns
    -------
    bytes
        The decoded data.

    Raises
    ------
    ChunkSizeError
        When the data decodes to more than ``limit`` bytes.
    StoreReadError
        When the data is not complete, valid gzip or zlib.
    """
    try:
        if data[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as stream:
                out = stream.read(limit + 1)
        else:
            decompressor = zlib.decompressobj()
            out = decompressor.decompress(data, limit + 1)
            if len(out) <= limit and not decompressor.eof:
                raise EOFError("the compressed data ends early")
    except (OSError, EOFError, zlib.error) as error:
        msg = f"a chunk is not valid gzip or zlib data ({error})"
        raise StoreReadError(msg) from error
    if len(out) > limit:
        raise ChunkSizeError(_message(limit))
    return out


def _message(limit: int) -> str:
    return (
        f"a chunk decodes to more than {limit:,} bytes, far more than its declared shape holds "
        "(corrupt or hostile data); it was not decoded"
    )


def _check(bound: int | None, limit: int) -> None:
    if bound is not None and bound > limit:
        raise ChunkSizeError(_message(limit))


def _spec_limit(chunk_spec: Any) -> int:
    itemsize = chunk_spec.dtype.to_native_dtype().itemsize
    return decoded_limit(math.prod(chunk_spec.shape) * itemsize)


# ---- zarr format 3 codecs ---------------------------------------------------------------------


class BoundedZstdCodec(ZstdCodec):
    """zarr's zstd codec, refusing chunks whose frames decode past the chunk's size."""

    async def _decode_single(self, chunk_bytes: Any, chunk_spec: Any) -> Any:
        _check(zstd_decoded_bound(chunk_bytes.as_array_like()), _spec_limit(chunk_spec))
        return await super()._decode_single(chunk_bytes, chunk_spec)


class BoundedBloscCodec(BloscCodec):
    """zarr's blosc codec, refusing chunks whose header states more than the chunk's size."""

    async def _decode_single(self, chunk_bytes: Any, chunk_spec: Any) -> Any:
        _check(blosc_decoded_size(chunk_bytes.as_array_like()), _spec_limit(chunk_spec))
        return await super()._decode_single(chunk_bytes, chunk_spec)


class BoundedGzipCodec(GzipCodec):
    """zarr's gzip codec, stopping past the chunk's size."""

    async def _decode_single(self, chunk_bytes: Any, chunk_spec: Any) -> Any:
        data = chunk_bytes.to_bytes()
        out = await asyncio.to_thread(inflate_bounded, data, _spec_limit(chunk_spec))
        return chunk_spec.prototype.buffer.from_bytes(out)


_V3 = {"zstd": BoundedZstdCodec, "blosc": BoundedBloscCodec, "gzip": BoundedGzipCodec}
for _key, _cls in _V3.items():
    zarr.registry.register_codec(_key, _cls)


# ---- zarr format 2 (numcodecs) compressors -----------------------------------------------------


class _Limited:
    #: Set per array by :func:`limit_format2_compressor`.
    max_decoded: int = DEFAULT_LIMIT


class BoundedZstd(_Limited, numcodecs.Zstd):
    def decode(self, buf: Any, out: Any = None) -> Any:
        _check(zstd_decoded_bound(ensure_contiguous_ndarray(buf)), self.max_decoded)
        return super().decode(buf, out)


class BoundedBlosc(_Limited, numcodecs.Blosc):
    def decode(self, buf: Any, out: Any = None) -> Any:
        _check(blosc_decoded_size(ensure_contiguous_ndarray(buf)), self.max_decoded)
        return super().decode(buf, out)


class BoundedGZip(_Limited, numcodecs.GZip):
    def decode(self, buf: Any, out: Any = None) -> Any:
        return ndarray_copy(inflate_bounded(ensure_bytes(buf), self.max_decoded), out)


class BoundedZlib(_Limited, numcodecs.Zlib):
    def decode(self, buf: Any, out: Any = None) -> Any:
        return ndarray_copy(inflate_bounded(ensure_bytes(buf), self.max_decoded), out)


_V2 = {"zstd": BoundedZstd, "blosc": BoundedBlosc, "gzip": BoundedGZip, "zlib": BoundedZlib}


def limit_format2_compressor(array: zarr.Array) -> None:
    """Bound a format-2 array's compressor by the array's chunk size (filters may widen it).

    Parameters
    ----------
    array : zarr.Array
        An array opened inside :func:`bounded_decoding`; others are left as they are.
    """
    compressor = getattr(array.metadata, "compressor", None)
    if isinstance(compressor, _Limited):
        nbytes = math.prod(array.chunks) * np.dtype(array.dtype).itemsize
        compressor.max_decoded = decoded_limit(nbytes, 8 if array.metadata.filters else 2)


_installed = threading.Lock()
_users = 0
_saved_v2: dict[str, Any] = {}
_saved_v3: dict[str, Any] = {}


@contextlib.contextmanager
def bounded_decoding() -> Iterator[None]:
    """Arrays opened within use the bounded zstd, gzip and blosc codecs.

    The codec choice is process-wide (zarr's configuration, numcodecs' registry): it is
    installed while any thread is inside, and restored when the last one leaves. Arrays other
    threads open meanwhile get the bounded codecs too, which decode the same data the same way.

    Yields
    ------
    None
        Within the block, zarr and numcodecs resolve zstd, gzip, zlib and blosc to the bounded
        codecs, which raise :class:`ChunkSizeError` for a chunk decoding past its size.
    """
    global _users
    with _installed:
        if _users == 0:
            registry = numcodecs.registry.codec_registry
            _saved_v2.update({key: registry.get(key) for key in _V2})
            registry.update(_V2)
            codecs = zarr.config.get("codecs")
            _saved_v3.update({key: codecs.get(key) for key in _V3})
            zarr.config.set(
                {f"codecs.{k}": f"{c.__module__}.{c.__qualname__}" for k, c in _V3.items()}
            )
        _users += 1
    try:
        yield
    finally:
        with _installed:
            _users -= 1
            if _users == 0:
                registry = numcodecs.registry.codec_registry
                for key, cls in _saved_v2.items():
                    if cls is None:
                        registry.pop(key, None)
                    else:
                        registry[key] = cls
                zarr.config.set({f"codecs.{k}": v for k, v in _saved_v3.items()})
                _saved_v2.clear()
                _saved_v3.clear()
