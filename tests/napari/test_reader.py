"""The reader through npe2 and through a real napari viewer (Xvfb display from pytest-xvfb)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from napari.layers import Image, Labels
from npe2 import PluginManager

from napari_zarr_tiler._napari.reader import get_reader

from ..helpers import corrupt_json

PLUGIN = "napari-zarr-tiler"


@pytest.mark.slow
def test_manifest_validates_with_imports() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", PLUGIN, "--imports"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_manifest_is_discovered_with_reader_and_samples() -> None:
    manager = PluginManager.instance()
    manager.discover()
    manifest = manager.get_manifest(PLUGIN)
    assert manifest.contributions.readers[0].accepts_directories
    keys = {sample.key for sample in manifest.contributions.sample_data}
    assert keys == {"slide_uint8", "slide_uint16"}


def test_get_reader_declines_what_is_not_zarr(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "image.tif").write_bytes(b"II*\x00")
    assert get_reader(str(folder)) is None
    assert get_reader(str(folder / "image.tif")) is None
    assert get_reader(str(tmp_path / "missing.zarr")) is None


def test_get_reader_accepts_store_and_metadata_file(tmp_path: Path) -> None:
    path = tmp_path / "plain"
    zarr.create_array(str(path), shape=(8, 8), chunks=(4, 4), dtype="uint8")
    assert callable(get_reader(str(path)))
    assert callable(get_reader(str(path / "zarr.json")))


@pytest.mark.parametrize("ome_pyramid", ["0.4", "0.5"], indirect=True)
def test_viewer_opens_ome_pyramid_with_labels(make_napari_viewer, ome_pyramid: Path) -> None:
    viewer = make_napari_viewer()
    layers = viewer.open(str(ome_pyramid), plugin=PLUGIN)
    assert [type(layer) for layer in layers] == [Image, Labels]
    image, labels = layers
    assert image.multiscale
    assert len(image.data) == 3
    np.testing.assert_allclose(image.scale, [0.5, 0.25])
    np.testing.assert_allclose(image.translate, [10.0, 20.0])
    np.testing.assert_allclose(labels.scale, image.scale)
    assert tuple(image.axis_labels) == ("y", "x")
    assert str(image.units[0]) == "micrometer"


def test_viewer_opens_bare_classic_store(
    make_napari_viewer, tmp_path: Path, small_image: np.ndarray
) -> None:
    path = tmp_path / "classic.zarr"
    z = zarr.open(
        str(path), mode="w", shape=small_image.shape, chunks=(100, 100), dtype=small_image.dtype
    )
    z[:] = small_image
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin=PLUGIN)
    assert isinstance(layer, Image)
    assert layer.name == "classic"
    assert layer.data.shape == small_image.shape


def test_drag_and_drop_a_store_folder(make_napari_viewer, qtbot, ome_pyramid: Path) -> None:
    from napari.settings import get_settings
    from qtpy.QtCore import QMimeData, QPoint, Qt, QUrl
    from qtpy.QtGui import QDropEvent

    viewer = make_napari_viewer()
    # napari asks which reader to use for folders unless a choice was remembered, as a user does.
    get_settings().plugins.extension2reader = {"*.zarr/": PLUGIN}
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(ome_pyramid))])
    event = QDropEvent(
        QPoint(10, 10).toPointF() if hasattr(QPoint, "toPointF") else QPoint(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    viewer.window._qt_viewer.dropEvent(event)
    qtbot.waitUntil(lambda: len(viewer.layers) == 2, timeout=10_000)
    assert isinstance(viewer.layers[0], Image)
    assert viewer.layers[0].multiscale
    assert isinstance(viewer.layers[1], Labels)  # only this plugin reads OME labels


@pytest.mark.slow
def test_huge_unpyramided_store_shows_a_frame(make_napari_viewer, qtbot, tmp_path: Path) -> None:
    path = tmp_path / "huge.zarr"
    z = zarr.create_array(str(path), shape=(200_000, 200_000), chunks=(100, 100), dtype="uint16")
    z[0:5000, 0:5000] = 500
    viewer = make_napari_viewer(show=True)
    (layer,) = viewer.open(str(path), plugin=PLUGIN)
    assert layer.multiscale
    viewer.reset_view()
    qtbot.wait(200)
    screenshot = viewer.screenshot(canvas_only=True, flash=False)
    assert screenshot.shape[-1] == 4
    assert screenshot[..., :3].max() > 0  # the bright corner is drawn


def test_corrupt_store_reports_path_and_problem(make_napari_viewer, tmp_path: Path) -> None:
    """What napari's open dialog and drag-and-drop call: the error carries our message."""
    from napari.errors import ReaderPluginError
    from napari.settings import get_settings

    path = tmp_path / "corrupt.zarr"
    zarr.create_array(str(path), shape=(8, 8), chunks=(4, 4), dtype="uint8")
    corrupt_json(path / "zarr.json")
    viewer = make_napari_viewer()
    get_settings().plugins.extension2reader = {"*.zarr/": PLUGIN}
    with pytest.raises(ReaderPluginError) as info:
        viewer.open(str(path), plugin=None)  # as the GUI does: preference, then choice
    assert "corrupt or truncated metadata" in str(info.value.__cause__)
    assert str(path) in str(info.value.__cause__)
    assert len(viewer.layers) == 0


@pytest.mark.slow
def test_sample_data_opens(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "slide_uint16")
    (layer,) = viewer.layers
    assert layer.data.shape == (4096, 4096)
    assert layer.data.dtype == np.uint16
    assert layer.data.max() > 1000
