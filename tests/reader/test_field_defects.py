"""Reader problems found in the field (issue 10): link loops, links swapped while reading,
previews of many-plane chunks, non-finite pixels, unusual names, shapes and transforms."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from napari_zarr_tiler import read_zarr
from napari_zarr_tiler.errors import StoreReadError
from napari_zarr_tiler.ome_ngff import safe_member_path
from napari_zarr_tiler.reader import ContainedLocalStore, StoreContentWarning
from napari_zarr_tiler.reader.contrast import contrast_limits_from
from napari_zarr_tiler.reader.previews import VIEW_BYTES_BUDGET, VIEW_CHUNK_BUDGET, StridedView

from ..helpers import write_ome_image

PLUGIN = "napari-zarr-tiler"


# ---------------------------------------------------------------------------------------------
# Item 7: link loops
# ---------------------------------------------------------------------------------------------


def _group_with_loops(path: Path, *, with_array: bool) -> None:
    group = zarr.open_group(str(path), mode="w")
    if with_array:
        group.create_array("a", data=np.arange(64, dtype=np.uint8).reshape(8, 8))
    os.symlink(".", path / "loop0")
    os.symlink(".", path / "loop1")


@pytest.mark.timeout(60)
def test_link_loops_in_a_group_are_not_walked(tmp_path: Path) -> None:
    path = tmp_path / "loops.zarr"
    _group_with_loops(path, with_array=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreContentWarning)
        contents = read_zarr(path)
    assert [layer.kwargs["name"] for layer in contents.layers] == ["loops/a"]


@pytest.mark.timeout(60)
def test_a_group_of_only_link_loops_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "only_loops.zarr"
    _group_with_loops(path, with_array=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreContentWarning)
        with pytest.raises(StoreReadError, match="holds no arrays"):
            read_zarr(path)


@pytest.mark.timeout(120)
def test_viewer_opens_a_store_with_link_loops(make_napari_viewer, tmp_path: Path) -> None:
    path = tmp_path / "loops.zarr"
    _group_with_loops(path, with_array=True)
    viewer = make_napari_viewer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreContentWarning)
        layers = viewer.open(str(path), plugin=PLUGIN)
    assert len(layers) == 1


def test_listing_never_follows_links_to_folders(tmp_path: Path) -> None:
    path = tmp_path / "listing.zarr"
    _group_with_loops(path, with_array=True)
    store = ContainedLocalStore(path)

    async def collect() -> tuple[list[str], list[str]]:
        return (
            sorted([key async for key in store.list()]),
            sorted([key async for key in store.list_dir("")]),
        )

    from zarr.core.sync import sync

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreContentWarning)
        everything, top = sync(collect())
    assert all(not key.startswith("loop") for key in everything)
    assert "a/zarr.json" in everything
    assert top == ["a", "zarr.json"]


# ---------------------------------------------------------------------------------------------
# Item 10: a chunk swapped for a link while it is read
# ---------------------------------------------------------------------------------------------

_SWAPPER = r"""
import os, sys, time
folder, stop, secret = sys.argv[1:4]
chunk, keep = os.path.join(folder, "0.0"), os.path.join(folder, "keep.bin")
good, evil = os.path.join(folder, "good.tmp"), os.path.join(folder, "evil.tmp")
os.link(chunk, keep)
deadline = time.monotonic() + 120
while not os.path.exists(stop) and time.monotonic() < deadline:
    os.symlink(secret, evil)
    os.rename(evil, chunk)  # the chunk is now a link to the secret, until the next rename
    os.link(keep, good)
    time.sleep(0.0002)
    os.rename(good, chunk)
    time.sleep(0.0002)
"""


@pytest.mark.timeout(240)
def test_a_chunk_swapped_for_an_outside_link_never_reads_the_outside(tmp_path: Path) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\xff" * 1024)
    store_path = tmp_path / "raced.zarr"
    array = zarr.create_array(
        str(store_path),
        shape=(1, 1024),
        chunks=(1, 1024),
        dtype="uint8",
        zarr_format=2,
        compressors=None,
        fill_value=0,
    )
    array[...] = 1
    assert (store_path / "0.0").read_bytes() == b"\x01" * 1024
    stop = tmp_path / "stop"
    swapper = subprocess.Popen(
        [sys.executable, "-c", _SWAPPER, str(store_path), str(stop), str(secret)]
    )
    seen: dict[int, int] = {}
    errors: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not (store_path / "keep.bin").exists() and time.monotonic() < deadline:
            time.sleep(0.01)  # the swapper has started
        store = ContainedLocalStore(store_path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StoreContentWarning)
            reader = zarr.open_array(store=store, mode="r", zarr_format=2)
            # At least 1,500 reads, and on until the link state has been met often (under CPU
            # load the swapper may get few turns), within a deadline.
            reads, deadline = 0, time.monotonic() + 120
            while reads < 1500 or (seen.get(0, 0) < 20 and time.monotonic() < deadline):
                reads += 1
                try:
                    values = np.unique(reader[...])
                except OSError as error:  # a race in the containment check itself
                    errors.append(repr(error))
                    continue
                for value in values.tolist():
                    seen[value] = seen.get(value, 0) + 1
    finally:
        stop.touch()
        swapper.wait(timeout=60)
    assert 255 not in seen, (
        f"read the outside file {seen[255]} times of {reads} ({len(errors)} errors)"
    )
    assert not errors, errors[:3]
    assert seen.get(1, 0) > 0 and seen.get(0, 0) > 0, seen  # both states met: the race ran


def test_a_link_to_a_folder_inside_the_store_is_followed(tmp_path: Path) -> None:
    path = tmp_path / "dirlink.zarr"
    image = np.arange(64, dtype=np.uint8).reshape(8, 8)
    zarr.create_array(str(path), data=image, chunks=(4, 4))
    os.rename(path / "c", path / "real_chunks")
    os.symlink("real_chunks", path / "c")
    np.testing.assert_array_equal(read_zarr(path).layers[0].data[0].compute(), image)


def test_a_link_to_a_folder_outside_the_store_reads_as_missing(tmp_path: Path) -> None:
    path = tmp_path / "outlink.zarr"
    image = np.arange(1, 65, dtype=np.uint8).reshape(8, 8)
    zarr.create_array(str(path), data=image, chunks=(4, 4), fill_value=0)
    os.rename(path / "c", tmp_path / "outside_chunks")
    os.symlink(tmp_path / "outside_chunks", path / "c")
    with pytest.warns(StoreContentWarning, match="leads outside the store"):
        pixels = read_zarr(path).layers[0].data[0].compute()
    assert not pixels.any()


def test_metadata_key_components_cannot_climb_out(tmp_path: Path) -> None:
    path = tmp_path / "climb.zarr"
    zarr.create_array(str(path), shape=(4, 4), dtype="uint8")
    (tmp_path / "zarr.json").write_text("{}")
    store = ContainedLocalStore(path)
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    assert sync(store.get("../zarr.json", default_buffer_prototype())) is None
    assert sync(store.get("zarr.json", default_buffer_prototype())) is not None


# ---------------------------------------------------------------------------------------------
# Item 8: previews of chunks that span many planes
# ---------------------------------------------------------------------------------------------


def _sampled_chunks(size: int, chunk: int, step: int) -> int:
    """How many chunks along one axis hold a pixel sampled every ``step`` pixels."""
    return len({index // chunk for index in range(0, size, step)})


@pytest.mark.slow
def test_previews_of_many_plane_chunks_are_budgeted_by_every_chunk_axis(tmp_path: Path) -> None:
    path = tmp_path / "planes.zarr"
    shape, chunks = (1024, 8192, 8192), (1024, 256, 256)
    zarr.create_array(str(path), shape=shape, chunks=chunks, dtype="uint16")  # no chunk written
    contents = read_zarr(path)
    levels = contents.layers[0].data
    assert len(levels) > 1
    chunk_bytes = math.prod(chunks) * 2  # 128 MiB decoded per chunk read
    for level in levels[1:]:
        (strided, *_) = _graph_objects(level)  # the StridedView is inlined into the graph
        touched = _sampled_chunks(shape[1], chunks[1], strided.step) * _sampled_chunks(
            shape[2], chunks[2], strided.step
        )
        assert touched <= VIEW_CHUNK_BUDGET
        assert touched * chunk_bytes <= VIEW_BYTES_BUDGET, (strided.factor, strided.step, touched)


def _graph_objects(level: Any) -> list[Any]:
    """The first :class:`StridedView` inlined into a level's dask graph."""
    for task in dict(level.dask).values():
        stack = [task]
        while stack:
            item = stack.pop()
            if isinstance(item, StridedView):
                return [item]
            if isinstance(item, tuple | list):
                stack.extend(item)
            elif hasattr(item, "args"):  # dask Task objects
                stack.extend(getattr(item, "args", ()))
                stack.extend(getattr(item, "kwargs", {}).values())
            elif hasattr(item, "value"):  # dask DataNode
                stack.append(item.value)
    return []


def test_the_coarsest_preview_of_many_plane_chunks_reads_within_budget(tmp_path: Path) -> None:
    path = tmp_path / "planes8.zarr"
    zarr.create_array(
        str(path), shape=(1024, 8192, 8192), chunks=(1024, 256, 256), dtype="uint8", fill_value=7
    )
    coarsest = read_zarr(path).layers[0].data[-1]
    plane = coarsest[0].compute()
    assert plane.shape == (1024, 1024)
    assert (plane == 7).all()


# ---------------------------------------------------------------------------------------------
# Item 12: non-finite pixels
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_one_non_finite_pixel_does_not_flatten_the_contrast(tmp_path: Path, bad: float) -> None:
    image = np.linspace(10, 500, 64 * 64, dtype=np.float32).reshape(64, 64)
    image[3, 5] = bad
    path = tmp_path / "inf.zarr"
    zarr.create_array(str(path), data=image, chunks=(32, 32))
    limits = read_zarr(path).layers[0].kwargs["contrast_limits"]
    assert limits == pytest.approx((10.0, 500.0))


def test_all_non_finite_pixels_give_a_usable_contrast() -> None:
    import dask.array as da

    pixels = da.from_array(np.array([[np.inf, -np.inf], [np.nan, np.inf]], dtype=np.float64))
    low, high = contrast_limits_from(pixels)
    assert math.isfinite(low) and math.isfinite(high) and high > low


# ---------------------------------------------------------------------------------------------
# Item 13: names, shapes and transforms
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["cell nuclei", "Zellkerne ä", "niveau-é/0", "細胞", "a b/c d", ".hidden", "x-1.5"]
)
def test_plain_names_with_spaces_and_non_ascii_are_accepted(name: str) -> None:
    assert safe_member_path(name, where="here") == name


@pytest.mark.parametrize(
    "name",
    ["..", "../x", "a/../b", "/abs", "a//b", "a/", "a\\b", "a\x00b", ".", "a/./b", "C:x", ""],
)
def test_paths_that_leave_or_confuse_the_store_are_refused(name: str) -> None:
    with pytest.raises(StoreReadError):
        safe_member_path(name, where="here")


def test_labels_with_spaces_written_by_ome_zarr_py_open(tmp_path: Path) -> None:
    pytest.importorskip("ome_zarr")
    from ome_zarr.writer import write_image, write_labels

    path = tmp_path / "spaces.zarr"
    image = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    root = zarr.open_group(str(path), mode="w")
    write_image(image, root, axes="yx", scale_factors=(2,))
    write_labels((image > 128).astype(np.uint8), root, name="cell nuclei", axes="yx")
    contents = read_zarr(path)
    assert [layer.layer_type for layer in contents.layers] == ["image", "labels"]
    assert contents.layers[1].kwargs["name"].endswith("cell nuclei")


def _ome_with_paths(path: Path, paths: list[str]) -> np.ndarray:
    image = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    group = zarr.open_group(str(path), mode="w")
    datasets = []
    for index, level_path in enumerate(paths):
        level = image[:: 2**index, :: 2**index]
        array = group.create_array(
            level_path, shape=level.shape, dtype=level.dtype, dimension_names=["y", "x"]
        )
        array[...] = level
        scale = [float(2**index)] * 2
        datasets.append(
            {"path": level_path, "coordinateTransformations": [{"type": "scale", "scale": scale}]}
        )
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    group.attrs.put(
        {"ome": {"version": "0.5", "multiscales": [{"axes": axes, "datasets": datasets}]}}
    )
    return image


def test_non_ascii_dataset_paths_open(tmp_path: Path) -> None:
    path = tmp_path / "accents.zarr"
    image = _ome_with_paths(path, ["niveau é0", "niveau é1"])
    layer = read_zarr(path).layers[0]
    assert len(layer.data) == 2
    np.testing.assert_array_equal(layer.data[0].compute(), image)


def _group_with_odd_shapes(path: Path) -> None:
    group = zarr.open_group(str(path), mode="w")
    group.create_array("scalar", shape=(), dtype="uint8")
    group.create_array("line", data=np.arange(10, dtype=np.uint8))
    group.create_array("empty", shape=(0, 8), dtype="uint8")
    group.create_array("good", data=np.ones((8, 8), dtype=np.uint8))


def test_arrays_napari_cannot_show_are_skipped_with_a_notice(tmp_path: Path) -> None:
    path = tmp_path / "odd.zarr"
    _group_with_odd_shapes(path)
    contents = read_zarr(path)
    assert [layer.kwargs["name"] for layer in contents.layers] == ["odd/good"]
    text = " ".join(contents.notices)
    for name in ("scalar", "line", "empty"):
        assert name in text
    assert "skipped" in text


@pytest.mark.parametrize("shape", [(), (10,), (0, 8), (8, 0)])
def test_a_store_that_is_only_an_undisplayable_array_is_refused(
    tmp_path: Path, shape: tuple[int, ...]
) -> None:
    path = tmp_path / "bare.zarr"
    zarr.create_array(str(path), shape=shape, dtype="uint8")
    with pytest.raises(StoreReadError, match=r"cannot be shown|napari shows"):
        read_zarr(path)


def test_undisplayable_labels_are_skipped_not_the_image(tmp_path: Path) -> None:
    path = tmp_path / "with_labels.zarr"
    write_ome_image(path, [np.ones((16, 16), dtype=np.uint8)])
    labels = zarr.open_group(str(path / "labels"), mode="w")
    labels.attrs.put({"ome": {"version": "0.5", "labels": ["flat"]}})
    write_ome_image(
        path / "labels" / "flat",
        [np.ones((16,), dtype=np.uint8)],
        axes=[{"name": "x", "type": "space"}],
        image_label={"version": "0.5"},
    )
    contents = read_zarr(path)
    assert [layer.layer_type for layer in contents.layers] == ["image"]
    assert any("flat" in notice and "skipped" in notice for notice in contents.notices)


@pytest.mark.parametrize(
    ("scale", "translation"),
    [
        ([1e300, 1e300], [0.0, 0.0]),
        ([1e-30, 1e-30], [0.0, 0.0]),
        ([1e-12, 1.0], [0.0, 0.0]),
        ([1.0, 1.0], [1e12, 0.0]),
        ([1e-3, 1e-3], [0.0, 1e6]),
    ],
)
def test_transforms_napari_cannot_draw_are_refused(
    tmp_path: Path, scale: list[float], translation: list[float]
) -> None:
    path = tmp_path / "far.zarr"
    write_ome_image(
        path,
        [np.ones((16, 16), dtype=np.uint8)],
        level_scales=[scale],
        level_translations=[translation],
    )
    with pytest.raises(StoreReadError, match="napari"):
        read_zarr(path)


@pytest.mark.parametrize(
    ("scale", "translation"), [([1e-9, 1e-9], [0.0, 0.0]), ([1e6, 1e6], [1e12, 1e12])]
)
def test_unusual_but_drawable_transforms_open(
    tmp_path: Path, scale: list[float], translation: list[float]
) -> None:
    path = tmp_path / "near.zarr"
    write_ome_image(
        path,
        [np.ones((16, 16), dtype=np.uint8)],
        level_scales=[scale],
        level_translations=[translation],
    )
    assert read_zarr(path).layers[0].kwargs["scale"] == pytest.approx(tuple(scale))


def test_viewer_opens_odd_stores_or_says_why(make_napari_viewer, tmp_path: Path) -> None:
    pytest.importorskip("ome_zarr")
    from napari.errors import ReaderPluginError
    from napari.layers import Image, Labels

    viewer = make_napari_viewer()
    odd = tmp_path / "odd.zarr"
    _group_with_odd_shapes(odd)
    (layer,) = viewer.open(str(odd), plugin=PLUGIN)
    assert isinstance(layer, Image)

    accents = tmp_path / "accents é.zarr"
    _ome_with_paths(accents, ["niveau é0", "niveau é1"])
    (layer,) = viewer.open(str(accents), plugin=PLUGIN)
    assert layer.multiscale

    from ome_zarr.writer import write_image, write_labels

    spaces = tmp_path / "spaces.zarr"
    image = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    root = zarr.open_group(str(spaces), mode="w")
    write_image(image, root, axes="yx", scale_factors=(2,))
    write_labels((image > 128).astype(np.uint8), root, name="cell nuclei", axes="yx")
    layers = viewer.open(str(spaces), plugin=PLUGIN)
    assert isinstance(layers[-1], Labels)

    for name, scale, shape in [
        ("huge.zarr", [1e300, 1e300], None),
        ("tiny.zarr", [1e-30, 1e-30], None),
        ("line.zarr", None, (10,)),
        ("scalar.zarr", None, ()),
    ]:
        path = tmp_path / name
        if shape is None:
            write_ome_image(path, [np.ones((16, 16), dtype=np.uint8)], level_scales=[scale])
        else:
            zarr.create_array(str(path), shape=shape, dtype="uint8")
        before = len(viewer.layers)
        with pytest.raises((ReaderPluginError, StoreReadError)) as info:
            viewer.open(str(path), plugin=PLUGIN)  # napari shows the message as a notification
        error = info.value.__cause__ if isinstance(info.value, ReaderPluginError) else info.value
        assert isinstance(error, StoreReadError)
        assert str(path) in str(error)
        assert len(viewer.layers) == before
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.shape[-1] == 4
