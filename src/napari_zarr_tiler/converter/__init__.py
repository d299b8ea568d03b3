"""The converter wing: any array or source in, a chunked, compressed OME-Zarr pyramid out.

Its face: :func:`convert`, :func:`plan_conversion` and their records, :class:`LevelZero` (what
a conversion reads: level 0 of an array, a list of levels or a source file, RGB samples moved to
a channel axis), and the option vocabulary the adapters (widget, writer, CLI) offer.

Inside: ``plan`` (levels, chunks, shards, regions), ``ome_metadata`` (what we write), ``options``
(checked before anything is written), ``level_zero`` (the source read by region), ``regions``
(the unit of work), ``scheduler`` (threads or dask), ``resume`` (journal, fingerprint,
verification), ``staging`` (check, stage, lock, commit, abort; with ``store_proof`` and
``locks``), ``backend`` (codec pipeline and zarr writes), ``direct_io``, ``pyramid`` (the
downsampling kernels), ``compression`` and ``option_text``; ``engine`` orchestrates them.
"""

from __future__ import annotations

from .compression import (
    COMPRESSORS,
    DEFAULT_LEVELS,
    LEVEL_RANGES,
    Compressor,
    compressor_codecs,
)
from .engine import ConversionResult, convert
from .level_zero import LevelZero
from .option_text import parse_colors, parse_levels, parse_shape, parse_windows
from .plan import SUPPORTED_DTYPES, ConversionPlan, check_dtype, plan_conversion
from .progress import Progress

__all__ = [
    "COMPRESSORS",
    "DEFAULT_LEVELS",
    "LEVEL_RANGES",
    "SUPPORTED_DTYPES",
    "Compressor",
    "ConversionPlan",
    "ConversionResult",
    "LevelZero",
    "Progress",
    "check_dtype",
    "compressor_codecs",
    "convert",
    "parse_colors",
    "parse_levels",
    "parse_shape",
    "parse_windows",
    "plan_conversion",
]
