"""The sources wing: what the converter reads, opened lazily and read by region.

:class:`SourceSpec` names a source (a TIFF, a zarr store, a ``.npy`` file or a built-in sample)
and opens it into an :class:`OpenSource`: a lazily read level-0 array with the options its
metadata implies (axes, scale, units, channel names and colours). Inside, one module per format
and job: ``spec`` (the two types, kind detection), ``tiff`` (opening a TIFF), ``tiff_metadata``
(its calibration), ``axes`` (file axes in OME order), ``file_arrays`` (positioned reads of
uncompressed data), ``zarr_source``, ``npy``, ``samples`` (and ``synthetic``, their generator).
"""

from __future__ import annotations

from .spec import OpenSource, SourceSpec, check_local, is_url
from .synthetic import synthetic_slide
from .tiff_metadata import SourceWarning

__all__ = ["OpenSource", "SourceSpec", "SourceWarning", "check_local", "is_url", "synthetic_slide"]
