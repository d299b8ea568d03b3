"""OME-Zarr 0.6 scene stores written by hand, after the specification's examples (ome/ngff-spec
``examples/scene/scene_stitching.json`` and ``tests/attributes/spec/valid/scene/scene.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import zarr

YX_AXES = [
    {"name": "y", "type": "space", "unit": "micrometer"},
    {"name": "x", "type": "space", "unit": "micrometer"},
]


def tile(seed: int, shape: tuple[int, int] = (64, 48)) -> np.ndarray:
    """A tile of random pixels (each seed its own)."""
    return np.random.default_rng(seed).integers(0, 4000, shape, dtype=np.uint16)


def _dataset(path: str, scale: list[float], translation: list[float]) -> dict[str, Any]:
    return {
        "path": path,
        "coordinateTransformations": [
            {
                "type": "sequence",
                "input": {"path": path},
                "output": {"name": "physical"},
                "transformations": [
                    {"type": "scale", "scale": scale},
                    {"type": "translation", "translation": translation},
                ],
            }
        ],
    }


def write_image(
    root: Path,
    path: str,
    data: np.ndarray,
    *,
    scale: tuple[float, float] = (0.5, 0.5),
    translation: tuple[float, float] = (0.0, 0.0),
    more_systems: list[dict[str, Any]] | None = None,
    multiscale_transforms: list[dict[str, Any]] | None = None,
) -> None:
    """A two-level OME-Zarr 0.6 image at ``root/path``, its datasets mapped into "physical"."""
    levels = [data, data[::2, ::2]]
    datasets = [
        _dataset(f"s{k}", [s * 2**k for s in scale], list(translation)) for k in range(len(levels))
    ]
    multiscale: dict[str, Any] = {
        "name": path,
        "coordinateSystems": [{"name": "physical", "axes": YX_AXES}, *(more_systems or [])],
        "datasets": datasets,
    }
    if multiscale_transforms:
        multiscale["coordinateTransformations"] = multiscale_transforms
    group = zarr.open_group(str(root / path), mode="w", zarr_format=3)
    group.attrs["ome"] = {"version": "0.6", "multiscales": [multiscale]}
    for k, level in enumerate(levels):
        array = group.create_array(
            f"s{k}",
            shape=level.shape,
            dtype=level.dtype,
            chunks=(32, 32),
            dimension_names=["y", "x"],
        )
        array[...] = level


def write_scene(
    root: Path,
    transforms: list[dict[str, Any]],
    systems: list[dict[str, Any]] | None = None,
    version: str = "0.6",
) -> Path:
    """The scene group at ``root`` (its images are written beside, with :func:`write_image`)."""
    scene: dict[str, Any] = {"coordinateTransformations": transforms}
    if systems is not None:
        scene["coordinateSystems"] = systems
    group = zarr.open_group(str(root), mode="w", zarr_format=3)
    group.attrs["ome"] = {"version": version, "scene": scene}
    return root


def to_world(path: str, kind: str, values: list[float]) -> dict[str, Any]:
    """A scene transformation from image ``path``'s "physical" system into "world"."""
    return {
        "type": kind,
        kind: values,
        "input": {"path": path, "name": "physical"},
        "output": {"name": "world"},
        "name": f"{path} to world",
    }


#: The tile stitching example: four tiles, translated into the scene's "world" system.
STITCHING = {
    "tile_0": [0.0, 0.0],
    "tile_1": [0.0, 348.0],
    "tile_2": [276.0, 0.0],
    "tile_3": [276.0, 348.0],
}


def stitching_scene(root: Path) -> Path:
    """The specification's tile stitching scene, with 0.6 tiles of 0.5 micrometer pixels."""
    write_scene(
        root,
        [to_world(path, "translation", shift) for path, shift in STITCHING.items()],
        [{"name": "world", "axes": YX_AXES}],
    )
    for seed, path in enumerate(STITCHING):
        write_image(root, path, tile(seed))
    return root
