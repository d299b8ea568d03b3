"""Open zarr stores lazily in napari and convert images into tiled OME-Zarr pyramids.

The package root is the pure-Python API (no Qt, no napari):

- :func:`read_zarr` describes what a store holds as lazily loaded layers (:class:`LayerSpec`
  in a :class:`StoreContents`);
- :func:`plan_conversion` says what a conversion would write (:class:`ConversionPlan`), without
  touching any data;
- :func:`convert` streams an image into a chunked, compressed OME-Zarr pyramid, reporting
  :class:`Progress`, and returns a :class:`ConversionResult`;
- the errors they raise derive from :class:`ZarrTilerError`.

The code is laid out in wings: ``reader/`` (a store in, layer specs out), ``sources/`` (what the
converter reads, one module per format), ``converter/`` (plan, regions, scheduler, resume,
staging, write back-end), with ``_napari/`` and ``cli.py`` as thin adapters on top.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import (
    ChunkSizeError,
    ConversionCancelled,
    ConversionError,
    DestinationError,
    DestinationExistsError,
    InvalidOptionError,
    SourceError,
    StoreReadError,
    UnsupportedDtypeError,
    ZarrTilerError,
)

__version__ = "0.1.0"

__all__ = [
    "ChunkSizeError",
    "ConversionCancelled",
    "ConversionError",
    "ConversionPlan",
    "ConversionResult",
    "DestinationError",
    "DestinationExistsError",
    "InvalidOptionError",
    "LayerSpec",
    "Progress",
    "SourceError",
    "SourceSpec",
    "StoreContents",
    "StoreReadError",
    "UnsupportedDtypeError",
    "ZarrTilerError",
    "__version__",
    "convert",
    "plan_conversion",
    "read_zarr",
]

#: Names served lazily, by the wing that defines them: `import napari_zarr_tiler` (and npe2's
#: manifest discovery) stays cheap.
_LAZY = {
    "read_zarr": "reader",
    "LayerSpec": "reader",
    "StoreContents": "reader",
    "convert": "converter",
    "plan_conversion": "converter",
    "ConversionPlan": "converter",
    "ConversionResult": "converter",
    "Progress": "converter",
    "SourceSpec": "sources",
}

if TYPE_CHECKING:
    from .converter import ConversionPlan, ConversionResult, Progress, convert, plan_conversion
    from .reader import LayerSpec, StoreContents, read_zarr
    from .sources import SourceSpec


def __getattr__(name: str) -> Any:
    wing = _LAZY.get(name)
    if wing is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(import_module(f".{wing}", __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)
