"""Label images keep the colours and properties their image-label metadata gives, in a real viewer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from napari.layers import Image, Labels

pytest.importorskip("ome_zarr")

PLUGIN = "napari-zarr-tiler"


def _image_with_labels(path: Path) -> Path:
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_image, write_labels

    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    write_image(
        np.zeros((64, 64), dtype=np.uint8), group, axes="yx", fmt=FormatV04(), scale_factors=[2]
    )
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[:32] = 1
    mask[32:, :32] = 2
    write_labels(
        mask,
        group,
        name="cells",
        axes="yx",
        fmt=FormatV04(),
        scale_factors=[2],
        label_metadata={
            "colors": [
                {"label-value": 1, "rgba": [255, 0, 0, 255]},
                {"label-value": 2, "rgba": [0, 0, 255, 128]},
            ],
            "properties": [
                {"label-value": 1, "class": "nucleus", "area": 2048},
                {"label-value": 2, "class": "cytoplasm", "area": 1024},
            ],
        },
    )
    return path


def test_label_colors_and_properties_reach_the_labels_layer(
    make_napari_viewer, tmp_path: Path
) -> None:
    path = _image_with_labels(tmp_path / "image.zarr")
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin=PLUGIN)
    assert [type(layer) for layer in viewer.layers] == [Image, Labels]
    labels = viewer.layers[1]
    np.testing.assert_allclose(labels.colormap.map(1), [1.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(labels.colormap.map(2), [0.0, 0.0, 1.0, 128 / 255], atol=1e-6)
    assert labels.colormap.map(0)[3] == 0  # background stays transparent
    features = labels.features
    assert list(features["index"]) == [1, 2]
    assert list(features["class"]) == ["nucleus", "cytoplasm"]
    assert list(features["area"]) == [2048, 1024]


def test_plate_labels_keep_their_colors_in_the_viewer(make_napari_viewer, tmp_path: Path) -> None:
    from ..reader.plate_writers import write_plate

    plate = write_plate(tmp_path / "plate.zarr", labels=True, fields=1, shape=(2, 32, 32))
    viewer = make_napari_viewer()
    viewer.open(str(plate), plugin=PLUGIN)
    assert [type(layer) for layer in viewer.layers] == [
        Image,
        Image,
        Labels,
    ]  # 2 channels, 1 label
    np.testing.assert_allclose(viewer.layers[2].colormap.map(1), [1.0, 0.0, 0.0, 1.0])
