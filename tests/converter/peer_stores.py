"""OME-Zarr images written by real writers (ours, ome-zarr-py, ngff-zarr), for the labels tests."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import zarr

from napari_zarr_tiler import convert

#: (c, y, x): odd sizes, so that writers that halve rounding down and up differ.
SHAPE = (2, 301, 203)


def image_data() -> np.ndarray:
    """A small uint16 image of :data:`SHAPE`."""
    return np.random.default_rng(0).integers(0, 1000, SHAPE, dtype=np.uint16)


def segmentation() -> np.ndarray:
    """Labels over the image: one channel, a few objects."""
    seg = np.zeros((1, *SHAPE[1:]), dtype=np.uint16)
    seg[0, 50:150, 60:120] = 7
    seg[0, 200:290, 10:200] = 3
    seg[0, 0:5, 0:5] = 9
    return seg


def _ours(path: Path, zarr_format: int) -> Path:
    convert(
        image_data(), path, chunks=64, zarr_format=zarr_format, axes="cyx", scale=(1, 0.5, 0.5)
    )
    return path


def _ome_zarr_py(path: Path, version: str) -> Path:
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if version == "0.4":
            root = zarr.open_group(str(path), mode="w", zarr_format=2)
            write_image(image_data(), root, axes="cyx", fmt=FormatV04())
        else:  # its default: 0.5 on zarr 3
            root = zarr.open_group(str(path), mode="w")
            write_image(image_data(), root, axes="cyx")
    return path


def _ngff_zarr(path: Path, version: str, *, consolidated: bool = False) -> Path:
    import ngff_zarr as nz

    image = nz.to_ngff_image(
        image_data(),
        dims=("c", "y", "x"),
        scale={"y": 0.5, "x": 0.5},
        translation={"y": 3.0, "x": 4.0},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        multiscales = nz.to_multiscales(image, scale_factors=[2, 4])
        nz.to_ngff_zarr(path, multiscales, version=version)
    if not consolidated:  # drop the consolidated listing (see the test of that case)
        meta = path / "zarr.json"
        import json

        document = json.loads(meta.read_text())
        document.pop("consolidated_metadata", None)
        meta.write_text(json.dumps(document))
    return path


WRITERS: dict[str, Callable[[Path], Path]] = {
    "ours-0.5": lambda p: _ours(p, 3),
    "ours-0.4": lambda p: _ours(p, 2),
    "ome-zarr-py-0.4": lambda p: _ome_zarr_py(p, "0.4"),
    "ome-zarr-py-default": lambda p: _ome_zarr_py(p, "0.5"),
    "ngff-zarr-0.5": lambda p: _ngff_zarr(p, "0.5"),
    "ngff-zarr-0.6": lambda p: _ngff_zarr(p, "0.6"),
}


def ngff_zarr_consolidated(path: Path) -> Path:
    """An ngff-zarr 0.5 image as it writes it: with consolidated metadata at its root."""
    return _ngff_zarr(path, "0.5", consolidated=True)


def files_outside_labels(root: Path) -> dict[str, bytes]:
    """Every file of the store outside ``labels/``, with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != "labels"
    }
