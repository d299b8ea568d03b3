"""Converting from an OME-Zarr 0.6 store (ngff-zarr's and ours) keeps its scale, translation,
channels and labels, through ``SourceSpec`` and through the CLI."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_zarr_tiler import convert, read_zarr
from napari_zarr_tiler.ome_ngff import ome_attributes, parse_multiscale
from napari_zarr_tiler.sources import SourceSpec

from ..helpers import run
from .peer_stores import image_data, segmentation

CHANNELS = ("DAPI", "GFP")


def _ngff_zarr_06(path: Path, *, consolidated: bool) -> Path:
    """An ngff-zarr 0.50 OME-Zarr 0.6 image (c, y, x; 0.5 micrometer; translated by 3, 4)."""
    nz = pytest.importorskip("ngff_zarr")
    image = nz.to_ngff_image(
        image_data(),
        dims=("c", "y", "x"),
        scale={"y": 0.5, "x": 0.5},
        translation={"y": 3.0, "x": 4.0},
        axes_units={"y": "micrometer", "x": "micrometer"},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        multiscales = nz.to_multiscales(image, scale_factors=[2, 4])
        nz.to_ngff_zarr(str(path), multiscales, version="0.6")
    document = json.loads((path / "zarr.json").read_text())
    assert document["attributes"]["ome"]["version"] == "0.6"
    assert ("consolidated_metadata" in document) is True  # ngff-zarr consolidates the root
    if not consolidated:
        document.pop("consolidated_metadata")
        (path / "zarr.json").write_text(json.dumps(document))
    return path


def _ours_06(path: Path) -> Path:
    """Our own OME-Zarr 0.6 image, with channel names, colours, scale and translation."""
    convert(
        image_data(),
        path,
        chunks=64,
        ome_version="0.6",
        axes="cyx",
        scale=(1, 0.5, 0.5),
        translate=(0, 3.0, 4.0),
        units=(None, "micrometer", "micrometer"),
        channel_names=CHANNELS,
        colors=("0000FF", "00FF00"),
    )
    assert zarr.open_group(str(path), mode="r").attrs["ome"]["version"] == "0.6"
    return path


SOURCES = {
    "ngff-zarr": lambda p: _ngff_zarr_06(p, consolidated=False),
    "ngff-zarr-consolidated": lambda p: _ngff_zarr_06(p, consolidated=True),
    "ours": _ours_06,
}


@pytest.fixture(params=sorted(SOURCES))
def source_06(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    """A 0.6 image with labels "cells" added into it afterwards."""
    path = SOURCES[request.param](tmp_path / "src.zarr")
    convert(segmentation(), path / "labels" / "cells", label=True, colors={7: "FF0000"})
    return request.param, path


def _check_copy(dest: Path, writer: str, *, version: str) -> None:
    """The converted image keeps placement, axes, channels and labels."""
    ome = ome_attributes(zarr.open_group(str(dest), mode="r").attrs.asdict())
    assert ome["version"] == version
    multiscale = parse_multiscale(ome, where=str(dest))
    assert [axis.name for axis in multiscale.axes] == ["c", "y", "x"]
    assert [axis.unit for axis in multiscale.axes][1:] == ["micrometer", "micrometer"]
    np.testing.assert_allclose(multiscale.scales[0], (1.0, 0.5, 0.5))
    np.testing.assert_allclose(multiscale.translations[0], (0.0, 3.0, 4.0))
    level0 = zarr.open_array(str(dest / multiscale.paths[0]), mode="r")
    np.testing.assert_array_equal(level0[...], image_data())
    if writer == "ours":
        assert [channel.label for channel in multiscale.channels] == list(CHANNELS)
        assert [channel.color for channel in multiscale.channels] == ["#0000ff", "#00ff00"]
    labels = ome_attributes(zarr.open_group(str(dest / "labels"), mode="r").attrs.asdict())
    assert labels["labels"] == ["cells"]
    contents = read_zarr(dest)
    (label_layer,) = [layer for layer in contents.layers if layer.layer_type == "labels"]
    np.testing.assert_array_equal(np.asarray(label_layer.data[0]), segmentation())
    np.testing.assert_allclose(label_layer.kwargs["scale"], (1.0, 0.5, 0.5))
    np.testing.assert_allclose(label_layer.kwargs["translate"], (0.0, 3.0, 4.0))
    image_layer = contents.layers[0]
    assert image_layer.kwargs["channel_axis"] == 0
    np.testing.assert_allclose(image_layer.kwargs["translate"], (3.0, 4.0))


@pytest.mark.parametrize("version", ["0.5", "0.6"])
def test_source_spec_of_a_06_store_keeps_placement_channels_and_labels(
    source_06: tuple[str, Path], tmp_path: Path, version: str
) -> None:
    writer, src = source_06
    spec = SourceSpec(str(src))
    options = dict(spec.opened.options)
    assert set(options.get("labels", {})) == {"cells"}
    dest = tmp_path / "copy.zarr"
    convert(spec, dest, chunks=32, ome_version=version, **options)
    _check_copy(dest, writer, version=version)


def test_cli_converts_a_06_store_keeping_its_labels(
    source_06: tuple[str, Path], tmp_path: Path
) -> None:
    writer, src = source_06
    dest = tmp_path / "cli.zarr"
    run("convert", str(src), str(dest), "--chunks", "32", "--ome-version", "0.6", check=True)
    _check_copy(dest, writer, version="0.6")
