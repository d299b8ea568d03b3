"""Labels written into an image after its consolidated listing (ngff-zarr writes one at the root)
are shown: the reader reads the ``labels`` group from the store, not from the listing."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from napari_zarr_tiler import convert, read_zarr


def _consolidated_image(path: Path, zarr_format: int) -> Path:
    """An image with a consolidated listing at its root, written when it had label "first"."""
    zarr = pytest.importorskip("zarr")
    data = np.random.default_rng(0).integers(0, 1000, (2, 96, 80), dtype=np.uint16)
    convert(data, path, chunks=32, axes="cyx", zarr_format=zarr_format)
    seg = np.zeros((1, 96, 80), np.uint16)
    seg[0, 10:40, 10:40] = 5
    convert(seg, path / "labels" / "first", label=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(path), zarr_format=zarr_format)
    return path


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_label_added_after_consolidation_is_shown_beside_the_listed_one(
    tmp_path: Path, zarr_format: int
) -> None:
    path = _consolidated_image(tmp_path / "image.zarr", zarr_format)
    listing = path / ("zarr.json" if zarr_format == 3 else ".zmetadata")
    assert "consolidated_metadata" in json.loads(listing.read_text()) or zarr_format == 2
    before = listing.read_bytes()
    seg = np.zeros((1, 96, 80), np.uint16)
    seg[0, 50:90, 20:60] = 8
    convert(seg, path / "labels" / "second", label=True)
    assert listing.read_bytes() == before  # the listing still names "first" alone
    contents = read_zarr(path)
    labels = {
        layer.kwargs["name"]: layer for layer in contents.layers if layer.layer_type == "labels"
    }
    assert set(labels) == {"image first", "image second"}
    np.testing.assert_array_equal(np.asarray(labels["image second"].data[0]), seg)


def test_a_consolidated_image_without_labels_opens_without_them(tmp_path: Path) -> None:
    zarr = pytest.importorskip("zarr")
    data = np.random.default_rng(1).integers(0, 1000, (96, 80), dtype=np.uint16)
    path = tmp_path / "plain.zarr"
    convert(data, path, chunks=32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(path))
    contents = read_zarr(path)
    assert [layer.layer_type for layer in contents.layers] == ["image"]
