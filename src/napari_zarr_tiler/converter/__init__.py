"""The converter wing: any array or source in, a chunked, compressed OME-Zarr pyramid out.

Its face: :func:`convert`, :func:`plan_conversion` and their records, and the option vocabulary
the adapters (widget, writer, CLI) offer. Inside: the plan, the OME metadata we write, the
regions and their scheduler, resume, staging (check, stage, lock, commit, abort), the write
back-end, the pyramid kernels and the codecs.
"""

from __future__ import annotations

from .compression import (
    COMPRESSORS,
    DEFAULT_LEVELS,
    LEVEL_RANGES,
    Compressor,
    compressor_codecs,
    describe_codec,
)
from .engine import (
    ConversionPlan,
    ConversionResult,
    channels_first_shape,
    convert,
    plan_conversion,
)
from .option_text import parse_colors, parse_levels, parse_shape, parse_windows
from .regions import Progress

__all__ = [
    "COMPRESSORS",
    "DEFAULT_LEVELS",
    "LEVEL_RANGES",
    "Compressor",
    "ConversionPlan",
    "ConversionResult",
    "Progress",
    "channels_first_shape",
    "compressor_codecs",
    "convert",
    "describe_codec",
    "parse_colors",
    "parse_levels",
    "parse_shape",
    "parse_windows",
    "plan_conversion",
]
