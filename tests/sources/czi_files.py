"""CZI files written by pylibCZIrw's own writer for the CZI tests (never mocked).

- :func:`write_mosaic`: a 2-channel uint16 mosaic (three tiles with a gap), two scenes, pixel
  size and channel names and colours;
- :func:`write_czi`: one tile per plane, of any pixel type, over t and z;
- :func:`set_compression`: a written file with every sub-block's compression field changed (how
  a file compressed as JPEG or JPEG-XR that libCZI cannot decode is made: pylibCZIrw writes only
  uncompressed and zstd).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

pyczi = pytest.importorskip("pylibCZIrw.czi")

TILE = (100, 120)  # height, width


def tiles(seed: int = 0) -> list[np.ndarray]:
    """Four random uint16 tiles."""
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 65535, TILE, dtype=np.uint16) for _ in range(4)]


def write_mosaic(path: Path, data: list[np.ndarray]) -> Path:
    """Scene 0: tiles at (0, 0), (120, 0), (0, 100), nothing at (120, 100); scene 1 elsewhere.

    Channel c holds ``tile + c``. Pixel size 0.5 µm in X and Y, 2 µm in Z (metres in the file).
    """
    color = pyczi.TintingMode.Color
    red, green = pyczi.Rgb8Color(255, 0, 0), pyczi.Rgb8Color(0, 255, 0)
    with pyczi.create_czi(str(path), exist_ok=True) as writer:
        for c in range(2):
            for tile, location in zip(data[:3], [(0, 0), (120, 0), (0, 100)], strict=True):
                writer.write(tile + c, location=location, plane={"C": c}, scene=0)
            writer.write(data[3] + c, location=(1000, 2000), plane={"C": c}, scene=1)
        writer.write_metadata(
            document_name="mosaic",
            channel_names={0: "DAPI", 1: "GFP"},
            scale_x=0.5e-6,
            scale_y=0.5e-6,
            scale_z=2e-6,
            display_settings={
                0: pyczi.ChannelDisplaySettingsDataClass(True, color, red, 0.0, 1.0),
                1: pyczi.ChannelDisplaySettingsDataClass(True, color, green, 0.0, 1.0),
            },
        )
    return path


def write_czi(
    path: Path,
    planes: dict[tuple[int, int, int], np.ndarray],
    *,
    compression: str | None = None,
    location: tuple[int, int] = (0, 0),
) -> Path:
    """One tile per (t, c, z) plane (indices as given: they need not start at 0) at ``location``."""
    with pyczi.create_czi(str(path), exist_ok=True, compression_options=compression) as writer:
        for (t, c, z), tile in planes.items():
            writer.write(tile, plane={"T": t, "C": c, "Z": z}, location=location)
        writer.write_metadata(document_name="planes", scale_x=1e-6, scale_y=1e-6, scale_z=3e-6)
    return path


def set_compression(source: Path, dest: Path, mode: int) -> Path:
    """Copy ``source`` with the compression of every sub-block directory entry set to ``mode``.

    Walks the CZI segments (32-byte headers: id, allocated and used size): each sub-block
    segment holds its directory entry ("DV") after 16 bytes, the directory segment lists them all
    after 128 bytes; the compression is an int32 at offset 18 of an entry.
    """
    raw = bytearray(source.read_bytes())
    offset = 0
    while offset + 32 <= len(raw):
        name = bytes(raw[offset : offset + 16]).rstrip(b"\0")
        allocated = struct.unpack_from("<q", raw, offset + 16)[0]
        entries = []
        if name == b"ZISRAWSUBBLOCK":
            entries = [offset + 48]
        elif name == b"ZISRAWDIRECTORY":
            count, entry = struct.unpack_from("<i", raw, offset + 32)[0], offset + 160
            for _ in range(count):
                entries.append(entry)
                entry += 32 + 20 * struct.unpack_from("<i", raw, entry + 28)[0]
        for entry in entries:
            assert raw[entry : entry + 2] == b"DV"
            struct.pack_into("<i", raw, entry + 18, mode)
        offset += 32 + allocated
    dest.write_bytes(bytes(raw))
    return dest
