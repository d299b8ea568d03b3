"""Labels written into an existing OME-Zarr image, and kept when converting an image with labels."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_zarr_tiler import convert, read_zarr
from napari_zarr_tiler.converter.into_image import nearest_indices
from napari_zarr_tiler.converter.label_image import read_parent_image
from napari_zarr_tiler.errors import DestinationError, InvalidOptionError
from napari_zarr_tiler.ome_ngff import ome_attributes, parse_multiscale
from napari_zarr_tiler.sources import SourceSpec

from .peer_stores import (
    SHAPE,
    WRITERS,
    files_outside_labels,
    image_data,
    ngff_zarr_consolidated,
    segmentation,
)


def _attrs(folder: Path) -> dict:
    return ome_attributes(zarr.open_group(str(folder), mode="r").attrs.asdict())


@pytest.fixture(params=sorted(WRITERS))
def peer_image(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return WRITERS[request.param](tmp_path / "image.zarr")


def test_labels_go_into_each_writers_image(peer_image: Path) -> None:
    before = files_outside_labels(peer_image)
    image = read_parent_image(peer_image)
    assert image is not None
    seg = segmentation()
    result = convert(seg, peer_image / "labels" / "cells", label=True, chunks=64,
                     colors={7: "FF0000"}, properties=[{"label-value": 7, "class": "a"}])  # fmt: skip
    assert result.path == peer_image / "labels" / "cells"
    # The image is untouched, byte for byte.
    assert files_outside_labels(peer_image) == before
    # One level per image level, with its shapes (one channel), nearest downsampled.
    label = zarr.open_group(str(result.path), mode="r")
    assert label.metadata.zarr_format == image.zarr_format
    for level, shape in enumerate(image.level_shapes):
        array = label[str(level)]
        assert array.shape == (1, *shape[1:])
        assert array.chunks[-2:] == tuple(min(64, s) for s in shape[-2:])
        data = array[...]
        assert set(np.unique(data)) <= {0, 3, 7, 9}
        if level:
            previous = label[str(level - 1)][...]
            rows = nearest_indices(previous.shape[1], shape[1], 0, shape[1])
            cols = nearest_indices(previous.shape[2], shape[2], 0, shape[2])
            np.testing.assert_array_equal(data[0], previous[0][np.ix_(rows, cols)])
    np.testing.assert_array_equal(label["0"][...], seg)
    # Metadata: the image's transforms, image-label with source, colours, properties; listed.
    ome = _attrs(result.path)
    label_ms = parse_multiscale(ome, where="label")
    image_ms = parse_multiscale(_attrs(peer_image), where="image")
    assert label_ms.scales == image_ms.scales
    assert label_ms.translations == image_ms.translations
    assert ome["image-label"]["source"] == {"image": "../../"}
    assert ome["image-label"]["colors"] == [{"label-value": 7, "rgba": [255, 0, 0, 255]}]
    assert ome["image-label"]["properties"] == [{"label-value": 7, "class": "a"}]
    assert _attrs(peer_image / "labels")["labels"] == ["cells"]
    hidden = [p.name for p in (peer_image / "labels").iterdir() if p.name.startswith(".")]
    assert set(hidden) <= {".zgroup", ".zattrs"}  # no staging folder or temporary file left


def test_ome_zarr_py_reads_the_labels(peer_image: Path) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    convert(segmentation(), peer_image / "labels" / "cells", label=True, chunks=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nodes = list(Reader(parse_url(str(peer_image)))())
    labels = [n for n in nodes if any(isinstance(s, Label) for s in n.specs)]
    assert len(labels) == 1
    image = read_parent_image(peer_image)
    assert [tuple(d.shape) for d in labels[0].data] == [(1, *s[1:]) for s in image.level_shapes]


def test_our_reader_shows_the_labels_with_the_images_scale(peer_image: Path) -> None:
    convert(segmentation(), peer_image / "labels" / "cells", label=True, chunks=64)
    layers = read_zarr(peer_image).layers
    images = [layer for layer in layers if layer.layer_type == "image"]
    labels = [layer for layer in layers if layer.layer_type == "labels"]
    assert len(labels) == 1
    assert len(labels[0].data) == len(read_parent_image(peer_image).level_shapes)
    assert tuple(labels[0].kwargs["scale"])[-2:] == tuple(images[0].kwargs["scale"])[-2:]
    assert tuple(labels[0].kwargs["translate"])[-2:] == tuple(images[0].kwargs["translate"])[-2:]


def test_our_reader_shows_labels_added_to_a_consolidated_store(tmp_path: Path) -> None:
    store = ngff_zarr_consolidated(tmp_path / "image.zarr")
    convert(segmentation(), store / "labels" / "cells", label=True, chunks=64)
    assert any(layer.layer_type == "labels" for layer in read_zarr(store).layers)


@pytest.fixture
def our_image(tmp_path: Path) -> Path:
    return WRITERS["ours-0.5"](tmp_path / "image.zarr")


def test_a_shape_other_than_the_images_is_refused(our_image: Path) -> None:
    with pytest.raises(InvalidOptionError) as error:
        convert(np.zeros((1, 300, 203), np.uint16), our_image / "labels" / "cells", label=True)
    assert "(1, 300, 203)" in str(error.value) and str(SHAPE) in str(error.value)
    assert not (our_image / "labels" / "cells").exists()


def test_float_labels_are_refused(our_image: Path) -> None:
    with pytest.raises(InvalidOptionError, match="integer"):
        convert(np.zeros((1, *SHAPE[1:]), np.float32), our_image / "labels" / "x", label=True)


def test_an_existing_label_is_replaced_only_with_overwrite(our_image: Path) -> None:
    dest = our_image / "labels" / "cells"
    convert(segmentation(), dest, label=True)
    with pytest.raises(DestinationError, match="overwrite"):
        convert(segmentation() * 2, dest, label=True)
    convert(segmentation() * 2, dest, label=True, overwrite=True)
    assert int(zarr.open_array(str(dest / "0"), mode="r")[0, 100, 100]) == 14
    assert _attrs(our_image / "labels")["labels"] == ["cells"]
    # A label folder holding anything else than a zarr store is never replaced.
    (dest / "notes.txt").write_text("mine")
    with pytest.raises(DestinationError, match="not a zarr store"):
        convert(segmentation(), dest, label=True, overwrite=True)
    assert (dest / "notes.txt").read_text() == "mine"


def test_a_second_label_is_added_to_the_list(our_image: Path) -> None:
    convert(segmentation(), our_image / "labels" / "cells", label=True)
    convert(segmentation(), our_image / "labels" / "nuclei", label=True)
    assert _attrs(our_image / "labels")["labels"] == ["cells", "nuclei"]


def test_a_plain_label_conversion_is_unchanged(tmp_path: Path) -> None:
    dest = tmp_path / "labels" / "seg.zarr"  # a labels folder, but no image around it
    convert(segmentation(), dest, label=True, chunks=64)
    ome = _attrs(dest)
    assert "image-label" in ome and "source" not in ome["image-label"]
    assert not (tmp_path / "labels" / "zarr.json").exists()


def test_converting_an_image_keeps_its_labels(our_image: Path, tmp_path: Path) -> None:
    convert(segmentation(), our_image / "labels" / "cells", label=True,
            colors={7: "00FF00"})  # fmt: skip
    dest = tmp_path / "copy.zarr"
    spec = SourceSpec(str(our_image))
    options = dict(spec.opened.options)
    assert set(options["labels"]) == {"cells"}
    convert(spec, dest, chunks=32, **options)
    label = zarr.open_group(str(dest / "labels" / "cells"), mode="r")
    image = zarr.open_group(str(dest), mode="r")
    assert label["0"].chunks == (1, 32, 32)  # re-tiled with the image's chunks
    assert len(list(label.array_keys())) == len(list(image.array_keys()))
    np.testing.assert_array_equal(label["0"][...], segmentation())
    assert _attrs(dest / "labels")["labels"] == ["cells"]
    assert _attrs(dest / "labels" / "cells")["image-label"]["colors"] == [
        {"label-value": 7, "rgba": [0, 255, 0, 255]}
    ]
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    leftovers += [p for p in (dest / "labels").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_the_labels_list_keeps_other_attributes(our_image: Path) -> None:
    convert(segmentation(), our_image / "labels" / "cells", label=True)
    meta = our_image / "labels" / "zarr.json"
    document = json.loads(meta.read_text())
    document["attributes"]["mine"] = {"keep": True}
    meta.write_text(json.dumps(document))
    convert(segmentation(), our_image / "labels" / "more", label=True)
    document = json.loads(meta.read_text())
    assert document["attributes"]["mine"] == {"keep": True}
    assert document["attributes"]["ome"]["labels"] == ["cells", "more"]


def test_image_data_is_what_the_peer_stores_hold() -> None:
    assert image_data().shape == SHAPE


# -- review of issue 11 ----------------------------------------------------------------------


def _ome_zarr_py_with_yx_labels(path: Path, version: str) -> np.ndarray:
    """ome-zarr-py's usual store: a cyx image with yx labels (no channel axis)."""
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_image, write_labels

    mask = np.zeros(SHAPE[1:], np.uint8)
    mask[:64] = 1
    mask[100:200, 50:60] = 2
    kwargs = {"fmt": FormatV04()} if version == "0.4" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = zarr.open_group(str(path), mode="w", zarr_format=2 if version == "0.4" else 3)
        write_image(image_data(), root, axes="cyx", **kwargs)
        write_labels(mask, root, name="cells", axes="yx", **kwargs)
    return mask


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_an_image_with_labels_without_its_channel_axis_converts(
    tmp_path: Path, version: str
) -> None:
    mask = _ome_zarr_py_with_yx_labels(tmp_path / "ozp.zarr", version)
    spec = SourceSpec(str(tmp_path / "ozp.zarr"))
    dest = tmp_path / "out.zarr"
    convert(spec, dest, chunks=64, **dict(spec.opened.options))
    label = zarr.open_group(str(dest / "labels" / "cells"), mode="r")
    image = zarr.open_group(str(dest), mode="r")
    assert label["0"].shape == (1, *SHAPE[1:])  # a channel axis of 1, as the image's axes
    np.testing.assert_array_equal(label["0"][0], mask)
    assert len(list(label.array_keys())) == len(list(image.array_keys()))
    assert _attrs(dest / "labels")["labels"] == ["cells"]


def test_labels_without_the_channel_axis_go_into_an_image(our_image: Path) -> None:
    seg = segmentation()[0]  # (y, x) for a (c, y, x) image
    result = convert(seg, our_image / "labels" / "cells", label=True, chunks=64)
    label = zarr.open_group(str(result.path), mode="r")
    assert label["0"].shape == (1, *SHAPE[1:])
    np.testing.assert_array_equal(label["0"][0], seg)


def test_labels_that_do_not_fit_are_left_out_before_the_image_is_written(tmp_path: Path) -> None:
    from napari_zarr_tiler.sources import SourceWarning

    seen_at_first_region: list[int] = []
    dest = tmp_path / "out.zarr"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        def progress(_p: object) -> None:
            if not seen_at_first_region:
                seen_at_first_region.append(len(caught))

        convert(image_data(), dest, chunks=64, axes="cyx", progress=progress,
                labels={"small": np.zeros((128, 128), np.uint8), "cells": segmentation(),
                        "floats": np.zeros(SHAPE[1:], np.float32)})  # fmt: skip
    messages = [str(w.message) for w in caught if issubclass(w.category, SourceWarning)]
    assert seen_at_first_region and seen_at_first_region[0] >= 2  # warned before writing
    small = next(m for m in messages if "'small'" in m)
    assert "(128, 128)" in small and str(SHAPE) in small and str(dest) in small
    assert any("'floats'" in m and "float32" in m for m in messages)
    assert not any(".partial" in m for m in messages)  # never the hidden staging folder
    assert _attrs(dest / "labels")["labels"] == ["cells"]
    assert not (dest / "labels" / "small").exists()


def test_a_label_name_that_is_not_a_folder_name_is_refused_before_writing(
    tmp_path: Path,
) -> None:
    dest = tmp_path / "out.zarr"
    with pytest.raises(InvalidOptionError, match="plain folder name"):
        convert(image_data(), dest, labels={"..": segmentation()})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["..", ".", "", ".hidden"])
def test_a_label_path_that_names_no_label_folder_is_refused(our_image: Path, name: str) -> None:
    before = sorted(p.relative_to(our_image) for p in our_image.rglob("*"))
    with pytest.raises(InvalidOptionError, match="IMAGE/labels/NAME"):
        convert(segmentation(), f"{our_image}/labels/{name}", label=True, overwrite=True)
    assert sorted(p.relative_to(our_image) for p in our_image.rglob("*")) == before
    assert [p.name for p in our_image.parent.iterdir()] == ["image.zarr"]


def test_the_labels_group_is_not_made_when_the_destination_is_refused(our_image: Path) -> None:
    inside = zarr.open_array(str(our_image / "0"), mode="r")  # the image's own level 0
    with pytest.raises(DestinationError, match="inside the source"):
        convert(inside, our_image / "labels" / "cells", label=True)
    assert not (our_image / "labels").exists()


def test_adding_labels_to_a_consolidated_image_says_how_to_refresh_it(tmp_path: Path) -> None:
    from napari_zarr_tiler.sources import SourceWarning

    store = ngff_zarr_consolidated(tmp_path / "image.zarr")
    before = files_outside_labels(store)
    with pytest.warns(SourceWarning, match=r"consolidated.*zarr\.consolidate_metadata") as caught:
        convert(segmentation(), store / "labels" / "cells", label=True, chunks=64)
    assert f'zarr.consolidate_metadata("{store}")' in str(caught[0].message)
    assert files_outside_labels(store) == before  # the image's files are not rewritten
    with pytest.raises(KeyError):  # what the warning is about
        zarr.open_group(str(store), mode="r")["labels/cells"]
    zarr.consolidate_metadata(str(store))  # the advice works
    assert isinstance(zarr.open_group(str(store), mode="r")["labels/cells"], zarr.Group)


def test_no_consolidation_warning_for_an_image_without_it(our_image: Path) -> None:
    from napari_zarr_tiler.sources import SourceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", SourceWarning)
        convert(segmentation(), our_image / "labels" / "cells", label=True)


@pytest.mark.parametrize("shape", [(2, 300, 200), SHAPE])
def test_label_levels_in_an_image_match_our_own_label_pyramid(
    tmp_path: Path, shape: tuple[int, ...]
) -> None:
    image = tmp_path / "image.zarr"
    convert(np.zeros(shape, np.uint16), image, chunks=32, axes="cyx")
    seg = np.random.default_rng(3).integers(0, 50, (1, *shape[1:]), dtype=np.uint16)
    into = zarr.open_group(str(convert(seg, image / "labels" / "l", label=True, chunks=32).path))
    own = zarr.open_group(str(convert(seg, tmp_path / "own.zarr", label=True, chunks=32).path))
    keys = sorted(own.array_keys(), key=int)
    assert sorted(into.array_keys(), key=int) == keys and len(keys) >= 3
    for key in keys:
        np.testing.assert_array_equal(into[key][...], own[key][...], err_msg=f"level {key}")


def test_nearest_indices_take_the_first_pixel() -> None:
    assert list(nearest_indices(8, 4, 0, 4)) == [0, 2, 4, 6]
    assert list(nearest_indices(7, 4, 0, 4)) == [0, 2, 4, 6]  # halved rounding up
    assert list(nearest_indices(7, 3, 0, 3)) == [0, 2, 4]  # halved rounding down
    assert list(nearest_indices(10, 4, 0, 4)) == [0, 2, 5, 7]  # floor(i * 2.5)


def test_an_image_whose_levels_grow_is_refused(our_image: Path) -> None:
    meta = our_image / "zarr.json"
    document = json.loads(meta.read_text())
    datasets = document["attributes"]["ome"]["multiscales"][0]["datasets"]
    datasets[0]["path"], datasets[1]["path"] = datasets[1]["path"], datasets[0]["path"]
    meta.write_text(json.dumps(document))
    with pytest.raises(InvalidOptionError, match=r"image\.zarr.*level 1"):
        read_parent_image(our_image)


def test_a_hidden_label_listed_by_a_source_store_is_skipped(our_image: Path) -> None:
    import shutil

    convert(segmentation(), our_image / "labels" / "cells", label=True)
    shutil.copytree(our_image / "labels" / "cells", our_image / "labels" / ".hidden")
    meta = our_image / "labels" / "zarr.json"
    document = json.loads(meta.read_text())
    document["attributes"]["ome"]["labels"] = ["cells", ".hidden"]
    meta.write_text(json.dumps(document))
    assert set(SourceSpec(str(our_image)).opened.options["labels"]) == {"cells"}


def test_labels_of_a_bare_array_conversion_are_left_out_with_a_warning(tmp_path: Path) -> None:
    from napari_zarr_tiler.sources import SourceWarning

    dest = tmp_path / "bare.zarr"
    with pytest.warns(SourceWarning, match=r"cells.*layout 'ome'"):
        convert(image_data(), dest, layout="array", labels={"cells": segmentation()})
    assert isinstance(zarr.open(str(dest), mode="r"), zarr.Array)
    assert not (dest / "labels").exists()
