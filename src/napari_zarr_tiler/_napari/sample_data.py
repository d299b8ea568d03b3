"""npe2 sample data: the synthetic slide in 8 and 16 bits."""

from __future__ import annotations

from typing import Any

from ..sources import synthetic_slide


def sample_slide_uint8() -> list[tuple[Any, dict[str, Any], str]]:
    """A 4096 x 4096 8-bit synthetic slide."""
    return [(synthetic_slide(4096, dtype="uint8"), {"name": "synthetic slide (8-bit)"}, "image")]


def sample_slide_uint16() -> list[tuple[Any, dict[str, Any], str]]:
    """A 4096 x 4096 16-bit synthetic slide."""
    return [(synthetic_slide(4096, dtype="uint16"), {"name": "synthetic slide (16-bit)"}, "image")]
