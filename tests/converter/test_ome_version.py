"""The OME-Zarr version a conversion writes: 0.4 (zarr 2), 0.5 (default) and 0.6 (RFC-5).

0.6 output is read back by this package's reader, by ngff-zarr and by napari-ome-zarr (all real,
installed), and checked against the 0.6 JSON schemas ngff-zarr bundles.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_zarr_tiler import convert, read_zarr
from napari_zarr_tiler.errors import InvalidOptionError
from napari_zarr_tiler.sources import synthetic_slide

from ..helpers import assert_one_line_error, run

SCALE = [1.0, 0.5, 0.25]
TRANSLATE = [0.0, 10.0, 20.0]


@pytest.fixture(scope="module")
def two_channels() -> np.ndarray:
    """A (c, y, x) uint16 image of two different channels, 200 x 300."""
    first = synthetic_slide(300, dtype="uint16", seed=3)[:200]
    return np.stack([first, first[::-1, ::-1] // 2])


@pytest.fixture(scope="module")
def store_06(tmp_path_factory: pytest.TempPathFactory, two_channels: np.ndarray) -> Path:
    """``two_channels`` converted to OME-Zarr 0.6 with a scale, a translation and units."""
    dest = tmp_path_factory.mktemp("v06") / "image.zarr"
    convert(
        two_channels,
        dest,
        ome_version="0.6",
        chunks=64,
        axes=["c", "y", "x"],
        scale=SCALE,
        translate=TRANSLATE,
        units=[None, "micrometer", "micrometer"],
        channel_names=["DAPI", "GFP"],
    )
    return dest


def _root_attributes(store: Path) -> dict:
    return json.loads((store / "zarr.json").read_text())["attributes"]


def _bundled_validate(document: dict, model: str) -> None:
    from ngff_zarr.validate import validate

    validate(document, version="0.6", model=model, strict=False)


# -- which version, which zarr format -----------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "version", "zarr_format"),
    [
        ({}, "0.5", 3),
        ({"zarr_format": 3}, "0.5", 3),
        ({"zarr_format": 2}, "0.4", 2),
        ({"ome_version": "0.4"}, "0.4", 2),
        ({"ome_version": "0.5", "zarr_format": 3}, "0.5", 3),
        ({"ome_version": "0.6"}, "0.6", 3),
    ],
)
def test_version_and_zarr_format_follow_each_other(
    tmp_path: Path, small_image: np.ndarray, options: dict, version: str, zarr_format: int
) -> None:
    dest = tmp_path / "out.zarr"
    convert(small_image, dest, chunks=128, **options)
    group = zarr.open_group(str(dest), mode="r")
    assert group.metadata.zarr_format == zarr_format
    attributes = group.attrs.asdict()
    if zarr_format == 2:
        assert (dest / ".zattrs").is_file() and (dest / ".zgroup").is_file()
        assert not (dest / "zarr.json").exists()
        assert attributes["multiscales"][0]["version"] == "0.4"
        assert "axes" in attributes["multiscales"][0]
    else:
        assert attributes["ome"]["version"] == version
        multiscale = attributes["ome"]["multiscales"][0]
        assert ("coordinateSystems" in multiscale) == (version == "0.6")
        assert ("axes" in multiscale) == (version != "0.6")


@pytest.mark.parametrize(("version", "zarr_format"), [("0.4", 3), ("0.5", 2), ("0.6", 2)])
def test_inconsistent_version_and_format_refused_before_writing(
    tmp_path: Path, small_image: np.ndarray, version: str, zarr_format: int
) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        convert(small_image, tmp_path / "out.zarr", ome_version=version, zarr_format=zarr_format)
    message = str(caught.value)
    assert "ome_version" in message and "zarr_format" in message
    assert f"ome_version {version}" in message
    assert list(tmp_path.iterdir()) == []


def test_unknown_version_refused(tmp_path: Path, small_image: np.ndarray) -> None:
    with pytest.raises(InvalidOptionError, match="ome_version must be one of"):
        convert(small_image, tmp_path / "out.zarr", ome_version="0.7")
    assert list(tmp_path.iterdir()) == []


# -- 0.6 as the specification writes it ---------------------------------------------------------


def test_v06_metadata_is_rfc5(store_06: Path) -> None:
    attributes = _root_attributes(store_06)
    _bundled_validate(attributes, "image")
    multiscale = attributes["ome"]["multiscales"][0]
    (system,) = multiscale["coordinateSystems"]
    assert [axis["name"] for axis in system["axes"]] == ["c", "y", "x"]
    assert system["axes"][1] == {"name": "y", "type": "space", "unit": "micrometer"}
    for level, dataset in enumerate(multiscale["datasets"]):
        (transform,) = dataset["coordinateTransformations"]
        assert transform["input"] == {"path": dataset["path"]}
        assert transform["output"] == {"name": system["name"]}
        assert transform["type"] == "sequence"
        scale, translation = transform["transformations"]
        assert scale["scale"] == [1.0, 0.5 * 2**level, 0.25 * 2**level]
        # level k's pixel centre: half a (level pixel - level 0 pixel) after level 0's
        assert translation["translation"] == pytest.approx(
            [0.0, 10.0 + (0.5 * 2**level - 0.5) / 2, 20.0 + (0.25 * 2**level - 0.25) / 2]
        )
    for level in range(len(multiscale["datasets"])):
        array = json.loads((store_06 / str(level) / "zarr.json").read_text())
        assert array["dimension_names"] == ["c", "y", "x"]


def test_v06_without_translation_writes_a_plain_scale(
    tmp_path: Path, small_image: np.ndarray
) -> None:
    dest = tmp_path / "plain.zarr"
    convert(small_image, dest, ome_version="0.6", chunks=128, levels=1, scale=[2.0, 2.0])
    multiscale = _root_attributes(dest)["ome"]["multiscales"][0]
    assert multiscale["datasets"][0]["coordinateTransformations"] == [
        {
            "type": "scale",
            "scale": [2.0, 2.0],
            "input": {"path": "0"},
            "output": {"name": "intrinsic"},
        }
    ]
    _bundled_validate(_root_attributes(dest), "image")


def test_v06_opens_right_in_our_reader(store_06: Path, two_channels: np.ndarray) -> None:
    (layer,) = read_zarr(store_06).layers
    kwargs = layer.kwargs
    assert layer.layer_type == "image"
    assert kwargs["channel_axis"] == 0
    assert kwargs["scale"] == pytest.approx((0.5, 0.25))
    assert kwargs["translate"] == pytest.approx((10.0, 20.0))
    assert kwargs["axis_labels"] == ("y", "x")
    assert kwargs["units"] == ("micrometer", "micrometer")
    assert kwargs["name"] == ["DAPI", "GFP"]
    np.testing.assert_array_equal(
        np.asarray(layer.data[0][:, :50, :70]), two_channels[:, :50, :70]
    )


def test_v06_opens_right_in_ngff_zarr(store_06: Path, two_channels: np.ndarray) -> None:
    import ngff_zarr

    multiscales = ngff_zarr.from_ngff_zarr(str(store_06))
    first, second = multiscales.images[:2]
    assert list(first.dims) == ["c", "y", "x"]
    assert first.scale == pytest.approx({"c": 1.0, "y": 0.5, "x": 0.25})
    assert first.translation == pytest.approx({"c": 0.0, "y": 10.0, "x": 20.0})
    assert second.scale == pytest.approx({"c": 1.0, "y": 1.0, "x": 0.5})
    assert second.translation == pytest.approx({"c": 0.0, "y": 10.25, "x": 20.125})
    np.testing.assert_array_equal(
        np.asarray(first.data[:, 100:120, 200:230]), two_channels[:, 100:120, 200:230]
    )


def test_v06_opens_right_in_napari_ome_zarr(store_06: Path, two_channels: np.ndarray) -> None:
    from napari_ome_zarr import napari_get_reader

    reader = napari_get_reader(str(store_06))
    assert reader is not None
    ((data, kwargs, layer_type),) = reader(str(store_06))
    assert layer_type == "image"
    assert kwargs["channel_axis"] == 0
    assert kwargs["scale"] == pytest.approx([0.5, 0.25])
    assert kwargs["affine"].translate == pytest.approx([10.0, 20.0])
    assert kwargs["name"] == ["image: DAPI", "image: GFP"]
    assert [level.shape for level in data][:2] == [(2, 200, 300), (2, 100, 150)]
    np.testing.assert_array_equal(np.asarray(data[0][:, :40, :40]), two_channels[:, :40, :40])


def test_v06_labels(tmp_path: Path, small_image: np.ndarray) -> None:
    mask = (small_image > np.percentile(small_image, 70)).astype(np.uint8)
    dest = tmp_path / "cells.zarr"
    convert(mask, dest, ome_version="0.6", label=True, chunks=64, scale=[0.5, 0.5])
    attributes = _root_attributes(dest)
    assert attributes["ome"]["version"] == "0.6"
    assert "image-label" in attributes["ome"]
    assert "coordinateSystems" in attributes["ome"]["multiscales"][0]
    _bundled_validate(attributes, "label")
    (layer,) = read_zarr(dest).layers
    assert layer.layer_type == "labels"
    assert layer.kwargs["scale"] == pytest.approx((0.5, 0.5))
    np.testing.assert_array_equal(np.asarray(layer.data[0]), mask)
    # nearest-neighbour levels: only the label values of level 0
    assert set(np.unique(np.asarray(layer.data[1]))) <= {0, 1}


# -- the command line and the widget ------------------------------------------------------------


def test_cli_ome_version(tmp_path: Path, small_image: np.ndarray) -> None:
    source = tmp_path / "image.npy"
    np.save(source, small_image)
    run(
        "convert",
        str(source),
        str(tmp_path / "v06.zarr"),
        "--ome-version",
        "0.6",
        "--quiet",
        check=True,
    )
    assert _root_attributes(tmp_path / "v06.zarr")["ome"]["version"] == "0.6"
    run(
        "convert",
        str(source),
        str(tmp_path / "v04.zarr"),
        "--ome-version",
        "0.4",
        "--quiet",
        check=True,
    )
    assert (tmp_path / "v04.zarr" / ".zattrs").is_file()
    result = run(
        "convert",
        str(source),
        str(tmp_path / "bad.zarr"),
        "--ome-version",
        "0.4",
        "--zarr-format",
        "3",
    )
    assert_one_line_error(result, "ome_version 0.4 is stored in zarr format 2")
    assert not (tmp_path / "bad.zarr").exists()


def test_widget_version_choice_follows_zarr_format(make_napari_viewer) -> None:
    from napari_zarr_tiler._napari.widget import ConvertWidget

    viewer = make_napari_viewer()
    viewer.add_image(synthetic_slide(128, dtype="uint8", seed=4), name="slide")
    widget = ConvertWidget(viewer)
    assert (widget.ome_version.value, widget.zarr_format.value) == ("0.5", 3)
    widget.ome_version.value = "0.4"
    assert widget.zarr_format.value == 2
    widget.ome_version.value = "0.6"
    assert widget.zarr_format.value == 3
    widget.zarr_format.value = 2
    assert widget.ome_version.value == "0.4"
    widget.zarr_format.value = 3
    assert widget.ome_version.value == "0.5"
    widget.ome_version.value = "0.6"
    widget.output.value = "/tmp/never-written.zarr"
    *_, options = widget._request()
    assert (options["ome_version"], options["zarr_format"]) == ("0.6", 3)
