"""Store inspection (what `info` prints) and the reader wing's face, on real stores in tmp_path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

import napari_zarr_tiler.reader as reader
from napari_zarr_tiler.errors import StoreReadError
from napari_zarr_tiler.reader import describe_store
from napari_zarr_tiler.reader.inspect import describe_codec, format_description, inspect_store

from ..helpers import run, write_ome_image


def _files_bytes(folder: Path) -> int:
    return sum(entry.stat().st_size for entry in folder.rglob("*") if entry.is_file())


@pytest.fixture
def channel_image(tmp_path: Path) -> Path:
    """A two-level, three-channel OME-Zarr 0.5 image with labels, units and a translation."""
    path = tmp_path / "cells.zarr"
    data = np.arange(3 * 128 * 160, dtype=np.uint16).reshape(3, 128, 160)
    write_ome_image(
        path,
        [data, data[:, ::2, ::2].copy()],
        axes=[
            {"name": "c", "type": "channel"},
            {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"},
        ],
        level_scales=[[1.0, 0.5, 0.5], [1.0, 1.0, 1.0]],
        level_translations=[[0.0, 10.0, 20.0], [0.0, 10.25, 20.25]],
        omero={"channels": [{"label": "DAPI"}, {"label": "GFP"}, {"label": ""}]},
        chunks=(1, 64, 64),
    )
    return path


def test_an_ome_image_is_described_level_by_level(channel_image: Path) -> None:
    description = inspect_store(channel_image)
    assert description.kind == "image"
    assert description.multiscale is not None
    assert [level.name for level in description.levels] == ["0", "1"]
    finest, coarsest = description.levels
    assert finest.shape == (3, 128, 160)
    assert coarsest.shape == (3, 64, 80)
    assert (finest.dtype, finest.chunks, finest.shards) == ("uint16", (1, 64, 64), None)
    assert finest.nbytes == 3 * 128 * 160 * 2
    assert finest.disk_bytes == _files_bytes(channel_image / "0")
    assert coarsest.disk_bytes == _files_bytes(channel_image / "1")

    lines = format_description(description).splitlines()
    assert lines[:6] == [
        str(channel_image),
        "  OME-Zarr 0.5 image cells.zarr",
        "  axes: c, y (micrometer), x (micrometer)",
        "  scale (level 0): [1.0, 0.5, 0.5]",
        "  translation (level 0): [0.0, 10.0, 20.0]",
        "  channels: DAPI, GFP, ?",
    ]
    codecs = " + ".join(finest.codecs) or "none"
    assert lines[6].startswith(
        f"  level 0: shape (3, 128, 160) uint16, chunks (1, 64, 64), codecs {codecs}, "
    )
    assert lines[6].endswith(f"({finest.nbytes / finest.disk_bytes:.3g}x compression)")
    total = finest.nbytes + coarsest.nbytes
    disk = finest.disk_bytes + coarsest.disk_bytes
    assert lines[-1].startswith("  total: ")
    assert lines[-1].endswith(f"({total / disk:.3g}x compression)")
    assert len(lines) == 9


def test_describe_store_is_what_info_prints(channel_image: Path) -> None:
    printed = run("info", str(channel_image), check=True).stdout
    assert printed == describe_store(channel_image) + "\n"


def test_a_plain_group_lists_its_arrays_and_first_groups(tmp_path: Path) -> None:
    root = tmp_path / "plain.zarr"
    group = zarr.open_group(str(root), mode="w")
    group.create_array("b", data=np.ones((40, 30), dtype=np.float32), chunks=(20, 20))
    group.create_array("a", data=np.ones((10, 10), dtype=np.uint8), chunks=(10, 10))
    for name in [*map(str, range(22)), "sub"]:
        group.create_group(name)

    description = inspect_store(root)
    assert description.kind == "group"
    assert description.arrays == ("a", "b")
    assert description.groups[:3] == ("0", "1", "2")  # numbers in numeric order, names last
    assert description.groups[-1] == "sub"
    assert [level.name for level in description.levels] == ["a", "b"]

    lines = format_description(description).splitlines()
    assert lines[1] == "  zarr group without OME metadata; arrays: a, b"
    shown = ", ".join(str(n) for n in range(20))
    assert lines[2] == (
        f"  groups: {shown} ... (23 in all) (describe one with `info {root / '0'}`)"
    )


def test_a_bare_array_without_compressor(tmp_path: Path) -> None:
    path = tmp_path / "bare.zarr"
    array = zarr.create_array(
        str(path), shape=(50, 60), chunks=(25, 30), dtype="int16", zarr_format=2, compressors=None
    )
    array[...] = 7
    description = inspect_store(path)
    assert (description.kind, description.zarr_format) == ("array", 2)
    (level,) = description.levels
    assert level.codecs == ()
    assert level.disk_bytes == _files_bytes(path)
    lines = format_description(description).splitlines()
    assert lines[1] == "  zarr format 2, a bare array"
    assert lines[2].startswith(
        "  level (array): shape (50, 60) int16, chunks (25, 30), codecs none,"
    )


def test_a_store_that_cannot_be_opened_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not zarr")
    with pytest.raises(StoreReadError, match="not a zarr store"):
        describe_store(tmp_path / "notes.txt")


@pytest.mark.parametrize(
    ("codec", "name"),
    [
        (ZstdCodec(level=5), "zstd (level 5)"),
        (GzipCodec(level=4), "gzip (level 4)"),
        (BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"), "blosc-lz4 (clevel 5, shuffle)"),
        (numcodecs.Blosc(cname="zstd", clevel=3, shuffle=2), "blosc-zstd (clevel 3, bitshuffle)"),
        (numcodecs.Zlib(level=1), "zlib (level 1)"),
        (numcodecs.Delta(dtype="i2"), "delta"),
    ],
)
def test_codecs_are_named_as_the_options_spell_them(codec: object, name: str) -> None:
    assert describe_codec(codec) == name


def test_the_face_serves_its_names_and_no_others() -> None:
    for name in reader.__all__:
        assert getattr(reader, name).__module__.startswith("napari_zarr_tiler.reader.")
    with pytest.raises(AttributeError, match="no attribute 'lazy_array'"):
        _ = reader.lazy_array


def test_finding_a_node_imports_neither_zarr_nor_dask(tmp_path: Path) -> None:
    # napari asks the npe2 reader about every folder it opens: the check must stay cheap.
    zarr.open_group(str(tmp_path / "s.zarr"), mode="w")
    code = (
        "import sys\n"
        "from napari_zarr_tiler.reader import find_zarr_node\n"
        f"assert find_zarr_node({str(tmp_path / 's.zarr')!r}) is not None\n"
        "print(sorted(m for m in ('zarr', 'dask', 'numpy') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]"
