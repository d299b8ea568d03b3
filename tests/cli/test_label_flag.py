"""``napari-zarr-tiler convert seg.tif image.zarr/labels/cells --label``, in a real subprocess."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
import zarr

from napari_zarr_tiler import convert
from napari_zarr_tiler.ome_ngff import ome_attributes

from ..helpers import run


def _attrs(folder: Path) -> dict:
    return ome_attributes(zarr.open_group(str(folder), mode="r").attrs.asdict())


def _image(tmp_path: Path) -> Path:
    image = np.random.default_rng(1).integers(0, 500, (301, 203), dtype=np.uint16)
    return convert(image, tmp_path / "image.zarr", chunks=64).path


def test_label_flag_adds_labels_to_an_image(tmp_path: Path) -> None:
    store = _image(tmp_path)
    seg = np.zeros((301, 203), np.uint8)
    seg[10:100, 20:90] = 4
    tifffile.imwrite(tmp_path / "seg.tif", seg)
    run("convert", str(tmp_path / "seg.tif"), str(store / "labels" / "cells"), "--label",
        "--quiet", check=True)  # fmt: skip
    label = zarr.open_group(str(store / "labels" / "cells"), mode="r")
    image = zarr.open_group(str(store), mode="r")
    assert [label[k].shape for k in sorted(label.array_keys())] == [
        image[k].shape for k in sorted(image.array_keys())
    ]
    np.testing.assert_array_equal(label["0"][...], seg)
    assert _attrs(store / "labels")["labels"] == ["cells"]


def test_label_flag_with_the_wrong_shape_is_one_line(tmp_path: Path) -> None:
    store = _image(tmp_path)
    tifffile.imwrite(tmp_path / "seg.tif", np.zeros((300, 203), np.uint8))
    result = run("convert", str(tmp_path / "seg.tif"), str(store / "labels" / "cells"), "--label")
    assert result.returncode == 1
    assert "(300, 203)" in result.stderr and "(301, 203)" in result.stderr
    assert "Traceback" not in result.stderr


def test_converting_a_store_keeps_its_labels(tmp_path: Path) -> None:
    store = _image(tmp_path)
    seg = np.zeros((301, 203), np.uint16)
    seg[5:50, 5:50] = 2
    convert(seg, store / "labels" / "cells", label=True)
    dest = tmp_path / "copy.zarr"
    run("convert", str(store), str(dest), "--chunks", "32", "--quiet", check=True)
    assert _attrs(dest / "labels")["labels"] == ["cells"]
    label = zarr.open_array(str(dest / "labels" / "cells" / "0"), mode="r")
    assert label.chunks == (32, 32)
    np.testing.assert_array_equal(label[...], seg)


def test_converting_a_store_with_yx_labels_of_a_cyx_image(tmp_path: Path) -> None:
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_image, write_labels

    source = tmp_path / "ozp.zarr"
    root = zarr.open_group(str(source), mode="w", zarr_format=2)
    image = np.random.default_rng(0).integers(0, 100, (2, 128, 128), dtype=np.uint16)
    mask = np.zeros((128, 128), np.uint8)
    mask[:64] = 1
    write_image(image, root, axes="cyx", fmt=FormatV04(), scale_factors=[2])
    write_labels(mask, root, name="cells", axes="yx", fmt=FormatV04(), scale_factors=[2])
    dest = tmp_path / "out.zarr"
    result = run("convert", str(source), str(dest), "--quiet")
    assert result.returncode == 0, result.stderr
    assert ".partial" not in result.stderr
    label = zarr.open_array(str(dest / "labels" / "cells" / "0"), mode="r")
    np.testing.assert_array_equal(label[...], mask[None])


def test_labels_added_to_a_consolidated_image_warn_in_one_line(tmp_path: Path) -> None:
    from ..converter.peer_stores import ngff_zarr_consolidated, segmentation

    store = ngff_zarr_consolidated(tmp_path / "image.zarr")
    np.save(tmp_path / "seg.npy", segmentation())
    result = run("convert", str(tmp_path / "seg.npy"), str(store / "labels" / "cells"),
                 "--label", "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "consolidate_metadata" in line]
    assert len(lines) == 1 and lines[0].startswith("napari-zarr-tiler: warning: ")
    assert f'zarr.consolidate_metadata("{store}")' in lines[0]
