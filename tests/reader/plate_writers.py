"""Write real HCS plates with ome-zarr-py (and bioformats2raw's layout over them) for the tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import zarr


def field_pixels(row: int, column: int, field: int, *, shape: tuple[int, ...]) -> np.ndarray:
    """Pixels of one field, constant per (row, column, field) so that its place can be checked."""
    value = 1 + row * 100 + column * 10 + field
    return np.full(shape, value, dtype=np.uint16)


def write_plate(
    path: Path,
    *,
    version: str = "0.4",
    rows: tuple[str, ...] = ("A", "B"),
    columns: tuple[str, ...] = ("1", "2", "3"),
    wells: tuple[str, ...] = ("A/1", "B/3"),
    fields: int = 2,
    shape: tuple[int, ...] = (2, 64, 64),
    axes: str = "cyx",
    labels: bool = False,
    shapes: dict[str, tuple[int, ...]] | None = None,
) -> Path:
    """Write a plate with ome-zarr-py: ``fields`` images per well, pixels from :func:`field_pixels`.

    ``shapes`` overrides the shape of single fields by "well/field" path.
    """
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import (
        write_image,
        write_labels,
        write_plate_metadata,
        write_well_metadata,
    )

    fmt = FormatV05() if version == "0.5" else FormatV04()
    root = zarr.open_group(str(path), mode="w", zarr_format=3 if version == "0.5" else 2)
    write_plate_metadata(root, list(rows), list(columns), list(wells), fmt=fmt, field_count=fields)
    for well in wells:
        row_name, column_name = well.split("/")
        well_group = root.require_group(row_name).require_group(column_name)
        write_well_metadata(well_group, [str(f) for f in range(fields)], fmt=fmt)
        for field in range(fields):
            field_shape = (shapes or {}).get(f"{well}/{field}", shape)
            pixels = field_pixels(
                rows.index(row_name), columns.index(column_name), field, shape=field_shape
            )
            image_group = well_group.require_group(str(field))
            write_image(pixels, image_group, axes=axes, fmt=fmt, scale_factors=[2])
            if labels:
                mask = np.zeros(field_shape[-2:], dtype=np.uint8)
                mask[: field_shape[-2] // 2] = 1
                write_labels(
                    mask,
                    image_group,
                    name="cells",
                    axes=axes[-2:],
                    fmt=fmt,
                    scale_factors=[2],
                    label_metadata={
                        "colors": [{"label-value": 1, "rgba": [255, 0, 0, 255]}],
                        "properties": [{"label-value": 1, "class": "nucleus"}],
                    },
                )
    return path


def make_bioformats2raw(path: Path) -> Path:
    """Mark a version 0.4 plate as bioformats2raw writes it: ``bioformats2raw.layout`` at the root."""
    attributes_file = path / ".zattrs"
    attributes = json.loads(attributes_file.read_text())
    attributes["bioformats2raw.layout"] = 3
    attributes_file.write_text(json.dumps(attributes))
    ome = zarr.open_group(str(path / "OME"), mode="w", zarr_format=2)
    ome.attrs["series"] = []
    return path


def set_plate_attributes(path: Path, **changes: object) -> None:
    """Change keys of the ``plate`` block of a version 0.4 plate."""
    attributes_file = path / ".zattrs"
    attributes = json.loads(attributes_file.read_text())
    attributes["plate"].update(changes)
    attributes_file.write_text(json.dumps(attributes))


def write_sparse_plate(
    path: Path, *, rows: int, columns: int, fields: int, side: int, chunk: int = 256
) -> Path:
    """A version 0.4 plate of single-level ``side`` x ``side`` fields whose pixels are fill values.

    No chunk is written: each field reads as its :func:`field_pixels` value, so large plates
    cost only metadata.
    """
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    row_names = [chr(ord("A") + r) for r in range(rows)]
    column_names = [str(c + 1) for c in range(columns)]
    root.attrs["plate"] = {
        "rows": [{"name": n} for n in row_names],
        "columns": [{"name": n} for n in column_names],
        "wells": [
            {"path": f"{rn}/{cn}", "rowIndex": r, "columnIndex": c}
            for r, rn in enumerate(row_names)
            for c, cn in enumerate(column_names)
        ],
        "version": "0.4",
    }
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    for r, rn in enumerate(row_names):
        for c, cn in enumerate(column_names):
            well = root.require_group(f"{rn}/{cn}")
            well.attrs["well"] = {"images": [{"path": str(f)} for f in range(fields)]}
            for f in range(fields):
                image = well.require_group(str(f))
                image.attrs["multiscales"] = [
                    {
                        "version": "0.4",
                        "axes": axes,
                        "datasets": [
                            {
                                "path": "0",
                                "coordinateTransformations": [{"type": "scale", "scale": [1, 1]}],
                            }
                        ],
                    }
                ]
                value = int(field_pixels(r, c, f, shape=(1,))[0])
                image.create_array(
                    "0",
                    shape=(side, side),
                    chunks=(chunk, chunk),
                    dtype="uint16",
                    fill_value=value,
                )
    return path


def write_nearly_empty_plate(
    path: Path, *, rows: int, columns: int, well: tuple[int, int], fields: int, side: int
) -> Path:
    """A version 0.4 plate of ``rows`` x ``columns`` positions holding a single well.

    The well at ``well`` (row, column) has ``fields`` single-level ``side`` x ``side`` fields
    whose pixels are fill values (:func:`field_pixels`); no chunk is written.
    """
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    row_names = [f"R{r}" for r in range(rows)]
    column_names = [f"C{c}" for c in range(columns)]
    row, column = well
    well_path = f"{row_names[row]}/{column_names[column]}"
    root.attrs["plate"] = {
        "rows": [{"name": n} for n in row_names],
        "columns": [{"name": n} for n in column_names],
        "wells": [{"path": well_path, "rowIndex": row, "columnIndex": column}],
        "version": "0.4",
    }
    well_group = root.require_group(well_path)
    well_group.attrs["well"] = {"images": [{"path": str(f)} for f in range(fields)]}
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    for f in range(fields):
        image = well_group.require_group(str(f))
        image.attrs["multiscales"] = [
            {
                "version": "0.4",
                "axes": axes,
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [{"type": "scale", "scale": [1, 1]}],
                    }
                ],
            }
        ]
        value = int(field_pixels(row, column, f, shape=(1,))[0])
        image.create_array(
            "0", shape=(side, side), chunks=(side, side), dtype="uint16", fill_value=value
        )
    return path
