"""Saving a Labels layer drawn over an image opened from a store writes it into that store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr
from napari.layers import Labels

from napari_zarr_tiler import convert
from napari_zarr_tiler.ome_ngff import ome_attributes


def _store(tmp_path: Path) -> tuple[Path, np.ndarray]:
    image = np.random.default_rng(2).integers(0, 500, (301, 203), dtype=np.uint16)
    store = convert(image, tmp_path / "image.zarr", chunks=64, scale=(0.5, 0.5)).path
    return store, image


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != "labels"
    }


def test_labels_saved_into_the_store_they_were_drawn_over(
    make_napari_viewer, tmp_path: Path
) -> None:
    store, _image = _store(tmp_path)
    before = _tree(store)
    viewer = make_napari_viewer()
    image_layer = viewer.open(str(store), plugin="napari-zarr-tiler")[0]
    drawn = np.zeros(image_layer.data[0].shape, np.uint8)
    drawn[20:80, 30:90] = 5
    viewer.add_labels(drawn, name="cells", scale=image_layer.scale)
    viewer.layers.selection = {viewer.layers["cells"]}
    written = viewer.layers.save(
        str(store / "labels" / "cells.zarr"),
        selected=True,  # napari adds .zarr, plugin="napari-zarr-tiler"
    )
    assert written == [str(store / "labels" / "cells")]
    assert _tree(store) == before  # the image itself is untouched
    listed = ome_attributes(zarr.open_group(str(store / "labels"), mode="r").attrs.asdict())
    assert listed["labels"] == ["cells"]
    reopened = viewer.open(str(store), plugin="napari-zarr-tiler")
    labels = [layer for layer in reopened if isinstance(layer, Labels)]
    assert len(labels) == 1
    np.testing.assert_allclose(labels[0].scale, image_layer.scale)
    np.testing.assert_array_equal(np.asarray(labels[0].data[0]), drawn)


def test_labels_saved_onto_the_image_store_go_into_its_labels(tmp_path: Path) -> None:
    from napari_zarr_tiler._napari.writer import write_labels

    store, image = _store(tmp_path)
    drawn = np.zeros(image.shape, np.uint16)
    drawn[1:3, 1:3] = 1
    written = write_labels(str(store), drawn, {"name": "my cells"})
    assert written == [str(store / "labels" / "my_cells")]
    np.testing.assert_array_equal(zarr.open_array(str(store / "0"), mode="r")[...], image)
    assert (store / "labels" / "my_cells" / "0").is_dir()


def test_an_image_saved_with_its_labels_appears_with_them(tmp_path: Path) -> None:
    from napari_zarr_tiler._napari.writer import write_image_with_labels

    image = np.random.default_rng(4).integers(0, 500, (301, 203), dtype=np.uint16)
    drawn = np.zeros(image.shape, np.uint8)
    drawn[5:50, 5:60] = 3
    written = write_image_with_labels(
        str(tmp_path / "out.zarr"),
        [(image, {"name": "img"}, "image"), (drawn, {"name": "my cells"}, "labels")],
    )
    store = Path(written[0])
    listed = ome_attributes(zarr.open_group(str(store / "labels"), mode="r").attrs.asdict())
    assert listed["labels"] == ["my_cells"]
    np.testing.assert_array_equal(zarr.open_array(str(store / "labels/my_cells/0"))[...], drawn)


def test_labels_that_do_not_fit_the_image_are_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    import pytest

    from napari_zarr_tiler._napari.writer import write_image_with_labels
    from napari_zarr_tiler.errors import ConversionError

    image = np.zeros((301, 203), np.uint16)
    layers = [
        (image, {"name": "img"}, "image"),
        (np.zeros((301, 203), np.uint8), {"name": "cells"}, "labels"),
        (np.zeros((300, 203), np.uint8), {"name": "bad"}, "labels"),
    ]
    with pytest.raises(ConversionError) as error:
        write_image_with_labels(str(tmp_path / "out.zarr"), layers)
    text = str(error.value)
    assert "'bad'" in text and "(300, 203)" in text and "(301, 203)" in text
    assert "nothing was written" in text
    assert list(tmp_path.iterdir()) == []  # no store, no staging folder
