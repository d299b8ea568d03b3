"""`napari-zarr-tiler info`: what it says about a store, run for real in subprocesses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from ..helpers import run


def test_info_describes_a_store(tmp_path: Path, slide_image: np.ndarray) -> None:
    dest = tmp_path / "described.zarr"
    np.save(tmp_path / "a.npy", slide_image)
    run(
        "convert",
        str(tmp_path / "a.npy"),
        str(dest),
        "--chunks",
        "256",
        "--shards",
        "1024",
        "--quiet",
        check=True,
    )
    result = run("info", str(dest), check=True)
    out = result.stdout
    assert "OME-Zarr 0.5 image" in out
    assert "level 0: shape (2048, 3072) uint16, chunks (256, 256), shards (1024, 1024)" in out
    assert "MB on disk" in out
    assert "compression)" in out
    assert "codecs zstd (level 3)" in out  # named as the options spell it, with the level


def test_info_lists_the_images_of_a_bioformats2raw_collection(
    tmp_path: Path, slide_image: np.ndarray
) -> None:
    root = tmp_path / "b2r.zarr"
    zarr.open_group(str(root), mode="w", zarr_format=2).attrs.put({"bioformats2raw.layout": 3})
    for series in ("0", "1", "10", "2"):
        zarr.open_group(str(root / series), mode="w", zarr_format=2)
        zarr.create_array(str(root / series / "0"), data=slide_image[:64, :64], zarr_format=2)
    out = run("info", str(root), check=True).stdout
    assert "bioformats2raw collection" in out
    assert "groups: 0, 1, 2, 10 (describe one with" in out


@pytest.mark.parametrize(
    ("options", "codec"),
    [
        (("--compressor", "blosc-lz4"), "blosc-lz4 (clevel 5, shuffle)"),
        (("--compressor", "blosc-zstd", "--zarr-format", "2"), "blosc-zstd (clevel 3, shuffle)"),
        (("--compressor", "gzip", "--clevel", "4", "--zarr-format", "2"), "gzip (level 4)"),
    ],
)
def test_info_names_codecs_as_the_options_do(
    tmp_path: Path, options: tuple[str, ...], codec: str
) -> None:
    np.save(tmp_path / "a.npy", np.arange(300 * 200, dtype=np.uint16).reshape(300, 200))
    dest = tmp_path / "a.zarr"
    run("convert", str(tmp_path / "a.npy"), str(dest), *options, "--quiet", check=True)
    out = run("info", str(dest), check=True).stdout
    assert f"codecs {codec}," in out
