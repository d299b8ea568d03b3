"""The console script on Zeiss CZI files (real subprocesses, files from pylibCZIrw's writer):
convert with scenes, ``info`` listing the scenes, and one-line errors for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from ..helpers import assert_one_line_error, run
from ..sources.czi_files import pyczi, set_compression, tiles, write_czi, write_mosaic


@pytest.fixture
def mosaic(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    data = tiles(seed=3)
    return write_mosaic(tmp_path / "slide.czi", data), data


def test_convert_czi_writes_pixels_channels_and_pixel_size(mosaic, tmp_path: Path) -> None:
    path, _ = mosaic
    dest = tmp_path / "slide.zarr"
    result = run("convert", str(path), str(dest), "--chunks", "64", check=True)
    assert "scene 0 of 2" in result.stderr and "choose with --series N" in result.stderr
    group = zarr.open_group(str(dest), mode="r")
    ome = group.attrs["ome"]
    assert [c["label"] for c in ome["omero"]["channels"]] == ["DAPI", "GFP"]
    assert [c["color"] for c in ome["omero"]["channels"]] == ["FF0000", "00FF00"]
    transform = ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]
    assert transform["scale"] == pytest.approx([1.0, 0.5, 0.5])
    with pyczi.open_czi(str(path)) as reader:
        for c in range(2):
            expected = reader.read(roi=(0, 0, 240, 200), plane={"C": c}, scene=0)[..., 0]
            np.testing.assert_array_equal(group["0"][c], expected)
    assert not group["0"][:, 100:, 120:].any()  # the mosaic's gap


def test_series_picks_the_scene(mosaic, tmp_path: Path) -> None:
    path, data = mosaic
    dest = tmp_path / "scene1.zarr"
    run("convert", str(path), str(dest), "--series", "1", "--quiet", check=True)
    group = zarr.open_group(str(dest), mode="r")
    level0 = group["0"]
    assert level0.shape == (2, 100, 120)
    np.testing.assert_array_equal(level0[0], data[3])
    # The scene's place: written at x=1000, y=2000 px of 0.5 micrometer.
    transforms = group.attrs["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    assert transforms[1]["translation"] == pytest.approx([0.0, 1000.0, 500.0])


def test_convert_a_stack_written_from_z_one(tmp_path: Path) -> None:
    planes = {(0, 0, z): np.full((40, 50), z, np.uint8) for z in (1, 2)}
    path = write_czi(tmp_path / "z1.czi", planes)
    dest = tmp_path / "z1.zarr"
    run("convert", str(path), str(dest), "--quiet", check=True)
    level0 = zarr.open_group(str(dest), mode="r")["0"]
    assert level0.shape == (1, 2, 40, 50)
    assert level0[0, :, 0, 0].tolist() == [1, 2]


def test_series_out_of_range_lists_the_scenes(mosaic, tmp_path: Path) -> None:
    path, _ = mosaic
    result = run("convert", str(path), str(tmp_path / "x.zarr"), "--series", "5")
    assert_one_line_error(result, "no scene 5")
    assert "1 120 x 100 px at (1000, 2000)" in result.stderr


def test_info_lists_the_scenes(mosaic) -> None:
    path, _ = mosaic
    result = run("info", str(path), check=True)
    assert "2 scene(s) (--series N; scene 0 is converted by default)" in result.stdout
    assert "0 240 x 200 px at (0, 0)" in result.stdout
    assert "channels: DAPI, GFP" in result.stdout


def _bad_files(path: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    raw = path.read_bytes()
    truncated = folder / "truncated.czi"
    truncated.write_bytes(raw[: len(raw) // 2])
    empty = folder / "empty.czi"
    empty.write_bytes(b"")
    fake = folder / "fake.czi"
    fake.write_text("this is a text file, not a CZI\n" * 40)
    return {
        "truncated": (truncated, "truncated or corrupt"),
        "empty": (empty, "truncated or corrupt"),
        "not-czi": (fake, "not a CZI file"),
        "jpeg": (set_compression(path, folder / "jpeg.czi", 1), "compressed as JPEG"),
        "jpeg-xr-garbage": (set_compression(path, folder / "jxr.czi", 4), "libCZI cannot read"),
    }


@pytest.mark.parametrize(
    ("case", "command"),
    [
        *(
            (case, command)
            for case in ("truncated", "empty", "not-czi", "jpeg")
            for command in ("convert", "info")
        ),
        ("jpeg-xr-garbage", "convert"),  # info reads metadata only: it decodes no pixels
    ],
)
def test_bad_czi_gets_one_line_and_no_output(mosaic, tmp_path, case: str, command: str) -> None:
    path, _ = mosaic
    bad, fragment = _bad_files(path, tmp_path)[case]
    dest = tmp_path / "out.zarr"
    args = ("convert", str(bad), str(dest)) if command == "convert" else ("info", str(bad))
    assert_one_line_error(run(*args), fragment)
    assert not dest.exists()
    assert not list(tmp_path.glob(".*out.zarr*"))  # no staging left behind


def test_without_pylibczirw_the_error_names_the_extra(mosaic, tmp_path: Path) -> None:
    path, _ = mosaic
    # A child interpreter where importing pylibCZIrw fails, as on an install without the extra.
    code = (
        "import sys; sys.modules['pylibCZIrw'] = None; "
        "from napari_zarr_tiler.cli import main; "
        f"sys.exit(main(['convert', {str(path)!r}, {str(tmp_path / 'o.zarr')!r}]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert_one_line_error(result, "pip install pylibCZIrw")


def test_help_mentions_czi() -> None:
    result = run("convert", "--help", check=True)
    assert "CZI" in result.stdout and "scene of a CZI" in result.stdout
