"""Zeiss CZI sources: pixels, mosaic gaps, metadata, scenes, pixel types and bad input, on files
written by pylibCZIrw's own writer (see ``czi_files``), compared with pylibCZIrw's own reads."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_zarr_tiler import SourceError, convert, read_zarr
from napari_zarr_tiler.sources import SourceSpec
from napari_zarr_tiler.sources.czi import describe_czi
from napari_zarr_tiler.sources.spec import source_kind

from ..helpers import run
from .czi_files import pyczi, set_compression, tiles, write_czi, write_mosaic


@pytest.fixture
def mosaic(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    data = tiles()
    return write_mosaic(tmp_path / "mosaic.czi", data), data


def reference(path: Path, roi: tuple[int, int, int, int], plane: dict[str, int], scene: int):
    with pyczi.open_czi(str(path)) as reader:
        return reader.read(roi=roi, plane=plane, scene=scene)


def test_czi_paths_are_czi_sources() -> None:
    assert source_kind("slide.czi") == "czi"
    assert source_kind("SLIDE.CZI") == "czi"


@pytest.mark.parametrize(
    ("y", "x", "height", "width"),
    [(0, 0, 200, 240), (37, 91, 101, 77), (95, 115, 10, 10), (199, 239, 1, 1)],
)
def test_pixels_equal_pylibczirw_reads(mosaic, y: int, x: int, height: int, width: int) -> None:
    path, _ = mosaic
    source = SourceSpec(str(path)).open()
    try:
        assert source.array.shape == (2, 200, 240)
        assert source.array.dtype == np.uint16
        for c in range(2):
            expected = reference(path, (x, y, width, height), {"C": c}, 0)[..., 0]
            got = source.array[c, y : y + height, x : x + width]
            np.testing.assert_array_equal(got, expected)
        both = source.array[:, y : y + height, x : x + width]
        assert both.shape == (2, height, width)
    finally:
        source.close()


def test_tiles_are_placed_as_the_file_places_them_and_gaps_read_zero(mosaic) -> None:
    path, data = mosaic
    source = SourceSpec(str(path)).open()
    array = source.array
    np.testing.assert_array_equal(array[0, :100, :120], data[0])
    np.testing.assert_array_equal(array[1, :100, 120:], data[1] + 1)
    np.testing.assert_array_equal(array[0, 100:, :120], data[2])
    gap = array[:, 100:, 120:]
    assert gap.shape == (2, 100, 120) and not gap.any()  # the tiles are never 0 there
    assert array[1, 150, 150] == 0 and array[1, 50, 50] == data[0][50, 50] + 1
    source.close()


def test_scenes_are_selected_by_series_in_scene_order(mosaic) -> None:
    path, data = mosaic
    second = SourceSpec(str(path), series=1).open()
    assert second.array.shape == (2, 100, 120)
    np.testing.assert_array_equal(second.array[1], data[3] + 1)
    assert "scene 1 of 2" in second.description
    second.close()
    first = SourceSpec(str(path)).open()
    assert "scene 0 of 2" in first.description and "--series" in first.description
    first.close()
    with pytest.raises(SourceError, match=r"no scene 2 .*2 scene\(s\)"):
        SourceSpec(str(path), series=2).open()


def test_metadata_becomes_converter_options(mosaic) -> None:
    path, _ = mosaic
    source = SourceSpec(str(path)).open()
    options = source.options
    source.close()
    assert options["axes"] == ("c", "y", "x")
    assert options["scale"] == pytest.approx((1.0, 0.5, 0.5))
    assert options["units"] == (None, "micrometer", "micrometer")
    assert options["channel_names"] == ("DAPI", "GFP")
    assert options["colors"] == ("FF0000", "00FF00")
    assert options["rgb"] is False


def test_converted_store_has_pixels_channel_names_and_pixel_size(mosaic, tmp_path: Path) -> None:
    path, _ = mosaic
    spec = SourceSpec(str(path))
    options = spec.opened.options
    convert(spec, tmp_path / "out.zarr", chunks=64, **options)
    group = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    ome = group.attrs["ome"]
    assert [c["label"] for c in ome["omero"]["channels"]] == ["DAPI", "GFP"]
    axes = ome["multiscales"][0]["axes"]
    assert [(a["name"], a.get("unit")) for a in axes] == [
        ("c", None),
        ("y", "micrometer"),
        ("x", "micrometer"),
    ]
    scale = ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == pytest.approx([1.0, 0.5, 0.5])
    for c in range(2):
        expected = reference(path, (0, 0, 240, 200), {"C": c}, 0)[..., 0]
        np.testing.assert_array_equal(group["0"][c], expected)


def test_t_and_z_axes_and_mixed_grey_types(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    planes = {}
    for t in range(2):
        for z in range(3):
            planes[(t, 0, z)] = rng.integers(0, 255, (40, 50), dtype=np.uint8)
            planes[(t, 1, z)] = rng.integers(0, 65535, (40, 50), dtype=np.uint16)
    path = write_czi(tmp_path / "tz.czi", planes)
    source = SourceSpec(str(path)).open()
    array = source.array
    assert source.options["axes"] == ("t", "c", "z", "y", "x")
    assert source.options["scale"] == pytest.approx((1.0, 1.0, 3.0, 1.0, 1.0))
    assert array.shape == (2, 2, 3, 40, 50) and array.dtype == np.uint16  # Gray8 widened
    for (t, c, z), plane in planes.items():
        np.testing.assert_array_equal(array[t, c, z], plane)
    np.testing.assert_array_equal(
        array[1, :, 2, 5:9, 7], np.stack([planes[1, c, 2][5:9, 7] for c in (0, 1)])
    )
    source.close()


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_rgb_is_converted_in_rgb_order(tmp_path: Path, dtype: str) -> None:
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 250, (30, 40, 3)).astype(dtype)
    path = write_czi(tmp_path / "rgb.czi", {(0, 0, 0): rgb[..., ::-1].copy()})  # written as BGR
    source = SourceSpec(str(path)).open()
    assert source.options["rgb"] is True and source.options["axes"] == ("y", "x")
    assert source.array.shape == (30, 40, 3) and source.array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(source.array[:, :, :], rgb)
    np.testing.assert_array_equal(source.array[3:7, 5, 1:], rgb[3:7, 5, 1:])
    source.close()


def test_zstd_compressed_and_float_mosaics_read_back(tmp_path: Path) -> None:
    image = np.linspace(0, 1, 60 * 70, dtype=np.float32).reshape(60, 70)
    path = write_czi(tmp_path / "f.czi", {(0, 0, 0): image}, compression="zstd1:ExplicitLevel=2")
    source = SourceSpec(str(path)).open()
    assert source.array.dtype == np.float32
    np.testing.assert_array_equal(source.array[0], image)
    source.close()


def test_array_pickles_without_its_reader(mosaic) -> None:
    path, data = mosaic
    source = SourceSpec(str(path)).open()
    copy = pickle.loads(pickle.dumps(source.array))
    source.close()
    np.testing.assert_array_equal(copy[0, :100, :120], data[0])
    copy.close()


def test_describe_lists_scenes_and_the_default(mosaic) -> None:
    path, _ = mosaic
    text = describe_czi(path)
    assert "2 scene(s)" in text and "scene 0 is converted by default" in text
    assert "0 240 x 200 px at (0, 0)" in text and "1 120 x 100 px at (1000, 2000)" in text
    assert "DAPI, GFP" in text and "X 0.5 micrometer" in text


@pytest.mark.parametrize(
    ("mode", "fragment"),
    [(1, "compressed as JPEG"), (2, "compressed as LZW"), (77, "unknown compression 77")],
)
def test_undecodable_compression_is_refused_at_open(mosaic, tmp_path, mode, fragment) -> None:
    path, _ = mosaic
    bad = set_compression(path, tmp_path / "bad.czi", mode)
    with pytest.raises(SourceError, match=fragment):
        SourceSpec(str(bad)).open()


def test_undecodable_jpeg_xr_data_is_refused_at_open(mosaic, tmp_path) -> None:
    path, _ = mosaic
    bad = set_compression(path, tmp_path / "jxr.czi", 4)  # JPEG-XR, but the bytes are not
    with pytest.raises(SourceError, match=r"truncated or corrupt.*libCZI cannot read"):
        SourceSpec(str(bad)).open()


@pytest.mark.parametrize("keep", [0, 100, 600, -200])
def test_truncated_czi_is_refused(mosaic, tmp_path: Path, keep: int) -> None:
    path, _ = mosaic
    raw = path.read_bytes()
    cut = tmp_path / "cut.czi"
    cut.write_bytes(raw[:keep])
    with pytest.raises(SourceError, match="not a readable CZI file"):
        SourceSpec(str(cut)).open()


def test_a_file_named_czi_that_is_not_one_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "fake.czi"
    fake.write_bytes(b"II*\0" + bytes(4096))
    with pytest.raises(SourceError, match="not a CZI file"):
        SourceSpec(str(fake)).open()


def test_planes_whose_indices_do_not_start_at_zero_are_read(tmp_path: Path) -> None:
    # T from 2, C from 1, Z = 1 and 3 (plane Z=2 missing): pylibCZIrw's box says 0, 0, 0.
    rng = np.random.default_rng(4)
    planes = {
        (t, c, z): rng.integers(1, 65535, (20, 30), dtype=np.uint16)
        for t in (2, 3)
        for c in (1, 2)
        for z in (1, 3)
    }
    path = write_czi(tmp_path / "offset.czi", planes)
    source = SourceSpec(str(path)).open()
    array = source.array
    assert array.shape == (2, 2, 3, 20, 30) and array.dtype == np.uint16
    assert source.options["channel_names"] == ("Channel:1", "Channel:2")
    for (t, c, z), plane in planes.items():
        np.testing.assert_array_equal(array[t - 2, c - 1, z - 1], plane)
    assert not array[:, :, 1].any()  # Z=2: no tile, background
    source.close()
    convert(str(path), tmp_path / "offset.zarr", chunks=16)
    np.testing.assert_array_equal(
        zarr.open_array(str(tmp_path / "offset.zarr" / "0"), mode="r")[1, 0, 2], planes[3, 1, 3]
    )


@pytest.mark.parametrize(("zs", "axes"), [((1, 2), ("c", "z", "y", "x")), ((1,), ("c", "y", "x"))])
def test_a_stack_written_from_z_one_is_read(tmp_path: Path, zs: tuple[int, ...], axes) -> None:
    planes = {(0, 0, z): np.full((20, 30), 10 * z, np.uint16) for z in zs}  # was "corrupt"
    source = SourceSpec(str(write_czi(tmp_path / "z1.czi", planes))).open()
    assert source.options["axes"] == axes
    assert source.array.shape == (1, *([len(zs)] if len(zs) > 1 else []), 20, 30)
    np.testing.assert_array_equal(source.array[0, ..., 0, 0], [10 * z for z in zs])
    source.close()


def world_origin(layer) -> tuple[float, float]:
    """Where a layer's pixel (0, 0) sits, in the file's pixels (translate / scale)."""
    kwargs = layer.kwargs
    return tuple(t / s for t, s in zip(kwargs["translate"], kwargs["scale"], strict=True))


def test_scenes_converted_separately_keep_their_places(mosaic, tmp_path: Path) -> None:
    path, _ = mosaic
    layers = []
    for number in (0, 1):
        dest = tmp_path / f"scene{number}.zarr"
        convert(SourceSpec(str(path), series=number), dest, chunks=64)
        layers.append(read_zarr(dest).layers[0])
    assert layers[0].kwargs["translate"] == pytest.approx((0.0, 0.0))
    assert layers[1].kwargs["translate"] == pytest.approx((1000.0, 500.0))  # (y, x) micrometer
    for layer in layers:  # at its place, each reads what libCZI composes there for the whole file
        y, x = (round(v) for v in world_origin(layer))
        height, width = layer.data[0].shape[-2:]
        with pyczi.open_czi(str(path)) as reader:
            expected = reader.read(roi=(x, y, width, height), plane={"C": 1})[..., 0]
        np.testing.assert_array_equal(layer.data[0][1].compute(), expected)


def test_translate_is_the_scene_origin_times_the_pixel_size(tmp_path: Path) -> None:
    image = np.ones((30, 40, 3), np.uint8)
    path = write_czi(tmp_path / "at.czi", {(0, 0, 0): image}, location=(-300, 70))
    source = SourceSpec(str(path)).open()
    assert source.options["axes"] == ("y", "x") and source.options["rgb"] is True
    assert source.options["translate"] == pytest.approx((70.0, -300.0))  # 1 µm pixels
    assert "at (-300, 70)" in describe_czi(path)
    source.close()


def test_python_api_on_a_czi_path_equals_the_cli(mosaic, tmp_path: Path) -> None:
    path, _ = mosaic
    api, cli = tmp_path / "api.zarr", tmp_path / "cli.zarr"
    convert(str(path), api, chunks=64)
    run("convert", str(path), str(cli), "--chunks", "64", "--quiet", check=True)
    by_api, by_cli = zarr.open_group(str(api), mode="r"), zarr.open_group(str(cli), mode="r")
    assert by_api.attrs.asdict() == by_cli.attrs.asdict()
    assert sorted(by_api.array_keys()) == sorted(by_cli.array_keys())
    for key in by_api.array_keys():
        np.testing.assert_array_equal(by_api[key][...], by_cli[key][...])
