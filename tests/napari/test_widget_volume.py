"""The Convert widget's preview of volumes: it halves the same Z axis as the conversion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_zarr_tiler._napari.widget import ConvertWidget


@pytest.fixture
def volume() -> np.ndarray:
    rng = np.random.default_rng(11)
    return rng.integers(0, 4000, size=(16, 128, 128), dtype=np.uint16)


def volume_widget(make_napari_viewer, volume: np.ndarray, **layer_kwargs) -> ConvertWidget:
    """A widget beside a viewer showing ``volume`` as an image layer, chunks of 1 x 32 x 32."""
    viewer = make_napari_viewer()
    viewer.add_image(volume, name="volume", **layer_kwargs)
    widget = ConvertWidget(viewer)
    widget.chunks.value = "1,32,32"
    widget.open_result.value = False
    return widget


def test_preview_halves_z_named_by_the_layer(make_napari_viewer, volume: np.ndarray) -> None:
    widget = volume_widget(make_napari_viewer, volume, axis_labels=("z", "y", "x"))
    assert "z halved at levels 1, 2" in widget.info.value
    widget.downsample_z.value = "never"  # the preview follows the control
    assert "z halved" not in widget.info.value
    assert widget.info.value.startswith("3 levels")


def test_preview_follows_the_layer_scale(make_napari_viewer, volume: np.ndarray) -> None:
    """Z spacing 4 against Y/X 1: Z is kept until Y and X catch up (level 3)."""
    widget = volume_widget(
        make_napari_viewer, volume, axis_labels=("z", "y", "x"), scale=(4.0, 1.0, 1.0)
    )
    widget.levels.value = "4"
    assert "z halved at level 3 (" in widget.info.value, widget.info.value


def test_preview_keeps_axis_0_of_an_unnamed_stack(make_napari_viewer, volume: np.ndarray) -> None:
    """napari's default axis labels are not OME names: "auto" keeps axis 0, "always" halves it."""
    widget = volume_widget(make_napari_viewer, volume)
    assert "z halved" not in widget.info.value
    widget.downsample_z.value = "always"
    assert "z halved at levels 1, 2" in widget.info.value


def test_ome_version_refreshes_the_preview(make_napari_viewer, volume: np.ndarray) -> None:
    widget = volume_widget(make_napari_viewer, volume, axis_labels=("z", "y", "x"))
    shown = widget.info.value
    widget.info.value = "stale"
    widget.ome_version.value = "0.6"  # same zarr format: only this control changed
    assert widget.info.value == shown


def test_preview_is_what_the_conversion_writes(
    make_napari_viewer, qtbot, tmp_path: Path, volume: np.ndarray
) -> None:
    widget = volume_widget(
        make_napari_viewer, volume, axis_labels=("z", "y", "x"), scale=(2.0, 1.0, 1.0)
    )
    widget.output.value = tmp_path / "volume.zarr"
    preview = widget.info.value
    results = []
    widget.start()
    assert widget.worker is not None
    widget.worker.returned.connect(results.append)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert len(results) == 1 and results[0].path == tmp_path / "volume.zarr", results
    assert results[0].plan.describe() == preview
    assert [shape[0] for shape in results[0].plan.level_shapes] == [16, 16, 8, 4, 2, 1]
