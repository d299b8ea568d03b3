"""Bad input to the console script: one line on stderr naming what to fix, a non-zero exit, no
traceback, and nothing left behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from napari_zarr_tiler.zarr_names import staging_path

from ..helpers import EXE, assert_one_line_error, run


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["convert", "/nonexistent/image.tif", "{tmp}/a.zarr"], "no such file or folder"),
        (["convert", "{tmp}/notes.txt", "{tmp}/b.zarr"], "not a readable TIFF image"),
        (["convert", "{tmp}/truncated.tif", "{tmp}/c.zarr"], "truncated or corrupt"),
        (["convert", "{tmp}/img.npy", "{tmp}/exists.zarr"], "already exists"),
        (
            ["convert", "{tmp}/img.npy", "{tmp}/notes.txt/d.zarr"],
            "cannot create the destination folder",
        ),
        (["convert", "{tmp}/img.npy", "{tmp}/e.zarr", "--chunks", "0"], "chunks must be positive"),
        (
            ["convert", "{tmp}/img.npy", "{tmp}/f.zarr", "--chunks", "64", "--shards", "100"],
            "multiple of the chunks",
        ),
        (
            ["convert", "{tmp}/img.npy", "{tmp}/g.zarr", "--shards", "1024", "--zarr-format", "2"],
            "zarr format 3",
        ),
        (
            ["convert", "{tmp}/img.npy", "{tmp}/h.zarr", "--compressor", "none", "--clevel", "5"],
            "no effect without a compressor",
        ),
        (["info", "{tmp}/notes.txt"], "not a zarr store"),
    ],
)
def test_bad_input_gets_one_line_and_nonzero_exit(
    tmp_path: Path, tiffs: dict[str, Path], args: list[str], fragment: str
) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    np.save(tmp_path / "img.npy", np.zeros((64, 64), dtype=np.uint8))
    (tmp_path / "exists.zarr").mkdir()
    data = tiffs["tiled"].read_bytes()
    (tmp_path / "truncated.tif").write_bytes(data[: len(data) // 2])
    result = run(*[a.format(tmp=tmp_path) for a in args])
    assert_one_line_error(result, fragment)
    for leftover in ("c.zarr", "e.zarr", "f.zarr", "g.zarr"):
        assert not (tmp_path / leftover).exists()
        assert not staging_path(tmp_path / leftover).exists()


def test_invalid_option_values_are_usage_errors(tmp_path: Path) -> None:
    result = run("convert", "a.tif", str(tmp_path / "x.zarr"), "--levels", "many")
    assert result.returncode == 2
    assert "levels must be 'auto' or a number" in result.stderr


@pytest.mark.parametrize(
    "damage",
    ["broken-zarr-json", "empty-zgroup", "store-with-stray-file"],
)
def test_overwrite_never_replaces_a_folder_that_is_not_a_store(
    tmp_path: Path, damage: str
) -> None:
    np.save(tmp_path / "img.npy", np.zeros((64, 64), dtype=np.uint8))
    dest = tmp_path / "thesis"
    if damage == "store-with-stray-file":
        run("convert", str(tmp_path / "img.npy"), str(dest), "--quiet", check=True)
    else:
        dest.mkdir()
        name, text = ("zarr.json", "not json") if damage == "broken-zarr-json" else (".zgroup", "")
        (dest / name).write_text(text)
    (dest / "thesis.docx").write_text("four years of work")
    result = run("convert", str(tmp_path / "img.npy"), str(dest), "--overwrite")
    assert_one_line_error(result, "is not a zarr store; it will not be replaced")
    assert (dest / "thesis.docx").read_text() == "four years of work"


def test_direct_io_without_the_zarrs_pipeline_is_refused(
    tmp_path: Path, tiffs: dict[str, Path]
) -> None:
    dest = tmp_path / "out.zarr"
    result = subprocess.run(
        [EXE, "convert", str(tiffs["stripped"]), str(dest), "--direct-io", "on"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "NAPARI_ZARR_TILER_PIPELINE": "default"},
    )
    assert_one_line_error(result, "direct I/O needs the zarrs codec pipeline")
    assert not dest.exists()
    assert not staging_path(dest).exists()
