"""Write pyramid levels region by region, on threads or on a dask.distributed cluster.

A *pass* reads regions of one level (the source, or a level already written), writes them and the
next few levels computed from them in memory. Regions are aligned to whole chunks (and shards) of
every level they write, so no two tasks ever touch the same chunk. A journal in the staging folder
records each finished region, so an interrupted conversion resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.core.sync import sync as zarr_sync

from ..errors import ConversionCancelled, InvalidOptionError, SourceError
from ..zarr_names import JOURNAL
from .pyramid import Downsampling, downsample_2x

Region = tuple[slice, ...]
CancelArg = threading.Event | Callable[[], bool] | None


@dataclass(frozen=True)
class Progress:
    """Progress of a running conversion, passed to the ``progress`` callback."""

    tiles_done: int
    tiles_total: int
    bytes_done: int
    bytes_total: int
    elapsed: float

    @property
    def fraction(self) -> float:
        """Share of tiles written, from 0 to 1."""
        return self.tiles_done / self.tiles_total if self.tiles_total else 1.0

    @property
    def megabytes_per_second(self) -> float:
        """Uncompressed throughput so far."""
        return self.bytes_done / 1e6 / self.elapsed if self.elapsed > 0 else 0.0

    def __str__(self) -> str:
        return (
            f"{self.tiles_done:,}/{self.tiles_total:,} tiles ({self.fraction:.0%}), "
            f"{self.megabytes_per_second:,.0f} MB/s, {self.elapsed:.1f} s"
        )


# ---------------------------------------------------------------------------------------------
# Codec pipeline
# ---------------------------------------------------------------------------------------------


def codec_pipeline_name() -> str:
    """``"zarrs"`` (the Rust pipeline, several times faster) when installed, else zarr-python's."""
    if os.environ.get("NAPARI_ZARR_TILER_PIPELINE", "auto") == "default":
        return "default"
    try:
        import zarrs  # noqa: F401
    except ImportError:
        return "default"
    return "zarrs"


_PIPELINE_PATHS = {
    "zarrs": "zarrs.ZarrsCodecPipeline",
    "default": "zarr.core.codec_pipeline.BatchedCodecPipeline",
}
#: Appended to a pipeline's name when it reads and writes chunks with direct I/O (zarrs only).
DIRECT_IO_SUFFIX = "+direct"


def with_direct_io(name: str) -> str:
    """The name of the pipeline ``name`` reading and writing chunks past the page cache."""
    return name + DIRECT_IO_SUFFIX


@contextlib.contextmanager
def use_codec_pipeline(name: str) -> Iterator[None]:
    """Open and write arrays with the named codec pipeline inside this block."""
    base = name.removesuffix(DIRECT_IO_SUFFIX)
    settings: dict[str, Any] = {"codec_pipeline.path": _PIPELINE_PATHS[base]}
    if name != base:
        settings["codec_pipeline.direct_io"] = True
    with zarr.config.set(settings):
        yield


@functools.lru_cache(maxsize=64)
def _open_level(path: str, pipeline: str, run_id: str) -> Any:
    """A level array opened for writing in this process, cached for one conversion (``run_id``)."""
    with use_codec_pipeline(pipeline):
        return zarr.open_array(path, mode="r+")


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def _file_version(path: str) -> tuple[int, int]:
    try:
        status = os.stat(path)
    except OSError:
        return (0, 0)
    return (status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=8)
def _open_in_worker(spec: Any, version: tuple[int, int]) -> Any:
    """The source array, opened once per worker process (``version`` invalidates a changed file)."""
    return spec.opened.array


class SourceReader:
    """Read regions of level 0 (RGB samples moved to a channel axis); picklable via a spec.

    Parameters
    ----------
    array : array-like, optional
        numpy, dask or zarr array (used in this process).
    spec : object with ``open()``, optional
        A picklable source description (:class:`napari_zarr_tiler.sources.formats.SourceSpec`), re-opened
        in each worker process when the reader is sent to a cluster.
    channel_position : int, optional
        Where the RGB(A) sample axis (the source's last) goes, or None.
    """

    def __init__(
        self, array: Any = None, *, spec: Any = None, channel_position: int | None = None
    ) -> None:
        self._array = array
        self.spec = spec
        self.channel_position = channel_position

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.spec is not None:
            state["_array"] = None  # workers re-open the source from its spec
        return state

    @property
    def array(self) -> Any:
        if self._array is None:  # in a worker process: open once per process and file version
            self._array = _open_in_worker(self.spec, _file_version(self.spec.path))
        return self._array

    def __call__(self, region: Region) -> np.ndarray:
        position = self.channel_position
        if position is None:
            return self._read(region)
        source_region = (*region[:position], *region[position + 1 :], region[position])
        return np.ascontiguousarray(np.moveaxis(self._read(source_region), -1, position))

    def _read(self, region: Region) -> np.ndarray:
        try:
            block = self.array[region]
            if hasattr(block, "compute"):
                block = block.compute(scheduler="sync")
            return np.asarray(block)
        except (ConversionCancelled, MemoryError):
            raise
        except Exception as error:  # codecs and file readers raise many kinds of errors
            where = getattr(self.spec, "path", "the source")
            msg = (
                f"{where}: reading the region {_region_text(region)} failed "
                f"({type(error).__name__}: {error}); the file may be truncated or corrupt"
            )
            raise SourceError(msg) from error


def _region_text(region: Region) -> str:
    return "[" + ", ".join(f"{s.start}:{s.stop}" for s in region) + "]"


class LevelReader:
    """Read regions of a level already written (re-opened by path in worker processes)."""

    def __init__(self, path: str, pipeline: str, run_id: str) -> None:
        self.path = path
        self.pipeline = pipeline
        self.run_id = run_id

    def __call__(self, region: Region) -> np.ndarray:
        return np.asarray(_open_level(self.path, self.pipeline, self.run_id)[region])


# ---------------------------------------------------------------------------------------------
# One region: the unit of work
# ---------------------------------------------------------------------------------------------


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


def halve(region: Region) -> Region:
    """The region of the next level that a region of this level downsamples into."""
    *lead, y, x = region
    return (
        *lead,
        slice(y.start // 2, math.ceil(y.stop / 2)),
        slice(x.start // 2, math.ceil(x.stop / 2)),
    )


@dataclass(frozen=True)
class RegionOutcome:
    """What one region task wrote: block shapes per level and (for the source pass) the value
    range per channel."""

    shapes: list[tuple[int, ...]]
    value_ranges: dict[int, tuple[float, float]] | None = None


def _value_ranges(
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


def convert_region(
    read: Callable[[Region], np.ndarray],
    level_paths: tuple[str, ...],
    pipeline: str,
    run_id: str,
    region: Region,
    write_first: bool,
    method: Downsampling,
    channel_axis: int | None,
    clear: bool = False,
) -> RegionOutcome:
    """Read one region, write it and its downsampled versions.

    ``level_paths[0]`` is the level the region belongs to (written only if ``write_first``, the
    pass reading the source, which also measures the value range of the source's pixels); each
    following path receives the region halved once more. With ``clear`` (a resumed run), the
    chunks the region covers are deleted first: an interrupted or failed run may have left them
    empty or torn, and a partial (edge) chunk is read back to be completed when written.
    """
    block = read(region)
    value_ranges = (
        _value_ranges(block, region, channel_axis)
        if write_first and block.dtype.kind != "b"
        else None
    )
    writes = [
        (_open_level(path, pipeline, run_id), written, level_block)
        for path, written, level_block in _level_blocks(
            block, level_paths, region, write_first, method
        )
    ]
    if clear:
        _clear_chunks(writes)
    _write_all(writes)
    return RegionOutcome([level_block.shape for _, _, level_block in writes], value_ranges)


def _level_blocks(
    block: np.ndarray,
    level_paths: tuple[str, ...],
    region: Region,
    write_first: bool,
    method: Downsampling,
) -> Iterator[tuple[str, Region, np.ndarray]]:
    """(level path, region of that level, block) for each level a region task writes."""
    for index, path in enumerate(level_paths):
        if index > 0:
            block = downsample_2x(block, method)
            region = halve(region)
        elif not write_first:
            continue
        yield path, region, block


def _clear_chunks(writes: list[tuple[Any, Region, np.ndarray]]) -> None:
    """Delete the stored chunks (shards, when sharded) that each level region covers.

    Regions are aligned to whole chunks and shards, so no other region's chunk is touched.
    """

    async def clear() -> None:
        deletions = []
        for array, region, _ in writes:
            grid = array.metadata.chunk_grid.chunk_shape
            ranges = [
                range(s.start // c, -(-s.stop // c)) for s, c in zip(region, grid, strict=True)
            ]
            for coords in itertools.product(*ranges):
                key = array.metadata.encode_chunk_key(coords)
                deletions.append((array.store_path / key).delete())
        await asyncio.gather(*deletions)

    zarr_sync(clear())


def settle_writes(timeout: float = 120.0) -> None:
    """Wait until no task is left running on zarr's event loop, or ``timeout`` seconds.

    When one chunk write fails, zarr raises at once while the other writes gathered with it go
    on in its event loop (and in threads it started): the staging folder may be judged,
    removed or kept only once they have finished.
    """

    async def drain() -> None:
        deadline = time.monotonic() + timeout
        current = asyncio.current_task()
        while True:
            pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
            remaining = deadline - time.monotonic()
            if not pending or remaining <= 0:
                return
            await asyncio.wait(pending, timeout=remaining)

    with contextlib.suppress(Exception):  # settling must never hide the error being handled
        zarr_sync(drain())


def _write_all(writes: list[tuple[Any, Region, np.ndarray]]) -> None:
    """Write a region's level blocks in one trip through zarr's event loop, concurrently.

    zarr-python's synchronous API serialises every call through one event-loop thread; one trip
    per region instead of one per level measured 5-20 % faster on 2 cores. Falls back to plain
    assignments if zarr's async array is not there (a zarr version without it).
    """
    if not all(hasattr(array, "_async_array") for array, _, _ in writes):
        for array, region, block in writes:
            array[region] = block
        return

    async def write() -> None:
        # Every level's write ends before the first failure is raised (none left running).
        results = await asyncio.gather(
            *(array._async_array.setitem(region, block) for array, region, block in writes),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    zarr_sync(write())


def verify_region(
    read: Callable[[Region], np.ndarray],
    level_paths: tuple[str, ...],
    pipeline: str,
    run_id: str,
    region: Region,
    write_first: bool,
    method: Downsampling,
) -> bool:
    """Whether the levels a journaled region wrote hold exactly what computing it again gives.

    Used on resume only. Comparing with the recomputed blocks (rather than checksums taken while
    writing) costs nothing while converting -- checksums took ~12 % of the time of a
    conversion -- and catches lost, truncated and corrupt chunks alike.
    """
    block = read(region)  # a source that cannot be read now is an error, not a torn region
    try:
        for path, written, expected in _level_blocks(
            block, level_paths, region, write_first, method
        ):
            stored = np.asarray(_open_level(path, pipeline, run_id)[written])
            if not _same_bytes(stored, expected):
                return False
    except Exception:  # a truncated or corrupt chunk: the region is written again
        return False
    return True


def _same_bytes(stored: np.ndarray, expected: np.ndarray) -> bool:
    """Equal shapes and bytes (NaN payloads and signed zeros included), once ``expected`` is in
    the stored dtype (as zarr converted it when writing: a big-endian source, for one)."""
    if stored.shape != expected.shape:
        return False
    if expected.dtype != stored.dtype:
        expected = expected.astype(stored.dtype)
    return bool(
        np.array_equal(
            np.ascontiguousarray(stored).reshape(-1).view(np.uint8),
            np.ascontiguousarray(expected).reshape(-1).view(np.uint8),
        )
    )


# ---------------------------------------------------------------------------------------------
# Journal: which regions are done, for resume
# ---------------------------------------------------------------------------------------------


def _refusal(staging: Path, header: str, fingerprint: dict[str, Any]) -> str:
    """Why a journal cannot be resumed: torn, another version of this package, or other options."""
    if not header.strip():
        return (
            f"{staging} has an empty journal (the disk may have filled up as it started); run "
            "again without resume to start over"
        )
    try:
        version = json.loads(header).get("journal")
    except (ValueError, AttributeError):
        version = None
    if version != fingerprint.get("journal"):
        return (
            f"{staging} was started by another version of napari-zarr-tiler; run again without "
            "resume to start over"
        )
    return (
        f"{staging} was started with other options or another source; run again with the same "
        "ones, or without resume to start over"
    )


class Journal:
    """Append-only record of finished regions in the staging folder.

    Each line names a region (pass and index) and, for the source pass, the value range it
    measured, so that a resumed conversion still knows the whole image's range.
    """

    def __init__(self, staging: Path, fingerprint: dict[str, Any], *, resume: bool) -> None:
        self.path = staging / JOURNAL
        self.done: dict[tuple[int, int], RegionOutcome] = {}
        #: Whether an earlier run's journal was taken over (its chunks may be torn).
        self.resumed = resume and self.path.is_file()
        header = json.dumps(fingerprint, sort_keys=True)
        if resume and self.path.is_file():
            lines = self.path.read_text().splitlines()
            if not lines or lines[0] != header:
                raise InvalidOptionError(_refusal(staging, lines[0] if lines else "", fingerprint))
            for line in lines[1:]:
                try:
                    entry = json.loads(line)
                    ranges = entry["ranges"]
                    self.done[(int(entry["pass"]), int(entry["region"]))] = RegionOutcome(
                        shapes=[],
                        value_ranges=None
                        if ranges is None
                        else {int(k): (float(v[0]), float(v[1])) for k, v in ranges.items()},
                    )
                except (ValueError, KeyError, TypeError, IndexError, AttributeError):
                    continue  # a line cut short by a crash: that region is simply redone
        else:
            self.path.write_text(header + "\n")
        self._file = self.path.open("a")

    def record(self, pass_index: int, region_index: int, outcome: RegionOutcome) -> None:
        """Note a finished region (called from one thread only)."""
        entry = {
            "pass": pass_index,
            "region": region_index,
            "ranges": outcome.value_ranges,
        }
        # Flushed to the OS (so it survives the process being killed) but not fsynced: a line a
        # power cut loses only means the region is written again, and a line whose chunks were
        # lost is caught on resume, where every journaled region is computed again and compared.
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()
        self.done[(pass_index, region_index)] = outcome

    def value_ranges(self) -> dict[int, tuple[float, float]]:
        """Min and max per channel over every region of the source recorded so far."""
        merged: dict[int, tuple[float, float]] = {}
        for outcome in self.done.values():
            for channel, (low, high) in (outcome.value_ranges or {}).items():
                if channel in merged:
                    low, high = min(low, merged[channel][0]), max(high, merged[channel][1])
                merged[channel] = (low, high)
        return merged

    def close(self) -> None:
        self._file.close()

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Scheduling
# ---------------------------------------------------------------------------------------------


def _cancelled(cancel: CancelArg) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


@contextlib.contextmanager
def dask_client(scheduler: str) -> Iterator[Any]:
    """A dask.distributed client: ``"local"`` starts a LocalCluster of processes, else an address."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as error:
        msg = "a dask cluster needs the 'distributed' package: pip install 'napari-zarr-tiler[distributed]'"
        raise InvalidOptionError(msg) from error
    if scheduler == "local":
        with (
            LocalCluster(
                n_workers=os.cpu_count() or 2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
    else:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as error:
            msg = f"cannot reach the dask scheduler at {scheduler!r} ({error})"
            raise InvalidOptionError(msg) from error
        with client:
            yield client


@dataclass
class PyramidPass:
    """One pass: regions of ``level_paths[0]``, written with the levels after it."""

    read: Callable[[Region], np.ndarray]
    level_paths: tuple[str, ...]
    levels: tuple[int, ...]
    shape: tuple[int, ...]
    region_shape: tuple[int, ...]
    write_first: bool


@dataclass
class RegionScheduler:
    """Run passes region by region with bounded work in flight, on threads or a dask client."""

    pipeline: str
    run_id: str
    method: Downsampling
    level_chunks: tuple[tuple[int, ...], ...]
    tiles_total: int
    bytes_total: int
    journal: Journal
    progress: Callable[[Progress], None] | None
    cancel: CancelArg
    workers: int
    itemsize: int
    channel_axis: int | None
    client: Any = None
    tiles_done: int = field(default=0, init=False)
    bytes_done: int = field(default=0, init=False)
    #: Journaled regions found intact on resume, and so not written again.
    regions_kept: int = field(default=0, init=False)
    started: float = field(default_factory=time.perf_counter, init=False)

    def _count(
        self,
        levels: tuple[int, ...],
        shapes: list[tuple[int, ...]],
        write_first: bool,
    ) -> None:
        for level, shape in zip(levels if write_first else levels[1:], shapes, strict=True):
            chunks = self.level_chunks[level]
            self.tiles_done += math.prod(
                math.ceil(s / c) for s, c in zip(shape, chunks, strict=True)
            )
            self.bytes_done += math.prod(shape) * self.itemsize
        if self.progress is not None:
            self.progress(
                Progress(
                    self.tiles_done,
                    self.tiles_total,
                    self.bytes_done,
                    self.bytes_total,
                    time.perf_counter() - self.started,
                )
            )

    def _skip_shapes(self, region: Region, count: int) -> list[tuple[int, ...]]:
        shapes = []
        for _ in range(count):
            shapes.append(tuple(s.stop - s.start for s in region))
            region = halve(region)
        return shapes

    def run(self, pyramid_pass: PyramidPass, pass_index: int) -> None:
        """Run one pass, skipping the regions the journal lists as done and that verify."""
        all_regions = list(enumerate(regions(pyramid_pass.shape, pyramid_pass.region_shape)))
        journaled = [(i, r) for i, r in all_regions if (pass_index, i) in self.journal.done]
        verified = self._verify(pyramid_pass, pass_index, journaled)
        self._execute(
            pyramid_pass, pass_index, [(i, r) for i, r in all_regions if i not in verified]
        )

    def _verify(
        self, pyramid_pass: PyramidPass, pass_index: int, journaled: list[tuple[int, Region]]
    ) -> set[int]:
        """Indices of journaled regions whose chunks hold what they should (on resume).

        Verified regions count as done in the progress as they are verified, and ``cancel`` is
        checked between them: on a big store this step reads everything written so far.
        """
        if not journaled:
            return set()

        def check(region: Region) -> bool:
            return verify_region(
                pyramid_pass.read,
                pyramid_pass.level_paths,
                self.pipeline,
                self.run_id,
                region,
                pyramid_pass.write_first,
                self.method,
            )

        verified: set[int] = set()
        with ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="zarr-tiler-verify"
        ) as pool:
            futures = {pool.submit(check, region): (index, region) for index, region in journaled}
            try:
                for future in as_completed(futures):
                    index, region = futures[future]
                    if future.result():
                        verified.add(index)
                        self.regions_kept += 1
                        shapes = self._skip_shapes(region, len(pyramid_pass.levels))
                        self._count(
                            pyramid_pass.levels,
                            shapes if pyramid_pass.write_first else shapes[1:],
                            pyramid_pass.write_first,
                        )
                    else:
                        del self.journal.done[(pass_index, index)]  # written again
                    if _cancelled(self.cancel):
                        raise ConversionCancelled("the conversion was cancelled")
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return verified

    def _task_args(self, pyramid_pass: PyramidPass, region: Region) -> tuple[Any, ...]:
        return (
            pyramid_pass.read,
            pyramid_pass.level_paths,
            self.pipeline,
            self.run_id,
            region,
            pyramid_pass.write_first,
            self.method,
            self.channel_axis,
            self.journal.resumed,  # chunks an earlier run left may be torn: clear them first
        )

    @contextlib.contextmanager
    def _executor(self) -> Iterator[tuple[Callable[..., Any], Callable[[Any], set[Any]], int]]:
        """(submit, wait for at least one, how many in flight) on threads or the dask client."""
        if self.client is None:
            with ThreadPoolExecutor(
                max_workers=self.workers, thread_name_prefix="zarr-tiler"
            ) as pool:
                yield (
                    pool.submit,
                    lambda futures: wait(futures, return_when=FIRST_COMPLETED)[0],
                    self.workers + 1,
                )
            return
        from distributed import wait as dask_wait

        def submit(function: Callable[..., Any], *args: Any) -> Any:
            return self.client.submit(function, *args, pure=False)

        def wait_any(futures: Any) -> set[Any]:
            return set(dask_wait(list(futures), return_when="FIRST_COMPLETED").done)

        yield submit, wait_any, 2 * max(sum(self.client.nthreads().values()), 1)

    def _stop(self, in_flight: dict[Any, int]) -> None:
        """Cancel the regions not started, and let those running finish (a failed run's folder
        is judged only once nothing writes into it). Threads: the pool's exit waits for them;
        a dask task cannot be stopped once running, so it is waited for (up to a minute)."""
        if self.client is not None:
            from distributed import wait as dask_wait

            with contextlib.suppress(Exception):
                dask_wait(list(in_flight), timeout=60)
        for future in in_flight:
            future.cancel()

    def _execute(
        self, pyramid_pass: PyramidPass, pass_index: int, todo: list[tuple[int, Region]]
    ) -> None:
        """Submit the regions with a bounded number in flight; journal each as it completes."""
        in_flight: dict[Any, int] = {}

        def collect(done: set[Any]) -> None:
            for future in done:
                index = in_flight.pop(future)
                outcome: RegionOutcome = future.result()
                self.journal.record(pass_index, index, outcome)
                self._count(pyramid_pass.levels, outcome.shapes, pyramid_pass.write_first)

        with self._executor() as (submit, wait_any, limit):
            try:
                for index, region in todo:
                    if _cancelled(self.cancel):
                        raise ConversionCancelled("the conversion was cancelled")
                    while len(in_flight) >= limit:
                        collect(wait_any(in_flight))
                    in_flight[submit(convert_region, *self._task_args(pyramid_pass, region))] = (
                        index
                    )
                while in_flight:
                    collect(wait_any(in_flight))
            except BaseException:
                self._stop(in_flight)
                raise
