"""The Convert widget offers a store's labels/ for a Labels layer drawn over its image (issue 11)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import zarr

from napari_zarr_tiler._napari.widget import ConvertWidget


def _image_files(store: Path) -> dict[str, str]:
    """Digest of every file of the store outside labels/."""
    return {
        str(path.relative_to(store)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(store.rglob("*"))
        if path.is_file() and "labels" not in path.relative_to(store).parts
    }


def test_labels_over_a_store_image_are_offered_its_labels_folder_and_written_there(
    viewer_with_store, converted_store: Path, qtbot
) -> None:
    viewer = viewer_with_store
    before = _image_files(converted_store)
    mask = np.zeros((256, 256), np.uint8)
    mask[40:90, 100:180] = 3
    labels = viewer.add_labels(mask, name="cell mask")
    widget = ConvertWidget(viewer)
    widget.layer.value = labels
    assert Path(widget.output.value) == converted_store / "labels" / "cell_mask"

    widget.chunks.value = "64"
    widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)

    assert zarr.open_group(str(converted_store / "labels"), mode="r").attrs["ome"]["labels"] == [
        "cell_mask"
    ]
    level0 = zarr.open_array(str(converted_store / "labels" / "cell_mask" / "0"), mode="r")
    np.testing.assert_array_equal(level0[:], mask)
    assert _image_files(converted_store) == before  # the image itself is untouched
    reopened = viewer.open(str(converted_store), plugin="napari-zarr-tiler")
    assert [layer.name for layer in reopened if layer._type_string == "labels"] == [
        "opened cell_mask"
    ]
    image_levels = zarr.open_group(str(converted_store), mode="r").attrs["ome"]["multiscales"]
    label_levels = zarr.open_group(str(converted_store / "labels" / "cell_mask"), mode="r").attrs
    assert len(label_levels["ome"]["multiscales"][0]["datasets"]) == len(
        image_levels[0]["datasets"]
    )


def test_no_offer_for_labels_of_another_shape_or_an_image_not_from_a_store(
    viewer_with_store, qtbot
) -> None:
    viewer = viewer_with_store
    other = viewer.add_labels(np.zeros((100, 100), np.uint8), name="elsewhere")
    widget = ConvertWidget(viewer)
    widget.layer.value = other
    assert str(widget.output.value) in ("", ".")
    viewer.layers.clear()
    viewer.add_image(np.zeros((256, 256), np.uint16), name="in memory")
    drawn = viewer.add_labels(np.zeros((256, 256), np.uint8), name="drawn")
    widget.reset_choices()
    widget.layer.value = drawn
    assert str(widget.output.value) in ("", ".")


def test_an_output_already_chosen_is_kept(viewer_with_store, tmp_path: Path, qtbot) -> None:
    viewer = viewer_with_store
    labels = viewer.add_labels(np.zeros((256, 256), np.uint8), name="mask")
    widget = ConvertWidget(viewer)
    widget.output.value = tmp_path / "mine.zarr"
    widget.layer.value = labels
    assert Path(widget.output.value) == tmp_path / "mine.zarr"
