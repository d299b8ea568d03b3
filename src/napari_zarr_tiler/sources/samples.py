"""The built-in ``sample:`` sources: slide-like synthetic images to try the converter on."""

from __future__ import annotations

from ..errors import SourceError
from .spec import OpenSource
from .synthetic import synthetic_slide

#: The names after ``sample:``.
SAMPLES = ("slide_uint8", "slide_uint16")


def open_sample(name: str) -> OpenSource:
    """Make the built-in sample ``name`` (4096 x 4096, 0.25 micrometer pixels).

    Parameters
    ----------
    name : str
        One of :data:`SAMPLES` (the part after ``sample:``).

    Returns
    -------
    OpenSource
        The image in memory, with its name, scale and units.

    Raises
    ------
    SourceError
        When ``name`` is not a sample; the message lists the samples.
    """
    if name not in SAMPLES:
        choices = ", ".join("sample:" + sample for sample in SAMPLES)
        msg = f"unknown sample {name!r}; choose one of: {choices}"
        raise SourceError(msg)
    dtype = "uint8" if name.endswith("uint8") else "uint16"
    return OpenSource(
        synthetic_slide(4096, dtype=dtype),
        {"name": name, "units": ("micrometer", "micrometer"), "scale": (0.25, 0.25)},
        f"built-in sample {name} (4096 x 4096 {dtype})",
    )
