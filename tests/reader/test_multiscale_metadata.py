"""Multiscale metadata that declares no image is refused with a message saying so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_zarr_tiler import read_zarr
from napari_zarr_tiler.errors import StoreReadError


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_an_empty_multiscales_list_is_refused_with_a_clear_message(
    tmp_path: Path, zarr_format: int
) -> None:
    root = zarr.open_group(str(tmp_path / "empty.zarr"), mode="w", zarr_format=zarr_format)
    root.create_array("0", data=np.zeros((4, 4), dtype="uint8"))
    if zarr_format == 3:
        root.attrs["ome"] = {"version": "0.5", "multiscales": []}
    else:
        root.attrs["multiscales"] = []
    with pytest.raises(StoreReadError, match="declares no multiscale image") as raised:
        read_zarr(tmp_path / "empty.zarr")
    assert "IndexError" not in str(raised.value)
