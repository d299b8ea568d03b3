"""TIFF sources and the console script on the files testers brought back (issue 10).

Real TIFFs written by tifffile (damaged by patching or cutting their bytes), converted by the
real console script in subprocesses; the written stores are read back with zarr.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from ..helpers import assert_one_line_error, run


def _image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 4000, size=shape, dtype=np.uint16)


def _patch_strip_offsets_past_end(path: Path) -> None:
    """Point every strip (or tile) offset of every page past the end of the file."""
    with tifffile.TiffFile(path) as tiff:
        size, order = tiff.filehandle.size, tiff.byteorder
        tags = [
            page.tags["TileOffsets" if page.is_tiled else "StripOffsets"] for page in tiff.pages
        ]
        edits = [(tag.valueoffset, tag.count, "Q" if tag.dtype == 16 else "I") for tag in tags]
    data = bytearray(path.read_bytes())
    for value_offset, count, kind in edits:
        for index in range(count):
            step = struct.calcsize(kind)
            struct.pack_into(order + kind, data, value_offset + step * index, size + 64 * index)
    path.write_bytes(bytes(data))


def _multiscale(dest: Path) -> tuple[dict, zarr.Group]:
    group = zarr.open_group(str(dest), mode="r")
    return group.attrs["ome"], group


# ------------------------------------------------------------------------------------------
# 9: damaged TIFFs are refused with the reason
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"rowsperstrip": 16},
        {"rowsperstrip": 16, "compression": "zlib"},
        {"tile": (64, 64)},
        {"tile": (64, 64), "compression": "zlib"},
    ],
    ids=["stripped", "stripped-zlib", "tiled", "tiled-zlib"],
)
def test_strips_past_the_end_of_the_file_are_refused(tmp_path: Path, options: dict) -> None:
    src = tmp_path / "damaged.tif"
    tifffile.imwrite(src, _image((128, 160)), **options)
    _patch_strip_offsets_past_end(src)
    before = src.read_bytes()
    result = run("convert", str(src), str(tmp_path / "out.zarr"))
    assert_one_line_error(result, "the TIFF is truncated or corrupt")
    assert "point past the end of the file" in result.stderr
    assert str(src) in result.stderr
    assert not (tmp_path / "out.zarr").exists()
    assert src.read_bytes() == before  # the source is never modified


def _first_ifd_past_the_end(src: Path) -> None:
    tifffile.imwrite(src, _image((64, 80)))
    data = bytearray(src.read_bytes())
    struct.pack_into("<I", data, 4, len(data) + 100)  # the header's offset to the first IFD
    src.write_bytes(bytes(data))


def test_a_tiff_whose_first_ifd_is_past_its_end_is_called_damaged(tmp_path: Path) -> None:
    src = tmp_path / "cut.tif"
    _first_ifd_past_the_end(src)
    result = run("convert", str(src), str(tmp_path / "out.zarr"))
    assert_one_line_error(result, "the TIFF is truncated or corrupt")
    assert "invalid offset to first page" in result.stderr  # tifffile's own reason
    assert "no series" not in result.stderr


# ------------------------------------------------------------------------------------------
# 11: calibration, channel colours, axes tifffile cannot map
# ------------------------------------------------------------------------------------------


def test_imagej_calibration_is_carried(tmp_path: Path) -> None:
    data = _image((3, 4, 2, 48, 64))  # TZCYX, as Fiji saves a hyperstack
    src = tmp_path / "fiji.tif"
    tifffile.imwrite(
        src,
        data,
        imagej=True,
        resolution=(1 / 0.325, 1 / 0.5),
        metadata={"axes": "TZCYX", "spacing": 2.5, "unit": "um", "finterval": 0.75},
    )
    dest = tmp_path / "fiji.zarr"
    run("convert", str(src), str(dest), "--chunks", "32", "--quiet", check=True)
    ome, group = _multiscale(dest)
    multiscale = ome["multiscales"][0]
    axes = multiscale["axes"]
    assert [a["name"] for a in axes] == ["t", "c", "z", "y", "x"]
    assert [a.get("unit") for a in axes] == [
        "second",
        None,
        "micrometer",
        "micrometer",
        "micrometer",
    ]
    scale = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == pytest.approx([0.75, 1.0, 2.5, 0.5, 0.325])
    np.testing.assert_array_equal(group["0"][...], np.transpose(data, (0, 2, 1, 3, 4)))


def _ome_tiff_with_xml(
    path: Path, data: np.ndarray, pixels_attributes: str, channels: str
) -> None:
    """An OME-TIFF whose OME-XML we write ourselves (tifffile refuses INF sizes and colours)."""
    size_c, size_y, size_x = data.shape
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
        '<Image ID="Image:0" Name="cells"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" '
        f'Type="uint16" SizeX="{size_x}" SizeY="{size_y}" SizeC="{size_c}" SizeZ="1" '
        f'SizeT="1" {pixels_attributes}>{channels}'
        f'<TiffData IFD="0" PlaneCount="{size_c}"/></Pixels></Image></OME>'
    )
    tifffile.imwrite(path, data, description=xml, metadata=None, photometric="minisblack")


def test_ome_channel_colours_are_carried(tmp_path: Path) -> None:
    data = _image((3, 64, 80), seed=1)
    # OME Color: signed 32-bit RGBA. Blue 0x0000FFFF, green 0x00FF00FF, red 0xFF0000FF (< 0).
    colors = {"DAPI": 0x0000FFFF, "GFP": 0x00FF00FF, "mCherry": 0xFF0000FF - (1 << 32)}
    channels = "".join(
        f'<Channel ID="Channel:0:{i}" Name="{name}" Color="{color}" SamplesPerPixel="1"/>'
        for i, (name, color) in enumerate(colors.items())
    )
    src = tmp_path / "cells.ome.tif"
    _ome_tiff_with_xml(src, data, 'PhysicalSizeX="0.2" PhysicalSizeY="0.2"', channels)
    dest = tmp_path / "cells.zarr"
    run("convert", str(src), str(dest), "--quiet", check=True)
    ome, group = _multiscale(dest)
    written = [(c["label"], c["color"]) for c in ome["omero"]["channels"]]
    assert written == [("DAPI", "0000FF"), ("GFP", "00FF00"), ("mCherry", "FF0000")]
    np.testing.assert_array_equal(group["0"][...], data)


@pytest.mark.parametrize(
    ("n_channels", "expected"),
    [
        (1, ["FFFFFF"]),
        (2, ["FF00FF", "00FF00"]),
        (3, ["00FFFF", "FF00FF", "FFFF00"]),
    ],
)
def test_default_channel_colours_read_well_together(
    tmp_path: Path, n_channels: int, expected: list[str]
) -> None:
    src = tmp_path / "plain.npy"
    np.save(src, _image((n_channels, 32, 40)) if n_channels > 1 else _image((32, 40)))
    dest = tmp_path / "plain.zarr"
    args = ("convert", str(src), str(dest), "--quiet")
    if n_channels > 1:
        # a .npy has no axis names: convert through a TIFF that says C
        tif = tmp_path / "plain.tif"
        tifffile.imwrite(tif, np.load(src), metadata={"axes": "CYX"}, photometric="minisblack")
        args = ("convert", str(tif), str(dest), "--quiet")
    run(*args, check=True)
    ome, _ = _multiscale(dest)
    assert [c["color"] for c in ome["omero"]["channels"]] == expected


def test_an_axis_tifffile_cannot_map_never_renames_the_others(tmp_path: Path) -> None:
    """FLIM: C channels by H lifetime bins. H is folded into channels; C is never time."""
    data = _image((2, 5, 48, 64), seed=2)  # C, H, Y, X
    src = tmp_path / "flim.tif"
    tifffile.imwrite(src, data, metadata={"axes": "CHYX"})
    assert tifffile.TiffFile(src).series[0].axes == "CHYX"
    dest = tmp_path / "flim.zarr"
    result = run("convert", str(src), str(dest), "--chunks", "32", check=True)
    assert "folded into channels" in result.stderr
    ome, group = _multiscale(dest)
    axes = ome["multiscales"][0]["axes"]
    assert [(a["name"], a["type"]) for a in axes] == [
        ("c", "channel"),
        ("y", "space"),
        ("x", "space"),
    ]
    np.testing.assert_array_equal(group["0"][...], data.reshape(10, 48, 64))
    labels = [c["label"] for c in ome["omero"]["channels"]]
    assert labels[:2] == ["channel 0 lifetime 0", "channel 0 lifetime 1"]
    assert labels[5] == "channel 1 lifetime 0"


def test_folded_channels_read_any_block(tmp_path: Path) -> None:
    """Regions across folded channels (a chunk of several channels) read the right planes."""
    data = _image((3, 4, 40, 50), seed=5)  # C, H, Y, X
    src = tmp_path / "flim.tif"
    tifffile.imwrite(
        src, data, metadata={"axes": "CHYX"}, compression="zlib", photometric="minisblack"
    )
    dest = tmp_path / "flim.zarr"
    run("convert", str(src), str(dest), "--chunks", "5,16,16", "--quiet", check=True)
    _, group = _multiscale(dest)
    np.testing.assert_array_equal(group["0"][...], data.reshape(12, 40, 50))


# ------------------------------------------------------------------------------------------
# 13: unusable physical sizes are ignored with a warning naming the file and the axis
# ------------------------------------------------------------------------------------------


def test_an_inf_physical_size_is_ignored_with_a_warning(tmp_path: Path) -> None:
    data = _image((2, 64, 80), seed=3)
    src = tmp_path / "inf.ome.tif"
    _ome_tiff_with_xml(
        src,
        data,
        'PhysicalSizeX="INF" PhysicalSizeY="0.5" PhysicalSizeYUnit="&#181;m"',
        "".join(f'<Channel ID="Channel:0:{i}" SamplesPerPixel="1"/>' for i in range(2)),
    )
    dest = tmp_path / "inf.zarr"
    result = run("convert", str(src), str(dest), check=True)
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, result.stderr
    assert str(src) in warnings[0]
    assert "axis X" in warnings[0]
    ome, group = _multiscale(dest)
    scale = ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == [1.0, 0.5, 1.0]
    np.testing.assert_array_equal(group["0"][...], data)


# ------------------------------------------------------------------------------------------
# 14: messages that say what is wrong
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dst", "fragment"),
    [
        ("https://example.org/slide.tif", "{tmp}/a.zarr", "https://example.org/slide.tif: URLs"),
        ("s3://bucket/slide.tif", "{tmp}/a.zarr", "not supported yet as the source"),
        (
            "{tmp}/img.npy",
            "https://example.org/out.zarr",
            "only s3:// URLs (or local folders) can be written to",
        ),
    ],
)
def test_a_url_is_named_as_a_url(tmp_path: Path, src: str, dst: str, fragment: str) -> None:
    np.save(tmp_path / "img.npy", np.zeros((32, 32), dtype=np.uint8))
    result = run("convert", src.format(tmp=tmp_path), dst.format(tmp=tmp_path))
    assert_one_line_error(result, fragment)
    assert "no such file" not in result.stderr
    assert not list(tmp_path.glob("*:*"))  # no local folder named after the URL


def test_a_path_with_a_newline_keeps_its_reason(tmp_path: Path) -> None:
    src = tmp_path / "two\nlines.tif"
    result = run("convert", str(src), str(tmp_path / "out.zarr"))
    assert_one_line_error(result, "two\\nlines.tif: no such file or folder")


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--chunks", "0"], "chunks must be positive"),
        (["--chunks", "64", "--shards", "100"], "multiple of the chunks"),
        (["--shards", "1024", "--zarr-format", "2"], "zarr format 3"),
        (["--compressor", "none", "--clevel", "5"], "no effect without a compressor"),
        (["--compressor", "zstd", "--clevel", "99"], "out of range"),
        (["--levels", "0"], "levels must be"),
        (["--layout", "array", "--levels", "3"], "cannot hold a pyramid"),
        (["--series", "-1"], "--series must be 0 or more"),
    ],
)
def test_options_are_checked_before_the_source_is_opened(
    tmp_path: Path, options: list[str], fragment: str
) -> None:
    # The source is a damaged TIFF: had it been opened first, its error would show instead.
    src = tmp_path / "damaged.tif"
    _first_ifd_past_the_end(src)
    result = run("convert", str(src), str(tmp_path / "out.zarr"), *options)
    assert_one_line_error(result, fragment)
    assert "truncated" not in result.stderr
    assert "series" not in result.stderr.replace("--series", "")
