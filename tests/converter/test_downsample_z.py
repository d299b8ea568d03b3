"""Volume pyramids: ``downsample_z`` ("auto", "always", "never") on real stores, checked level by
level against a numpy reference computed independently on the small test volume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_zarr_tiler import (
    ConversionCancelled,
    InvalidOptionError,
    convert,
    plan_conversion,
    read_zarr,
)
from napari_zarr_tiler.converter.plan import REGION_BYTES
from napari_zarr_tiler.ome_ngff import parse_multiscale

from ..helpers import run


def reference_level(volume: np.ndarray, halve_z: bool, *, label: bool = False) -> np.ndarray:
    """The next level of a (..., z, y, x) volume: Y and X halved, Z too if asked.

    Odd sizes are padded with their last plane, row or column (averaged with itself); images
    take the mean rounded half up (integers) or the float64 mean, labels the first voxel.
    """
    step = (2 if halve_z else 1, 2, 2)
    if label:
        return volume[..., :: step[0], :: step[1], :: step[2]]
    pad = [(0, 0)] * (volume.ndim - 3) + [
        (0, s.__mod__(2) if f == 2 else 0) for s, f in zip(volume.shape[-3:], step, strict=True)
    ]
    padded = np.pad(volume, pad, mode="edge").astype(np.float64)
    *lead, z, y, x = padded.shape
    blocks = padded.reshape(*lead, z // step[0], step[0], y // 2, 2, x // 2, 2)
    count = step[0] * 4
    total = blocks.sum(axis=(-5, -3, -1))
    if volume.dtype.kind in "ui":
        return np.floor((total + count // 2) / count).astype(volume.dtype)
    return (total / count).astype(volume.dtype)


def stored_levels(dest: Path) -> list[np.ndarray]:
    group = zarr.open_group(dest, mode="r")
    count = len(group.attrs["ome"]["multiscales"][0]["datasets"])
    return [np.asarray(group[str(level)]) for level in range(count)]


def stored_scales(dest: Path) -> list[tuple[float, ...]]:
    """The scale of every level, as our own OME parser reads the stored metadata."""
    ome = json.loads((dest / "zarr.json").read_text())["attributes"]["ome"]
    return parse_multiscale(ome, where=str(dest)).scales


def check_pyramid(
    dest: Path, volume: np.ndarray, halved: list[bool], *, label: bool = False
) -> None:
    """Every stored level equals the reference built from the level before it."""
    levels = stored_levels(dest)
    assert len(levels) == len(halved) + 1
    expected = volume
    np.testing.assert_array_equal(levels[0], volume)
    for level, halve_z in enumerate(halved, start=1):
        expected = reference_level(expected, halve_z, label=label)
        np.testing.assert_array_equal(levels[level], expected, err_msg=f"level {level}")


@pytest.fixture
def volume() -> np.ndarray:
    """An odd-sized uint16 volume (odd Z, Y and X: edges padded at every level)."""
    rng = np.random.default_rng(7)
    return rng.integers(0, 65535, size=(21, 75, 69), dtype=np.uint16)


# -- the plan: shapes and factors, without data --------------------------------------------------


def test_auto_halves_an_isotropic_volume_in_all_three_axes() -> None:
    plan = plan_conversion((64, 256, 256), "uint16", chunks=64, axes="zyx", scale=(1, 1, 1))
    assert plan.level_shapes[:3] == ((64, 256, 256), (32, 128, 128), (16, 64, 64))
    assert all(plan.z_halved)
    assert plan.level_factors[2] == (4, 4, 4)
    # levels="auto": until the smallest level fits in one chunk in Y/X and (halved) in Z
    assert plan.level_shapes[-1][0] == 1 and plan.level_shapes[-2][0] > 1
    assert "z halved at levels 1, 2" in plan.describe()


def test_auto_keeps_z_of_an_anisotropic_volume_until_y_and_x_catch_up() -> None:
    plan = plan_conversion(
        (40, 1024, 1024), "uint16", chunks=64, levels=6, axes="zyx", scale=(2.0, 0.5, 0.5)
    )
    # z spacing 2.0 against y/x 0.5, 1.0 (kept), then 2.0: not larger, so halved from level 3
    assert plan.z_halved == (False, False, True, True, True)
    assert [s[0] for s in plan.level_shapes] == [40, 40, 40, 20, 10, 5]
    assert plan.level_factors == (
        (1, 1, 1),
        (1, 2, 2),
        (1, 4, 4),
        (2, 8, 8),
        (4, 16, 16),
        (8, 32, 32),
    )


def test_always_and_never() -> None:
    kwargs = {"chunks": 64, "levels": 3, "axes": "zyx", "scale": (5.0, 1, 1)}
    always = plan_conversion((9, 200, 200), "uint8", downsample_z="always", **kwargs)
    never = plan_conversion((9, 200, 200), "uint8", downsample_z="never", **kwargs)
    assert [s[0] for s in always.level_shapes] == [9, 5, 3]
    assert [s[0] for s in never.level_shapes] == [9, 9, 9]
    assert never.level_factors[2] == (1, 4, 4)
    assert "z halved" not in never.describe()


def test_images_without_a_z_axis_are_not_affected() -> None:
    two_d = plan_conversion((300, 300), "uint8", chunks=64)
    channels = plan_conversion((3, 300, 300), "uint8", chunks=64, axes="cyx")
    assert channels.level_shapes[-1] == (3, 38, 38)
    assert two_d.level_shapes[-1] == (38, 38) and two_d.z_axis is None


def test_always_without_a_z_axis_names_the_option() -> None:
    with pytest.raises(InvalidOptionError, match=r"--downsample-z.*axes"):
        plan_conversion((3, 300, 300), "uint8", axes="cyx", downsample_z="always")
    with pytest.raises(InvalidOptionError, match="--downsample-z"):
        plan_conversion((3, 300, 300), "uint8", axes="zyx", downsample_z="sometimes")  # type: ignore[arg-type]


def test_regions_stay_bounded_on_a_light_sheet_volume() -> None:
    """A 2,000 x 20,000 x 20,000 volume: regions are Z slabs of a few planes, never volumes."""
    plan = plan_conversion((2000, 20000, 20000), "uint16", axes="zyx")
    assert plan.level_shapes[-1][0] < 2000  # the smallest level no longer keeps every plane
    first, slabs = 0, []
    while first < plan.n_levels - 1:
        last = min(first + plan.depth, plan.n_levels - 1)
        region = plan.pass_region_shape(first, last)
        # 2**h planes for a pass halving Z h times: whole chunks of its deepest level
        assert region[0] == min(plan.level_shapes[first][0], 2 ** sum(plan.z_halved[first:last]))
        slabs.append(region[0])
        assert np.prod(region) * 2 <= 2 * REGION_BYTES
        first = last
    assert max(slabs) >= 2


# -- conversions, pixel values and metadata ------------------------------------------------------


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_auto_isotropic_volume_values_and_scales(
    tmp_path: Path, volume: np.ndarray, zarr_format: int
) -> None:
    dest = tmp_path / "iso.zarr"
    # small chunks: many regions and several passes, each a slab of planes
    result = convert(
        volume,
        dest,
        chunks=(1, 16, 16),
        zarr_format=zarr_format,
        axes="zyx",
        scale=(0.4, 0.4, 0.4),
    )
    halved = list(result.plan.z_halved)
    assert halved and all(halved)
    if zarr_format == 3:
        check_pyramid(dest, volume, halved)
        scales = stored_scales(dest)
        assert scales[1] == pytest.approx((0.8, 0.8, 0.8))
        assert scales[3] == pytest.approx((3.2, 3.2, 3.2))
    layer = read_zarr(dest).layers[0]
    shapes = [tuple(level.shape) for level in layer.data]
    assert shapes[:3] == [(21, 75, 69), (11, 38, 35), (6, 19, 18)]
    assert layer.kwargs["scale"] == pytest.approx((0.4, 0.4, 0.4))
    np.testing.assert_array_equal(
        np.asarray(layer.data[2]), reference_level(reference_level(volume, True), True)
    )


def test_auto_anisotropic_volume_keeps_z_for_two_levels(
    tmp_path: Path, volume: np.ndarray
) -> None:
    dest = tmp_path / "aniso.zarr"
    result = convert(volume, dest, chunks=(1, 8, 8), levels=5, axes="zyx", scale=(2.0, 0.5, 0.5))
    assert list(result.plan.z_halved) == [False, False, True, True]
    check_pyramid(dest, volume, [False, False, True, True])
    assert [s[0] for s in result.plan.level_shapes] == [21, 21, 21, 11, 6]
    assert stored_scales(dest) == [
        pytest.approx(s) for s in [(2, 0.5, 0.5), (2, 1, 1), (2, 2, 2), (4, 4, 4), (8, 8, 8)]
    ]


@pytest.mark.parametrize("mode", ["always", "never"])
def test_always_and_never_values(tmp_path: Path, volume: np.ndarray, mode: str) -> None:
    dest = tmp_path / f"{mode}.zarr"
    # z spacing 3: "auto" would keep Z at level 1; "always" halves it anyway
    result = convert(
        volume, dest, chunks=(2, 16, 16), levels=4, scale=(3, 1, 1), downsample_z=mode
    )
    halved = [mode == "always"] * 3
    assert list(result.plan.z_halved) == halved
    check_pyramid(dest, volume, halved)
    z_scales = [s[0] for s in stored_scales(dest)]
    assert z_scales == ([3, 6, 12, 24] if mode == "always" else [3, 3, 3, 3])


@pytest.mark.parametrize("chunks", [(5, 16, 16), (21, 32, 32), (3, 75, 69)])
def test_z_chunks_of_several_planes(tmp_path: Path, volume: np.ndarray, chunks: tuple) -> None:
    """Z chunks of odd sizes, the whole Z, or whole planes: every level still gets whole chunks."""
    dest = tmp_path / "zchunks.zarr"
    result = convert(volume, dest, chunks=chunks, levels=4, workers=2, axes="zyx")
    check_pyramid(dest, volume, [True, True, True])
    group = zarr.open_group(dest, mode="r")
    for level, shape in enumerate(result.plan.level_shapes):
        assert group[str(level)].chunks == tuple(
            min(c, s) for c, s in zip(chunks, shape, strict=True)
        )


def test_labels_take_the_nearest_voxel(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 1000, size=(13, 40, 37), dtype=np.uint32)
    dest = tmp_path / "labels.zarr"
    result = convert(labels, dest, chunks=(1, 8, 8), label=True, axes="zyx")
    halved = list(result.plan.z_halved)
    assert halved[:2] == [True, True]
    check_pyramid(dest, labels, halved, label=True)
    assert set(np.unique(stored_levels(dest)[-1])) <= set(np.unique(labels))


@pytest.mark.parametrize("dtype", ["float32", "int64", "uint8"])
def test_mean_of_eight_in_other_types(tmp_path: Path, dtype: str) -> None:
    rng = np.random.default_rng(5)
    if dtype == "int64":  # near the type's limits: no overflow in the 8-value mean
        volume = rng.integers(2**62, 2**63 - 1, size=(7, 30, 30), dtype=np.int64)
    else:
        volume = (rng.random((7, 30, 30)) * 250).astype(dtype)
    dest = tmp_path / f"{dtype}.zarr"
    result = convert(volume, dest, chunks=(1, 8, 8), levels=3, axes="zyx")
    levels = stored_levels(dest)
    assert list(result.plan.z_halved) == [True, True]
    if dtype == "int64":
        padded = np.pad(volume, [(0, 1), (0, 0), (0, 0)], mode="edge").astype(object)
        blocks = padded.reshape(4, 2, 15, 2, 15, 2).sum(axis=(1, 3, 5))
        expected = ((blocks + 4) // 8).astype(np.int64)
        np.testing.assert_array_equal(levels[1], expected)
    else:
        np.testing.assert_array_equal(levels[1], reference_level(volume, True))


def test_channels_and_time_are_never_halved(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    image = rng.integers(0, 255, size=(2, 3, 10, 40, 40), dtype=np.uint8)  # t, c, z, y, x
    dest = tmp_path / "tczyx.zarr"
    result = convert(image, dest, chunks=(1, 1, 1, 16, 16), levels=3, axes="tczyx")
    assert result.plan.level_shapes[1] == (2, 3, 5, 20, 20)
    check_pyramid(dest, image, [True, True])
    assert stored_scales(dest)[2] == pytest.approx((1, 1, 4, 4, 4))


def test_resume_with_another_z_rule_is_refused(tmp_path: Path, volume: np.ndarray) -> None:
    """The z rule is part of what a resumed run must share (it changes the planned levels)."""
    dest = tmp_path / "resumed.zarr"
    seen = []

    def cancel() -> bool:
        return len(seen) >= 1

    options = {"chunks": (1, 8, 8), "levels": 2, "workers": 1, "resume": True, "axes": "zyx"}
    with pytest.raises(ConversionCancelled):
        convert(volume, dest, progress=seen.append, cancel=cancel, **options)
    with pytest.raises(InvalidOptionError, match="other options"):
        convert(volume, dest, downsample_z="never", **options)
    result = convert(volume, dest, **options)
    assert result.resumed_regions
    check_pyramid(dest, volume, list(result.plan.z_halved))


@pytest.mark.parametrize("axes", [None, ("0", "1", "2")], ids=["no-axes", "napari-labels"])
def test_auto_keeps_axis_0_of_an_unnamed_stack(
    tmp_path: Path, volume: np.ndarray, axes: tuple[str, ...] | None
) -> None:
    """Axis 0 of a 3-D array nobody named may be time or channels: "auto" never averages it."""
    dest = tmp_path / "stack.zarr"
    result = convert(volume, dest, chunks=(1, 16, 16), levels=3, axes=axes)
    assert result.plan.z_halved == (False, False) and result.plan.z_axis is None
    check_pyramid(dest, volume, [False, False])
    assert [s[0] for s in stored_scales(dest)] == [1, 1, 1]


def test_auto_halves_z_named_by_napari_axis_labels(tmp_path: Path, volume: np.ndarray) -> None:
    """A layer whose axis labels are OME names (z, y, x) names its Z axis."""
    result = convert(volume, tmp_path / "named.zarr", chunks=(1, 16, 16), axes=("Z", "y", "x"))
    assert result.plan.z_axis == 0 and all(result.plan.z_halved)


def test_always_accepts_the_guessed_axes(tmp_path: Path, volume: np.ndarray) -> None:
    """An explicit "always" halves the guessed Z (axis -3) of an unnamed stack."""
    result = convert(volume, tmp_path / "a.zarr", chunks=(1, 16, 16), downsample_z="always")
    assert result.plan.z_axis == 0 and all(result.plan.z_halved)
    check_pyramid(tmp_path / "a.zarr", volume, list(result.plan.z_halved))
    with pytest.raises(InvalidOptionError, match="--downsample-z"):
        convert(volume[0], tmp_path / "flat.zarr", downsample_z="always")
    assert not (tmp_path / "flat.zarr").exists()


@pytest.mark.parametrize(("file_axes", "halved"), [("ZYX", True), ("TYX", False)])
def test_auto_follows_the_axes_a_tiff_names(
    tmp_path: Path, volume: np.ndarray, file_axes: str, halved: bool
) -> None:
    """A source's metadata names its axes: a TIFF's Z is halved, its T never."""
    tifffile = pytest.importorskip("tifffile")
    path = tmp_path / "v.tif"
    tifffile.imwrite(path, volume, metadata={"axes": file_axes})
    result = convert(path, tmp_path / "v.zarr", chunks=(1, 16, 16), levels=3)
    assert list(result.plan.z_halved) == [halved, halved]
    check_pyramid(tmp_path / "v.zarr", volume, [halved, halved])


# -- the command line ----------------------------------------------------------------------------


@pytest.mark.slow
def test_command_line_flag(tmp_path: Path, volume: np.ndarray) -> None:
    np.save(tmp_path / "v.npy", volume)
    never = tmp_path / "never.zarr"
    run(
        "convert",
        str(tmp_path / "v.npy"),
        str(never),
        "--chunks",
        "1,16,16",
        "--downsample-z",
        "never",
        "--quiet",
        check=True,
    )
    assert [level.shape[0] for level in stored_levels(never)] == [21] * len(stored_levels(never))
    # a .npy file names no axes: "auto" keeps axis 0, "always" halves it
    auto = tmp_path / "auto.zarr"
    run(
        "convert", str(tmp_path / "v.npy"), str(auto), "--chunks", "1,16,16", "--quiet", check=True
    )
    check_pyramid(auto, volume, [False] * (len(stored_levels(auto)) - 1))
    always = tmp_path / "always.zarr"
    run(
        "convert",
        str(tmp_path / "v.npy"),
        str(always),
        "--chunks",
        "1,16,16",
        "--downsample-z",
        "always",
        "--quiet",
        check=True,
    )
    check_pyramid(always, volume, [True] * (len(stored_levels(always)) - 1))
    np.save(tmp_path / "flat.npy", volume[0])
    failed = run(
        "convert", str(tmp_path / "flat.npy"), str(tmp_path / "f.zarr"), "--downsample-z", "always"
    )
    assert failed.returncode == 1
    assert "--downsample-z" in failed.stderr and "Traceback" not in failed.stderr
    assert not (tmp_path / "f.zarr").exists()
