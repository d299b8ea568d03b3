"""HCS plates (ome-zarr-py, bioformats2raw) open as a grid of wells: few layers, lazy, multiscale."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from napari_zarr_tiler import read_zarr
from napari_zarr_tiler._napari.reader import read_layers
from napari_zarr_tiler.errors import StoreReadError
from napari_zarr_tiler.reader.plates import field_grid

from .plate_writers import field_pixels, make_bioformats2raw, set_plate_attributes, write_plate

pytest.importorskip("ome_zarr")

SIDE = 64


def _cell(level: object, row: int, column: int, *, side: int) -> np.ndarray:
    """The pixels of field cell (row, column) of the plate's field grid (plate rows x columns)."""
    return np.asarray(
        level[..., row * side : (row + 1) * side, column * side : (column + 1) * side]
    )  # type: ignore[index]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_every_field_of_every_well_sits_at_its_row_and_column(
    tmp_path: Path, version: str
) -> None:
    plate = write_plate(tmp_path / "plate.zarr", version=version)
    contents = read_zarr(plate)
    (image,) = contents.layers
    assert image.kwargs["channel_axis"] == 0  # one layer per channel, not per field
    # 2 rows of wells, 3 columns of wells, each well 1 x 2 fields of 64 x 64.
    assert [level.shape for level in image.data] == [(2, 128, 384), (2, 64, 192)]
    level0 = image.data[0]
    for field in (0, 1):  # well A/1 = row 0, column 0
        expected = field_pixels(0, 0, field, shape=(2, SIDE, SIDE))
        np.testing.assert_array_equal(_cell(level0, 0, field, side=SIDE), expected)
        expected = field_pixels(1, 2, field, shape=(2, SIDE, SIDE))  # well B/3
        np.testing.assert_array_equal(_cell(level0, 1, 4 + field, side=SIDE), expected)
    # Wells the plate does not hold (A/2, A/3, B/1, B/2) are empty.
    assert not np.asarray(level0[:, 0:64, 128:384]).any()
    assert not np.asarray(level0[:, 64:128, 0:256]).any()
    # The second level is the fields' second levels, laid out alike.
    np.testing.assert_array_equal(
        np.asarray(image.data[1][:, 32:64, 160:192]), field_pixels(1, 2, 1, shape=(2, 32, 32))
    )
    assert image.kwargs["scale"] == (1.0, 1.0)
    assert image.kwargs["axis_labels"] == ("y", "x")


def test_bioformats2raw_plate_opens_as_a_grid(tmp_path: Path) -> None:
    plate = make_bioformats2raw(write_plate(tmp_path / "b2r.ome.zarr"))
    (image,) = read_zarr(plate).layers
    assert image.data[0].shape == (2, 128, 384)
    np.testing.assert_array_equal(
        _cell(image.data[0], 1, 5, side=SIDE),
        field_pixels(1, 2, 1, shape=(2, SIDE, SIDE)),
    )


def test_bioformats2raw_series_open_as_images(tmp_path: Path) -> None:
    import zarr
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_image

    root = zarr.open_group(str(tmp_path / "series.zarr"), mode="w", zarr_format=2)
    root.attrs["bioformats2raw.layout"] = 3
    for series in ("0", "1"):
        pixels = np.full((32, 48), int(series) + 5, dtype=np.uint8)
        write_image(
            pixels, root.require_group(series), axes="yx", fmt=FormatV04(), scale_factors=[2]
        )
    layers = read_zarr(tmp_path / "series.zarr").layers
    assert [layer.kwargs["name"] for layer in layers] == ["series/0", "series/1"]
    assert int(layers[1].data[0][0, 0].compute()) == 6


@pytest.mark.slow
def test_96_well_plate_with_two_fields_and_two_channels_is_two_layers(tmp_path: Path) -> None:
    rows = tuple("ABCDEFGH")
    columns = tuple(str(c) for c in range(1, 13))
    wells = tuple(f"{r}/{c}" for r in rows for c in columns)
    plate = write_plate(
        tmp_path / "p96.zarr", rows=rows, columns=columns, wells=wells, shape=(2, 16, 16)
    )
    layer_data = read_layers(str(plate))
    assert len(layer_data) == 1  # napari splits it into its 2 channels
    data, kwargs, layer_type = layer_data[0]
    assert layer_type == "image" and kwargs["channel_axis"] == 0
    assert len(kwargs["name"]) == 2
    assert data[0].shape == (2, 8 * 16, 12 * 2 * 16)
    # Well H/12, field 1: the last cell.
    np.testing.assert_array_equal(
        np.asarray(data[0][:, -16:, -16:]), field_pixels(7, 11, 1, shape=(2, 16, 16))
    )


def test_plate_labels_are_one_labels_layer_with_their_colors(tmp_path: Path) -> None:
    plate = write_plate(tmp_path / "plate.zarr", labels=True)
    _image, labels = read_zarr(plate).layers
    assert labels.layer_type == "labels"
    assert labels.kwargs["name"].endswith("cells")
    assert labels.data[0].shape == (128, 384)
    # Every field's mask (top half 1) is in place; the missing wells are background.
    np.testing.assert_array_equal(np.asarray(labels.data[0][64:96, 256:384]), 1)
    np.testing.assert_array_equal(np.asarray(labels.data[0][96:128, 256:384]), 0)
    assert not np.asarray(labels.data[0][:, 128:256]).any()
    assert labels.kwargs["colormap"][1] == (1.0, 0.0, 0.0, 1.0)
    assert labels.kwargs["features"] == {"index": [1], "class": ["nucleus"]}
    # Labels have the levels the label images share, not the image's.
    assert len(labels.data) >= 2


def test_fields_of_different_shapes_are_padded_to_the_largest(tmp_path: Path) -> None:
    plate = write_plate(
        tmp_path / "plate.zarr", shapes={"B/3/1": (2, 40, 64), "A/1/0": (2, 64, 80)}
    )
    (image,) = read_zarr(plate).layers
    assert image.data[0].shape == (2, 2 * 64, 3 * 2 * 80)
    small = np.asarray(image.data[0][:, 64:128, 5 * 80 : 6 * 80])  # B/3 field 1
    np.testing.assert_array_equal(small[:, :40, :64], field_pixels(1, 2, 1, shape=(2, 40, 64)))
    assert not small[:, 40:].any() and not small[:, :, 64:].any()


def test_well_missing_from_the_store_is_empty_with_a_notice(tmp_path: Path) -> None:
    plate = write_plate(tmp_path / "plate.zarr")
    import shutil

    shutil.rmtree(plate / "B" / "3")
    contents = read_zarr(plate)
    assert not np.asarray(contents.layers[0].data[0][:, 64:, :]).any()
    assert any("1 wells of the plate shown empty" in n and "B/3" in n for n in contents.notices)


@pytest.mark.parametrize("bad_path", ["../outside/1", "/etc/1", "A/../../x"])
def test_well_paths_outside_the_store_are_refused(tmp_path: Path, bad_path: str) -> None:
    plate = write_plate(tmp_path / "plate.zarr")
    set_plate_attributes(plate, wells=[{"path": bad_path, "rowIndex": 0, "columnIndex": 0}])
    with pytest.raises(StoreReadError, match=r"not a plain path inside the store|does not match"):
        read_zarr(plate)


def test_field_paths_outside_the_store_are_refused(tmp_path: Path) -> None:
    plate = write_plate(tmp_path / "plate.zarr")
    well_attributes = plate / "A" / "1" / ".zattrs"
    attributes = json.loads(well_attributes.read_text())
    attributes["well"]["images"] = [{"path": "../../../../etc"}]
    well_attributes.write_text(json.dumps(attributes))
    with pytest.raises(StoreReadError, match="not a plain path inside the store"):
        read_zarr(plate)


def test_absurd_well_counts_are_refused(tmp_path: Path) -> None:
    plate = write_plate(tmp_path / "plate.zarr")
    set_plate_attributes(
        plate,
        rows=[{"name": f"R{i}"} for i in range(1000)],
        columns=[{"name": f"C{i}"} for i in range(1000)],
    )
    with pytest.raises(StoreReadError, match="1,000 rows x 1,000 columns"):
        read_zarr(plate)
    set_plate_attributes(
        plate,
        rows=[{"name": "A"}],
        columns=[{"name": "1"}],
        wells=[{"path": "A/1", "rowIndex": 0, "columnIndex": 0}] * 20_000,
    )
    with pytest.raises(StoreReadError, match="20,000 wells"):
        read_zarr(plate)


@pytest.mark.parametrize(
    "well",
    [
        {"path": "A/1", "rowIndex": 5, "columnIndex": 0},  # no such row
        {"path": "A/1", "rowIndex": 1, "columnIndex": 0},  # path and indices disagree
        {"path": "Z/9", "rowIndex": 0, "columnIndex": 0},  # names that are no row or column
    ],
)
def test_wells_that_do_not_match_rows_and_columns_are_refused(tmp_path: Path, well: dict) -> None:
    plate = write_plate(tmp_path / "plate.zarr")
    set_plate_attributes(plate, wells=[well])
    with pytest.raises(StoreReadError, match="does not match the plate's rows"):
        read_zarr(plate)


def test_two_wells_at_one_position_are_refused(tmp_path: Path) -> None:
    plate = write_plate(tmp_path / "plate.zarr")
    well = {"path": "A/1", "rowIndex": 0, "columnIndex": 0}
    set_plate_attributes(plate, wells=[well, well])
    with pytest.raises(StoreReadError, match="two wells at the same row and column"):
        read_zarr(plate)


def test_wells_given_by_path_alone_are_placed_by_their_names(tmp_path: Path) -> None:
    plate = write_plate(tmp_path / "plate.zarr")
    set_plate_attributes(plate, wells=[{"path": "A/1"}, {"path": "B/3"}])  # OME-Zarr 0.3
    (image,) = read_zarr(plate).layers
    np.testing.assert_array_equal(
        _cell(image.data[0], 1, 4, side=SIDE),
        field_pixels(1, 2, 0, shape=(2, SIDE, SIDE)),
    )


@pytest.mark.parametrize(
    ("n_fields", "grid"), [(1, (1, 1)), (2, (1, 2)), (4, (2, 2)), (5, (2, 3)), (9, (3, 3))]
)
def test_fields_are_tiled_in_a_square_grid(n_fields: int, grid: tuple[int, int]) -> None:
    assert field_grid(n_fields) == grid


def test_info_describes_a_plate(tmp_path: Path) -> None:
    from napari_zarr_tiler.reader import describe_store

    text = describe_store(write_plate(tmp_path / "plate.zarr", fields=1))
    assert "HCS plate: 2 rows x 3 columns, 2 wells" in text


def test_a_plate_too_large_to_draw_whole_gets_sampled_previews(tmp_path: Path) -> None:
    from .plate_writers import write_sparse_plate

    plate = write_sparse_plate(tmp_path / "big.zarr", rows=8, columns=12, fields=1, side=512)
    (image,) = read_zarr(plate).layers
    shapes = [level.shape for level in image.data]
    assert shapes[0] == (8 * 512, 12 * 512)
    assert len(shapes) > 1 and max(shapes[-1]) <= 1024  # previews down to a drawable size
    coarsest = np.asarray(image.data[-1])
    side = 512 * shapes[-1][0] // shapes[0][0]
    # Every well still shows its own field, at its place.
    assert coarsest[0, 0] == field_pixels(0, 0, 0, shape=(1,))[0]
    assert coarsest[7 * side, 11 * side] == field_pixels(7, 11, 0, shape=(1,))[0]
    assert (
        coarsest[3 * side + side // 2, 5 * side + side // 2]
        == field_pixels(3, 5, 0, shape=(1,))[0]
    )


@pytest.mark.timeout(30)
def test_a_huge_plate_with_one_well_opens_without_building_every_position(
    tmp_path: Path,
) -> None:
    from .plate_writers import write_nearly_empty_plate

    # 300 x 300 positions, one well of 16 fields (a 4 x 4 grid): 1.44 million field cells, of
    # which 16 exist. Opening once built a dask block for every cell (minutes, gigabytes).
    plate = write_nearly_empty_plate(
        tmp_path / "sparse.zarr", rows=300, columns=300, well=(150, 7), fields=16, side=8
    )
    (image,) = read_zarr(plate).layers
    side = 4 * 8  # a well is 4 x 4 fields of 8 x 8
    level0 = image.data[0]
    assert level0.shape == (300 * side, 300 * side)
    well = np.asarray(level0[150 * side : 151 * side, 7 * side : 8 * side])
    for field in range(16):
        row, column = divmod(field, 4)
        cell = well[row * 8 : (row + 1) * 8, column * 8 : (column + 1) * 8]
        np.testing.assert_array_equal(cell, field_pixels(150, 7, field, shape=(8, 8)))
    # Everything around the well is empty, read without error.
    assert not np.asarray(level0[150 * side - 8 : 150 * side, :]).any()
    assert not np.asarray(level0[:, 8 * side : 8 * side + 8]).any()
    # Previews shrink down to one pixel per field cell (1,200 a side), drawable whole, and
    # still show the well.
    shapes = [level.shape for level in image.data]
    assert all(a[0] > b[0] for a, b in itertools.pairwise(shapes))
    assert shapes[-1] == (1200, 1200)
    coarsest = np.asarray(image.data[-1])
    assert coarsest[150 * 4 : 151 * 4, 7 * 4 : 8 * 4].all()
    assert coarsest.sum() == coarsest[150 * 4 : 151 * 4, 7 * 4 : 8 * 4].sum()


@pytest.mark.timeout(60)
def test_a_plate_whose_blocks_would_be_absurdly_large_is_refused(tmp_path: Path) -> None:
    from .plate_writers import write_nearly_empty_plate

    # 100,000 wells in one row, 16 fields of 10,000 x 10,000 in the only well that exists:
    # 400,000 field cells along x, so even grouped into at most 65,536 blocks a block would
    # hold 7 fields (1.3 GiB). Refused with a message, not built.
    plate = write_nearly_empty_plate(
        tmp_path / "absurd.zarr", rows=1, columns=100_000, well=(0, 0), fields=16, side=10_000
    )
    with pytest.raises(StoreReadError, match=r"would be read in blocks of 1\.3 GiB"):
        read_zarr(plate)
