"""Stores are untrusted input: links, special files, decompression bombs, and metadata made to
exhaust memory or time are refused or contained, with specific errors."""

from __future__ import annotations

import gzip
import json
import os
import struct
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr

from napari_zarr_tiler import read_zarr
from napari_zarr_tiler.errors import ChunkSizeError, StoreReadError
from napari_zarr_tiler.reader import StoreContentWarning
from napari_zarr_tiler.reader.bounded_codecs import zstd_decoded_bound
from napari_zarr_tiler.reader.layers import MAX_LAYERS
from napari_zarr_tiler.reader.multiscale import MAX_CHANNEL_LAYERS

from ..helpers import PeakMemoryGrowth, add_labels, write_ome_image


def _bare_v2_array(path: Path, shape: tuple[int, ...], chunks: tuple[int, ...], **extra) -> None:
    path.mkdir(parents=True)
    meta = {
        "zarr_format": 2,
        "shape": list(shape),
        "chunks": list(chunks),
        "dtype": "|u1",
        "compressor": None,
        "fill_value": 0,
        "order": "C",
        "filters": None,
        **extra,
    }
    (path / ".zarray").write_text(json.dumps(meta))


def test_a_chunk_linked_outside_the_store_reads_as_missing(tmp_path: Path) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(bytes(range(1, 65)) * 16)  # 1024 non-zero bytes
    store = tmp_path / "linked.zarr"
    _bare_v2_array(store, (1, 1024), (1, 1024))
    os.symlink(secret, store / "0.0")
    with pytest.warns(StoreContentWarning, match="leads outside the store"):
        layer = read_zarr(store).layers[0]
        pixels = np.asarray(layer.data[0][...].compute())
    assert not pixels.any()  # the fill value, not the secret


def test_a_link_inside_the_store_is_followed(tmp_path: Path) -> None:
    store = tmp_path / "inside.zarr"
    _bare_v2_array(store, (1, 8), (1, 8))
    (store / "data.bin").write_bytes(bytes(range(1, 9)))
    os.symlink("data.bin", store / "0.0")
    layer = read_zarr(store).layers[0]
    assert layer.data[0][...].compute().tolist() == [list(range(1, 9))]


def test_named_pipes_never_block(tmp_path: Path) -> None:
    store = tmp_path / "pipes.zarr"
    _bare_v2_array(store, (1, 8), (1, 8))
    os.mkfifo(store / "0.0")
    with pytest.warns(StoreContentWarning, match="not a regular file"):
        layer = read_zarr(store).layers[0]
        assert not layer.data[0][...].compute().any()
    os.mkfifo(store / ".zattrs")
    with pytest.raises(StoreReadError, match=r"\.zattrs: not read"):
        read_zarr(store)


def _zstd_rle_bomb(decoded: int) -> bytes:
    """A zstd frame without a declared size: RLE blocks of 128 KiB, 4 bytes each."""
    frame = struct.pack("<I", 0xFD2FB528) + bytes([0x00, 0x58])  # no content size; window 2 MiB
    block = 128 << 10
    count = decoded // block
    for index in range(count):
        last = int(index == count - 1)
        frame += ((block << 3) | (1 << 1) | last).to_bytes(3, "little") + b"\x07"
    return frame


def test_zstd_bound_matches_what_zstd_decodes() -> None:
    data = np.arange(300_000, dtype=np.uint16).tobytes()
    encoded = numcodecs.Zstd(level=3).encode(data)
    assert zstd_decoded_bound(encoded) == len(data)
    bomb = _zstd_rle_bomb(8 << 20)
    assert zstd_decoded_bound(bomb) == 8 << 20
    assert len(numcodecs.Zstd().decode(bomb)) == 8 << 20  # the frame is real zstd


@pytest.mark.parametrize("codec", ["zstd-v3", "zstd-v2", "gzip-v3", "zlib-v2", "blosc-v3"])
def test_decompression_bombs_are_refused_without_allocating(tmp_path: Path, codec: str) -> None:
    """A 64 x 64 uint8 chunk (4 KiB declared) whose few kilobytes decode to 256 MiB."""
    store = tmp_path / f"{codec}.zarr"
    decoded = 256 << 20
    if codec == "zstd-v3":
        zarr.create_array(str(store), shape=(64, 64), chunks=(64, 64), dtype="uint8")
        (store / "c").mkdir()
        (store / "c" / "0").mkdir()
        (store / "c" / "0" / "0").write_bytes(_zstd_rle_bomb(decoded))
    elif codec == "zstd-v2":
        _bare_v2_array(store, (64, 64), (64, 64), compressor={"id": "zstd", "level": 1})
        (store / "0.0").write_bytes(_zstd_rle_bomb(decoded))
    elif codec == "gzip-v3":
        zarr.create_array(
            str(store),
            shape=(64, 64),
            chunks=(64, 64),
            dtype="uint8",
            compressors=[zarr.codecs.GzipCodec()],
        )
        (store / "c" / "0").mkdir(parents=True)
        (store / "c" / "0" / "0").write_bytes(gzip.compress(bytes(decoded), 9))
    elif codec == "zlib-v2":
        _bare_v2_array(store, (64, 64), (64, 64), compressor={"id": "zlib", "level": 9})
        (store / "0.0").write_bytes(numcodecs.Zlib(9).encode(bytes(decoded)))
    else:
        zarr.create_array(
            str(store),
            shape=(64, 64),
            chunks=(64, 64),
            dtype="uint8",
            compressors=[zarr.codecs.BloscCodec(cname="lz4")],
        )
        header = numcodecs.Blosc("lz4").encode(bytes(4096))
        claimed = header[:4] + struct.pack("<I", decoded) + header[8:]
        (store / "c" / "0").mkdir(parents=True)
        (store / "c" / "0" / "0").write_bytes(claimed)
    with PeakMemoryGrowth() as memory, pytest.raises(ChunkSizeError, match="decodes to more"):
        read_zarr(store)  # contrast limits read the (only) level
    assert memory.grown_mb < 150


def test_honest_compressed_chunks_still_read(tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 255, (256, 256), dtype=np.uint8)
    for name, compressors in {
        "zstd": [zarr.codecs.ZstdCodec()],
        "gzip": [zarr.codecs.GzipCodec()],
        "blosc": [zarr.codecs.BloscCodec(cname="zstd")],
    }.items():
        path = tmp_path / f"{name}.zarr"
        zarr.create_array(str(path), data=image, chunks=(64, 64), compressors=compressors)
        data = read_zarr(path).layers[0].data[0]
        np.testing.assert_array_equal(data.compute(), image)
    for name, compressor in {
        "zstd": numcodecs.Zstd(),
        "zlib": numcodecs.Zlib(),
        "gzip": numcodecs.GZip(),
        "blosc": numcodecs.Blosc(),
    }.items():
        path = tmp_path / f"{name}_v2.zarr"
        zarr.create_array(
            str(path), data=image, chunks=(64, 64), zarr_format=2, compressors=compressor
        )
        data = read_zarr(path).layers[0].data[0]
        np.testing.assert_array_equal(data.compute(), image)


def test_contrast_of_millions_of_blocks_stays_small(tmp_path: Path) -> None:
    """4 million 16 x 16 blocks: contrast limits read a bounded crop, not the block graph."""
    store = tmp_path / "blocks.zarr"
    _bare_v2_array(store, (2048, 2048, 16, 16), (1, 1, 16, 16))
    with PeakMemoryGrowth() as memory:
        contents = read_zarr(store)
    assert contents.layers
    assert memory.grown_mb < 200  # 800 MB before


def test_many_channels_share_one_layer(tmp_path: Path) -> None:
    channels = MAX_CHANNEL_LAYERS + 36
    image = np.zeros((channels, 16, 16), dtype=np.uint8)
    axes = [
        {"name": "c", "type": "channel"},
        {"name": "y", "type": "space"},
        {"name": "x", "type": "space"},
    ]
    path = tmp_path / "channels.zarr"
    write_ome_image(path, [image], axes=axes, level_scales=[[1.0, 1.0, 1.0]])
    contents = read_zarr(path)
    assert len(contents.layers) == 1
    assert "channel_axis" not in contents.layers[0].kwargs
    assert any("channel slider" in notice for notice in contents.notices)


def test_layer_count_is_bounded(tmp_path: Path, small_image: np.ndarray) -> None:
    path = tmp_path / "labels.zarr"
    write_ome_image(path, [small_image])
    add_labels(path, "cells", [small_image.astype("uint8")], version="0.5")
    labels = zarr.open_group(str(path / "labels"), mode="a")
    labels.attrs.put({"ome": {"version": "0.5", "labels": ["cells"] * (MAX_LAYERS + 50)}})
    contents = read_zarr(path)
    assert len(contents.layers) == MAX_LAYERS
    assert any(f"more than {MAX_LAYERS}" in notice for notice in contents.notices)


@pytest.mark.parametrize("scale", [[0.0, 1.0], [1.0, -1.0], [1e308, 1.0]])
def test_scales_napari_cannot_use_are_refused(
    tmp_path: Path, small_image: np.ndarray, scale: list[float]
) -> None:
    path = tmp_path / "scaled.zarr"
    write_ome_image(
        path,
        [small_image],
        level_scales=[scale],
        global_transforms=[{"type": "scale", "scale": [1e308, 1.0]}]
        if scale[0] == 1e308
        else None,
    )
    with pytest.raises(StoreReadError, match="scale"):
        read_zarr(path)


def test_metadata_nested_beyond_recursion_is_a_store_error(tmp_path: Path) -> None:
    store = tmp_path / "deep.zarr"
    _bare_v2_array(store, (8, 8), (8, 8))
    (store / ".zattrs").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(StoreReadError, match="RecursionError"):
        read_zarr(store)


def test_a_shard_file_larger_than_any_single_read_is_read_in_ranges(tmp_path: Path) -> None:
    """The per-read cap applies to what is read, not to a shard file's size."""
    from zarr.codecs import BytesCodec, ShardingCodec, ZstdCodec

    path = tmp_path / "big_shard.zarr"
    array = zarr.create_array(
        str(path),
        shape=(256, 256),
        chunks=(256, 256),
        dtype="uint16",
        serializer=ShardingCodec(
            chunk_shape=(32, 32), codecs=[BytesCodec(), ZstdCodec()], index_location="start"
        ),
        compressors=None,
        filters=None,
    )
    image = np.arange(256 * 256, dtype=np.uint16).reshape(256, 256)
    array[...] = image
    os.truncate(path / "c" / "0" / "0", (1 << 30) + (2 << 20))  # a sparse tail past the index
    data = read_zarr(path).layers[0].data[0]
    np.testing.assert_array_equal(data.compute(), image)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_gzip_chunks_are_store_errors(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "gz.zarr"
    zarr.create_array(
        str(path),
        data=np.arange(64 * 64, dtype=np.uint16).reshape(64, 64),
        chunks=(64, 64),
        compressors=[zarr.codecs.GzipCodec()],
    )
    chunk = path / "c" / "0" / "0"
    good = chunk.read_bytes()
    chunk.write_bytes(b"\x00" * 100 if damage == "garbage" else good[: len(good) // 2])
    with pytest.raises(StoreReadError, match="not valid gzip or zlib"):
        read_zarr(path)


def test_rgb_images_get_the_scale_check_too(tmp_path: Path) -> None:
    from napari_zarr_tiler import convert

    path = tmp_path / "rgb.zarr"
    convert(np.zeros((64, 64, 3), dtype=np.uint8), path, rgb=True)
    group = zarr.open_group(str(path), mode="a")
    attrs = group.attrs.asdict()
    attrs["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] = [
        1.0,
        0.0,
        -1.0,
    ]
    group.attrs.put(attrs)
    with pytest.raises(StoreReadError, match="scales must be positive"):
        read_zarr(path)
