"""The pure reader core: every store kind, laziness, and bad input (no napari involved)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr

from napari_zarr_tiler import read_zarr
from napari_zarr_tiler.errors import StoreReadError
from napari_zarr_tiler.reader import find_zarr_node

from ..helpers import (
    PeakMemoryGrowth,
    add_labels,
    corrupt_json,
    reference_mean,
    write_ome_image,
)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_bare_array_as_in_the_classic_recipe(
    tmp_path: Path, small_image: np.ndarray, zarr_format: int
) -> None:
    path = tmp_path / "bare.zarr"
    z = zarr.open(
        str(path),
        mode="w",
        shape=small_image.shape,
        chunks=(100, 100),
        dtype=small_image.dtype,
        zarr_format=zarr_format,
    )
    z[:] = small_image
    contents = read_zarr(path)
    assert len(contents.layers) == 1
    layer = contents.layers[0]
    assert layer.layer_type == "image"
    assert len(layer.data) == 1
    data = layer.data[0]
    assert isinstance(data, da.Array)
    assert data.chunks[0][:2] == (100, 100)
    np.testing.assert_array_equal(data.compute(), small_image)
    assert layer.kwargs["name"] == "bare"
    assert layer.kwargs["contrast_limits"] == (float(small_image.min()), float(small_image.max()))


@pytest.mark.parametrize("metadata_file", ["zarr.json", ".zarray"])
def test_metadata_file_path_opens_its_folder(
    tmp_path: Path, small_image: np.ndarray, metadata_file: str
) -> None:
    zarr_format = 3 if metadata_file == "zarr.json" else 2
    path = tmp_path / "not_named_zarr"
    zarr.create_array(str(path), data=small_image, chunks=(64, 64), zarr_format=zarr_format)
    assert find_zarr_node(path / metadata_file) == path
    assert read_zarr(path / metadata_file).layers[0].data[0].shape == small_image.shape


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_plain_group_opens_each_array_named_by_path(tmp_path: Path, zarr_format: int) -> None:
    path = tmp_path / "group.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    group.create_array("raw", data=np.arange(100, dtype="uint8").reshape(10, 10), chunks=(5, 5))
    sub = group.create_group("processed")
    sub.create_array("smooth", data=np.ones((4, 6), dtype="float32"), chunks=(2, 2))
    contents = read_zarr(path)
    names = sorted(layer.kwargs["name"] for layer in contents.layers)
    assert names == ["group/processed/smooth", "group/raw"]
    by_name = {layer.kwargs["name"]: layer for layer in contents.layers}
    assert by_name["group/processed/smooth"].data[0].shape == (4, 6)
    # A path to a group inside the store opens just that group.
    inner = read_zarr(path / "processed")
    assert [layer.kwargs["name"] for layer in inner.layers] == ["processed/smooth"]


@pytest.mark.parametrize("ome_pyramid", ["0.4", "0.5"], indirect=True)
def test_ome_pyramid_with_labels(ome_pyramid: Path, small_image: np.ndarray) -> None:
    contents = read_zarr(ome_pyramid)
    image, labels = contents.layers
    assert image.layer_type == "image"
    assert [level.shape for level in image.data] == [(256, 256), (128, 128), (64, 64)]
    assert image.kwargs["multiscale"] is True
    assert image.kwargs["scale"] == (0.5, 0.25)
    assert image.kwargs["translate"] == (10.0, 20.0)
    assert image.kwargs["axis_labels"] == ("y", "x")
    assert image.kwargs["units"] == ("micrometer", "micrometer")
    # Contrast limits come from the smallest level, not from level 0.
    smallest = reference_mean(reference_mean(small_image))
    assert image.kwargs["contrast_limits"] == [float(smallest.min()), float(smallest.max())]
    np.testing.assert_array_equal(image.data[0].compute(), small_image)
    assert labels.layer_type == "labels"
    assert labels.kwargs["scale"] == image.kwargs["scale"]
    assert labels.kwargs["translate"] == image.kwargs["translate"]
    assert labels.kwargs["name"].endswith("cells")
    assert labels.data[0].dtype == np.uint8


def test_dataset_and_multiscale_transforms_combine(
    tmp_path: Path, small_image: np.ndarray
) -> None:
    path = tmp_path / "combined.zarr"
    write_ome_image(
        path,
        [small_image, small_image[::2, ::2]],
        level_scales=[[2.0, 3.0], [4.0, 6.0]],
        level_translations=[[1.0, 1.0], [1.5, 2.0]],
        global_transforms=[
            {"type": "scale", "scale": [10.0, 100.0]},
            {"type": "translation", "translation": [5.0, 7.0]},
        ],
        axes=[{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
    )
    layer = read_zarr(path).layers[0]
    assert layer.kwargs["scale"] == (20.0, 300.0)
    assert layer.kwargs["translate"] == (15.0, 107.0)
    assert "units" not in layer.kwargs


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_channels_split_with_omero_names_colours_and_windows(tmp_path: Path, version: str) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 4000, size=(3, 5, 64, 64), dtype=np.uint16)
    path = tmp_path / "channels.zarr"
    axes = [
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": "micrometer"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    omero = {
        "channels": [
            {
                "label": "DAPI",
                "color": "0000FF",
                "window": {"start": 10, "end": 3000, "min": 0, "max": 65535},
            },
            {
                "label": "GFP",
                "color": "00FF00",
                "window": {"start": 20, "end": 2000, "min": 0, "max": 65535},
            },
            {
                "label": "RFP",
                "color": "FF0000",
                "window": {"start": 30, "end": 1000, "min": 0, "max": 65535},
                "active": False,
            },
        ]
    }
    write_ome_image(
        path,
        [image, image[..., ::2, ::2]],
        version=version,
        axes=axes,
        level_scales=[[1.0, 2.0, 0.5, 0.5], [1.0, 2.0, 1.0, 1.0]],
        omero=omero,
    )
    layer = read_zarr(path).layers[0]
    assert layer.kwargs["channel_axis"] == 0
    assert layer.kwargs["name"] == ["DAPI", "GFP", "RFP"]
    assert layer.kwargs["colormap"] == ["#0000ff", "#00ff00", "#ff0000"]
    assert layer.kwargs["contrast_limits"] == [[10.0, 3000.0], [20.0, 2000.0], [30.0, 1000.0]]
    assert layer.kwargs["visible"] == [True, True, False]
    assert layer.kwargs["scale"] == (2.0, 0.5, 0.5)
    assert layer.kwargs["axis_labels"] == ("z", "y", "x")


def test_sharded_v3_pyramid_reads_like_any_other(tmp_path: Path, small_image: np.ndarray) -> None:
    path = tmp_path / "sharded.zarr"
    write_ome_image(
        path, [small_image, reference_mean(small_image)], chunks=(32, 32), shards=(128, 128)
    )
    assert "sharding_indexed" in (path / "0" / "zarr.json").read_text()
    layer = read_zarr(path).layers[0]
    assert layer.data[0].chunksize == (32, 32)
    np.testing.assert_array_equal(
        layer.data[0][100:200, 50:90].compute(), small_image[100:200, 50:90]
    )


def test_bioformats2raw_collection_opens_each_series(
    tmp_path: Path, small_image: np.ndarray
) -> None:
    root = tmp_path / "b2r.zarr"
    group = zarr.open_group(str(root), mode="w", zarr_format=2)
    group.attrs.put({"bioformats2raw.layout": 3})
    write_ome_image(root / "0", [small_image], version="0.4")
    write_ome_image(root / "1", [small_image[:100, :100]], version="0.4")
    layers = read_zarr(root).layers
    assert [layer.data[0].shape for layer in layers] == [(256, 256), (100, 100)]
    assert [layer.kwargs["name"] for layer in layers] == ["b2r/0", "b2r/1"]


def test_nothing_is_read_from_level_zero_on_open(tmp_path: Path, small_image: np.ndarray) -> None:
    """Corrupt every level-0 chunk: opening still works (it never decodes them); reading fails."""
    path = tmp_path / "lazy.zarr"
    write_ome_image(path, [small_image, reference_mean(small_image)])
    chunk_files = [p for p in (path / "0").rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert chunk_files
    for chunk in chunk_files:
        chunk.write_bytes(b"not a zstd frame")
    layer = read_zarr(path).layers[0]
    assert layer.kwargs["contrast_limits"][1] > 0
    with pytest.raises(Exception):  # noqa: B017 - the codec's own error on a corrupt chunk
        layer.data[0][:10, :10].compute()


def test_missing_chunks_read_as_fill_value(tmp_path: Path) -> None:
    path = tmp_path / "sparse.zarr"
    z = zarr.create_array(
        str(path), shape=(300, 300), chunks=(100, 100), dtype="uint16", fill_value=7
    )
    z[:100, :100] = 1
    data = read_zarr(path).layers[0].data[0].compute()
    assert (data[:100, :100] == 1).all()
    assert (data[100:, 100:] == 7).all()


@pytest.mark.slow
def test_huge_array_without_pyramid_opens_lazily_with_bounded_memory(tmp_path: Path) -> None:
    """200,000 x 200,000 uint16 (80 GB) with 100 x 100 chunks, nearly all missing."""
    path = tmp_path / "huge.zarr"
    z = zarr.create_array(
        str(path), shape=(200_000, 200_000), chunks=(100, 100), dtype="uint16", fill_value=0
    )
    z[100_000:100_200, 50_000:50_300] = 1000
    with PeakMemoryGrowth() as memory:
        contents = read_zarr(path)
        layer = contents.layers[0]
        assert layer.kwargs["multiscale"] is True
        assert layer.data[0].shape == (200_000, 200_000)
        assert max(layer.data[-1].shape) <= 1024
        assert layer.data[0].numblocks[0] * layer.data[0].numblocks[1] <= 1 << 16
        assert any("no pyramid" in notice for notice in contents.notices)
        # The coarsest level (what a zoomed-out view shows) reads without loading the image.
        coarsest = layer.data[-1].compute()
        assert coarsest.shape == layer.data[-1].shape
        # Level 0 reads exactly where asked.
        np.testing.assert_array_equal(
            layer.data[0][100_000:100_002, 50_000:50_002].compute(), 1000
        )
    assert memory.grown_mb < 500


# ------------------------------------------------------------------------------------------------
# Bad input: a clear StoreReadError naming the path and the problem
# ------------------------------------------------------------------------------------------------


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(StoreReadError, match="no such file or folder"):
        read_zarr(tmp_path / "nope.zarr")


def test_folder_that_is_not_zarr(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.txt").write_text("hello")
    assert find_zarr_node(tmp_path / "photos") is None
    with pytest.raises(StoreReadError, match="not a zarr store"):
        read_zarr(tmp_path / "photos")


@pytest.mark.parametrize(("zarr_format", "file"), [(3, "zarr.json"), (2, ".zarray")])
def test_truncated_array_metadata(tmp_path: Path, zarr_format: int, file: str) -> None:
    path = tmp_path / "broken.zarr"
    zarr.create_array(
        str(path), shape=(10, 10), chunks=(5, 5), dtype="uint8", zarr_format=zarr_format
    )
    corrupt_json(path / file)
    with pytest.raises(StoreReadError, match=rf"{file}: corrupt or truncated metadata"):
        read_zarr(path)


def test_metadata_that_is_valid_json_but_not_zarr(tmp_path: Path) -> None:
    path = tmp_path / "weird.zarr"
    path.mkdir()
    (path / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "array"}))
    with pytest.raises(StoreReadError, match="cannot open as zarr"):
        read_zarr(path)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_multiscales_naming_a_missing_array(
    tmp_path: Path, small_image: np.ndarray, version: str
) -> None:
    path = tmp_path / "missing.zarr"
    write_ome_image(path, [small_image, small_image[::2, ::2]], version=version)
    import shutil

    shutil.rmtree(path / "1")
    with pytest.raises(StoreReadError, match="names '1', which is missing"):
        read_zarr(path)


@pytest.mark.parametrize("evil", ["../outside", "/etc", "a/../../b", "..", "a\\..\\b"])
def test_dataset_paths_cannot_escape_the_store(
    tmp_path: Path, small_image: np.ndarray, evil: str
) -> None:
    outside = tmp_path / "outside"
    zarr.create_array(str(outside), data=small_image, chunks=(64, 64))
    path = tmp_path / "store" / "evil.zarr"
    group = write_ome_image(path, [small_image])
    attrs = group.attrs.asdict()
    attrs["ome"]["multiscales"][0]["datasets"][0]["path"] = evil
    group.attrs.put(attrs)
    with pytest.raises(StoreReadError, match="not a plain path inside the store"):
        read_zarr(path)


def test_label_names_cannot_escape_the_store(tmp_path: Path, small_image: np.ndarray) -> None:
    path = tmp_path / "img.zarr"
    write_ome_image(path, [small_image])
    add_labels(path, "cells", [small_image.astype("uint8")], version="0.5")
    labels = zarr.open_group(str(path / "labels"), mode="a")
    labels.attrs.put({"ome": {"version": "0.5", "labels": ["../../../elsewhere"]}})
    with pytest.raises(StoreReadError, match="not a plain path inside the store"):
        read_zarr(path)


def test_unsupported_dtype(tmp_path: Path) -> None:
    path = tmp_path / "complex.zarr"
    zarr.create_array(str(path), data=np.zeros((4, 4), dtype=np.complex64), chunks=(2, 2))
    with pytest.raises(StoreReadError, match="complex64 is not supported"):
        read_zarr(path)


def test_a_chunk_too_large_to_display_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bigchunk.zarr"
    zarr.create_array(str(path), shape=(40_000, 40_000), chunks=(40_000, 40_000), dtype="uint8")
    with pytest.raises(StoreReadError, match="Re-tile the store"):
        read_zarr(path)


@pytest.mark.parametrize(
    ("shape", "chunks"),
    [((10**15, 10**15), (10, 10)), ((2**34, 2**34), (2**14, 2**14))],
    ids=["tiny-chunks", "huge-chunks-previews"],
)
def test_metadata_declaring_an_absurd_chunk_grid_is_refused(
    tmp_path: Path, shape: tuple[int, int], chunks: tuple[int, int]
) -> None:
    """A few hundred bytes of metadata whose chunk grid alone (or that of its previews) would
    exhaust memory are refused, quickly and without allocating."""
    path = tmp_path / "absurd.zarr"
    zarr.create_array(str(path), shape=shape, chunks=chunks, dtype="uint8")
    with PeakMemoryGrowth() as memory, pytest.raises(StoreReadError, match="refusing to index"):
        read_zarr(path)
    assert memory.grown_mb < 100


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_folder(tmp_path: Path) -> None:
    path = tmp_path / "locked.zarr"
    zarr.create_array(str(path), shape=(4, 4), chunks=(2, 2), dtype="uint8")
    path.chmod(0)
    try:
        with pytest.raises(StoreReadError, match="permission denied"):
            read_zarr(path)
    finally:
        path.chmod(0o755)


def test_single_level_ome_image_too_large_to_draw_gets_previews(tmp_path: Path) -> None:
    """An OME-Zarr 'pyramid' of one 100,000 x 100,000 level is extended lazily, like a bare array."""
    path = tmp_path / "one_level.zarr"
    group = zarr.open_group(str(path), mode="w")
    array = group.create_array("0", shape=(100_000, 100_000), chunks=(1000, 1000), dtype="uint16")
    array[49_000:50_000, 49_000:50_000] = 9  # holds a sampled pixel (49,152 = 6 x 8,192)
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    datasets = [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0]}]}
    ]
    group.attrs.put(
        {"ome": {"version": "0.5", "multiscales": [{"axes": axes, "datasets": datasets}]}}
    )
    contents = read_zarr(path)
    layer = contents.layers[0]
    assert layer.kwargs["multiscale"] is True
    assert max(layer.data[-1].shape) <= 1024
    assert any("downsampled previews" in notice for notice in contents.notices)
    # Contrast limits come from the smallest (preview) level, which samples the bright block.
    assert layer.kwargs["contrast_limits"] == [0.0, 9.0]
