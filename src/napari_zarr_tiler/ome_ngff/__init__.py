"""The OME-Zarr (OME-NGFF 0.1 to 0.6) metadata model: parse what a store declares, build what we write.

Everything here works on plain JSON-like dictionaries and never touches array data, so it is cheap
to call and safe on untrusted input: every path a store's metadata names is checked to stay inside
the store (:func:`safe_member_path`). ``model`` holds the records and names, ``parse`` the rules of
0.1 to 0.5 and the dispatch, ``coordinate_systems`` the 0.6 (RFC-5) rules, ``scene`` 0.6 scenes of several images,
``build`` what we write.
"""

from __future__ import annotations

from .build import axis_type, build_multiscales, build_omero, wrap_ome
from .model import (
    NEWEST_KNOWN_VERSION,
    SPACE_UNITS,
    TILER_ATTRIBUTE,
    TIME_UNITS,
    Axis,
    Channel,
    Multiscale,
    ome_attributes,
    safe_member_path,
    valid_unit,
)
from .parse import parse_multiscale, version_numbers
from .scene import parse_scene, place_scene_images

__all__ = [
    "NEWEST_KNOWN_VERSION",
    "SPACE_UNITS",
    "TILER_ATTRIBUTE",
    "TIME_UNITS",
    "Axis",
    "Channel",
    "Multiscale",
    "axis_type",
    "build_multiscales",
    "build_omero",
    "ome_attributes",
    "parse_multiscale",
    "parse_scene",
    "place_scene_images",
    "safe_member_path",
    "valid_unit",
    "version_numbers",
    "wrap_ome",
]
