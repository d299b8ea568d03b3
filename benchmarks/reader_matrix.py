#!/usr/bin/env python
"""Which reader opens which store: this plugin versus napari-ome-zarr, store kind by store kind.

Writes, in a temporary folder, one small store of each kind with the real writers (ome-zarr-py,
ngff-zarr, xarray, zarr-python and this plugin's own ``convert``), serves one over HTTP (a local
server with Range support), then asks each reader's ``get_reader`` for a reader function, calls
it and adds the returned LayerData tuples to a headless ``napari.components.ViewerModel`` (no Qt,
no GL: napari itself splits channels and checks the keyword arguments). Each resulting set of
layers is compared with what the store says: layer count and types, world scale and translation
of the y and x axes (layer scale/translate composed with its affine), channels split or not,
plate geometry (every field of every well, or the first field only) and label colours.

Run it from the repository root::

    .venv/bin/python benchmarks/reader_matrix.py [--output benchmarks/results_reader_matrix.md]

It prints a Markdown table (rows: store kinds; columns: the two readers) and writes it, with the
date and the versions of the libraries involved, to ``--output``. No display is needed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import zarr

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # _machine and the tests' store writers

from _machine import versions  # noqa: E402
from tests.reader.plate_writers import make_bioformats2raw, write_plate  # noqa: E402
from tests.reader.servers import http_file_server  # noqa: E402

SCALE, TRANSLATE = (0.5, 0.5), (10.0, 20.0)
PLATE: dict[str, Any] = {"rows": ("A", "B"), "columns": ("1", "2", "3"), "fields": 2}
SIDE = 64
DISTRIBUTIONS = "napari napari-ome-zarr ome-zarr ngff-zarr zarr xarray napari-zarr-tiler"
PLATE_WELLS = ("A/1", "A/2", "A/3", "B/1", "B/3")
RED, BLUE = (1.0, 0.0, 0.0, 1.0), (0.0, 0.0, 1.0, 1.0)
LABEL_COLORS = [
    {"label-value": 1, "rgba": [255, 0, 0, 255]},
    {"label-value": 2, "rgba": [0, 0, 255, 255]},
]


@dataclass
class Expect:
    """What a store holds, as a correct reader would show it."""

    images: int | tuple[int, ...]  # napari image layers (after channel split), or choices
    labels: int = 0
    scale: tuple[float, float] | None = (1.0, 1.0)
    translate: tuple[float, float] | None = (0.0, 0.0)
    plate_yx: tuple[int, int] | None = None  # level-0 (y, x) with every field shown
    first_field_yx: tuple[int, int] | None = None  # ... with one field per well
    label_colors: dict[int, tuple[float, ...]] | None = None
    notes: list[str] = field(default_factory=list)


def _cyx() -> np.ndarray:
    return np.random.default_rng(0).integers(1, 4000, (2, 64, 48), dtype=np.uint16)


def _shift_translation(group: zarr.Group) -> None:
    """Add :data:`TRANSLATE` to the y/x translation of every level (ome-zarr-py has no option)."""
    attrs = group.attrs.asdict()
    block = attrs.get("ome", attrs)
    for dataset in block["multiscales"][0]["datasets"]:
        for transform in dataset["coordinateTransformations"]:
            if transform["type"] == "translation":
                values = transform["translation"]
                values[-2:] = [v + t for v, t in zip(values[-2:], TRANSLATE, strict=True)]
    group.attrs.update(attrs)


def write_ome_zarr_py(path: Path, *, version: str, labels: bool = False) -> Path:
    """A (c, y, x) image by ome-zarr-py (0.4 on zarr 2, 0.5 on zarr 3), optionally with labels.

    ome-zarr-py 0.18 ignores ``coordinate_transformations`` (deprecated), so the pixel size
    goes through ``scale=`` and the translation is added to the metadata afterwards.
    """
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_image, write_labels

    fmt = FormatV04() if version == "0.4" else FormatV05()
    root = zarr.open_group(str(path), mode="w", zarr_format=2 if version == "0.4" else 3)
    scale = {"y": SCALE[0], "x": SCALE[1]}
    write_image(_cyx(), root, axes="cyx", fmt=fmt, scale_factors=[2], scale=scale)
    _shift_translation(root)
    if labels:
        mask = np.zeros((64, 48), dtype=np.uint8)
        mask[:32] = 1
        mask[32:, :24] = 2
        labels_kw = {"name": "cells", "axes": "yx", "fmt": fmt, "scale_factors": [2]}
        write_labels(mask, root, scale=scale, label_metadata={"colors": LABEL_COLORS}, **labels_kw)
        _shift_translation(root["labels"]["cells"])
    return path


def write_ngff_zarr(path: Path, *, version: str) -> Path:
    """A (c, y, x) image by ngff-zarr: scale 0.5, translation (10, 20)."""
    import ngff_zarr as nz

    scale, translation = (
        dict(zip("yx", SCALE, strict=True)),
        dict(zip("yx", TRANSLATE, strict=True)),
    )
    image = nz.to_ngff_image(_cyx(), dims=["c", "y", "x"], scale=scale, translation=translation)
    nz.to_ngff_zarr(str(path), nz.to_multiscales(image, scale_factors=[2]), version=version)
    return path


def write_ours(path: Path) -> Path:
    """The same image by this plugin's converter, OME-Zarr 0.6 (a folder, or a zip for .ozx)."""
    from napari_zarr_tiler import convert

    placement = {"scale": [1.0, *SCALE], "translate": [0.0, *TRANSLATE]}
    convert(_cyx(), path, chunks=32, ome_version="0.6", axes=["c", "y", "x"], **placement)
    return path


def write_xarray(path: Path) -> Path:
    """An xarray Dataset (zarr 3) with one (c, y, x) variable and a string channel coordinate."""
    import xarray as xr

    data = xr.Dataset(
        {"intensity": (("c", "y", "x"), _cyx())},
        coords={"c": ["DAPI", "GFP"], "y": np.arange(64) * 0.5, "x": np.arange(48) * 0.5},
    )
    data.to_zarr(path, zarr_format=3, consolidated=False)
    return path


def write_bare_array(path: Path) -> Path:
    zarr.create_array(str(path), shape=(64, 48), chunks=(32, 32), dtype="uint16", zarr_format=3)
    return path


def write_plain_group(path: Path) -> Path:
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    for name in ("a", "b"):
        group.create_array(name, shape=(64, 48), chunks=(32, 32), dtype="uint8")[:] = 1
    return path


def write_plate_store(
    path: Path, *, version: str = "0.4", bioformats2raw: bool = False, labels: bool = False
) -> Path:
    """An HCS plate by ome-zarr-py (the tests' writer): 2 x 3 wells, 5 present, 2 fields each."""
    write_plate(
        path, version=version, wells=PLATE_WELLS, shape=(2, SIDE, SIDE), labels=labels, **PLATE
    )
    return make_bioformats2raw(path) if bioformats2raw else path


def write_ngff_ozx(path: Path) -> str:
    """ngff-zarr's own .ozx (0.6; 0.5 if its 0.6 writer refuses a zip)."""
    try:
        return str(write_ngff_zarr(path, version="0.6"))
    except Exception as error:
        NOTES.append(f"ngff-zarr 0.6 .ozx not written ({_first_line(error)}); 0.5 instead")
        return str(write_ngff_zarr(path, version="0.5"))


NOTES: list[str] = []
PLACED = Expect(images=2, scale=SCALE, translate=TRANSLATE)
PLATE_EXPECT = Expect(
    images=2, plate_yx=(2 * SIDE, 3 * SIDE * 2), first_field_yx=(2 * SIDE, 3 * SIDE)
)
PLATE_LABELS = replace(PLATE_EXPECT, labels=1, label_colors={1: RED})
LABELS = Expect(
    images=2, labels=1, scale=SCALE, translate=TRANSLATE, label_colors={1: RED, 2: BLUE}
)
XARRAY = Expect(
    images=(1, 2),
    scale=None,
    translate=None,
    notes=[
        "xarray: expected 1 image layer (c, y, x) or 2 channel layers, no layer for the string "
        "coordinate or the 1-D y/x coordinates (their 0.5 spacing is not OME metadata: unchecked)"
    ],
)
_ozp04, _ozp05 = (partial(write_ome_zarr_py, version=v) for v in ("0.4", "0.5"))
_lab04 = partial(write_ome_zarr_py, version="0.4", labels=True)
_ngff06, _plate05 = (
    partial(write_ngff_zarr, version="0.6"),
    partial(write_plate_store, version="0.5"),
)
_b2r = partial(write_plate_store, bioformats2raw=True)
_plate_labels = partial(write_plate_store, labels=True)  # label 1 red in every field
#: (store kind, file name in the temporary folder, writer of that path, what the store holds)
STORES: list[tuple[str, str, Callable[[Path], object], Expect]] = [
    ("OME-Zarr 0.4 (ome-zarr-py, zarr 2)", "a04.zarr", _ozp04, PLACED),
    ("OME-Zarr 0.5 (ome-zarr-py)", "a05.zarr", _ozp05, PLACED),
    ("OME-Zarr 0.6 (ngff-zarr 0.50)", "n06.zarr", _ngff06, PLACED),
    ("OME-Zarr 0.6 (ours, convert)", "ours06.zarr", write_ours, PLACED),
    (".ozx (ours, convert)", "ours.ozx", write_ours, PLACED),
    (".ozx (ngff-zarr)", "ngff.ozx", write_ngff_ozx, PLACED),
    ("HCS plate 0.4 (ome-zarr-py)", "plate04.zarr", write_plate_store, PLATE_EXPECT),
    ("HCS plate 0.5 (ome-zarr-py, zarr 3)", "plate05.zarr", _plate05, PLATE_EXPECT),
    ("bioformats2raw plate (layout 3 + plate)", "b2r.zarr", _b2r, PLATE_EXPECT),
    ("HCS plate 0.4 with labels (colors)", "platelab.zarr", _plate_labels, PLATE_LABELS),
    ("image + labels with colors (ome-zarr-py 0.4)", "lab.zarr", _lab04, LABELS),
    ("xarray Dataset.to_zarr (zarr 3, string coord)", "xr.zarr", write_xarray, XARRAY),
    ("bare zarr v3 array", "bare.zarr", write_bare_array, Expect(images=1)),
    ("plain group of two arrays", "plain.zarr", write_plain_group, Expect(images=2)),
]


# ---------------------------------------------------------------------------------------------
# Readers and verdicts
# ---------------------------------------------------------------------------------------------


def _ours(path: str) -> Callable | None:
    from napari_zarr_tiler._napari.reader import get_reader

    return get_reader(path)


def _napari_ome_zarr(path: str) -> Callable | None:
    from napari_ome_zarr import napari_get_reader  # the only reader command in its manifest

    return napari_get_reader(path)


READERS: dict[str, Callable[[str], Callable | None]] = {
    "ours": _ours,
    "napari-ome-zarr": _napari_ome_zarr,
}


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:110] if text else ''}".replace("|", "/")


def _world_yx(layer: Any) -> tuple[np.ndarray, np.ndarray]:
    """World scale and origin of the y and x axes: the affine composed after scale/translate."""
    linear = np.asarray(layer.affine.linear_matrix)
    scale = np.diag(linear) * np.asarray(layer.scale)
    origin = np.asarray(layer.affine.translate) + linear @ np.asarray(layer.translate)
    return scale[-2:], origin[-2:]


def _label_rgba(layer: Any, value: int) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(layer.colormap.map(np.array([value])))[0])


def _add_layers(viewer: Any, name: str, path: str, caught: list[Any]) -> str:
    """Ask reader ``name`` for ``path`` and add its layers: ``ok``, ``ok split`` or why not."""
    reader = READERS[name](path)
    if reader is None:
        why = [str(w.message).replace(path, "<store>").splitlines()[0][:90] for w in caught]
        return "declined: get_reader returned None" + (f" ({why[0]})" if why else "")
    layer_data = reader(path)
    if not layer_data:
        return "fails: reader returned no layers"
    split = False
    for data, kwargs, layer_type in (tuple(d) + ({}, "image")[len(d) - 1 :] for d in layer_data):
        split = split or kwargs.get("channel_axis") is not None
        getattr(viewer, f"add_{layer_type}")(data, **kwargs)
    return "ok split" if split else "ok"


def run_reader(name: str, path: str) -> tuple[str, list[Any], list[str]]:
    """Open ``path`` with one reader in a headless viewer: (status, layers, warnings/notices)."""
    from napari.components import ViewerModel
    from napari.utils.notifications import notification_manager

    viewer, shown = ViewerModel(), []

    def on_notice(event: Any) -> None:
        shown.append(f"notification: {event.message.splitlines()[0][:160]}")

    notification_manager.notification_ready.connect(on_notice)
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("always")
        try:
            status = _add_layers(viewer, name, path, caught)
        except Exception as error:
            status = f"fails: {_first_line(error)}"
        finally:
            notification_manager.notification_ready.disconnect(on_notice)
    if not status.startswith("ok"):
        return status, [], []
    notes = sorted({"warning: " + str(w.message).splitlines()[0][:90] for w in caught})
    return status, list(viewer.layers), notes + shown


def _fmt(values: np.ndarray) -> str:
    return ", ".join(f"{v:.3g}" for v in values)


def verdict(status: str, layers: list[Any], expect: Expect) -> str:
    """A short verdict: ``ok: ...``, ``wrong: ...`` or the failure."""
    if not status.startswith("ok"):
        return status
    kinds = [type(layer).__name__.lower() for layer in layers]
    images, labels = kinds.count("image"), kinds.count("labels")
    split = " (channels split)" if status == "ok split" else ""
    plural = "s" * (images + labels != 1)
    summary = [
        f"{images} image" + (f" + {labels} labels" if labels else "") + f" layer{plural}{split}"
    ]
    problems = []
    allowed = expect.images if isinstance(expect.images, tuple) else (expect.images,)
    if images not in allowed or labels != expect.labels:
        problems.append(f"expected {expect.images} image + {expect.labels} labels")
    image_layers = [layer for layer in layers if type(layer).__name__ == "Image"]
    if image_layers:
        scale, origin = _world_yx(image_layers[0])
        summary.append(f"scale {_fmt(scale)}, translate {_fmt(origin)}")
        if expect.scale and not np.allclose(scale, expect.scale):
            problems.append(f"scale {_fmt(scale)} (store: {_fmt(np.array(expect.scale))})")
        if expect.translate and not np.allclose(origin, expect.translate):
            problems.append(
                f"translate {_fmt(origin)} (store: {_fmt(np.array(expect.translate))})"
            )
        first = image_layers[0]
        levels = list(first.data) if first.multiscale else [first.data]
        shape, levels = tuple(levels[0].shape), len(levels)
        summary.append(f"level 0 {shape}, {levels} level" + "s" * (levels > 1))
        if expect.plate_yx:
            if shape[-2:] == expect.plate_yx:
                summary.append("all fields")
            elif shape[-2:] == expect.first_field_yx:
                problems.append("first field of each well only")
            else:
                problems.append(f"plate grid {shape[-2:]} (expected {expect.plate_yx})")
    for layer in (layer for layer in layers if type(layer).__name__ == "Labels"):
        problems.extend(_label_problems(layer, expect, summary))
    if problems:
        return "wrong: " + "; ".join(problems) + " [" + "; ".join(summary) + "]"
    return "ok: " + "; ".join(summary)


def _label_problems(layer: Any, expect: Expect, summary: list[str]) -> list[str]:
    """Colours of the listed label values, and the labels' placement (the image's)."""
    problems = []
    for value, rgba in (expect.label_colors or {}).items():
        got = _label_rgba(layer, value)
        if not np.allclose(got, rgba, atol=0.01):
            problems.append(
                f"label {value} colour {_fmt(np.array(got))} (store: {_fmt(np.array(rgba))})"
            )
    if expect.label_colors and not problems:
        summary.append("label colours applied")
    scale, origin = _world_yx(layer)
    if expect.scale and not (
        np.allclose(scale, expect.scale) and np.allclose(origin, expect.translate)
    ):
        problems.append(f"labels at scale {_fmt(scale)}, translate {_fmt(origin)}")
    return problems


def build_table(tmp: Path) -> tuple[list[str], list[str]]:
    """Markdown table lines, and notes (warnings and notifications the readers gave)."""
    rows, notes = ["| store | " + " | ".join(READERS) + " |", "|---|" + "---|" * len(READERS)], []
    (tmp / "served").mkdir()
    write_ome_zarr_py(tmp / "served" / "a05.zarr", version="0.5")
    with http_file_server(tmp / "served") as server:
        served = ("OME-Zarr 0.5 over HTTP (Range server)", f"{server.url}/a05.zarr", None, PLACED)
        for kind, name, write, expect in [*STORES, served]:
            try:
                path = str(tmp / name) if write else name
                if write:
                    write(tmp / name)
            except Exception as error:  # a writer that fails is a finding too
                rows.append(f"| {kind} | store not written: {_first_line(error)} | |")
                continue
            cells = []
            for reader in READERS:
                status, layers, caught = run_reader(reader, path)
                cells.append(verdict(status, layers, expect).replace(str(tmp), "<tmp>"))
                notes.extend(f"{kind} / {reader}: {text}" for text in caught)
            notes.extend(expect.notes)
            rows.append(f"| {kind} | " + " | ".join(cells) + " |")
            print(rows[-1], file=sys.stderr, flush=True)
    return rows, [note.replace(str(tmp), "<tmp>") for note in notes + NOTES]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=HERE / "results_reader_matrix.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reader_matrix_") as tmp:
        table, notes = build_table(Path(tmp))
    found = versions(DISTRIBUTIONS.split())
    lines = [
        "# Reader matrix: napari-zarr-tiler vs napari-ome-zarr",
        "",
        f"Date: {datetime.date.today().isoformat()}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in found.items())
        + ".",
        "",
        "Made by `.venv/bin/python benchmarks/reader_matrix.py`. Each reader's `get_reader` is "
        "called, its layers are added to a headless `napari.components.ViewerModel`; scale and "
        f"translate are world y/x values (the stores say scale {SCALE}, translation {TRANSLATE} "
        "where placed). Plates: 2 x 3 wells (5 present), 2 fields of 2 x 64 x 64 per well.",
        "",
        *table,
        "",
        "Notes:",
        "",
        "- napari-ome-zarr 0.10 has a single reader command, `napari_ome_zarr._reader:"
        "napari_get_reader` (no other `get_reader` name in the package or its manifest).",
        "- ome-zarr-py 0.18's `write_image` ignores the deprecated `coordinate_transformations` "
        "(it writes scale 1 and its own half-pixel translations); the script passes `scale=` and "
        "adds the translation (10, 20) to the written metadata.",
        *[f"- {note}" for note in dict.fromkeys(notes)],
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.output.write_text(text)


if __name__ == "__main__":
    main()
