"""Zipped OME-Zarr (``.ozx``, RFC-9) read lazily from the file: the same layers as the folder
store for zips made by zipfile, by our converter and by ngff-zarr; nothing extracted; hostile
member names and announced sizes refused; a file that is not a zip named clearly; the npe2
reader in a real viewer; ``info`` in a subprocess."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_zarr_tiler import convert
from napari_zarr_tiler.errors import StoreReadError
from napari_zarr_tiler.reader import read_zarr
from napari_zarr_tiler.reader.contained_store import StoreContentWarning
from napari_zarr_tiler.reader.zipped import MAX_DIRECTORY_BYTES

from ..helpers import assert_one_line_error, tree_bytes

PLUGIN = "napari-zarr-tiler"
_CENTRAL = b"PK\x01\x02"
_EOCD = b"PK\x05\x06"


def zip_folder(folder: Path, target: Path, *, top: str = "", deflate: bool = False) -> Path:
    """Zip the store ``folder`` into ``target`` with zipfile (under ``top/`` if given)."""
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(target, "w", method) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{top}{path.relative_to(folder).as_posix()}")
    return target


def add_members(target: Path, members: dict[str, bytes]) -> None:
    """Append members with the names given, as they are (zipfile would not write ``..``)."""
    with zipfile.ZipFile(target, "a", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data)


def announce_size(target: Path, member: str, size: int) -> None:
    """Rewrite the uncompressed size the central directory announces for ``member``."""
    data = bytearray(target.read_bytes())
    at = data.find(_CENTRAL)
    while at >= 0:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + name_length].decode() == member:
            struct.pack_into("<I", data, at + 24, size)
            target.write_bytes(bytes(data))
            return
        at = data.find(_CENTRAL, at + 4)
    msg = f"{member} not in {target}"
    raise AssertionError(msg)


def _assert_same_image(zipped, folder) -> None:
    """Same layers, kwargs but the name, level shapes, and every level's pixels."""
    assert [layer.layer_type for layer in zipped.layers] == ["image"]
    got, want = zipped.layers[0], folder.layers[0]
    assert {**got.kwargs, "name": ""} == {**want.kwargs, "name": ""}
    assert [a.shape for a in got.data] == [a.shape for a in want.data]
    for level, (a, b) in enumerate(zip(got.data, want.data, strict=True)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=f"level {level}")


@pytest.fixture(params=["zipfile-stored", "zipfile-deflated-in-a-folder", "our-converter"])
def zipped_store(request: pytest.FixtureRequest, converted_store: Path, small_image) -> Path:
    """``converted_store`` as an .ozx: zipped by zipfile (two ways) or written by convert()."""
    target = converted_store.parent / "image.ozx"
    if request.param == "zipfile-stored":
        return zip_folder(converted_store, target)
    if request.param == "zipfile-deflated-in-a-folder":
        return zip_folder(converted_store, target, top="image.zarr/", deflate=True)
    convert(small_image, target, chunks=64)
    return target


def test_ozx_reads_as_the_folder_store(zipped_store: Path, converted_store: Path) -> None:
    contents = read_zarr(zipped_store)
    _assert_same_image(contents, read_zarr(converted_store))
    assert contents.layers[0].kwargs["name"] == "image"


def test_ngff_zarr_ozx_reads_its_pixels(tmp_path: Path, small_image: np.ndarray) -> None:
    import ngff_zarr as nz

    image = nz.to_ngff_image(small_image, dims=["y", "x"], scale={"y": 0.5, "x": 0.25})
    multiscales = nz.to_multiscales(image, scale_factors=[2, 4], chunks=64)
    target = tmp_path / "ngff.ozx"
    nz.to_ngff_zarr(target, multiscales, version="0.5")  # sharded by default in an .ozx
    layer = read_zarr(target).layers[0]
    assert [a.shape for a in layer.data] == [(256, 256), (128, 128), (64, 64)]
    assert tuple(layer.kwargs["scale"]) == (0.5, 0.25)
    for ours, theirs in zip(layer.data, multiscales.images, strict=True):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs.data))
    np.testing.assert_array_equal(np.asarray(layer.data[0]), small_image)


def test_reading_an_ozx_extracts_nothing(
    converted_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = zip_folder(converted_store, tmp_path / "image.ozx")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    before = tree_bytes(tmp_path)
    contents = read_zarr(target)
    for level in contents.layers[0].data:
        assert np.asarray(level).any()
    assert tree_bytes(tmp_path) == before
    assert not list(scratch.iterdir())


def test_ozx_levels_are_read_lazily(converted_store: Path, tmp_path: Path) -> None:
    """Level 0's chunks are garbage: opening and the smallest level work, level 0 fails."""
    target = zip_folder(converted_store, tmp_path / "image.ozx")
    damaged = tmp_path / "damaged.ozx"
    with zipfile.ZipFile(target) as source, zipfile.ZipFile(damaged, "w") as archive:
        for info in source.infolist():
            garbage = info.filename.startswith("0/c/")
            archive.writestr(info, b"\x00garbage" * 8 if garbage else source.read(info))
    layer = read_zarr(damaged).layers[0]
    assert np.asarray(layer.data[-1]).any()
    with pytest.raises(Exception, match=r"(?i)zstd|decompress|frame|data"):
        np.asarray(layer.data[0][:64, :64])


def test_hostile_member_names_are_never_read(tmp_path: Path) -> None:
    """A zip holding ``../x/zarr.json`` (and an absolute name): not listed, not read, not
    written anywhere; an image naming ``../x`` as a level is refused."""
    folder = tmp_path / "plain.zarr"
    group = zarr.open_group(folder, mode="w", zarr_format=3)
    group.create_array("a", data=np.arange(64, dtype="uint8").reshape(8, 8))
    target = zip_folder(folder, tmp_path / "plain.ozx")
    hostile = zarr.open_group(tmp_path / "x.zarr", mode="w", zarr_format=3)
    hostile.create_array("x", data=np.ones((8, 8), "uint8"))
    array_json = (tmp_path / "x.zarr" / "x" / "zarr.json").read_bytes()
    add_members(target, {"../x/zarr.json": array_json, "/abs/zarr.json": array_json})
    outside = tmp_path.parent / "x"
    existed = outside.exists()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        contents = read_zarr(target)
    assert [layer.kwargs["name"] for layer in contents.layers] == ["plain/a"]
    assert outside.exists() == existed
    refused = [str(w.message) for w in caught if issubclass(w.category, StoreContentWarning)]
    assert any("plain.ozx/..: not read" in text for text in refused), refused
    assert any("empty name" in text for text in refused), refused


def test_image_naming_a_level_outside_the_zip_is_refused(
    converted_store: Path, tmp_path: Path
) -> None:
    import json

    target = tmp_path / "image.ozx"
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(p for p in converted_store.rglob("*") if p.is_file()):
            name = path.relative_to(converted_store).as_posix()
            data = path.read_bytes()
            if name == "zarr.json":
                document = json.loads(data)
                document["attributes"]["ome"]["multiscales"][0]["datasets"][0]["path"] = "../x"
                data = json.dumps(document).encode()
            archive.writestr(name, data)
    with pytest.raises(StoreReadError, match=r"\.\./x"):
        read_zarr(target)


def test_member_announcing_a_huge_size_is_refused(converted_store: Path, tmp_path: Path) -> None:
    """A chunk member that claims ~4 GiB is never inflated: it reads as missing (fill value)."""
    target = zip_folder(converted_store, tmp_path / "bomb.ozx", deflate=True)
    announce_size(target, "0/c/0/0", 0xFFFF_FFF0)
    layer = read_zarr(target).layers[0]
    with pytest.warns(StoreContentWarning, match="more than is ever read at once"):
        corner = np.asarray(layer.data[0][:64, :64])
    assert not corner.any()  # the fill value
    assert np.asarray(layer.data[0][64:128, 64:128]).any()  # other chunks read


def test_metadata_announcing_a_huge_size_is_refused(converted_store: Path, tmp_path: Path) -> None:
    target = zip_folder(converted_store, tmp_path / "bomb.ozx")
    announce_size(target, "zarr.json", 0xFFFF_FFF0)
    with (
        pytest.warns(StoreContentWarning, match="more than is ever read at once"),
        pytest.raises(StoreReadError, match="not a zarr store"),
    ):
        read_zarr(target)


def test_central_directory_too_large_is_refused(converted_store: Path, tmp_path: Path) -> None:
    """The end record announces a ~4 GiB directory: refused before zipfile reads it."""
    target = zip_folder(converted_store, tmp_path / "many.ozx")
    data = bytearray(target.read_bytes())
    struct.pack_into("<I", data, data.rfind(_EOCD) + 12, 0xFFFF_FFF0)
    target.write_bytes(bytes(data))
    assert MAX_DIRECTORY_BYTES < 0xFFFF_FFF0
    with pytest.raises(StoreReadError, match="more than the reader holds in memory") as raised:
        read_zarr(target)
    assert str(target) in str(raised.value)


def test_a_file_that_is_not_a_zip_fails_clearly(tmp_path: Path) -> None:
    target = tmp_path / "x.ozx"
    target.write_text("<html>not a zip</html>")
    with pytest.raises(StoreReadError, match="not a readable zip file") as raised:
        read_zarr(target)
    assert str(target) in str(raised.value)
    result = _cli_info(target)
    assert_one_line_error(result, "not a readable zip file")


def _cli_info(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "napari_zarr_tiler.cli", "info", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_info_on_an_ozx_measures_member_sizes(zipped_store: Path) -> None:
    result = _cli_info(zipped_store)
    assert result.returncode == 0, result.stderr
    assert str(zipped_store) in result.stdout
    assert "level 2: shape (64, 64) uint16" in result.stdout
    assert "0 B on disk" not in result.stdout
    with zipfile.ZipFile(zipped_store) as archive:
        names = {
            i.filename.removeprefix("image.zarr/"): i.compress_size for i in archive.infolist()
        }
    level0 = sum(size for name, size in names.items() if name.startswith("0/"))
    line = next(ln for ln in result.stdout.splitlines() if "level 0:" in ln)
    shown = re.search(r"([\d.,]+) kB on disk", line)  # e.g. "118.3 kB on disk"
    assert shown is not None, line
    assert float(shown.group(1).replace(",", "")) == pytest.approx(level0 / 1e3, abs=0.06), line


def test_viewer_opens_an_ozx(make_napari_viewer, tmp_path: Path, small_image) -> None:
    """Drag and drop: napari's own open, with the file's path, through the npe2 reader."""
    target = tmp_path / "image.ozx"
    convert(small_image, target, chunks=64)
    viewer = make_napari_viewer()
    layers = viewer.open(str(target), plugin=PLUGIN)
    assert [type(layer).__name__ for layer in layers] == ["Image"]
    assert layers[0].multiscale and layers[0].name == "image"
    assert [level.shape for level in layers[0].data] == [(256, 256), (128, 128), (64, 64)]
    np.testing.assert_array_equal(np.asarray(layers[0].data[0]), small_image)
