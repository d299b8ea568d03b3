"""The conversion engine: round trips, pyramid values, metadata validity, safety, bad input."""

from __future__ import annotations

import functools
import json
import math
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_zarr_tiler import Progress, convert, plan_conversion, read_zarr
from napari_zarr_tiler.converter.direct_io import (
    available_memory_bytes,
    choose_direct_io,
    supports_direct_io,
)
from napari_zarr_tiler.converter.pyramid import downsample_2x
from napari_zarr_tiler.errors import (
    ConversionCancelled,
    DestinationError,
    InvalidOptionError,
    UnsupportedDtypeError,
)
from napari_zarr_tiler.sources import synthetic_slide
from napari_zarr_tiler.zarr_names import JOURNAL, staging_path

from ..helpers import read_json, reference_mean, tree_bytes


@pytest.mark.slow
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    height=st.integers(1, 150),
    width=st.integers(1, 150),
    chunk=st.integers(1, 64),
    dtype=st.sampled_from(["uint8", "uint16", "int16", "int32", "float32", "float64"]),
    zarr_format=st.sampled_from([2, 3]),
    compressor=st.sampled_from(["zstd", "blosc-lz4", "blosc-zstd", "gzip", "none"]),
)
def test_round_trip_is_exact_at_every_level(
    tmp_path_factory: pytest.TempPathFactory,
    height: int,
    width: int,
    chunk: int,
    dtype: str,
    zarr_format: int,
    compressor: str,
) -> None:
    rng = np.random.default_rng(height * 1000 + width)
    if np.dtype(dtype).kind == "f":
        image = rng.normal(100, 30, size=(height, width)).astype(dtype)
    else:
        info = np.iinfo(dtype)
        image = rng.integers(
            max(info.min, -1000), min(info.max, 60000), size=(height, width), dtype=dtype
        )
    dest = tmp_path_factory.mktemp("rt") / "out.zarr"
    result = convert(image, dest, chunks=chunk, zarr_format=zarr_format, compressor=compressor)
    group = zarr.open_group(str(dest), mode="r")
    expected = image
    for level in range(result.plan.n_levels):
        stored = group[str(level)]
        assert stored.chunks == tuple(min(chunk, s) for s in expected.shape)
        if level == 0 or np.dtype(dtype).kind in "iu":
            np.testing.assert_array_equal(stored[...], expected)  # lossless, exact integer means
        else:
            np.testing.assert_allclose(stored[...], expected, rtol=1e-6)  # float32 sums
        expected = reference_mean(stored[...])
    smallest = group[str(result.plan.n_levels - 1)]
    assert smallest.shape[0] <= chunk and smallest.shape[1] <= chunk


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_metadata_passes_the_ome_zarr_validator(
    tmp_path: Path, small_image: np.ndarray, zarr_format: int
) -> None:
    pytest.importorskip("ome_zarr_models")
    if zarr_format == 3:
        from ome_zarr_models.v05 import Image
    else:
        from ome_zarr_models.v04 import Image
    dest = tmp_path / "valid.zarr"
    convert(
        small_image,
        dest,
        chunks=64,
        zarr_format=zarr_format,
        scale=(0.5, 0.25),
        units=("micrometer", "micrometer"),
    )
    group = zarr.open_group(str(dest), mode="r")
    Image.from_zarr(group)
    ome = group.attrs["ome"] if zarr_format == 3 else group.attrs.asdict()
    window = ome["omero"]["channels"][0]["window"]
    # The display window is level 0's exact range, measured while streaming (not the smallest
    # level's, which averaging flattens).
    assert (window["start"], window["end"]) == (small_image.min(), small_image.max())
    contents = read_zarr(dest)
    layer = contents.layers[0]
    assert [d.shape for d in layer.data] == [(256, 256), (128, 128), (64, 64)]
    assert layer.kwargs["scale"] == (0.5, 0.25)
    assert layer.kwargs["units"] == ("micrometer", "micrometer")


def test_chunk_codec_and_shards_are_what_was_asked(
    tmp_path: Path, small_image: np.ndarray
) -> None:
    dest = tmp_path / "sharded.zarr"
    convert(small_image, dest, chunks=32, shards=128, compressor="blosc-lz4", clevel=3)
    meta = read_json(dest / "0" / "zarr.json")
    sharding = meta["codecs"][0]
    assert sharding["name"] == "sharding_indexed"
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [128, 128]
    assert sharding["configuration"]["chunk_shape"] == [32, 32]
    inner = sharding["configuration"]["codecs"]
    assert inner[-1]["name"] == "blosc"
    assert inner[-1]["configuration"]["cname"] == "lz4"
    assert inner[-1]["configuration"]["clevel"] == 3
    np.testing.assert_array_equal(zarr.open_array(str(dest / "0"))[...], small_image)


def test_classic_array_layout(tmp_path: Path, small_image: np.ndarray) -> None:
    dest = tmp_path / "bare.zarr"
    convert(small_image, dest, chunks=100, layout="array", zarr_format=2)
    array = zarr.open_array(str(dest), mode="r")
    assert array.chunks == (100, 100)
    np.testing.assert_array_equal(array[...], small_image)
    with pytest.raises(InvalidOptionError, match="cannot hold a pyramid"):
        convert(small_image, tmp_path / "bare2.zarr", layout="array", levels=3)


def test_dask_source_larger_than_a_region_streams(tmp_path: Path) -> None:
    lazy = da.arange(3000 * 2500, dtype="uint32", chunks=1_000_000).reshape(3000, 2500) % 5000
    dest = tmp_path / "lazy.zarr"
    result = convert(lazy, dest, chunks=256)
    assert result.plan.n_levels == 5
    group = zarr.open_group(str(dest), mode="r")
    np.testing.assert_array_equal(
        group["0"][1234:1300, 2000:2100], lazy[1234:1300, 2000:2100].compute()
    )
    np.testing.assert_array_equal(group["1"][...], reference_mean(lazy.compute()))


def test_multichannel_5d_with_metadata(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 1000, size=(2, 3, 4, 70, 90), dtype=np.uint16)
    dest = tmp_path / "5d.zarr"
    convert(
        image,
        dest,
        chunks=32,
        axes=("t", "c", "z", "y", "x"),
        scale=(1.0, 1.0, 2.0, 0.5, 0.5),
        units=("second", None, "micrometer", "micrometer", "micrometer"),
        channel_names=("DAPI", "GFP", "RFP"),
        colors=("0000FF", "00FF00", "FF0000"),
    )
    group = zarr.open_group(str(dest), mode="r")
    assert group["0"].chunks == (1, 1, 1, 32, 32)
    assert group["1"].shape == (2, 3, 4, 35, 45)
    np.testing.assert_array_equal(group["1"][...], reference_mean(image))
    layer = read_zarr(dest).layers[0]
    assert layer.kwargs["channel_axis"] == 1
    assert layer.kwargs["name"] == ["DAPI", "GFP", "RFP"]
    assert layer.kwargs["colormap"] == ["#0000ff", "#00ff00", "#ff0000"]
    assert layer.kwargs["scale"] == (1.0, 2.0, 0.5, 0.5)


def test_one_pixel_image(tmp_path: Path) -> None:
    dest = tmp_path / "pixel.zarr"
    result = convert(np.array([[42]], dtype=np.uint8), dest)
    assert result.plan.n_levels == 1
    assert zarr.open_group(str(dest), mode="r")["0"][0, 0] == 42


def test_labels_use_nearest_and_open_as_labels(tmp_path: Path) -> None:
    labels = np.zeros((100, 100), dtype=np.uint32)
    labels[10:60, 10:60] = 7
    labels[60:, 60:] = 3
    labels[::2, ::2] = 5  # a mean would invent values such as 4 or 6
    dest = tmp_path / "labels.zarr"
    convert(labels, dest, chunks=16, label=True)
    group = zarr.open_group(str(dest), mode="r")
    assert set(np.unique(group["1"][...])) <= {0, 3, 5, 7}
    assert "image-label" in group.attrs["ome"]
    assert read_zarr(dest).layers[0].layer_type == "labels"


def test_rgb_is_kept_as_channels_and_reads_back_as_rgb(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 255, size=(80, 120, 3), dtype=np.uint8)
    dest = tmp_path / "rgb.zarr"
    convert(rgb, dest, chunks=32, rgb=True)
    group = zarr.open_group(str(dest), mode="r")
    assert group["0"].shape == (3, 80, 120)
    assert [a["name"] for a in group.attrs["ome"]["multiscales"][0]["axes"]] == ["c", "y", "x"]
    layer = read_zarr(dest).layers[0]
    assert layer.kwargs["rgb"] is True
    np.testing.assert_array_equal(layer.data[0].compute(), rgb)


def test_downsample_kernel_matches_reference() -> None:
    rng = np.random.default_rng(7)
    block = rng.integers(0, 65535, size=(2, 33, 17), dtype=np.uint16)
    np.testing.assert_array_equal(downsample_2x(block), reference_mean(block))


def test_plan_describes_tiles_levels_and_size() -> None:
    plan = plan_conversion((2000, 5000), "uint16", chunks=512)
    assert plan.n_levels == 5
    assert plan.level_shapes[-1] == (125, 313)
    assert plan.tiles == 4 * 10 + 2 * 5 + 1 * 3 + 1 * 2 + 1
    assert plan.nbytes == sum(h * w for h, w in plan.level_shapes) * 2
    assert "5 levels" in plan.describe()


# ------------------------------------------------------------------------------------------------
# Nothing is lost, and bad input is refused clearly
# ------------------------------------------------------------------------------------------------


def test_existing_destination_is_refused_without_overwrite(
    tmp_path: Path, small_image: np.ndarray
) -> None:
    dest = tmp_path / "out.zarr"
    convert(small_image, dest)
    before = (dest / "zarr.json").read_bytes()
    with pytest.raises(DestinationError, match="already exists"):
        convert(small_image[:10, :10], dest)
    assert (dest / "zarr.json").read_bytes() == before
    convert(small_image[:10, :10], dest, overwrite=True)
    assert zarr.open_group(str(dest), mode="r")["0"].shape == (10, 10)


def test_overwrite_never_deletes_a_folder_that_is_not_zarr(
    tmp_path: Path, small_image: np.ndarray
) -> None:
    dest = tmp_path / "thesis"
    dest.mkdir()
    (dest / "chapter1.tex").write_text("precious")
    with pytest.raises(DestinationError, match="not a zarr store"):
        convert(small_image, dest, overwrite=True)
    assert (dest / "chapter1.tex").read_text() == "precious"


def test_destination_inside_the_source_store(tmp_path: Path, small_image: np.ndarray) -> None:
    source_path = tmp_path / "source.zarr"
    source = zarr.create_array(str(source_path), data=small_image, chunks=(64, 64))
    with pytest.raises(DestinationError, match="inside the source"):
        convert(source, source_path / "copy.zarr")


def test_destination_that_cannot_be_created(tmp_path: Path, small_image: np.ndarray) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(DestinationError, match="cannot create the destination folder"):
        convert(small_image, blocker / "out.zarr")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"chunks": 0}, "chunks must be positive"),
        ({"chunks": -5}, "chunks must be positive"),
        ({"chunks": (64, 64, 64)}, "chunks has 3 values but the image has 2 axes"),
        ({"shards": 100, "chunks": 64}, "must be a multiple of the chunks"),
        ({"shards": 128, "zarr_format": 2}, "shards need zarr format 3"),
        ({"compressor": "lzma"}, "unknown compressor"),
        ({"compressor": "gzip", "clevel": 12}, "out of range"),
        ({"levels": 0}, "levels must be 'auto' or a positive integer"),
        ({"zarr_format": 4}, "zarr_format must be 2 or 3"),
    ],
)
def test_invalid_options(
    tmp_path: Path, small_image: np.ndarray, options: dict, message: str
) -> None:
    dest = tmp_path / "out.zarr"
    with pytest.raises(InvalidOptionError, match=message):
        convert(small_image, dest, **options)
    assert not dest.exists()
    assert not staging_path(dest).exists()


def test_chunks_larger_than_the_image_are_clipped(tmp_path: Path) -> None:
    dest = tmp_path / "small.zarr"
    convert(np.ones((30, 40), dtype=np.uint8), dest, chunks=512)
    assert zarr.open_group(str(dest), mode="r")["0"].chunks == (30, 40)


@pytest.mark.parametrize("dtype", [bool, np.complex64, object])
def test_unsupported_dtypes(tmp_path: Path, dtype: type) -> None:
    with pytest.raises(UnsupportedDtypeError, match="supported: uint8, uint16"):
        convert(np.zeros((4, 4), dtype=dtype), tmp_path / "out.zarr")


def test_source_store_is_never_modified(tmp_path: Path, small_image: np.ndarray) -> None:
    """Converting from a zarr store (re-tiling it, even with overwrite) leaves its files as they were."""
    source_path = tmp_path / "source.zarr"
    source = zarr.create_array(str(source_path), data=small_image, chunks=(100, 100))
    before = {p: p.read_bytes() for p in sorted(source_path.rglob("*")) if p.is_file()}
    convert(source, tmp_path / "retiled.zarr", chunks=64)
    convert(source, tmp_path / "retiled.zarr", chunks=32, overwrite=True, zarr_format=2)
    after = {p: p.read_bytes() for p in sorted(source_path.rglob("*")) if p.is_file()}
    assert after == before


def test_longlong_is_int64(tmp_path: Path) -> None:
    """numpy's `longlong` (what tifffile gives for int64 TIFFs) equals int64 but is its own type."""
    image = np.arange(100 * 120, dtype=np.longlong).reshape(100, 120) - 6000
    convert(image, tmp_path / "ll.zarr", chunks=64)
    stored = zarr.open_group(str(tmp_path / "ll.zarr"), mode="r")["0"]
    assert stored.dtype == np.int64
    np.testing.assert_array_equal(stored[...], image)


@pytest.mark.parametrize(
    ("shape", "chunks", "shards", "level0_shards"),
    [
        ((6, 300, 500), 64, 128, (1, 128, 128)),  # an integer: one chunk along leading axes
        ((6, 300, 500), 64, (0, 128, 256), (1, 128, 256)),  # 0: one chunk along that axis
        (
            (301, 517),
            512,
            1024,
            (301, 1024),
        ),  # chunks clipped to the image, shards to whole chunks
    ],
)
def test_shard_shapes_follow_the_requested_chunks(
    tmp_path: Path,
    shape: tuple[int, ...],
    chunks: int,
    shards: int | tuple[int, ...],
    level0_shards: tuple[int, ...],
) -> None:
    image = np.arange(math.prod(shape), dtype=np.uint16).reshape(shape)
    convert(image, tmp_path / "s.zarr", chunks=chunks, shards=shards, levels=2)
    level0 = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["0"]
    assert level0.shards == level0_shards
    np.testing.assert_array_equal(level0[...], image)


def test_one_axis_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError, match="not an image"):
        convert(np.arange(10), tmp_path / "line.zarr", layout="array")


def test_progress_counts_every_tile_and_reads_as_text(tmp_path: Path) -> None:
    image = np.zeros((3000, 2500), dtype=np.uint16)
    events: list[Progress] = []
    result = convert(image, tmp_path / "p.zarr", chunks=256, progress=events.append)
    done = [event.tiles_done for event in events]
    assert done == sorted(done)
    assert events[-1].tiles_done == events[-1].tiles_total == result.plan.tiles
    assert events[-1].bytes_done == result.plan.nbytes
    assert re.fullmatch(
        rf"{result.plan.tiles:,}/{result.plan.tiles:,} tiles \(100%\), [\d,]+ MB/s, [\d.]+ s",
        str(events[-1]),
    )


def test_cancel_stops_and_leaves_nothing(tmp_path: Path) -> None:
    image = np.zeros((4096, 4096), dtype=np.uint16)  # four regions of 2048 x 2048
    dest = tmp_path / "cancelled.zarr"
    stop = threading.Event()
    seen = []

    def on_progress(event) -> None:
        seen.append(event.tiles_done)
        stop.set()

    with pytest.raises(ConversionCancelled):
        convert(image, dest, chunks=128, progress=on_progress, cancel=stop, workers=1)
    assert seen
    assert seen[-1] < plan_conversion(image.shape, image.dtype, chunks=128).tiles
    assert not dest.exists()
    assert not staging_path(dest).exists()


def test_write_failure_mid_way_leaves_nothing_that_looks_complete(tmp_path: Path) -> None:
    """Files may not grow past 64 KB in the child (as when a disk fills): a clear error, no store."""
    dest = tmp_path / "full.zarr"
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        import numpy as np
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        from napari_zarr_tiler import convert
        from napari_zarr_tiler.errors import DestinationError
        rng = np.random.default_rng(0)
        image = rng.integers(0, 65535, size=(1024, 1024), dtype=np.uint16)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        try:
            convert(image, {str(dest)!r}, chunks=512, compressor="none")
        except DestinationError as error:
            print("DestinationError:", error)
            sys.exit(3)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "writing failed" in result.stdout
    assert not dest.exists()
    assert not staging_path(dest).exists()


@pytest.mark.slow
def test_streaming_keeps_memory_bounded(tmp_path: Path) -> None:
    """A 1.6 GB lazy source converts in a child process whose peak RSS stays far below its size."""
    dest = tmp_path / "big.zarr"
    script = textwrap.dedent(
        f"""
        import dask.array as da
        from napari_zarr_tiler import convert
        image = da.random.default_rng(0).integers(0, 4000, size=(20480, 40960), dtype="uint16", chunks=(2048, 2048))
        convert(image, {str(dest)!r}, chunks=512, compressor="blosc-lz4")
        # VmHWM, not ru_maxrss: Linux carries the forking parent's (pytest's) peak into the
        # child's ru_maxrss, and this test runs after others that grew it.
        status = open("/proc/self/status").read().split("VmHWM:")[1]
        print(int(status.split()[0]) // 1024)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    peak_mb = int(result.stdout.split()[-1])
    assert peak_mb < 600, f"peak RSS {peak_mb} MB for a 1,678 MB image"
    meta = json.loads((dest / "zarr.json").read_text())
    assert len(meta["attributes"]["ome"]["multiscales"][0]["datasets"]) == 8


# ------------------------------------------------------------------------------------------------
# Chunk and shard sizes whose regions hold only a few units, odd sizes, extreme values
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("shape", "dtype", "options"),
    [
        ((4096, 8192), "uint16", {"chunks": 2048}),  # 4 chunks exceed the region budget
        ((8192, 16384), "uint8", {"chunks": 512, "shards": 4096}),  # so do 4 shards
        # odd chunk sides (z kept whole: this case is about y and x)
        ((17, 1400, 1100), "uint8", {"chunks": (17, 511, 511), "downsample_z": "never"}),
    ],
    ids=["big-chunks", "big-shards", "odd-chunks"],
)
def test_large_or_odd_units_give_exact_levels_on_several_threads(
    tmp_path: Path, shape: tuple[int, ...], dtype: str, options: dict
) -> None:
    rng = np.random.default_rng(11)
    image = rng.integers(0, 200, size=shape, dtype=dtype)
    dest = tmp_path / "units.zarr"
    result = convert(image, dest, workers=2, compressor="blosc-lz4", **options)
    assert result.plan.depth >= 1
    group = zarr.open_group(str(dest), mode="r")
    expected = image
    for level in range(min(result.plan.n_levels, 3)):
        np.testing.assert_array_equal(group[str(level)][...], expected, err_msg=f"level {level}")
        expected = reference_mean(expected)


def test_level_transforms_at_odd_sizes_are_powers_of_two(tmp_path: Path) -> None:
    dest = tmp_path / "odd.zarr"
    convert(np.arange(25, dtype=np.uint8).reshape(5, 5), dest, chunks=2, scale=(0.5, 0.5))
    datasets = zarr.open_group(str(dest), mode="r").attrs["ome"]["multiscales"][0]["datasets"]
    transforms = [d["coordinateTransformations"] for d in datasets]
    assert [t[0]["scale"] for t in transforms] == [[0.5, 0.5], [1.0, 1.0], [2.0, 2.0]]
    # A level-k pixel centre sits at the centre of the 2**k source pixels it averages.
    assert [t[1]["translation"] for t in transforms[1:]] == [[0.25, 0.25], [0.75, 0.75]]


def test_sixty_four_bit_means_do_not_overflow() -> None:
    for dtype in (np.uint64, np.int64):
        info = np.iinfo(dtype)
        high = np.full((2, 2), info.max - 1, dtype=dtype)
        low = np.full((2, 2), info.min + 1, dtype=dtype)
        assert downsample_2x(high)[0, 0] == info.max - 1
        assert downsample_2x(low)[0, 0] == info.min + 1
    big = np.full((2, 2), np.finfo(np.float32).max / 2, dtype=np.float32)
    assert np.isfinite(downsample_2x(big)).all()


def test_display_window_ignores_nan_and_does_not_depend_on_threads(tmp_path: Path) -> None:
    image = np.full((1024, 1024), np.nan, dtype=np.float32)
    image[600:, 600:] = np.linspace(500, 5500, 424 * 424, dtype=np.float32).reshape(424, 424)
    windows = []
    for workers in (1, 2):
        dest = tmp_path / f"nan{workers}.zarr"
        convert(image, dest, chunks=128, workers=workers)
        window = zarr.open_group(str(dest), mode="r").attrs["ome"]["omero"]["channels"][0][
            "window"
        ]
        windows.append((window["start"], window["end"]))
    assert windows == [(500.0, 5500.0), (500.0, 5500.0)]


def test_default_axes_never_invent_channels(tmp_path: Path) -> None:
    dest = tmp_path / "4d.zarr"
    convert(np.zeros((3, 2, 16, 16), dtype=np.uint8), dest, axes=("-4", "-3", "-2", "-1"))
    axes = zarr.open_group(str(dest), mode="r").attrs["ome"]["multiscales"][0]["axes"]
    assert [a["name"] for a in axes] == ["t", "z", "y", "x"]
    assert "channel_axis" not in read_zarr(dest).layers[0].kwargs


def test_dask_source_read_from_a_store_cannot_be_written_into_it(
    tmp_path: Path, small_image: np.ndarray
) -> None:
    store = tmp_path / "source.zarr"
    convert(small_image, store, chunks=64)
    level0 = read_zarr(store).layers[0].data[0]
    for target in (store / "inner.zarr", store):
        with pytest.raises(DestinationError, match="inside the source"):
            convert(level0, target, overwrite=True)
    np.testing.assert_array_equal(zarr.open_group(str(store), mode="r")["0"][...], small_image)


def test_a_cluster_refuses_in_memory_numpy_sources(
    tmp_path: Path, small_image: np.ndarray
) -> None:
    with pytest.raises(InvalidOptionError, match="workers can open"):
        convert(small_image, tmp_path / "x.zarr", scheduler="local")


@pytest.mark.parametrize("shards", [None, 512])
def test_direct_io_stores_the_same_bytes_as_buffered_writes(
    tmp_path: Path, small_image: np.ndarray, shards: int | None
) -> None:
    pytest.importorskip("zarrs")
    if not supports_direct_io(tmp_path):
        pytest.skip(f"the filesystem of {tmp_path} refuses O_DIRECT")
    image = np.tile(small_image, (5, 7))  # 1280 x 1792: partial edge chunks, odd levels
    options: dict[str, Any] = {"chunks": 256, "shards": shards, "name": "x"}
    buffered = convert(image, tmp_path / "buffered.zarr", direct_io=False, **options)
    direct = convert(image, tmp_path / "direct.zarr", direct_io=True, **options)
    assert buffered.direct_io is False
    assert direct.direct_io is True
    written = tree_bytes(tmp_path / "direct.zarr")
    expected = tree_bytes(tmp_path / "buffered.zarr")
    assert written.keys() == expected.keys()
    if shards is None:
        assert written == expected
    else:
        # zarrs may lay out the inner chunks of a shard it encodes in parallel in another order
        # from run to run (direct I/O or not): same pixels, not always the same bytes.
        buffered_group = zarr.open_group(str(tmp_path / "buffered.zarr"), mode="r")
        direct_group = zarr.open_group(str(tmp_path / "direct.zarr"), mode="r")
        for level in buffered_group.array_keys():
            np.testing.assert_array_equal(direct_group[level][...], buffered_group[level][...])
    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "direct.zarr"))["0"][...], image)
    assert not list(tmp_path.glob(".*"))  # no probe file or staging folder left behind


def test_direct_io_is_chosen_for_outputs_large_against_free_memory(tmp_path: Path) -> None:
    if not supports_direct_io(tmp_path):
        pytest.skip(f"the filesystem of {tmp_path} refuses O_DIRECT")
    available = available_memory_bytes()
    assert available is not None and available > 0
    choose = functools.partial(choose_direct_io, None, staging=tmp_path, pipeline="zarrs")
    assert choose(output_bytes=int(available), on_cluster=False) is True
    assert choose(output_bytes=int(available * 0.1), on_cluster=False) is False
    assert choose(output_bytes=int(available), on_cluster=True) is False  # workers' memory
    with pytest.raises(InvalidOptionError, match="zarrs"):
        choose_direct_io(
            True, staging=tmp_path, output_bytes=1, pipeline="default", on_cluster=False
        )
    assert not list(tmp_path.iterdir())


def test_resume_skips_the_regions_already_written_of_a_big_endian_source(tmp_path: Path) -> None:
    """A resumed run verifies journaled regions against the source converted to the stored
    dtype, so a big-endian source's finished regions are kept, not written again."""
    image = np.tile(synthetic_slide(1024, dtype="uint16", seed=5), (2, 12)).astype(">u2")
    dest = tmp_path / "out.zarr"

    def interrupt_after_the_first_region(progress: Progress) -> None:
        raise KeyboardInterrupt  # as Ctrl-C would: the partial store is kept

    with pytest.raises(KeyboardInterrupt):
        convert(image, dest, chunks=256, workers=1, progress=interrupt_after_the_first_region)
    journal_lines = (staging_path(dest) / JOURNAL).read_text().splitlines()
    assert len(journal_lines) == 2  # the header and the first region (2048 x 4096)
    level0 = staging_path(dest) / "0" / "c"
    first_region = {  # its 8 x 16 chunks of 256
        Path(str(row), str(column)): (level0 / str(row) / str(column)).stat().st_mtime_ns
        for row in range(8)
        for column in range(16)
    }

    convert(image, dest, chunks=256, workers=1, resume=True)
    for name, mtime in first_region.items():  # verified and skipped, not written again
        assert (dest / "0" / "c" / name).stat().st_mtime_ns == mtime, name
    np.testing.assert_array_equal(zarr.open_group(str(dest))["0"][...], image)


@pytest.mark.parametrize(
    "dtype", ["uint8", "uint16", "int16", "int32", "uint32", "float32", "float64"]
)
def test_downsampling_in_slabs_equals_the_reference_exactly(
    monkeypatch: pytest.MonkeyPatch, dtype: str
) -> None:
    """Several slabs (a tiny slab budget), leading axes and odd edges: exact, bit for bit."""
    import napari_zarr_tiler.converter.pyramid as pyramid

    monkeypatch.setattr(pyramid, "_SLAB_BYTES", 300)
    rng = np.random.default_rng(7)
    if np.dtype(dtype).kind == "f":
        block = rng.normal(0, 1e3, size=(2, 3, 37, 51)).astype(dtype)
        block[0, 0, :2, :2] = np.finfo(dtype).max  # sums overflow to inf, never to NaN
    else:
        info = np.iinfo(dtype)
        block = rng.integers(info.min, info.max, size=(2, 3, 37, 51), dtype=dtype, endpoint=True)
    with np.errstate(over="ignore"):  # the float maxima overflow to inf on purpose
        result = pyramid.downsample_2x(block)
        expected = reference_mean(block)
    assert result.dtype == expected.dtype
    assert result.tobytes() == expected.tobytes()
