"""OME-Zarr 0.6 scenes: several images placed in shared coordinate systems open as layers placed
by their transformations (the scene's, composed with each image's own).

Stores are written by hand after the specification's examples (``scene_stores``) and by
ngff-zarr 0.50 (``NgffScene``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from napari_zarr_tiler import read_zarr
from napari_zarr_tiler.errors import StoreReadError
from napari_zarr_tiler.reader.layers import MAX_LAYERS

from .scene_stores import (
    STITCHING,
    YX_AXES,
    stitching_scene,
    tile,
    to_world,
    write_image,
    write_scene,
)

PLUGIN = "napari-zarr-tiler"


def _placements(path: Path) -> dict[str, tuple[tuple[float, ...], tuple[float, ...]]]:
    """Each layer's (scale, translate), by the image's path in the scene."""
    return {
        layer.kwargs["name"].split("/", 1)[1]: (layer.kwargs["scale"], layer.kwargs["translate"])
        for layer in read_zarr(path).layers
    }


def test_the_specifications_tile_stitching_scene_opens_tiles_at_their_positions(
    tmp_path: Path,
) -> None:
    path = stitching_scene(tmp_path / "scene.zarr")
    contents = read_zarr(path)
    assert contents.notices == []
    assert [layer.kwargs["name"] for layer in contents.layers] == [
        f"scene/{tile_path}" for tile_path in STITCHING
    ]
    for seed, (layer, shift) in enumerate(zip(contents.layers, STITCHING.values(), strict=True)):
        assert layer.kwargs["scale"] == (0.5, 0.5)
        assert layer.kwargs["translate"] == tuple(shift)
        assert layer.kwargs["axis_labels"] == ("y", "x")
        assert layer.kwargs["units"] == ("micrometer", "micrometer")
        assert [level.shape for level in layer.data] == [(64, 48), (32, 24)]
        np.testing.assert_array_equal(np.asarray(layer.data[0]), tile(seed))


def test_scene_scale_composes_with_the_images_own_transformations(tmp_path: Path) -> None:
    root = tmp_path / "scene.zarr"
    write_scene(
        root,
        [
            {
                "type": "sequence",
                "input": {"path": "a", "name": "physical"},
                "output": {"name": "world"},
                "transformations": [
                    {"type": "scale", "scale": [2.0, 4.0]},
                    {"type": "translation", "translation": [100.0, 200.0]},
                ],
            }
        ],
        [{"name": "world", "axes": YX_AXES}],
    )
    write_image(root, "a", tile(0), scale=(0.5, 0.25), translation=(1.0, 2.0))
    # Pixel (i, j) -> physical (0.5 i + 1, 0.25 j + 2) -> world (2 (...) + 100, 4 (...) + 200).
    assert _placements(root) == {"a": ((1.0, 1.0), (102.0, 208.0))}
    layer = read_zarr(root).layers[0]
    assert len(layer.data) == 2 and layer.kwargs["multiscale"] is True


def test_a_scene_without_systems_is_shown_in_the_first_output_inverting_where_needed(
    tmp_path: Path,
) -> None:
    root = tmp_path / "hops.zarr"
    write_scene(
        root,
        [
            {
                "type": "translation",
                "translation": [10.0, 20.0],
                "input": {"path": "low", "name": "physical"},
                "output": {"path": "mid", "name": "physical"},
            },
            {
                "type": "scale",
                "scale": [2.0, 2.0],
                "input": {"path": "mid", "name": "physical"},
                "output": {"path": "high", "name": "physical"},
            },
        ],
    )
    for seed, path in enumerate(("low", "mid", "high")):
        write_image(root, path, tile(seed), scale=(1.0, 1.0))
    # Shown in "mid": "high" comes back through the inverse of its scale.
    assert _placements(root) == {
        "low": ((1.0, 1.0), (10.0, 20.0)),
        "mid": ((1.0, 1.0), (0.0, 0.0)),
        "high": ((0.5, 0.5), (0.0, 0.0)),
    }


def test_a_system_reached_through_the_images_own_transformations(tmp_path: Path) -> None:
    # As the specification's scene test: the scene names the images' "rotated" systems.
    root = tmp_path / "rotated.zarr"
    write_scene(
        root,
        [
            {
                "type": "translation",
                "translation": [30.0, 11.0],
                "input": {"path": "a", "name": "shifted"},
                "output": {"name": "world"},
            },
            {
                "type": "translation",
                "translation": [90.0, 40.0],
                "input": {"path": "b", "name": "rotated"},
                "output": {"name": "world"},
            },
        ],
        [{"name": "world", "axes": YX_AXES}],
    )
    write_image(
        root,
        "a",
        tile(0),
        more_systems=[{"name": "shifted", "axes": YX_AXES}],
        multiscale_transforms=[
            {
                "type": "translation",
                "translation": [5.0, 6.0],
                "input": {"name": "physical"},
                "output": {"name": "shifted"},
            }
        ],
    )
    write_image(
        root,
        "b",
        tile(1),
        more_systems=[{"name": "rotated", "axes": YX_AXES}],
        multiscale_transforms=[
            {
                "type": "rotation",
                "rotation": [[0.0, -1.0], [1.0, 0.0]],
                "input": {"name": "physical"},
                "output": {"name": "rotated"},
            }
        ],
    )
    contents = read_zarr(root)
    placements = {layer.kwargs["name"]: layer.kwargs["translate"] for layer in contents.layers}
    assert placements == {"rotated/a": (35.0, 17.0), "rotated/b": (90.0, 40.0)}
    (notice,) = contents.notices
    assert "'rotation'" in notice and "napari" in notice and "rotated.zarr" in notice


def test_unshowable_and_unconnected_images_open_with_a_notice(tmp_path: Path) -> None:
    root = tmp_path / "mixed.zarr"
    write_scene(
        root,
        [
            to_world("shifted", "translation", [5.0, 7.0]),
            {
                "type": "affine",
                "affine": [[1.0, 0.2, 3.0], [0.0, 1.0, 4.0]],
                "input": {"path": "sheared", "name": "physical"},
                "output": {"name": "world"},
            },
            {
                "type": "translation",
                "translation": [1.0, 1.0],
                "input": {"path": "alone", "name": "physical"},
                "output": {"name": "elsewhere"},
            },
        ],
        [{"name": "world", "axes": YX_AXES}, {"name": "elsewhere", "axes": YX_AXES}],
    )
    for seed, path in enumerate(("shifted", "sheared", "alone")):
        write_image(root, path, tile(seed), translation=(2.0, 3.0))
    contents = read_zarr(root)
    assert _placements(root) == {
        "shifted": ((0.5, 0.5), (7.0, 10.0)),
        "sheared": ((0.5, 0.5), (2.0, 3.0)),  # placed without the affine
        "alone": ((0.5, 0.5), (2.0, 3.0)),  # in its own system
    }
    assert len(contents.notices) == 2
    affine, alone = contents.notices
    assert "'affine'" in affine and "cannot show" in affine
    assert "alone" in alone and "'world'" in alone and "own coordinate system" in alone


def test_a_bijection_from_the_scene_into_an_image_is_followed_backwards(tmp_path: Path) -> None:
    root = tmp_path / "bijection.zarr"
    shift = {"type": "translation", "translation": [6.0, 8.0]}
    unshift = {"type": "translation", "translation": [-6.0, -8.0]}
    write_scene(
        root,
        [
            {
                "type": "bijection",
                "forward": shift,
                "inverse": unshift,
                "input": {"name": "world"},
                "output": {"path": "a", "name": "physical"},
            }
        ],
        [{"name": "world", "axes": YX_AXES}],
    )
    write_image(root, "a", tile(0), scale=(1.0, 1.0))
    # world -> a is +6, +8: a's pixels sit at -6, -8 in the world.
    assert _placements(root) == {"a": ((1.0, 1.0), (-6.0, -8.0))}


def test_a_scene_of_more_images_than_layers_opens_the_first_with_a_notice(
    tmp_path: Path,
) -> None:
    root = tmp_path / "many.zarr"
    paths = [f"t{index}" for index in range(MAX_LAYERS + 2)]
    write_scene(
        root,
        [to_world(path, "translation", [0.0, 10.0 * i]) for i, path in enumerate(paths)],
        [{"name": "world", "axes": YX_AXES}],
    )
    for path in paths:
        write_image(root, path, tile(0, (4, 4)))
    contents = read_zarr(root)
    assert len(contents.layers) == MAX_LAYERS
    assert contents.layers[-1].kwargs["translate"] == (0.0, 10.0 * (MAX_LAYERS - 1))
    assert any(f"names {MAX_LAYERS + 2} images" in notice for notice in contents.notices)


def test_a_missing_image_is_skipped_with_a_notice(tmp_path: Path) -> None:
    root = tmp_path / "gap.zarr"
    write_scene(
        root,
        [to_world("here", "translation", [1.0, 2.0]), to_world("gone", "translation", [3.0, 4.0])],
        [{"name": "world", "axes": YX_AXES}],
    )
    write_image(root, "here", tile(0))
    contents = read_zarr(root)
    assert [layer.kwargs["name"] for layer in contents.layers] == ["gap/here"]
    assert any("'gone'" in notice and "missing" in notice for notice in contents.notices)


@pytest.mark.parametrize("path", ["../outside", "/etc", "a/../../b", "C:/x"])
def test_a_scene_naming_a_path_outside_the_store_is_refused(tmp_path: Path, path: str) -> None:
    (tmp_path / "outside").mkdir()
    root = write_scene(
        tmp_path / "hostile.zarr",
        [to_world(path, "translation", [0.0, 0.0])],
        [{"name": "world", "axes": YX_AXES}],
    )
    with pytest.raises(StoreReadError, match="not a plain path inside the store"):
        read_zarr(root)


@pytest.mark.parametrize(
    ("scene", "fragment"),
    [
        ([], "'scene' must be an object"),
        ({"coordinateTransformations": []}, "lists no coordinateTransformations"),
        ({"coordinateTransformations": [{"type": "identity", "input": {}}]}, "does not name"),
    ],
)
def test_malformed_scene_metadata_gets_a_clear_message(
    tmp_path: Path, scene: object, fragment: str
) -> None:
    import zarr

    root = tmp_path / "bad.zarr"
    zarr.open_group(str(root), mode="w", zarr_format=3).attrs["ome"] = {
        "version": "0.6",
        "scene": scene,
    }
    with pytest.raises(StoreReadError, match=fragment) as error:
        read_zarr(root)
    assert "bad.zarr" in str(error.value)


def test_labels_of_a_scene_image_are_placed_with_it(tmp_path: Path) -> None:
    import zarr

    root = stitching_scene(tmp_path / "scene.zarr")
    labels = zarr.open_group(str(root / "tile_3" / "labels"), mode="w", zarr_format=3)
    labels.attrs["ome"] = {"version": "0.6", "labels": ["cells"]}
    write_image(root / "tile_3" / "labels", "cells", (tile(9) > 3000).astype(np.uint8))
    cells = zarr.open_group(str(root / "tile_3" / "labels" / "cells"), mode="r+")
    cells.attrs["ome"] = {**cells.attrs["ome"], "image-label": {}}
    contents = read_zarr(root)
    (label_layer,) = [layer for layer in contents.layers if layer.layer_type == "labels"]
    assert label_layer.kwargs["name"] == "scene/tile_3 cells"
    assert label_layer.kwargs["translate"] == (276.0, 348.0)
    assert label_layer.kwargs["scale"] == (0.5, 0.5)


def _ngff_zarr_scene(path: Path) -> list[np.ndarray]:
    """Two c, y, x images in a scene written by ngff-zarr 0.50; return their level-0 data."""
    nz = pytest.importorskip("ngff_zarr")
    from ngff_zarr.v06.zarr_metadata import Axis, CoordinateSystem, Translation
    from ngff_zarr.v06.zarr_metadata import CoordinateSystemIdentifier as Ref

    data = [
        np.random.default_rng(seed).integers(0, 4000, (2, 64, 48), np.uint16) for seed in (0, 1)
    ]
    images = {}
    for name, pixels in zip(("left", "right"), data, strict=True):
        image = nz.to_ngff_image(
            pixels,
            dims=("c", "y", "x"),
            scale={"y": 0.5, "x": 0.5},
            translation={"y": 1.0, "x": 2.0},
            axes_units={"y": "micrometer", "x": "micrometer"},
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            images[name] = nz.to_multiscales(image, scale_factors=[2])
    world = CoordinateSystem(
        name="world",
        axes=[
            Axis(name="c", type="channel"),
            Axis(name="y", type="space", unit="micrometer"),
            Axis(name="x", type="space", unit="micrometer"),
        ],
    )
    shifts = {"left": [0.0, 0.0, 0.0], "right": [0.0, 10.0, 40.0]}
    transforms = [
        Translation(
            translation=shift, input=Ref(path=name, name="intrinsic"), output=Ref(name="world")
        )
        for name, shift in shifts.items()
    ]
    scene = nz.NgffScene(
        images=images, coordinateTransformations=transforms, coordinateSystems=[world]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nz.to_ome_zarr(str(path), scene, version="0.6")
    return data


def test_ngff_zarr_scene_opens_images_split_by_channel_and_placed(tmp_path: Path) -> None:
    path = tmp_path / "nz_scene.zarr"
    data = _ngff_zarr_scene(path)
    contents = read_zarr(path)
    assert contents.notices == []
    left, right = contents.layers
    assert left.kwargs["channel_axis"] == right.kwargs["channel_axis"] == 0
    assert left.kwargs["name"] == ["nz_scene/left c0", "nz_scene/left c1"]
    assert left.kwargs["scale"] == right.kwargs["scale"] == (0.5, 0.5)
    assert left.kwargs["translate"] == (1.0, 2.0)
    assert right.kwargs["translate"] == (11.0, 42.0)
    assert right.kwargs["units"] == ("micrometer", "micrometer")
    np.testing.assert_array_equal(np.asarray(right.data[0]), data[1])


def test_viewer_opens_a_scene_with_each_layer_placed(make_napari_viewer, tmp_path: Path) -> None:
    hand = stitching_scene(tmp_path / "tiles.zarr")
    ngff = tmp_path / "nz_scene.zarr"
    data = _ngff_zarr_scene(ngff)
    viewer = make_napari_viewer()
    tiles = viewer.open(str(hand), plugin=PLUGIN)
    assert [layer.name for layer in tiles] == [f"tiles/{path}" for path in STITCHING]
    for layer, shift in zip(tiles, STITCHING.values(), strict=True):
        np.testing.assert_allclose(layer.translate, shift)
        np.testing.assert_allclose(layer.scale, (0.5, 0.5))
        assert layer.multiscale
    channels = viewer.open(str(ngff), plugin=PLUGIN)
    assert len(channels) == 4
    right = [layer for layer in channels if layer.name.startswith("nz_scene/right")]
    for index, layer in enumerate(right):
        np.testing.assert_allclose(layer.translate, (11.0, 42.0))
        np.testing.assert_allclose(layer.scale, (0.5, 0.5))
        np.testing.assert_array_equal(np.asarray(layer.data[0]), data[1][index])


def test_info_describes_a_scene_by_its_images_and_coordinate_system(tmp_path: Path) -> None:
    from napari_zarr_tiler.reader import describe_store

    text = describe_store(stitching_scene(tmp_path / "scene.zarr"))
    images = ", ".join(STITCHING)
    assert f"OME-Zarr 0.6 scene of {len(STITCHING)} image(s) ({images}) placed in world" in text
    assert "without OME metadata" not in text
