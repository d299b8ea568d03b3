"""Writing zipped OME-Zarr (``.ozx``, RFC-9): complete only when finished, resumable, and an
existing file replaced only when it is provably a zarr zip.

The files written are read back through zarr-python's ``ZipStore`` and ngff-zarr's reader.
"""

from __future__ import annotations

import json
import struct
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_zarr_tiler import convert
from napari_zarr_tiler.converter.zipped import staging_folder, write_ozx
from napari_zarr_tiler.errors import (
    ConversionCancelled,
    DestinationError,
    DestinationExistsError,
    InvalidOptionError,
)
from napari_zarr_tiler.zarr_names import JOURNAL, STAGING_MARKER

from ..helpers import PeakMemoryGrowth, run


def _open_zip(path: Path) -> zarr.Group:
    return zarr.open_group(zarr.storage.ZipStore(path, mode="r"), mode="r")


def _local_extra_ids(path: Path, info: zipfile.ZipInfo) -> set[int]:
    """The extra-field header ids of a member's local file header."""
    with open(path, "rb") as file:
        file.seek(info.header_offset)
        header = file.read(30)
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        file.seek(info.header_offset + 30 + name_length)
        extra = file.read(extra_length)
    ids, offset = set(), 0
    while offset + 4 <= len(extra):
        header_id, size = struct.unpack("<HH", extra[offset : offset + 4])
        ids.add(header_id)
        offset += 4 + size
    return ids


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- a finished file ----------------------------------------------------------------------------


def test_ozx_holds_every_level(tmp_path: Path, small_image: np.ndarray) -> None:
    folder_store, zipped = tmp_path / "image.zarr", tmp_path / "image.ozx"
    convert(small_image, folder_store, chunks=64)
    result = convert(small_image, zipped, chunks=64)
    assert result.path == zipped
    assert _only(tmp_path) == ["image.ozx", "image.zarr"]  # nothing hidden left behind
    group, reference = _open_zip(zipped), zarr.open_group(str(folder_store), mode="r")
    assert group.attrs.asdict() == reference.attrs.asdict()
    assert group.attrs["ome"]["multiscales"][0]["name"] == "image"
    for level in ("0", "1", "2"):
        np.testing.assert_array_equal(group[level][:], reference[level][:])
    np.testing.assert_array_equal(group["0"][:], small_image)


def test_ozx_follows_rfc9(tmp_path: Path, small_image: np.ndarray) -> None:
    zipped = tmp_path / "image.ozx"
    convert(small_image, zipped, chunks=64, ome_version="0.6")
    with zipfile.ZipFile(zipped) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        assert json.loads(archive.comment) == {
            "ome": {"version": "0.6", "zipFile": {"centralDirectory": {"jsonFirst": True}}}
        }
        root = json.loads(archive.read("zarr.json"))
    metadata = [n for n in names if n.endswith("zarr.json")]
    assert names[0] == "zarr.json"
    assert names[: len(metadata)] == metadata  # every zarr.json before any chunk
    depths = [n.count("/") for n in metadata]
    assert depths == sorted(depths)  # breadth-first
    assert len(names) > len(metadata)
    assert all(info.compress_type == zipfile.ZIP_STORED for info in infos)
    assert all(0x0001 in _local_extra_ids(zipped, info) for info in infos)  # zip64 entries
    assert not {STAGING_MARKER, JOURNAL} & {Path(n).name for n in names}
    assert root["attributes"]["ome"]["version"] == "0.6"


def test_ozx_says_json_first_as_ngff_zarr_reads_it(
    tmp_path: Path, small_image: np.ndarray
) -> None:
    """ngff-zarr reads the ``jsonFirst`` flag of the comment (it lets readers stop parsing the
    central directory once the metadata is found)."""
    from ngff_zarr.rfc9_zip import read_ozx_json_first, read_ozx_version

    zipped = tmp_path / "image.ozx"
    convert(small_image, zipped, chunks=64)
    assert read_ozx_json_first(zipped) is True
    assert read_ozx_version(zipped) == "0.5"


def test_ozx_opens_in_ngff_zarr(tmp_path: Path, small_image: np.ndarray) -> None:
    import ngff_zarr

    zipped = tmp_path / "image.ozx"
    convert(small_image, zipped, chunks=64, ome_version="0.6", scale=[0.5, 0.25], translate=[3, 4])
    multiscales = ngff_zarr.from_ngff_zarr(str(zipped))
    first = multiscales.images[0]
    assert first.scale == pytest.approx({"y": 0.5, "x": 0.25})
    assert first.translation == pytest.approx({"y": 3.0, "x": 4.0})
    np.testing.assert_array_equal(np.asarray(first.data), small_image)


def test_ozx_labels(tmp_path: Path, small_image: np.ndarray) -> None:
    mask = (small_image > np.percentile(small_image, 70)).astype(np.uint8)
    zipped = tmp_path / "cells.ozx"
    convert(mask, zipped, chunks=64, label=True, ome_version="0.5")
    group = _open_zip(zipped)
    assert "image-label" in group.attrs["ome"]
    np.testing.assert_array_equal(group["0"][:], mask)


# -- options a zip cannot hold -------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{"zarr_format": 2}, {"ome_version": "0.4"}, {"layout": "array"}],
)
def test_ozx_refuses_what_it_cannot_hold(
    tmp_path: Path, small_image: np.ndarray, options: dict
) -> None:
    with pytest.raises(InvalidOptionError, match=r"\.ozx"):
        convert(small_image, tmp_path / "image.ozx", **options)
    assert list(tmp_path.iterdir()) == []


# -- complete only when finished; resume -------------------------------------------------------


@pytest.fixture(scope="module")
def four_regions() -> np.ndarray:
    """A (c, y, x) = 4 x 512 x 512 uint16 ramp: one region per channel."""
    return (np.arange(4 * 512 * 512) % 65000).astype(np.uint16).reshape(4, 512, 512)


def _stop_after_first_region() -> tuple[threading.Event, list]:
    stop, seen = threading.Event(), []

    def on_progress(event) -> None:
        seen.append(event.tiles_done)
        stop.set()

    return stop, on_progress


def test_cancelled_ozx_leaves_no_file_and_resume_finishes(
    tmp_path: Path, four_regions: np.ndarray
) -> None:
    zipped = tmp_path / "image.ozx"
    stop, on_progress = _stop_after_first_region()
    with pytest.raises(ConversionCancelled):
        convert(
            four_regions,
            zipped,
            chunks=128,
            axes=["c", "y", "x"],
            workers=1,
            resume=True,
            cancel=stop,
            progress=on_progress,
        )
    assert not zipped.exists()
    partial = staging_folder(zipped)
    assert partial.is_dir() and partial.name.startswith(".")
    assert _only(tmp_path) == [partial.name]
    result = convert(
        four_regions, zipped, chunks=128, axes=["c", "y", "x"], workers=1, resume=True
    )
    assert result.resumed_regions is not None and result.resumed_regions > 0
    assert _only(tmp_path) == ["image.ozx"]
    group = _open_zip(zipped)
    np.testing.assert_array_equal(group["0"][:], four_regions)
    assert group["1"].shape == (4, 256, 256)


def test_cancelled_ozx_without_resume_leaves_nothing(
    tmp_path: Path, four_regions: np.ndarray
) -> None:
    stop, on_progress = _stop_after_first_region()
    with pytest.raises(ConversionCancelled):
        convert(
            four_regions,
            tmp_path / "image.ozx",
            chunks=128,
            axes=["c", "y", "x"],
            workers=1,
            cancel=stop,
            progress=on_progress,
        )
    assert list(tmp_path.iterdir()) == []


def test_stale_zip_of_a_killed_run_is_removed(tmp_path: Path, small_image: np.ndarray) -> None:
    stale = tmp_path / ".image.ozx.zip-0123abcd"
    stale.write_bytes(b"PK\x03\x04 half a zip")  # what a run killed while zipping leaves
    other = tmp_path / ".image.ozx.notes"
    other.write_text("not ours")
    convert(small_image, tmp_path / "image.ozx", chunks=128)
    assert _only(tmp_path) == [".image.ozx.notes", "image.ozx"]


# -- existing destinations -------------------------------------------------------------------------


def test_existing_ozx_needs_overwrite(tmp_path: Path, small_image: np.ndarray) -> None:
    zipped = tmp_path / "image.ozx"
    convert(small_image, zipped, chunks=128)
    before = zipped.read_bytes()
    with pytest.raises(DestinationExistsError, match="already exists"):
        convert(small_image[::-1], zipped, chunks=128)
    with pytest.raises(DestinationExistsError, match="already complete"):
        convert(small_image, zipped, chunks=128, resume=True)
    assert zipped.read_bytes() == before
    convert(small_image[::-1], zipped, chunks=128, overwrite=True)
    np.testing.assert_array_equal(_open_zip(zipped)["0"][:], small_image[::-1])
    assert _only(tmp_path) == ["image.ozx"]


def _not_a_zarr_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("thesis.txt", "years of work")


def _zip_with_bad_zarr_json(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("zarr.json", json.dumps({"title": "not zarr metadata"}))


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p.write_text("not a zip at all"),
        _not_a_zarr_zip,
        _zip_with_bad_zarr_json,
        lambda p: p.mkdir(),
    ],
    ids=["text", "zip-without-zarr", "zip-bad-zarr-json", "folder"],
)
def test_overwrite_refuses_what_is_not_a_zarr_zip(
    tmp_path: Path, small_image: np.ndarray, make
) -> None:
    target = tmp_path / "x.ozx"
    make(target)
    before = target.read_bytes() if target.is_file() else None
    with pytest.raises(DestinationError, match="not a zipped zarr store"):
        convert(small_image, target, chunks=128, overwrite=True)
    if before is not None:
        assert target.read_bytes() == before
    else:
        assert target.is_dir() and list(target.iterdir()) == []
    assert _only(tmp_path) == ["x.ozx"]


def test_ozx_inside_the_source_refused(tmp_path: Path, small_image: np.ndarray) -> None:
    source = tmp_path / "source.zarr"
    convert(small_image, source, chunks=128)
    with pytest.raises(DestinationError, match="inside"):
        convert(zarr.open_array(str(source / "0"), mode="r"), source / "copy.ozx")
    assert not (source / "copy.ozx").exists()


# -- memory and the command line ------------------------------------------------------------------


def test_zipping_streams_members(tmp_path: Path) -> None:
    store = tmp_path / "big.zarr"
    (store / "0" / "c" / "0").mkdir(parents=True)
    (store / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group"}))
    block = np.random.default_rng(0).integers(0, 255, 1 << 20, dtype=np.uint8).tobytes()
    with open(store / "0" / "c" / "0" / "0", "wb") as chunk:
        for _ in range(160):  # one 160 MB member
            chunk.write(block)
    target = tmp_path / "big.ozx"
    with PeakMemoryGrowth() as memory:
        write_ozx(store, target, version="0.5")
    assert memory.grown_mb < 40, memory.grown_mb
    with zipfile.ZipFile(target) as archive:
        assert archive.getinfo("0/c/0/0").file_size == 160 << 20
        assert archive.testzip() is None


def test_cli_writes_ozx(tmp_path: Path, small_image: np.ndarray) -> None:
    source = tmp_path / "image.npy"
    np.save(source, small_image)
    zipped = tmp_path / "image.ozx"
    run("convert", str(source), str(zipped), "--ome-version", "0.6", "--quiet", check=True)
    group = _open_zip(zipped)
    assert group.attrs["ome"]["version"] == "0.6"
    np.testing.assert_array_equal(group["0"][:], small_image)


def test_ozx_opens_in_our_reader(tmp_path: Path, small_image: np.ndarray) -> None:
    from napari_zarr_tiler import read_zarr

    zipped = tmp_path / "image.ozx"
    convert(small_image, zipped, chunks=64, ome_version="0.6", scale=[0.5, 0.25], translate=[3, 4])
    (layer,) = read_zarr(zipped).layers
    assert layer.kwargs["scale"] == pytest.approx((0.5, 0.25))
    assert layer.kwargs["translate"] == pytest.approx((3.0, 4.0))
    np.testing.assert_array_equal(np.asarray(layer.data[0]), small_image)
