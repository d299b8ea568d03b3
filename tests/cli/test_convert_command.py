"""`napari-zarr-tiler convert`, run for real in subprocesses: what it writes from each kind of
source, what it prints, and what it imports."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_zarr_tiler import convert, read_zarr

from ..helpers import EXE, run


@pytest.mark.parametrize("kind", ["stripped", "tiled"])
def test_convert_plain_tiffs(
    tiffs: dict[str, Path], slide_image: np.ndarray, tmp_path: Path, kind: str
) -> None:
    dest = tmp_path / "out.zarr"
    result = run(
        "convert",
        str(tiffs[kind]),
        str(dest),
        "--chunks",
        "256",
        "--compressor",
        "blosc-lz4",
        check=True,
    )
    assert "wrote" in result.stderr
    assert "\r" not in result.stderr  # no progress bar when stderr is not a terminal
    # Uncompressed strips are read directly (a region reads its own bytes, not whole strips).
    assert ("read directly" in result.stderr) == (kind == "stripped")
    group = zarr.open_group(str(dest), mode="r")
    np.testing.assert_array_equal(group["0"][...], slide_image)
    assert group["0"].chunks == (256, 256)
    assert len(group.attrs["ome"]["multiscales"][0]["datasets"]) == 5


@pytest.mark.parametrize("kind", ["stripped", "tiled"])
def test_converting_a_tiff_never_imports_dask(
    tiffs: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    # dask.array (and the scipy it imports) cost ~0.25 s of every run's start-up.
    script = textwrap.dedent(
        f"""
        import sys
        from napari_zarr_tiler.cli import main
        status = main(["convert", {str(tiffs[kind])!r}, {str(tmp_path / "out.zarr")!r}, "--quiet"])
        print(status, "dask" in sys.modules, "scipy" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "False", "False"]


@pytest.mark.slow
def test_retile_the_classic_100px_store_and_npy(tmp_path: Path, slide_image: np.ndarray) -> None:
    classic = tmp_path / "classic.zarr"
    z = zarr.open(
        str(classic), mode="w", shape=slide_image.shape, chunks=(100, 100), dtype=slide_image.dtype
    )
    z[:] = slide_image
    dest = tmp_path / "retiled.zarr"
    run("convert", str(classic), str(dest), "--chunks", "512", "--quiet", check=True)
    np.testing.assert_array_equal(zarr.open_group(str(dest), mode="r")["0"][...], slide_image)
    npy = tmp_path / "image.npy"
    np.save(npy, slide_image)
    dest2 = tmp_path / "from_npy.zarr"
    run("convert", str(npy), str(dest2), "--zarr-format", "2", "--quiet", check=True)
    np.testing.assert_array_equal(zarr.open_group(str(dest2), mode="r")["0"][...], slide_image)
    assert (dest2 / ".zgroup").is_file()


def test_progress_bar_on_a_terminal(tmp_path: Path, slide_image: np.ndarray) -> None:
    """With stderr on a terminal (a pseudo-terminal here) the bar shows tiles, MB/s and ETA."""
    np.save(tmp_path / "img.npy", slide_image)
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [EXE, "convert", str(tmp_path / "img.npy"), str(tmp_path / "out.zarr"), "--chunks", "128"],
        stdout=subprocess.DEVNULL,
        stderr=secondary,
    )
    os.close(secondary)
    output = b""
    while True:
        try:
            data = os.read(primary, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        output += data
    os.close(primary)
    assert process.wait(timeout=120) == 0
    text = output.decode(errors="replace")
    assert "\r" in text
    assert "tiles" in text
    assert "MB/s" in text
    assert "ETA" in text
    assert "100%" in text


def test_reconverting_an_ome_zarr_keeps_its_channels(tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 255, (2, 300, 400), dtype=np.uint8)
    convert(
        image,
        tmp_path / "a.zarr",
        axes=("c", "y", "x"),
        scale=(1.0, 0.25, 0.25),
        units=(None, "micrometer", "micrometer"),
        channel_names=("DAPI", "GFP"),
        colors=("#0000ff", "#00ff00"),
        contrast_limits=((10, 100), (5, 50)),
    )
    run(
        "convert",
        str(tmp_path / "a.zarr"),
        str(tmp_path / "b.zarr"),
        "--chunks",
        "128",
        "--quiet",
        check=True,
    )
    before = zarr.open_group(str(tmp_path / "a.zarr"), mode="r").attrs["ome"]
    after = zarr.open_group(str(tmp_path / "b.zarr"), mode="r").attrs["ome"]
    assert after["omero"]["channels"] == before["omero"]["channels"]
    assert after["multiscales"][0]["axes"] == before["multiscales"][0]["axes"]
    assert (
        after["multiscales"][0]["datasets"][0]["coordinateTransformations"]
        == before["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    )


def test_retiling_a_label_image_keeps_it_a_label_image(tmp_path: Path) -> None:
    labels = np.zeros((300, 300), dtype=np.uint16)
    labels[::3, ::3] = 7  # a mean would give values other than 0 and 7
    source = tmp_path / "labels.zarr"
    convert(labels, source, chunks=64, label=True)
    dest = tmp_path / "retiled.zarr"
    run("convert", str(source), str(dest), "--chunks", "128", "--quiet", check=True)
    group = zarr.open_group(str(dest), mode="r")
    assert "image-label" in group.attrs["ome"]
    assert set(np.unique(group["1"][...])) <= {0, 7}
    assert read_zarr(dest).layers[0].layer_type == "labels"
