"""Regions, the unit of work: how a level is tiled, and what one region task reads and writes.

A region of a level is read, written, and downsampled in memory into the next few levels; it is
aligned to whole chunks (and shards) of every level it writes, so no two tasks ever touch the
same chunk. Region tasks run on threads or in dask workers: everything they take pickles.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .backend import Region, clear_chunks, open_level, write_all
from .pyramid import Downsampling, downsample_2x

__all__ = [
    "LevelReader",
    "Region",
    "RegionOutcome",
    "RegionTask",
    "chunk_checksum",
    "chunk_keys",
    "convert_region",
    "halve",
    "level_blocks",
    "regions",
]


def regions(shape: tuple[int, ...], region_shape: tuple[int, ...]) -> list[Region]:
    """Regions of ``region_shape`` tiling ``shape`` in C order (the last ones clipped)."""
    grids = [range(0, s, r) for s, r in zip(shape, region_shape, strict=True)]
    return [
        tuple(
            slice(grid[i], min(grid[i] + r, s))
            for grid, i, r, s in zip(grids, index, region_shape, shape, strict=True)
        )
        for index in np.ndindex(*(len(g) for g in grids))
    ]


def halve(region: Region, z_axis: int | None = None) -> Region:
    """The region of the next level that a region of this level downsamples into (Y, X, and
    ``z_axis`` when given)."""
    halved = list(region)
    for axis in (-2, -1) if z_axis is None else (z_axis, -2, -1):
        side = region[axis]
        halved[axis] = slice(side.start // 2, math.ceil(side.stop / 2))
    return tuple(halved)


def region_shapes(
    region: Region, count: int, z_axes: tuple[int | None, ...] = ()
) -> list[tuple[int, ...]]:
    """The shapes of ``region`` and of its ``count - 1`` halvings (the blocks a task writes);
    ``z_axes[i]`` is the Z axis where the ``i``-th halving halves Z too."""
    shapes = []
    for index in range(count):
        shapes.append(tuple(s.stop - s.start for s in region))
        region = halve(region, z_axes[index] if index < len(z_axes) else None)
    return shapes


#: The checksums of the chunk files a region wrote to one level: (the level's index in its
#: pass, {chunk key: checksum of the stored bytes, or None for a chunk not stored}).
LevelChecksums = tuple[int, dict[str, int | None]]


@dataclass(frozen=True)
class RegionOutcome:
    """What one region task wrote: block shapes per level, (for the source pass) the value
    range per channel, and the checksums of the chunk (or shard) files it stored."""

    shapes: list[tuple[int, ...]]
    value_ranges: dict[int, tuple[float, float]] | None = None
    checksums: tuple[LevelChecksums, ...] | None = None


def _crc32c() -> tuple[str, Callable[[bytes], int]]:
    """CRC-32C (hardware-accelerated, ~10 GB/s; installed with zarr), else zlib's CRC-32."""
    try:
        import google_crc32c
    except ImportError:  # pragma: no cover - zarr depends on it
        import zlib

        return "crc32", zlib.crc32
    return "crc32c", google_crc32c.value


#: The checksum of stored chunk bytes (its name goes into the resume journal's fingerprint).
CHECKSUM_NAME, _checksum_of = _crc32c()


def chunk_checksum(path: Path) -> int | None:
    """The checksum of a stored chunk file's bytes, or None when there is no such file."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return int(_checksum_of(data))


def chunk_keys(array: Any, region: Region) -> list[str]:
    """The keys of the stored chunks (shards, when sharded) a level region covers."""
    grid = array.metadata.chunk_grid.chunk_shape
    ranges = [range(s.start // c, -(-s.stop // c)) for s, c in zip(region, grid, strict=True)]
    return [array.metadata.encode_chunk_key(coords) for coords in itertools.product(*ranges)]


def stored_checksums(
    writes: list[tuple[int, str, Any, Region]],
) -> tuple[LevelChecksums, ...]:
    """Checksums of the chunk files just written, per (level index, level path, array, region).

    Read back (from the page cache) right after writing: ~2.5 % of the CPU time of a
    conversion measured on 2 cores, so that a resume can verify a region without computing it
    again from its source.
    """
    return tuple(
        (index, {key: chunk_checksum(Path(path) / key) for key in chunk_keys(array, region)})
        for index, path, array, region in writes
    )


class LevelReader:
    """Read regions of a level already written (re-opened by path in worker processes)."""

    #: Opens the level (cached per process and conversion); object stores have their own.
    opener = staticmethod(open_level)

    def __init__(self, path: str, pipeline: str, run_id: str) -> None:
        self.path = path
        self.pipeline = pipeline
        self.run_id = run_id

    def __call__(self, region: Region) -> np.ndarray:
        """Read one region of the level."""
        return np.asarray(self.opener(self.path, self.pipeline, self.run_id)[region])


def value_ranges(
    block: np.ndarray, region: Region, channel_axis: int | None
) -> dict[int, tuple[float, float]]:
    """Finite min and max of a level-0 block per channel (keyed by the channel's image index).

    Non-finite values are left out, so the merged range does not depend on the order in which
    regions finish (``min`` and ``max`` with NaN do).
    """
    if block.size == 0:
        return {}
    channels = (
        [(0, block)]
        if channel_axis is None
        else [
            (region[channel_axis].start + i, np.take(block, i, axis=channel_axis))
            for i in range(block.shape[channel_axis])
        ]
    )
    ranges = {}
    for channel, values in channels:
        if values.dtype.kind == "f":
            values = values[np.isfinite(values)]
            if values.size == 0:
                continue
        ranges[channel] = (float(values.min()), float(values.max()))
    return ranges


def level_blocks(
    block: np.ndarray,
    level_paths: tuple[str, ...],
    region: Region,
    write_first: bool,
    method: Downsampling,
    z_axes: tuple[int | None, ...] = (),
) -> Iterator[tuple[str, Region, np.ndarray]]:
    """(level path, region of that level, block) for each level a region task writes
    (``z_axes[i]``: the Z axis where the step to ``level_paths[i + 1]`` halves Z, else None)."""
    for index, path in enumerate(level_paths):
        if index > 0:
            z_axis = z_axes[index - 1] if index - 1 < len(z_axes) else None
            block = downsample_2x(block, method, z_axis)
            region = halve(region, z_axis)
        elif not write_first:
            continue
        yield path, region, block


@dataclass(frozen=True)
class RegionTask:
    """What every region of one pass is read and written with (it pickles: dask workers get it).

    ``level_paths[0]`` is the level the regions belong to (written only if ``write_first``, the
    pass reading the source); each following path receives a region halved once more.
    """

    read: Callable[[Region], np.ndarray]
    level_paths: tuple[str, ...]
    pipeline: str
    run_id: str
    write_first: bool
    method: Downsampling
    channel_axis: int | None = None
    #: Per step to ``level_paths[i + 1]``: the Z axis when that step halves Z, else None.
    z_axes: tuple[int | None, ...] = ()
    #: Whether to checksum the chunk files each region stores (see :mod:`.resume`).
    checksums: bool = True

    def blocks(self, region: Region) -> Iterator[tuple[str, Region, np.ndarray]]:
        """Read ``region``; (level path, region of that level, block) for each level written."""
        block = self.read(region)
        return level_blocks(
            block, self.level_paths, region, self.write_first, self.method, self.z_axes
        )


def convert_region(task: RegionTask, region: Region, clear: bool = False) -> RegionOutcome:
    """Read one region, write it and its downsampled versions.

    ``level_paths[0]`` is the level the region belongs to (written only if ``write_first``, the
    pass reading the source, which also measures the value range of the source's pixels); each
    following path receives the region halved once more. With ``clear`` (a resumed run), the
    chunks the region covers are deleted first: an interrupted or failed run may have left them
    empty or torn, and a partial (edge) chunk is read back to be completed when written.
    """
    block = task.read(region)
    ranges = (
        value_ranges(block, region, task.channel_axis)
        if task.write_first and block.dtype.kind != "b"
        else None
    )
    paths = []
    writes = []
    for path, written, level_block in level_blocks(
        block, task.level_paths, region, task.write_first, task.method, task.z_axes
    ):
        paths.append(path)
        writes.append((open_level(path, task.pipeline, task.run_id), written, level_block))
    if clear:
        clear_chunks(writes)
    write_all(writes)
    sums = (
        stored_checksums(
            [
                (task.level_paths.index(path), path, array, written)
                for path, (array, written, _) in zip(paths, writes, strict=True)
            ]
        )
        if task.checksums
        else None
    )
    return RegionOutcome([level_block.shape for _, _, level_block in writes], ranges, sums)
