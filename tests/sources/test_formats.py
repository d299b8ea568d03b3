"""The sources wing through its face: each format opened by :class:`SourceSpec`, the spec's
pickling (dask workers re-open it), and the modules inside (axes in OME order, positioned reads).

Real files only: TIFFs written by tifffile, stores by zarr and by :func:`napari_zarr_tiler.convert`,
``.npy`` files by numpy; a real worker process re-opens a spec.
"""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

import napari_zarr_tiler.sources as sources
from napari_zarr_tiler import convert
from napari_zarr_tiler.errors import SourceError
from napari_zarr_tiler.sources import OpenSource, SourceSpec, check_local


def test_the_face_exports_what_other_wings_use() -> None:
    assert set(sources.__all__) == {
        "OpenSource",
        "SourceSpec",
        "SourceWarning",
        "is_url",
        "check_local",
        "synthetic_slide",
    }
    for name in sources.__all__:
        assert getattr(sources, name) is not None


def test_kind_follows_the_path(tmp_path: Path) -> None:
    folder = tmp_path / "store.zarr"
    folder.mkdir()
    assert SourceSpec("sample:slide_uint8").kind == "sample"
    assert SourceSpec(str(folder)).kind == "zarr"
    assert SourceSpec(str(tmp_path / "a" / "zarr.json")).kind == "zarr"
    assert SourceSpec(str(tmp_path / "a" / ".zarray")).kind == "zarr"
    assert SourceSpec(str(tmp_path / "image.NPY")).kind == "npy"
    assert SourceSpec(str(tmp_path / "image.ome.tif")).kind == "tiff"
    assert SourceSpec(str(tmp_path / "image.svs")).kind == "tiff"


def test_missing_paths_and_urls_are_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or folder"):
        SourceSpec(str(tmp_path / "absent.tif")).open()
    with pytest.raises(SourceError, match="URLs are not supported yet as the source; download"):
        SourceSpec("https://example.org/image.tif").open()
    with pytest.raises(SourceError, match="as the destination; give a local folder"):
        check_local("s3://bucket/out.zarr", role="destination")
    check_local(tmp_path / "plain:name.tif")  # a colon alone is not a URL


def _read_in_worker(spec: SourceSpec) -> tuple[list[int], int]:
    """What a worker process reads from a spec it received pickled."""
    block = np.asarray(spec.opened.array[10:20, 30:50])
    return list(block.shape), int(block.sum())


def test_a_spec_pickles_without_its_open_files_and_reopens_in_a_worker(tmp_path: Path) -> None:
    data = np.arange(200 * 300, dtype=np.uint16).reshape(200, 300)
    path = tmp_path / "strips.tif"
    tifffile.imwrite(path, data, rowsperstrip=16)
    spec = SourceSpec(str(path))
    opened = spec.opened
    assert spec.opened is opened  # opened once per process
    np.testing.assert_array_equal(opened.array[5:9, 7:11], data[5:9, 7:11])
    copy = pickle.loads(pickle.dumps(spec))
    assert copy == spec
    assert "opened" not in vars(copy)  # the copy opens its own files
    np.testing.assert_array_equal(copy.opened.array[...], data)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        shape, total = pool.submit(_read_in_worker, spec).result(timeout=120)
    assert shape == [10, 20]
    assert total == int(data[10:20, 30:50].sum())
    opened.close()
    copy.opened.close()


def test_an_open_source_closes_its_files_and_reads_again_after(tmp_path: Path) -> None:
    data = np.arange(64 * 64, dtype=np.uint8).reshape(64, 64)
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, data)
    opened = SourceSpec(str(path)).open()
    assert isinstance(opened, OpenSource)
    opened.close()
    opened.close()  # twice is harmless
    np.testing.assert_array_equal(opened.array[3:5], data[3:5])  # re-opened on demand
    opened.close()


def test_npy_is_memory_mapped_and_named_after_the_file(tmp_path: Path) -> None:
    data = np.arange(40 * 50, dtype=np.float32).reshape(40, 50)
    path = tmp_path / "cells.npy"
    np.save(path, data)
    opened = SourceSpec(str(path)).open()
    assert isinstance(opened.array, np.memmap)
    assert opened.options == {"name": "cells"}
    assert "memory-mapped" in opened.description
    np.testing.assert_array_equal(opened.array, data)
    broken = tmp_path / "broken.npy"
    broken.write_bytes(b"\x93NUMPY not really")
    with pytest.raises(SourceError, match=r"broken.npy: not a readable \.npy array"):
        SourceSpec(str(broken)).open()


def test_a_plain_zarr_array_is_a_source(tmp_path: Path) -> None:
    data = np.arange(30 * 40, dtype=np.int32).reshape(30, 40)
    store = tmp_path / "plain.zarr"
    zarr.create_array(str(store), data=data, chunks=(16, 16))
    opened = SourceSpec(str(store)).open()
    assert opened.options == {"name": "plain"}
    assert "chunks (16, 16)" in opened.description
    np.testing.assert_array_equal(opened.array[...], data)


def test_an_ome_zarr_source_carries_its_metadata(tmp_path: Path) -> None:
    data = np.zeros((2, 64, 80), dtype=np.uint16)
    store = tmp_path / "two_channels.zarr"
    convert(
        data,
        store,
        chunks=32,
        axes=("c", "y", "x"),
        scale=(1.0, 0.5, 0.25),
        units=(None, "micrometer", "micrometer"),
        channel_names=("DAPI", "GFP"),
        colors=("0000FF", "00FF00"),
        contrast_limits=((0, 100), (5, 50)),
        name="cells",
    )
    opened = SourceSpec(str(store)).open()
    options = opened.options
    assert options["name"] == "cells"
    assert options["axes"] == ("c", "y", "x")
    assert tuple(options["scale"]) == (1.0, 0.5, 0.25)
    assert tuple(options["units"]) == (None, "micrometer", "micrometer")
    assert options["channel_names"] == ("DAPI", "GFP")
    assert [c.upper().lstrip("#") for c in options["colors"]] == ["0000FF", "00FF00"]
    assert [tuple(w) for w in options["contrast_limits"]] == [(0, 100), (5, 50)]
    assert "label" not in options
    assert opened.array.shape == (2, 64, 80)


def test_an_ome_label_image_stays_a_label_image(tmp_path: Path) -> None:
    store = tmp_path / "labels.zarr"
    convert(np.zeros((64, 64), dtype=np.uint16), store, chunks=32, label=True)
    assert SourceSpec(str(store)).open().options["label"] is True


def test_zarr_groups_without_an_image_name_what_to_give(tmp_path: Path) -> None:
    group = zarr.open_group(str(tmp_path / "plain_group.zarr"), mode="w")
    group.create_array("b", shape=(8, 8), dtype="uint8")
    group.create_array("a", shape=(8, 8), dtype="uint8")
    with pytest.raises(SourceError, match=r"without an OME image; name one of its arrays, e\.g\."):
        SourceSpec(str(tmp_path / "plain_group.zarr")).open()
    try:
        SourceSpec(str(tmp_path / "plain_group.zarr")).open()
    except SourceError as error:
        assert str(error).endswith(str(tmp_path / "plain_group.zarr" / "a"))
    zarr.open_group(str(tmp_path / "empty.zarr"), mode="w")
    with pytest.raises(SourceError, match="an empty zarr group"):
        SourceSpec(str(tmp_path / "empty.zarr")).open()


def test_samples_open_and_unknown_samples_list_the_choices() -> None:
    opened = SourceSpec("sample:slide_uint16").open()
    assert opened.array.shape == (4096, 4096)
    assert opened.array.dtype == np.uint16
    assert opened.options["scale"] == (0.25, 0.25)
    with pytest.raises(
        SourceError, match="choose one of: sample:slide_uint8, sample:slide_uint16"
    ):
        SourceSpec("sample:slide_float").open()


def test_a_tiff_series_out_of_range_lists_the_series(tmp_path: Path) -> None:
    path = tmp_path / "two.tif"
    with tifffile.TiffWriter(path) as writer:
        writer.write(np.zeros((16, 16), dtype=np.uint8))
        writer.write(np.zeros((8, 4), dtype=np.uint8))
    assert SourceSpec(str(path), series=1).open().array.shape == (8, 4)
    with pytest.raises(
        SourceError, match=r"no series 2; the TIFF holds series 0 \(YX \(16, 16\)\)"
    ):
        SourceSpec(str(path), series=2).open()


@pytest.mark.parametrize(
    ("axes", "shape", "colour", "order", "names", "rgb", "folded"),
    [
        ("YX", (5, 6), True, (0, 1), ("y", "x"), False, ()),
        ("ZCYX", (2, 3, 5, 6), True, (1, 0, 2, 3), ("c", "z", "y", "x"), False, ()),
        ("YXS", (5, 6, 3), True, (0, 1, 2), ("y", "x", "s"), True, ()),
        ("YXS", (5, 6, 3), False, (2, 0, 1), ("c", "y", "x"), False, ()),
        ("IYX", (4, 5, 6), True, (0, 1, 2), ("z", "y", "x"), False, ()),
        ("CHYX", (2, 5, 6, 7), True, (0, 1, 2, 3), ("c", "y", "x"), False, ("C", "H")),
        ("TQZYX", (2, 3, 4, 5, 6), True, (0, 1, 2, 3, 4), ("t", "c", "z", "y", "x"), False, ()),
    ],
)
def test_file_axes_are_put_in_ome_order(
    axes: str,
    shape: tuple[int, ...],
    colour: bool,
    order: tuple[int, ...],
    names: tuple[str, ...],
    rgb: bool,
    folded: tuple[str, ...],
) -> None:
    from napari_zarr_tiler.sources.axes import ome_axes

    stored = ome_axes(axes, shape, colour=colour)
    assert (stored.order, stored.names, stored.rgb, stored.folded) == (order, names, rgb, folded)


def test_an_axis_order_view_reads_like_the_permuted_and_merged_array() -> None:
    from napari_zarr_tiler.sources.axes import AxisOrderView

    rng = np.random.default_rng(5)
    data = rng.integers(0, 1000, size=(3, 4, 5, 6, 7), dtype=np.uint16)
    order = (1, 0, 2, 3, 4)  # file C, T, H, Y, X -> T, (C x H), Y, X
    view = AxisOrderView(data, order, merge=(1, 2))
    expected = np.transpose(data, order).reshape(4, 3 * 5, 6, 7)
    assert view.shape == expected.shape
    assert view.dtype == data.dtype
    np.testing.assert_array_equal(view[...], expected)
    for key in [
        (slice(1, 3), slice(2, 13), slice(0, 6), slice(3, 7)),
        (2, slice(4, 6)),
        (slice(None), 7, slice(1, 2)),
        (..., 3),
    ]:
        np.testing.assert_array_equal(view[key], expected[key])
    plain = AxisOrderView(data, (4, 3, 2, 1, 0))
    np.testing.assert_array_equal(plain[1:3, 2], np.transpose(data)[1:3, 2])


def test_a_contiguous_file_array_reads_any_window_and_notices_truncation(tmp_path: Path) -> None:
    from napari_zarr_tiler.sources.file_arrays import ContiguousFileArray

    data = np.arange(3 * 50 * 70, dtype=">u2").reshape(3, 50, 70)
    path = tmp_path / "raw.bin"
    path.write_bytes(b"header!" + data.tobytes())
    array = ContiguousFileArray(path, 7, data.shape, data.dtype)
    for key in [
        (...,),
        (1,),
        (slice(0, 3), slice(10, 41), slice(3, 69)),
        (2, slice(0, 50), slice(0, 70)),
        (slice(1, 2), 49, slice(60, 70)),
    ]:
        np.testing.assert_array_equal(array[key], data[key])
    copy = pickle.loads(pickle.dumps(array))  # a worker's copy opens the file itself
    np.testing.assert_array_equal(copy[2, 5:9], data[2, 5:9])
    array.close()
    copy.close()
    path.write_bytes(b"header!" + data.tobytes()[:1000])
    with pytest.raises(OSError, match="the file ends before the image data does"):
        ContiguousFileArray(path, 7, data.shape, data.dtype)[2]
