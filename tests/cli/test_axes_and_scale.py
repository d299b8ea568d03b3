"""``--axes`` and ``--scale``: name the axes of a source that names none (a .npy volume) and give
its pixel size, so that ``--downsample-z auto`` halves a near-isotropic z and the OME metadata
carries the names and scale; bad values get one line and a non-zero exit before anything is
written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from ..helpers import assert_one_line_error, run

pytestmark = pytest.mark.slow  # console-script subprocesses


@pytest.fixture
def volume(tmp_path: Path) -> tuple[Path, np.ndarray]:
    data = (np.arange(16 * 64 * 64) % 251).astype(np.uint8).reshape(16, 64, 64)
    path = tmp_path / "vol.npy"
    np.save(path, data)
    return path, data


def _multiscale(store: Path) -> dict:
    return json.loads((store / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]


def test_named_isotropic_z_is_halved_and_written_into_the_metadata(
    tmp_path: Path, volume: tuple[Path, np.ndarray]
) -> None:
    src, data = volume
    out = tmp_path / "named.zarr"
    run("convert", str(src), str(out), "--chunks", "16", "--axes", "z,y,x", "--scale", "0.5,0.5,0.5", check=True)  # fmt: skip
    group = zarr.open_group(str(out), mode="r")
    assert group["1"].shape == (8, 32, 32)  # z halved with y and x: the spacing is isotropic
    np.testing.assert_array_equal(group["0"][...], data)
    meta = _multiscale(out)
    assert [axis["name"] for axis in meta["axes"]] == ["z", "y", "x"]
    scales = [d["coordinateTransformations"][0]["scale"] for d in meta["datasets"]]
    assert scales[0] == [0.5, 0.5, 0.5]
    assert scales[1] == [1.0, 1.0, 1.0]


def test_without_axes_the_leading_axis_of_a_npy_volume_is_kept(
    tmp_path: Path, volume: tuple[Path, np.ndarray]
) -> None:
    src, _ = volume
    out = tmp_path / "unnamed.zarr"
    run("convert", str(src), str(out), "--chunks", "16", check=True)
    assert zarr.open_group(str(out), mode="r")["1"].shape == (16, 32, 32)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--axes", "zzx"], "--axes must be distinct names from t, c, z, y, x"),
        (["--axes", "xyz"], "--axes must be distinct names from t, c, z, y, x"),
        (["--axes", "zyx", "--scale", "1,1"], "--scale has 2 values but --axes names 3"),
        (["--axes", "yx"], "has 2 names but the image has 3 axes"),
        (["--scale", "1,1"], "scale must have 3 finite values"),
    ],
)
def test_bad_axes_or_scale_get_one_line_and_nothing_is_written(
    tmp_path: Path, volume: tuple[Path, np.ndarray], options: list[str], fragment: str
) -> None:
    src, _ = volume
    out = tmp_path / "bad.zarr"
    assert_one_line_error(run("convert", str(src), str(out), *options), fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vol.npy"]


@pytest.mark.parametrize("scale", ["1,abc", "0,1,1", "1,inf,1", ""])
def test_a_scale_that_is_not_positive_numbers_is_a_usage_error(
    tmp_path: Path, volume: tuple[Path, np.ndarray], scale: str
) -> None:
    src, _ = volume
    result = run("convert", str(src), str(tmp_path / "bad.zarr"), "--scale", scale)
    assert result.returncode == 2
    assert "scale must be comma-separated positive numbers" in result.stderr
    assert "Traceback" not in result.stderr
