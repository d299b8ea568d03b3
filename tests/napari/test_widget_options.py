"""Field reports on the Convert widget and the npe2 writer (issue 10)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from napari.layers import Image, Labels
from napari.utils.notifications import notification_manager

from napari_zarr_tiler import ConversionError
from napari_zarr_tiler._napari.widget import ConvertWidget


def test_many_widget_conversions_in_a_row_raise_nothing(
    make_napari_viewer, qtbot, tmp_path: Path, small_image: np.ndarray
) -> None:
    """napari's progress bar processes events inside ``setValue``: the worker's ``finished``
    can run in the middle of the progress handler, which must survive it."""
    viewer = make_napari_viewer()
    viewer.add_image(small_image, name="slide")
    widget = ConvertWidget(viewer)
    widget.chunks.value = "32"  # 64 + 16 + 4 + 1 tiles: many progress events per run
    widget.open_result.value = False
    with qtbot.capture_exceptions() as exceptions:
        for index in range(20):
            widget.output.value = tmp_path / f"run{index}.zarr"
            widget.start()
            assert widget.worker is not None
            qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert not exceptions, [str(e[1]) for e in exceptions]
    for index in range(20):
        group = zarr.open_group(str(tmp_path / f"run{index}.zarr"), mode="r")
        np.testing.assert_array_equal(group["0"][...], small_image)
    assert widget.run_button.enabled


def test_widget_names_its_own_overwrite_checkbox(
    viewer_with_slide, converted_store: Path, qtbot
) -> None:
    dest = converted_store
    widget = ConvertWidget(viewer_with_slide)
    widget.output.value = dest
    widget.overwrite.value = False
    widget.open_result.value = False
    before = len(notification_manager.records)
    widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    messages = [str(n.message) for n in notification_manager.records[before:]]
    assert any("already exists" in m for m in messages), messages
    assert not any("--overwrite" in m or "overwrite=True" in m for m in messages), messages
    assert any(f"'{widget.overwrite.text}'" in m for m in messages), messages
    assert "notes" not in [p.name for p in dest.iterdir()]


def test_widget_ignores_a_second_start_while_running(
    make_napari_viewer, qtbot, tmp_path: Path, small_image: np.ndarray
) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(small_image, name="slide")
    widget = ConvertWidget(viewer)
    widget.output.value = tmp_path / "once.zarr"
    widget.open_result.value = False
    with qtbot.capture_exceptions() as exceptions:
        widget.start()
        first = widget.worker
        widget.start()
        assert widget.worker is first
        widget.cancel()
        qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    assert not exceptions, [str(e[1]) for e in exceptions]
    assert widget.run_button.enabled and not widget.cancel_button.enabled


# -- options checked in the core, before anything is written --------------------------------


# -- File > Save Selected Layers with several layers ---------------------------------------


def test_save_image_with_labels_writes_labels_under_the_image(
    make_napari_viewer, tmp_path: Path, small_image: np.ndarray
) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(small_image, name="img", scale=(2.0, 2.0))
    mask = (small_image > small_image.mean()).astype(np.uint8)
    viewer.add_labels(mask, name="cell mask", scale=(2.0, 2.0))
    viewer.add_labels(mask * 2, name="nuclei", scale=(2.0, 2.0))
    path = tmp_path / "both.zarr"
    viewer.layers.selection = set(viewer.layers)
    written = viewer.layers.save(str(path), selected=True, plugin="napari-zarr-tiler")
    assert written == [str(path)]
    labels_group = zarr.open_group(str(path / "labels"), mode="r")
    assert labels_group.attrs["ome"] == {"version": "0.5", "labels": ["cell_mask", "nuclei"]}
    np.testing.assert_array_equal(
        zarr.open_array(str(path / "labels" / "nuclei" / "0"))[...], mask * 2
    )
    viewer.layers.clear()
    reopened = viewer.open(str(path), plugin="napari-zarr-tiler")
    kinds = sorted(type(layer).__name__ for layer in reopened)
    assert kinds == ["Image", "Labels", "Labels"], kinds
    image = next(layer for layer in reopened if isinstance(layer, Image))
    np.testing.assert_array_equal(np.asarray(image.data), small_image)
    labels = [layer for layer in reopened if isinstance(layer, Labels)]
    np.testing.assert_allclose(labels[0].scale, (2.0, 2.0))


def test_save_two_images_is_refused_with_what_to_select(
    make_napari_viewer, tmp_path: Path, small_image: np.ndarray
) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(small_image, name="a")
    viewer.add_image(small_image, name="b")
    viewer.add_labels(np.zeros((2, 2, 2, 2, 2, 8, 8), np.uint8), name="7-D")
    path = tmp_path / "two.zarr"
    viewer.layers.selection = {viewer.layers["a"], viewer.layers["b"]}
    # Not a ValueError: napari would replace its message by "not a valid writer".
    with pytest.raises(ConversionError, match=r"2 image layers.*select one image layer"):
        viewer.layers.save(str(path), selected=True, plugin="napari-zarr-tiler")
    viewer.layers.selection = {viewer.layers["b"], viewer.layers["7-D"]}
    with pytest.raises(ConversionError, match="OME-Zarr images have 2 to 5 axes"):
        viewer.layers.save(str(path), selected=True, plugin="napari-zarr-tiler")
    assert not path.exists()  # refused before the image was written
    viewer.layers.selection = {viewer.layers["7-D"]}
    with pytest.raises(
        ConversionError, match=r"cannot save two\.zarr: OME-Zarr images have 2 to 5"
    ):
        viewer.layers.save(str(path), selected=True, plugin="napari-zarr-tiler")
    assert list(tmp_path.iterdir()) == []
