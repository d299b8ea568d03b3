"""Option values as users give them (text from the widget, colour names, windows): stored as
meant, or refused with the option's name before anything is written (issue 10)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_zarr_tiler import InvalidOptionError, convert


def _omero_channels(path: Path) -> list[dict]:
    return zarr.open_group(str(path), mode="r").attrs["ome"]["omero"]["channels"]


@pytest.mark.parametrize(
    ("given", "stored"),
    [(("red",), "FF0000"), (("#00ff7f",), "00FF7F"), ("green", "00FF00"), (["Grey"], "FFFFFF")],
)
def test_colour_names_and_hex_are_stored_as_hex(
    tmp_path: Path, small_image: np.ndarray, given, stored: str
) -> None:
    dest = tmp_path / "c.zarr"
    convert(small_image, dest, chunks=128, colors=given)
    assert _omero_channels(dest)[0]["color"] == stored


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"colors": ("reddish",)}, "give hex RRGGBB such as 'FF0000'"),
        ({"colors": ("FF00",)}, "is not a colour"),
        ({"colors": (0xFF0000,)}, "is not a colour"),
        ({"contrast_limits": [(5, 1)]}, "starts at 5 after it ends at 1"),
        ({"contrast_limits": [(0, float("nan"))]}, "not two finite numbers"),
        ({"contrast_limits": [("a", "b")]}, "not two finite numbers"),
        ({"contrast_limits": 7}, "a (start, end) pair per channel"),
        (
            {"compressor": "gzip", "clevel": "abc"},
            "clevel must be a whole number from 0 to 9 for gzip",
        ),
        ({"compressor": "blosc-lz4", "clevel": 2.5}, "from 0 to 9 for blosc-lz4"),
        ({"compressor": "zstd", "clevel": "99"}, "clevel 99 is out of range for zstd"),
        ({"chunks": "six"}, "chunks must be a number or comma-separated numbers"),
        ({"chunks": ""}, "chunks must be a positive integer"),
        ({"shards": "abc"}, "shards must be a number"),
    ],
)
def test_invalid_options_are_refused_before_writing(
    tmp_path: Path, small_image: np.ndarray, options: dict, expected: str
) -> None:
    dest = tmp_path / "bad.zarr"
    with pytest.raises(InvalidOptionError) as caught:
        convert(small_image, dest, chunks=options.pop("chunks", 128), **options)
    assert expected in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_window_given_as_one_pair_and_equal_ends_are_kept(
    tmp_path: Path, small_image: np.ndarray
) -> None:
    dest = tmp_path / "w.zarr"
    convert(small_image, dest, chunks=128, contrast_limits=(100, 2000.5))
    window = _omero_channels(dest)[0]["window"]
    assert (window["start"], window["end"]) == (100.0, 2000.5)


@pytest.mark.parametrize(
    ("chunks", "shards", "stored_chunks", "stored_shards"),
    [
        ("64", None, (64, 64), None),
        ("32,64", "64, 128", (32, 64), (64, 128)),
        ("32", "none", (32, 32), None),
    ],
)
def test_text_chunks_and_shards_are_numbers_not_characters(
    tmp_path: Path, small_image: np.ndarray, chunks, shards, stored_chunks, stored_shards
) -> None:
    dest = tmp_path / "t.zarr"
    convert(small_image, dest, chunks=chunks, shards=shards, clevel="5", levels="2")
    level = zarr.open_group(str(dest), mode="r")["0"]
    assert level.chunks == stored_chunks
    assert level.shards == stored_shards
    assert sorted(zarr.open_group(str(dest), mode="r").array_keys()) == ["0", "1"]
