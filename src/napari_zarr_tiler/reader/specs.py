"""The records the reader returns: layer specs for napari, and the notices worth showing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import dask.array as da

LayerType = Literal["image", "labels"]


@dataclass
class LayerSpec:
    """One layer to add: its levels (finest first), napari keyword arguments and layer type."""

    data: list[da.Array]
    kwargs: dict[str, Any]
    layer_type: LayerType = "image"

    def as_layer_data(self) -> tuple[Any, dict[str, Any], str]:
        """Return napari's ``LayerData`` tuple (a list of levels only when multiscale)."""
        data: Any = self.data if len(self.data) > 1 else self.data[0]
        return data, dict(self.kwargs), self.layer_type


@dataclass
class StoreContents:
    """Everything :func:`~napari_zarr_tiler.reader.read_zarr` found: layers, and notices."""

    layers: list[LayerSpec]
    notices: list[str] = field(default_factory=list)
