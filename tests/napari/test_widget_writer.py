"""The Convert widget and the npe2 writer, driven in a real napari viewer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from napari.layers import Image, Labels
from napari.utils.notifications import notification_manager

from napari_zarr_tiler._napari.widget import ConvertWidget
from napari_zarr_tiler.sources import synthetic_slide
from napari_zarr_tiler.zarr_names import staging_path


def run_widget(widget: ConvertWidget, qtbot, output: Path, *, overwrite: bool) -> list[str]:
    """Start a conversion to ``output``, wait for the worker, return the notifications it raised."""
    widget.output.value = output
    widget.overwrite.value = overwrite
    before = len(notification_manager.records)
    widget.start()
    # The widget lets go of its worker when `finished` reaches it (connected before the start);
    # waiting on the signal here could miss a worker that fails at once.
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    return [str(n.message) for n in notification_manager.records[before:]]


def test_widget_is_contributed(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-zarr-tiler", "Convert to zarr")
    assert isinstance(widget, ConvertWidget)
    names = [child.name for child in widget]
    expected = [
        "layer",
        "output",
        "chunks",
        "compressor",
        "clevel",
        "zarr_format",
        "ome_version",
        "shards",
        "levels",
        "downsample_z",
    ]
    assert names[: len(expected) + 2] == [*expected, "overwrite", "open_result"]


def test_widget_shows_the_plan_live(viewer_with_slide) -> None:
    widget = ConvertWidget(viewer_with_slide)
    assert widget.layer.value.name == "slide"
    widget.chunks.value = "64"
    assert widget.info.value.startswith("3 levels, 21 tiles of 64 x 64")
    widget.levels.value = "1"
    assert widget.info.value.startswith("1 level, 16 tiles")
    widget.shards.value = "100"
    assert "multiple of the chunks" in widget.info.value


def test_widget_converts_and_opens_the_result(
    viewer_with_slide, qtbot, tmp_path: Path, small_image
) -> None:
    widget = ConvertWidget(viewer_with_slide)
    dest = tmp_path / "out.zarr"
    widget.output.value = dest
    widget.chunks.value = "64"
    widget.compressor.value = "blosc-lz4"
    widget.open_result.value = True
    widget.start()
    assert widget.worker is not None
    assert not widget.run_button.enabled
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)  # finished, handled
    group = zarr.open_group(str(dest), mode="r")
    np.testing.assert_array_equal(group["0"][...], small_image)
    assert group["0"].chunks == (64, 64)
    assert group["0"].metadata.codecs[-1].to_dict()["configuration"]["cname"] == "lz4"
    qtbot.waitUntil(lambda: len(viewer_with_slide.layers) == 2, timeout=10_000)
    opened = viewer_with_slide.layers[-1]
    assert opened.multiscale
    np.testing.assert_allclose(opened.scale, (0.5, 0.5))
    assert widget.run_button.enabled


@pytest.mark.slow
def test_widget_cancel_stops_and_cleans_up(make_napari_viewer, qtbot, tmp_path: Path) -> None:
    viewer = make_napari_viewer()
    image = np.tile(synthetic_slide(1024, dtype="uint16"), (6, 6))  # 6144 x 6144, 75 MB
    viewer.add_image(image, name="big")
    widget = ConvertWidget(viewer)
    dest = tmp_path / "cancelled.zarr"
    widget.output.value = dest
    widget.chunks.value = "128"
    widget.compressor.value = "gzip"  # slow codec: the cancel lands mid-way
    widget.clevel.value = 9
    widget.open_result.value = True
    widget.start()
    worker = widget.worker
    with qtbot.waitSignal(worker.yielded, timeout=60_000):
        pass
    widget.cancel()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=10_000)  # finished, handled
    assert not dest.exists()
    assert not staging_path(dest).exists()
    assert len(viewer.layers) == 1
    assert widget.run_button.enabled


def test_widget_reports_bad_input_as_notification(
    viewer_with_slide, qtbot, tmp_path: Path
) -> None:
    widget = ConvertWidget(viewer_with_slide)
    dest = tmp_path / "exists.zarr"
    dest.mkdir()
    (dest / "notes.txt").write_text("keep me")
    messages = run_widget(widget, qtbot, dest, overwrite=True)
    assert any("not a zarr store" in m for m in messages), messages
    assert (dest / "notes.txt").read_text() == "keep me"
    # Invalid parameters never start a worker.
    widget.chunks.value = "0"
    widget.start()
    assert widget.worker is None
    assert "chunks must be positive" in str(notification_manager.records[-1].message)


def test_save_selected_layers_writes_ome_zarr(
    make_napari_viewer, tmp_path: Path, small_image
) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(small_image, name="img", scale=(2.0, 2.0))
    labels = (small_image > small_image.mean()).astype(np.uint8)
    viewer.add_labels(labels, name="mask")
    image_path = tmp_path / "saved.zarr"
    labels_path = tmp_path / "mask.zarr"
    viewer.layers.selection = {viewer.layers["img"]}
    written = viewer.layers.save(str(image_path), selected=True, plugin="napari-zarr-tiler")
    assert written == [str(image_path)]
    viewer.layers.selection = {viewer.layers["mask"]}
    viewer.layers.save(str(labels_path), selected=True, plugin="napari-zarr-tiler")
    reopened = viewer.open(str(image_path), plugin="napari-zarr-tiler")[0]
    assert isinstance(reopened, Image)
    np.testing.assert_allclose(reopened.scale, (2.0, 2.0))
    assert not reopened.multiscale  # 256 x 256 fits one 512 chunk: a single level
    np.testing.assert_array_equal(np.asarray(reopened.data), small_image)
    reopened_labels = viewer.open(str(labels_path), plugin="napari-zarr-tiler")[0]
    assert isinstance(reopened_labels, Labels)


def test_widget_refuses_to_write_into_the_store_a_layer_was_read_from(
    viewer_with_store, converted_store: Path, qtbot
) -> None:
    store = converted_store
    before_files = sorted(p.name for p in store.rglob("*"))
    (layer,) = viewer_with_store.layers
    widget = ConvertWidget(viewer_with_store)
    widget.layer.value = layer
    for target in (store, store / "inside.zarr"):
        messages = run_widget(widget, qtbot, target, overwrite=True)
        assert any("inside the source" in m for m in messages), messages
    assert sorted(p.name for p in store.rglob("*")) == before_files
