"""Source blocks read once: regions of a chunked array whatever its blocks' shape.

A dask array computes a block whole and zarr decodes a chunk whole, so a region that covers
parts of several blocks would otherwise pay for each of them, and its neighbours again.
:class:`BlockCache` reads each block once and keeps it, within a budget, until every one of its
pixels has been handed to a region.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import math
import threading
from typing import Any

import numpy as np

from .regions import Region

__all__ = ["BLOCK_CACHE_BYTES", "BlockCache", "block_edges"]

#: Bytes of source blocks kept for regions still to come (per process). A block that does not
#: fit is read again by each region that needs it, as a source without blocks would be.
BLOCK_CACHE_BYTES = 512 << 20

Block = tuple[int, ...]


def block_edges(array: Any) -> tuple[tuple[int, ...], ...] | None:
    """The boundaries of an array's blocks along each axis (dask chunks; zarr's chunks, the inner
    chunks when sharded), or None for an array without blocks (numpy)."""
    chunks = getattr(array, "chunks", None)
    if chunks is None or len(chunks) != len(array.shape):
        return None
    edges = []
    for sizes, side in zip(chunks, array.shape, strict=True):
        if isinstance(sizes, int | np.integer):
            bounds = (*range(0, int(side), int(sizes)), int(side))
        else:
            bounds = (0, *itertools.accumulate(int(s) for s in sizes))
        edges.append(tuple(dict.fromkeys(bounds)))  # an empty axis has one edge
    return tuple(edges)


def _computed(block: Any) -> np.ndarray:
    """A block's pixels in a C-contiguous array of their own.

    A region of a numpy source is a strided view: copied once here, in the region's own thread,
    its value range is read 6x faster, and the codec pipeline needs no copy of its own (zarrs
    makes one on zarr's single event-loop thread, where it holds up every other write).
    """
    if hasattr(block, "compute"):
        block = block.compute(scheduler="sync")
    return np.ascontiguousarray(block)


class BlockCache:
    """Read regions of a chunked array so that each of its blocks is read once.

    A region whose edges fall on block boundaries is read directly. Otherwise the blocks it
    overlaps are read whole (dask computes a block whole anyway; zarr decodes a chunk whole),
    and a block that later regions also need is kept until every one of its pixels has been
    handed out (or, past :data:`BLOCK_CACHE_BYTES`, read again by them). A block being read by
    one thread is waited for by the others. Thread-safe; one per process.
    """

    def __init__(
        self,
        array: Any,
        edges: tuple[tuple[int, ...], ...] | None,
        budget: int = BLOCK_CACHE_BYTES,
    ) -> None:
        self.array = array
        self.edges = edges
        self.budget = budget
        self._lock = threading.Lock()
        self._kept: dict[Block, np.ndarray] = {}
        self._reading: dict[Block, threading.Event] = {}
        self._handed: dict[Block, int] = {}
        self._kept_bytes = 0
        self._finished: set[Block] = set()
        #: How many blocks were read from the source (for tests and benchmarks).
        self.blocks_read = 0

    def read(self, region: Region) -> np.ndarray:
        """The pixels of ``region`` (a tuple of slices with steps of 1)."""
        if self.edges is None or self._aligned(region):
            return _computed(self.array[region])
        out = np.empty(tuple(s.stop - s.start for s in region), dtype=self.array.dtype)
        todo = set(itertools.product(*(self._span(a, s) for a, s in enumerate(region))))
        while todo:
            ready, claimed, pending = self._take(todo)
            if claimed:
                ready.update(self._read_claimed(claimed, region))
            for block, values in ready.items():
                self._hand_out(block, values, region, out)
                todo.discard(block)
            if pending and not claimed:
                self._read_ahead(max(todo))
            for event in pending:
                event.wait()
        return out

    # -- geometry ----------------------------------------------------------------------------

    def _aligned(self, region: Region) -> bool:
        assert self.edges is not None
        return all(
            s.start in edges and s.stop in edges
            for s, edges in zip(region, self.edges, strict=True)
        )

    def _span(self, axis: int, part: slice) -> range:
        """Indices along ``axis`` of the blocks that ``part`` overlaps."""
        assert self.edges is not None
        edges = self.edges[axis]
        return range(
            bisect.bisect_right(edges, part.start) - 1, bisect.bisect_left(edges, part.stop)
        )

    def _box(self, block: Block) -> Region:
        assert self.edges is not None
        return tuple(slice(e[i], e[i + 1]) for e, i in zip(self.edges, block, strict=True))

    # -- blocks ------------------------------------------------------------------------------

    def _take(
        self, todo: set[Block]
    ) -> tuple[dict[Block, np.ndarray], list[Block], list[threading.Event]]:
        """Blocks kept, blocks this thread reads now, and reads by other threads to wait for."""
        ready: dict[Block, np.ndarray] = {}
        claimed: list[Block] = []
        pending: list[threading.Event] = []
        with self._lock:
            for block in sorted(todo):
                if block in self._kept:
                    ready[block] = self._kept[block]
                elif block in self._reading:
                    pending.append(self._reading[block])
                else:
                    self._reading[block] = threading.Event()
                    claimed.append(block)
        return ready, claimed, pending

    def _read_claimed(self, claimed: list[Block], region: Region) -> dict[Block, np.ndarray]:
        """Read the claimed blocks (in one read when they form a box), keep those other regions
        need, and wake the threads waiting for them."""
        values: dict[Block, np.ndarray] = {}
        try:
            axes = range(len(claimed[0]))
            lows = [min(b[a] for b in claimed) for a in axes]
            highs = [max(b[a] for b in claimed) + 1 for a in axes]
            if math.prod(h - lo for lo, h in zip(lows, highs, strict=True)) == len(claimed):
                assert self.edges is not None
                box = tuple(
                    slice(edges[lo], edges[hi])
                    for edges, lo, hi in zip(self.edges, lows, highs, strict=True)
                )
                whole = _computed(self.array[box])
                for block in claimed:
                    inner = tuple(
                        slice(b.start - o.start, b.stop - o.start)
                        for b, o in zip(self._box(block), box, strict=True)
                    )
                    values[block] = whole[inner]
            else:
                for block in claimed:
                    values[block] = _computed(self.array[self._box(block)])
            self.blocks_read += len(claimed)
            self._keep(values, region)
        finally:
            with self._lock:
                for block in claimed:
                    self._reading.pop(block).set()
        return values

    def _read_ahead(self, after: Block) -> None:
        """While waiting for a block another thread reads, read the next block no one has
        read (in C order after ``after``) for the regions to come, if the budget allows."""
        assert self.edges is not None
        grid = tuple(len(edges) - 1 for edges in self.edges)
        start = int(np.ravel_multi_index(after, grid)) + 1
        with self._lock:
            for flat in range(start, min(start + 8, math.prod(grid))):
                block = tuple(int(i) for i in np.unravel_index(flat, grid))
                if block in self._kept or block in self._reading or block in self._finished:
                    continue
                size = math.prod(s.stop - s.start for s in self._box(block))
                if self._kept_bytes + size * self.array.dtype.itemsize > self.budget:
                    return
                self._reading[block] = threading.Event()
                break
            else:
                return
        # A failed read is left to the region that needs the block: it reads it and reports.
        with contextlib.suppress(Exception):
            self._read_claimed([block], ())

    def _keep(self, values: dict[Block, np.ndarray], region: Region) -> None:
        """Keep the blocks that reach outside ``region`` (later regions need them), within the
        budget."""
        for block, data in values.items():
            box = self._box(block)
            inside = bool(region) and all(
                b.start >= r.start and b.stop <= r.stop for b, r in zip(box, region, strict=True)
            )
            with self._lock:
                if inside or self._kept_bytes + data.nbytes > self.budget:
                    continue
                self._kept[block] = np.array(data)  # a copy: the box it came from is freed
                self._kept_bytes += data.nbytes

    def _hand_out(self, block: Block, data: np.ndarray, region: Region, out: np.ndarray) -> None:
        """Copy the part of ``block`` inside ``region`` into ``out``; drop a kept block once
        every one of its pixels has been handed out."""
        box = self._box(block)
        overlap = [
            (max(b.start, r.start), min(b.stop, r.stop)) for b, r in zip(box, region, strict=True)
        ]
        out[
            tuple(
                slice(lo - r.start, hi - r.start)
                for (lo, hi), r in zip(overlap, region, strict=True)
            )
        ] = data[
            tuple(
                slice(lo - b.start, hi - b.start) for (lo, hi), b in zip(overlap, box, strict=True)
            )
        ]
        with self._lock:
            handed = self._handed.get(block, 0) + math.prod(hi - lo for lo, hi in overlap)
            if handed < math.prod(b.stop - b.start for b in box):
                self._handed[block] = handed
                return
            self._handed.pop(block, None)
            self._finished.add(block)
            kept = self._kept.pop(block, None)
            if kept is not None:
                self._kept_bytes -= kept.nbytes
