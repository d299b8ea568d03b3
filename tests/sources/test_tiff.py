"""TIFF layouts and metadata: axes, channels, pyramids, RGB, series, strips and tiles, converted
for real (console script in a subprocess) from files written by tifffile."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_zarr_tiler import SourceError
from napari_zarr_tiler.sources import SourceSpec
from napari_zarr_tiler.sources import tiff as sources
from napari_zarr_tiler.sources.axes import AxisOrderView
from napari_zarr_tiler.sources.file_arrays import ContiguousFileArray, TiledFileArray

from ..helpers import assert_one_line_error, reference_mean, run


def test_convert_ome_tiff_keeps_physical_sizes_and_channel_names(
    tiffs: dict[str, Path], slide_image: np.ndarray, tmp_path: Path
) -> None:
    dest = tmp_path / "ome.zarr"
    run("convert", str(tiffs["ome"]), str(dest), "--chunks", "512", "--quiet", check=True)
    group = zarr.open_group(str(dest), mode="r")
    ome = group.attrs["ome"]
    multiscale = ome["multiscales"][0]
    assert [a["name"] for a in multiscale["axes"]] == ["c", "y", "x"]
    assert multiscale["axes"][1]["unit"] == "micrometer"
    assert multiscale["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 0.5, 0.25]
    assert [c["label"] for c in ome["omero"]["channels"]] == ["DAPI", "GFP", "RFP"]
    np.testing.assert_array_equal(group["0"][1], slide_image[::-1])


def test_convert_rgb_tiff(tiffs: dict[str, Path], tmp_path: Path) -> None:
    dest = tmp_path / "rgb.zarr"
    run("convert", str(tiffs["rgb"]), str(dest), "--quiet", check=True)
    assert zarr.open_group(str(dest), mode="r")["0"].shape == (3, 500, 700)


@pytest.mark.parametrize(
    ("axes", "shape", "stored_axes", "to_stored", "channel_names"),
    [
        # ImageJ hyperstack / OME DimensionOrder XYCZT order: stored t, c, z, y, x.
        ("TZCYX", (2, 5, 3, 64, 80), ["t", "c", "z", "y", "x"], (0, 2, 1, 3, 4), ["A", "B", "C"]),
        # Planar RGB: stored as RGB (samples to a channel axis, shown as RGB again).
        ("SYX", (3, 64, 80), ["c", "y", "x"], (0, 1, 2), None),
        # Gray + alpha: two samples are two channels.
        ("YXS", (64, 80, 2), ["c", "y", "x"], (2, 0, 1), None),
        # RGB over time: napari shows RGB only with Z, so the samples become channels after t.
        ("TYXS", (4, 64, 80, 3), ["t", "c", "y", "x"], (0, 3, 1, 2), None),
    ],
    ids=["tzcyx", "planar-rgb", "gray-alpha", "rgb-over-time"],
)
def test_tiff_axes_are_stored_in_ome_order(
    tmp_path: Path,
    axes: str,
    shape: tuple[int, ...],
    stored_axes: list[str],
    to_stored: tuple[int, ...],
    channel_names: list[str] | None,
) -> None:
    data = np.random.default_rng(3).integers(0, 250, size=shape, dtype=np.uint8)
    src = tmp_path / "in.ome.tif"
    metadata: dict = {"axes": axes, "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
    if "Z" in axes:
        metadata["PhysicalSizeZ"] = 2.0
    if channel_names:
        metadata["Channel"] = {"Name": channel_names}
    photometric = "rgb" if axes in ("SYX", "TYXS") else "minisblack"
    planar = "separate" if axes == "SYX" else None
    tifffile.imwrite(
        src,
        data,
        ome=True,
        metadata=metadata,
        photometric=photometric,
        planarconfig=planar,
        extrasamples=[2] if axes == "YXS" else None,
    )
    dest = tmp_path / "out.zarr"
    run("convert", str(src), str(dest), "--chunks", "32", "--quiet", check=True)
    group = zarr.open_group(str(dest), mode="r")
    multiscale = group.attrs["ome"]["multiscales"][0]
    assert [a["name"] for a in multiscale["axes"]] == stored_axes
    expected = np.transpose(data, to_stored)
    np.testing.assert_array_equal(group["0"][...], expected)
    np.testing.assert_array_equal(group["1"][...], reference_mean(expected))
    scale = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale[-2:] == [0.5, 0.5]
    if "Z" in axes:
        assert scale[stored_axes.index("z")] == 2.0
    if channel_names:
        assert [c["label"] for c in group.attrs["ome"]["omero"]["channels"]] == channel_names


def test_a_stack_of_rgb_pages_stays_rgb(tmp_path: Path) -> None:
    """tifffile names the page axis of a plain multi-page RGB TIFF Q: stored as it was, RGB."""
    data = np.random.default_rng(4).integers(0, 250, size=(5, 64, 80, 3), dtype=np.uint8)
    src = tmp_path / "pages.tif"
    tifffile.imwrite(src, data, photometric="rgb")
    dest = tmp_path / "pages.zarr"
    run("convert", str(src), str(dest), "--chunks", "32", "--quiet", check=True)
    group = zarr.open_group(str(dest), mode="r")
    np.testing.assert_array_equal(group["0"][...], np.moveaxis(data, -1, 0))
    assert group["1"].shape == (3, 5, 32, 40)
    assert group.attrs["napari-zarr-tiler"]["rgb"] is True


def test_a_truncated_multi_page_tiff_is_refused_not_cut_short(tmp_path: Path) -> None:
    """tifffile opens what it can of a cut stack (fewer pages); converting that would lose planes."""
    stack = np.arange(7 * 300 * 500, dtype=np.uint16).reshape(7, 300, 500)
    whole = tmp_path / "stack.tif"
    tifffile.imwrite(whole, stack, imagej=True)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    result = run("convert", str(cut), str(tmp_path / "cut.zarr"))
    assert_one_line_error(result, "truncated or corrupt")
    assert not (tmp_path / "cut.zarr").exists()


def test_choose_a_series_of_a_multi_series_tiff(tmp_path: Path, slide_image: np.ndarray) -> None:
    path = tmp_path / "two_series.tif"
    with tifffile.TiffWriter(path) as writer:
        writer.write(slide_image[:300, :400], tile=(128, 128))
        writer.write(slide_image[:200, :100], tile=(128, 128))
    dest = tmp_path / "second.zarr"
    run("convert", str(path), str(dest), "--series", "1", "--quiet", check=True)
    np.testing.assert_array_equal(
        zarr.open_group(str(dest), mode="r")["0"][...], slide_image[:200, :100]
    )
    assert_one_line_error(
        run("convert", str(path), str(tmp_path / "x.zarr"), "--series", "5"), "no series 5"
    )


@pytest.mark.parametrize(
    ("shape", "options"),
    [
        ((700, 900), {"rowsperstrip": 33}),
        ((300, 400, 3), {"photometric": "rgb"}),
        ((3, 200, 300), {"photometric": "minisblack", "planarconfig": "separate"}),
        (
            (2, 3, 50, 60),
            {"byteorder": ">", "photometric": "minisblack", "metadata": {"axes": "ZCYX"}},
        ),
        ((700, 900), {"tile": (256, 256)}),
        ((300, 500, 3), {"tile": (128, 128), "photometric": "rgb"}),
    ],
    ids=["strips", "rgb", "channels", "big-endian-4d", "tiles", "rgb-tiles"],
)
def test_uncompressed_tiff_reads_equal_tifffile(  # read by positioned reads, not zarr
    tmp_path: Path, shape: tuple[int, ...], options: dict
) -> None:
    rng = np.random.default_rng(3)
    data = rng.integers(0, 60000, size=shape, dtype=np.uint16)
    path = tmp_path / "raw.tif"
    tifffile.imwrite(path, data, **options)
    array = SourceSpec(str(path)).open().array
    if isinstance(array, AxisOrderView):  # ZCYX is stored as CZYX; the view reads the file
        np.testing.assert_array_equal(array[1, :, 3:40], data[:, 1, 3:40])
        array = array.array
    assert isinstance(array, ContiguousFileArray | TiledFileArray)
    np.testing.assert_array_equal(array[...], data)
    lead = (0,) * (len(shape) - 2)
    window = (
        (*lead, slice(17, 121), slice(5, 77))
        if len(shape) != 3 or shape[-1] != 3
        else (slice(17, 121), slice(5, 77))
    )
    np.testing.assert_array_equal(array[window], data[window])
    np.testing.assert_array_equal(array[-1], data[-1])


def test_uncompressed_tiff_regions_read_only_their_bytes(tmp_path: Path) -> None:
    """Reading a 200 MB uncompressed stripped TIFF region by region keeps the process small."""
    path = tmp_path / "stripped.tif"
    with tifffile.TiffWriter(path, bigtiff=True) as writer:
        writer.write(
            (np.full((512, 10240), row, dtype=np.uint16) for row in range(20)),
            shape=(10240, 10240),
            dtype=np.uint16,
            rowsperstrip=512,
        )
    script = textwrap.dedent(
        f"""
        from napari_zarr_tiler.sources import SourceSpec
        from napari_zarr_tiler.sources.file_arrays import ContiguousFileArray
        array = SourceSpec({str(path)!r}).open().array
        assert isinstance(array, ContiguousFileArray)
        total = 0
        for y in range(0, 10240, 2048):
            for x in range(0, 10240, 2048):
                total += int(array[y : y + 2048, x : x + 2048][0, 0])
        status = open("/proc/self/status").read()
        print(total, int(status.split("VmHWM:")[1].split()[0]) // 1024)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    total, peak_mb = map(int, result.stdout.split())
    assert total == sum(range(0, 20, 4)) * 5  # the right rows were read
    assert peak_mb < 150, f"peak {peak_mb} MB after reading a 200 MB file"


def test_a_tiff_of_huge_compressed_strips_is_refused_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One compressed strip is decoded whole for every region that touches it: refused past a
    size, with what to do instead; smaller strips convert."""
    data = np.arange(512 * 600, dtype=np.uint16).reshape(512, 600)
    path = tmp_path / "one_strip.tif"
    tifffile.imwrite(path, data, compression="zlib", rowsperstrip=512)
    monkeypatch.setattr(sources, "MAX_SEGMENT_BYTES", 512 * 600 * 2 - 1)
    with pytest.raises(SourceError, match="each compressed strip holds"):
        SourceSpec(str(path)).open()
    monkeypatch.setattr(sources, "MAX_SEGMENT_BYTES", 512 * 600 * 2)
    opened = SourceSpec(str(path)).open()
    try:
        np.testing.assert_array_equal(opened.array[100:200, 50:60], data[100:200, 50:60])
    finally:
        opened.close()
