"""OME-Zarr 0.6 (RFC-5 coordinate systems and transformations) opens with its true placement.

Stores come from ngff-zarr 0.50 (``version="0.6"``) and from metadata written by hand after the
specification's examples (the ``ome/ngff-spec`` repository).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from napari_zarr_tiler import read_zarr
from napari_zarr_tiler.errors import StoreReadError
from napari_zarr_tiler.ome_ngff import version_numbers

from ..helpers import run

PLUGIN = "napari-zarr-tiler"
YX_SPACE = [
    {"name": "y", "type": "space", "unit": "micrometer"},
    {"name": "x", "type": "space", "unit": "micrometer"},
]


# ---------------------------------------------------------------------------------------------
# Stores written by ngff-zarr 0.50
# ---------------------------------------------------------------------------------------------


def _ngff_zarr_store(
    path: Path, data: np.ndarray, dims: list[str], scale: dict[str, float], **kwargs: Any
) -> list[np.ndarray]:
    """Write ``data`` with ngff-zarr as OME-Zarr 0.6; return the levels it wrote."""
    nz = pytest.importorskip("ngff_zarr")
    image = nz.to_ngff_image(data, dims=dims, scale=scale, **kwargs)
    multiscales = nz.to_multiscales(image, scale_factors=[2, 4])
    nz.to_ngff_zarr(str(path), multiscales, version="0.6")
    assert zarr.open_group(str(path), mode="r").attrs["ome"]["version"] == "0.6"
    return [np.asarray(level.data) for level in multiscales.images]


def test_ngff_zarr_cyx_splits_channels_with_scale_translation_and_units(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 4000, (2, 64, 48), dtype=np.uint16)
    path = tmp_path / "cyx.ome.zarr"
    written = _ngff_zarr_store(
        path,
        data,
        ["c", "y", "x"],
        {"y": 0.5, "x": 0.5},
        translation={"y": 10.0, "x": 20.0},
        axes_units={"y": "micrometer", "x": "micrometer"},
    )
    contents = read_zarr(path)
    assert contents.notices == []
    (layer,) = contents.layers
    assert layer.kwargs["channel_axis"] == 0
    assert len(layer.kwargs["name"]) == 2
    assert layer.kwargs["scale"] == (0.5, 0.5)
    assert layer.kwargs["translate"] == (10.0, 20.0)
    assert layer.kwargs["axis_labels"] == ("y", "x")
    assert layer.kwargs["units"] == ("micrometer", "micrometer")
    assert len(layer.data) == len(written) == 3
    np.testing.assert_array_equal(layer.data[0].compute(), written[0])
    np.testing.assert_array_equal(layer.data[-1].compute(), written[-1])


def test_ngff_zarr_tczyx(tmp_path: Path) -> None:
    data = np.random.default_rng(1).integers(0, 255, (2, 3, 4, 64, 64), dtype=np.uint8)
    path = tmp_path / "tczyx.ome.zarr"
    written = _ngff_zarr_store(
        path,
        data,
        ["t", "c", "z", "y", "x"],
        {"t": 2.0, "z": 1.5, "y": 0.25, "x": 0.25},
        translation={"t": 0.0, "z": 3.0, "y": 1.0, "x": 2.0},
        axes_units={"t": "second", "z": "micrometer", "y": "micrometer", "x": "micrometer"},
    )
    (layer,) = read_zarr(path).layers
    assert layer.kwargs["channel_axis"] == 1
    assert len(layer.kwargs["name"]) == 3
    assert layer.kwargs["scale"] == (2.0, 1.5, 0.25, 0.25)
    assert layer.kwargs["translate"] == (0.0, 3.0, 1.0, 2.0)
    assert layer.kwargs["axis_labels"] == ("t", "z", "y", "x")
    assert layer.kwargs["units"] == ("second", "micrometer", "micrometer", "micrometer")
    np.testing.assert_array_equal(layer.data[0].compute(), written[0])
    np.testing.assert_array_equal(layer.data[-1].compute(), written[-1])


# ---------------------------------------------------------------------------------------------
# Hand-written 0.6 metadata (after the specification's examples)
# ---------------------------------------------------------------------------------------------


def _dataset(path: str, transform: dict[str, Any], output: str = "intrinsic") -> dict[str, Any]:
    return {
        "path": path,
        "coordinateTransformations": [
            {"input": {"path": path}, "output": {"name": output}, **transform}
        ],
    }


def _write_06(
    path: Path,
    levels: list[np.ndarray],
    transforms: list[dict[str, Any]],
    *,
    axes: list[dict[str, Any]] | None = None,
    version: str = "0.6",
    extra: dict[str, Any] | None = None,
    label: bool = False,
) -> Path:
    """An OME-Zarr 0.6 image: ``levels`` at s0, s1, ... with one transform each."""
    multiscale: dict[str, Any] = {
        "name": "hand",
        "coordinateSystems": [{"name": "intrinsic", "axes": axes or YX_SPACE}],
        "datasets": [_dataset(f"s{i}", t) for i, t in enumerate(transforms)],
        **(extra or {}),
    }
    ome: dict[str, Any] = {"version": version, "multiscales": [multiscale]}
    if label:
        ome["image-label"] = {}
    group = zarr.open_group(str(path), mode="w", zarr_format=3, attributes={"ome": ome})
    names = [a["name"] for a in axes or YX_SPACE]
    for index, level in enumerate(levels):
        array = group.create_array(
            f"s{index}", shape=level.shape, dtype=level.dtype, dimension_names=names
        )
        array[...] = level
    return path


def _pyramid(shape: tuple[int, ...] = (64, 64), seed: int = 2) -> list[np.ndarray]:
    base = np.random.default_rng(seed).integers(0, 1000, shape, dtype=np.uint16)
    return [base, base[..., ::2, ::2].copy()]


def _scale(values: list[float]) -> dict[str, Any]:
    return {"type": "scale", "scale": values}


def test_spec_example_tczyx_with_scales_per_level(tmp_path: Path) -> None:
    axes = [
        {"name": "t", "type": "time", "unit": "millisecond"},
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": "micrometer"},
        *YX_SPACE,
    ]
    levels = _pyramid((2, 2, 3, 32, 32))
    path = _write_06(
        tmp_path / "s.zarr",
        levels,
        [_scale([0.1, 1.0, 0.5, 0.5, 0.5]), _scale([0.1, 1.0, 0.5, 1.0, 1.0])],
        axes=axes,
        version="0.6.dev4",
    )
    contents = read_zarr(path)
    assert contents.notices == []
    (layer,) = contents.layers
    assert layer.kwargs["channel_axis"] == 1
    assert layer.kwargs["scale"] == (0.1, 0.5, 0.5, 0.5)
    assert layer.kwargs["axis_labels"] == ("t", "z", "y", "x")
    assert layer.kwargs["units"] == ("millisecond", "micrometer", "micrometer", "micrometer")
    np.testing.assert_array_equal(layer.data[0].compute(), levels[0])
    np.testing.assert_array_equal(layer.data[-1].compute(), levels[-1])


def test_sequence_applies_its_steps_in_order(tmp_path: Path) -> None:
    # translation then scale (the spec's sequence.json): x -> (x + t) * s
    sequence = {
        "type": "sequence",
        "transformations": [
            {"type": "translation", "translation": [0.1, 0.9]},
            {"type": "scale", "scale": [2, 3]},
        ],
    }
    path = _write_06(tmp_path / "q.zarr", _pyramid()[:1], [sequence])
    contents = read_zarr(path)
    layer = contents.layers[0]
    assert contents.notices == []
    assert layer.kwargs["scale"] == (2.0, 3.0)
    assert layer.kwargs["translate"] == pytest.approx((0.2, 2.7))


def test_identity_and_multiscale_level_scale(tmp_path: Path) -> None:
    levels = _pyramid()
    physical = {"name": "physical", "axes": YX_SPACE}
    extra = {
        "coordinateTransformations": [
            {
                "type": "scale",
                "scale": [10, 10],
                "input": {"name": "intrinsic"},
                "output": {"name": "physical"},
            }
        ]
    }
    path = _write_06(
        tmp_path / "i.zarr",
        levels,
        [{"type": "identity"}, _scale([2.0, 2.0])],
        extra=extra,
    )
    group = zarr.open_group(str(path), mode="r+")
    ome = group.attrs["ome"]
    ome["multiscales"][0]["coordinateSystems"].insert(0, physical)
    group.attrs["ome"] = ome
    contents = read_zarr(path)
    assert contents.notices == []
    layer = contents.layers[0]
    assert layer.kwargs["scale"] == (10.0, 10.0)
    assert layer.kwargs["translate"] == (0.0, 0.0)
    np.testing.assert_array_equal(layer.data[-1].compute(), levels[-1])


@pytest.mark.parametrize(
    ("transform", "named"),
    [
        ({"type": "affine", "affine": [[1, 0.2, 5], [0, 1, 7]]}, "'affine'"),
        ({"type": "rotation", "rotation": [[0, -1], [1, 0]]}, "'rotation'"),
        ({"type": "displacements", "path": "field"}, "'displacements'"),
        ({"type": "coordinates", "path": "coords"}, "'coordinates'"),
        ({"type": "mapAxis", "mapAxis": [1, 0]}, "'mapAxis'"),
        ({"type": "bijection", "forward": {}, "inverse": {}}, "'bijection'"),
        ({"type": "scale", "path": "scale_array"}, "'scale given by path'"),
    ],
)
def test_transform_napari_cannot_show_opens_with_a_notice(
    tmp_path: Path, transform: dict[str, Any], named: str
) -> None:
    sequence = {"type": "sequence", "transformations": [_scale([0.5, 0.25]), transform]}
    levels = _pyramid()
    path = _write_06(tmp_path / "a.zarr", levels, [sequence, _scale([1.0, 0.5])])
    contents = read_zarr(path)
    (notice,) = contents.notices  # one notice, though both levels are read
    assert named in notice
    assert "napari cannot show" in notice
    layer = contents.layers[0]
    assert layer.kwargs["scale"] == (0.5, 0.25)  # what can be expressed is kept
    np.testing.assert_array_equal(layer.data[0].compute(), levels[0])


@pytest.mark.slow
def test_info_command_shows_06_placement_and_notices(tmp_path: Path) -> None:
    affine = {"type": "affine", "affine": [[1, 0.2, 5], [0, 1, 7]]}
    sequence = {"type": "sequence", "transformations": [_scale([0.5, 0.25]), affine]}
    path = _write_06(tmp_path / "info.zarr", _pyramid()[:1], [sequence], version="0.7")
    out = run("info", str(path), check=True).stdout
    assert "OME-Zarr 0.7 image hand" in out
    assert "axes: y (micrometer), x (micrometer)" in out
    assert "scale (level 0): [0.5, 0.25]" in out
    assert "note:" in out
    assert "'0.7' is newer" in out
    assert "'affine' coordinate transformation" in out


def test_multiscale_transform_to_a_system_of_other_dimensions_is_not_applied(
    tmp_path: Path,
) -> None:
    extra = {
        "coordinateTransformations": [
            {"type": "scale", "scale": [10, 10, 10], "input": "intrinsic", "output": "volume"}
        ]
    }
    path = _write_06(tmp_path / "d.zarr", _pyramid()[:1], [_scale([0.5, 0.5])], extra=extra)
    group = zarr.open_group(str(path), mode="r+")
    ome = group.attrs["ome"]
    volume = {"name": "volume", "axes": [{"name": "z"}, *YX_SPACE]}
    ome["multiscales"][0]["coordinateSystems"].append(volume)
    group.attrs["ome"] = ome
    contents = read_zarr(path)
    (notice,) = contents.notices
    assert "'volume' has 3 axes" in notice
    assert contents.layers[0].kwargs["scale"] == (0.5, 0.5)
    assert contents.layers[0].kwargs["axis_labels"] == ("y", "x")


def test_identity_map_axis_needs_no_notice(tmp_path: Path) -> None:
    path = _write_06(tmp_path / "m.zarr", _pyramid()[:1], [{"type": "mapAxis", "mapAxis": [0, 1]}])
    assert read_zarr(path).notices == []


@pytest.mark.parametrize("version", ["0.6", "0.6.dev3", "0.6.dev4", "0.6rc0", "0.6-dev2"])
def test_version_spellings_are_read_as_06(tmp_path: Path, version: str) -> None:
    path = _write_06(
        tmp_path / "v.zarr",
        _pyramid((2, 64, 64)),
        [_scale([1.0, 0.5, 0.5]), _scale([1.0, 1.0, 1.0])],
        axes=[{"name": "c", "type": "channel"}, *YX_SPACE],
        version=version,
    )
    contents = read_zarr(path)
    assert contents.notices == []
    (layer,) = contents.layers
    assert layer.kwargs["channel_axis"] == 0  # 0.1 rules would have guessed z, y, x
    assert layer.kwargs["scale"] == (0.5, 0.5)
    assert layer.kwargs["axis_labels"] == ("y", "x")


@pytest.mark.parametrize("version", ["0.7", "1.0", "0.10.dev1"])
def test_future_version_is_read_with_06_rules_and_a_notice(tmp_path: Path, version: str) -> None:
    path = _write_06(
        tmp_path / "f.zarr",
        _pyramid(),
        [_scale([0.5, 0.5]), _scale([1.0, 1.0])],
        version=version,
    )
    contents = read_zarr(path)
    (notice,) = contents.notices
    assert repr(version) in notice
    assert "0.6" in notice
    assert contents.layers[0].kwargs["scale"] == (0.5, 0.5)
    assert contents.layers[0].kwargs["axis_labels"] == ("y", "x")


def test_version_numbers() -> None:
    assert version_numbers("0.6.dev3") == (0, 6)
    assert version_numbers("0.6rc0") == (0, 6)
    assert version_numbers("0.6-dev1") == (0, 6)
    assert version_numbers("0.10") == (0, 10)
    assert version_numbers("1.0") == (1, 0)
    assert version_numbers("latest") is None


def test_06_labels_inside_an_image(tmp_path: Path) -> None:
    levels = _pyramid()
    path = _write_06(
        tmp_path / "l.zarr",
        levels,
        [_scale([0.5, 0.5]), _scale([1.0, 1.0])],
        extra={},
    )
    root = zarr.open_group(str(path), mode="r+")
    root.create_group("labels", attributes={"ome": {"version": "0.6", "labels": ["cells"]}})
    masks = [(level > 500).astype(np.uint8) for level in levels]
    _write_06(
        path / "labels" / "cells",
        masks,
        [
            {
                "type": "sequence",
                "transformations": [
                    _scale([0.5, 0.5]),
                    {"type": "translation", "translation": [1.0, 2.0]},
                ],
            },
            _scale([1.0, 1.0]),
        ],
        label=True,
    )
    image, labels = read_zarr(path).layers
    assert image.layer_type == "image"
    assert labels.layer_type == "labels"
    assert labels.kwargs["name"].endswith("cells")
    assert labels.kwargs["scale"] == (0.5, 0.5)
    assert labels.kwargs["translate"] == (1.0, 2.0)
    assert labels.kwargs["axis_labels"] == ("y", "x")
    np.testing.assert_array_equal(labels.data[0].compute(), masks[0])
    np.testing.assert_array_equal(labels.data[-1].compute(), masks[-1])


# ---------------------------------------------------------------------------------------------
# Safety checks hold for 0.6 too
# ---------------------------------------------------------------------------------------------


def test_06_dataset_path_outside_the_store_is_refused(tmp_path: Path) -> None:
    path = _write_06(tmp_path / "p.zarr", _pyramid()[:1], [_scale([1.0, 1.0])])
    group = zarr.open_group(str(path), mode="r+")
    ome = group.attrs["ome"]
    ome["multiscales"][0]["datasets"][0]["path"] = "../elsewhere"
    group.attrs["ome"] = ome
    with pytest.raises(StoreReadError, match="not a plain path"):
        read_zarr(path)


def test_06_scale_napari_cannot_draw_is_refused(tmp_path: Path) -> None:
    path = _write_06(tmp_path / "s.zarr", _pyramid()[:1], [_scale([1e-30, 1.0])])
    with pytest.raises(StoreReadError, match="napari draws scales"):
        read_zarr(path)


def test_06_deeply_nested_sequence_is_refused(tmp_path: Path) -> None:
    transform: dict[str, Any] = _scale([1.0, 1.0])
    for _ in range(100):
        transform = {"type": "sequence", "transformations": [transform]}
    path = _write_06(tmp_path / "n.zarr", _pyramid()[:1], [transform])
    with pytest.raises(StoreReadError, match="nested"):
        read_zarr(path)


def test_06_without_coordinate_systems_or_axes_is_refused(tmp_path: Path) -> None:
    path = _write_06(tmp_path / "c.zarr", _pyramid()[:1], [_scale([1.0, 1.0])])
    group = zarr.open_group(str(path), mode="r+")
    ome = group.attrs["ome"]
    del ome["multiscales"][0]["coordinateSystems"]
    group.attrs["ome"] = ome
    with pytest.raises(StoreReadError, match="no coordinateSystems"):
        read_zarr(path)


# ---------------------------------------------------------------------------------------------
# In a real viewer
# ---------------------------------------------------------------------------------------------


def test_viewer_opens_ngff_zarr_06_store(make_napari_viewer, tmp_path: Path) -> None:
    data = np.random.default_rng(3).integers(0, 4000, (2, 64, 48), dtype=np.uint16)
    path = tmp_path / "viewer.ome.zarr"
    written = _ngff_zarr_store(
        path,
        data,
        ["c", "y", "x"],
        {"y": 0.5, "x": 0.5},
        translation={"y": 10.0, "x": 20.0},
    )
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin=PLUGIN)
    assert len(layers) == 2
    for index, layer in enumerate(layers):
        np.testing.assert_allclose(layer.scale, (0.5, 0.5))
        np.testing.assert_allclose(layer.translate, (10.0, 20.0))
        assert tuple(layer.axis_labels) == ("y", "x")
        np.testing.assert_array_equal(np.asarray(layer.data[0]), written[0][index])
