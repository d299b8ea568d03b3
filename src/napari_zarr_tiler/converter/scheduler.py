"""Write the pyramid region by region, on threads or on a dask.distributed cluster.

A *pass* reads regions of one level (the source, or a level already written), writes them and the
next few levels computed from them in memory. :class:`RegionScheduler` keeps a bounded number of
regions in flight (memory stays bounded by a few regions), journals each as it completes, and on
resume skips the journaled regions that verify.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidOptionError
from .backend import use_codec_pipeline
from .progress import CancelArg, Progress, stop_if_cancelled
from .pyramid import Downsampling
from .regions import (
    LevelReader,
    Region,
    RegionOutcome,
    RegionTask,
    region_shapes,
    regions,
)
from .resume import Journal
from .write_target import LOCAL_TARGET, WriteTarget

if TYPE_CHECKING:
    from .options import ConversionOptions
    from .plan import ConversionPlan


class SchedulerWarning(UserWarning):
    """A scheduler choice that will be slower than the default (threads)."""


def local_cluster_advice(scheduler: str | None, output_bytes: int) -> str | None:
    """Why ``scheduler="local"`` will be slower than threads, or None for other choices.

    On one machine the threads already keep every core busy (the codecs release the GIL), so a
    ``LocalCluster`` only adds its start-up (worker processes, imports) and per-task overhead.
    Measured on 2 cores (CLI, uint16 .npy sources of 64 MB, 512 MB and 1 GB): 3.3 / 10.3 /
    13.6 s on threads against 15.7 / 39.6 / 59.8 s on a LocalCluster (3.8-4.8x), the gap growing
    with the size, so no size was found where it pays off: the advice is given at every size.
    A cluster pays off when its workers run on other machines (a scheduler address).
    """
    if scheduler != "local":
        return None
    return (
        f"--scheduler local (a dask LocalCluster) is slower than the default threads on one "
        f"machine (measured 4-5x slower for outputs of 85 MB to 1.4 GB; this one is "
        f"{output_bytes / 1e6:,.0f} MB): leave --scheduler out to use threads; a cluster pays "
        f"off when its workers run on other machines (give its scheduler's address)"
    )


@contextlib.contextmanager
def dask_client(scheduler: str) -> Iterator[Any]:
    """A dask.distributed client: ``"local"`` starts a LocalCluster of processes, else an address.

    Raises
    ------
    InvalidOptionError
        Without the ``distributed`` package, or when the scheduler cannot be reached.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as error:
        msg = "a dask cluster needs the 'distributed' package: pip install distributed"
        raise InvalidOptionError(msg) from error
    if scheduler == "local":
        with (
            LocalCluster(
                n_workers=os.cpu_count() or 2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,  # a conversion needs no dashboard
                # The scheduler serves its health routes over HTTP even without a dashboard,
                # on port 8787 unless told otherwise: any free port on loopback, so that a
                # busy 8787 (another cluster) costs no warning.
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
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
    #: Per step to ``level_paths[i + 1]``: the Z axis when that step halves Z, else None.
    z_axes: tuple[int | None, ...] = ()


def passes(
    plan: ConversionPlan,
    read: Callable[[Region], np.ndarray],
    level_paths: list[str],
    pipeline: str,
    run_id: str,
    level_reader: Callable[[str, str, str], Callable[[Region], np.ndarray]] = LevelReader,
) -> Iterator[PyramidPass]:
    """Pass 0 reads the source into levels 0..depth; each next pass reads the last level written."""
    n_levels, depth = plan.n_levels, plan.depth
    first, last = 0, min(depth, n_levels - 1)
    while True:
        shape = plan.level_shapes[first]
        yield PyramidPass(
            read=read if first == 0 else level_reader(level_paths[first], pipeline, run_id),
            level_paths=tuple(level_paths[first : last + 1]),
            levels=tuple(range(first, last + 1)),
            shape=shape,
            region_shape=plan.pass_region_shape(first, last),
            write_first=first == 0,
            z_axes=tuple(plan.z_axis if halves else None for halves in plan.z_halved[first:last]),
        )
        if last >= n_levels - 1:
            return
        first, last = last, min(last + depth, n_levels - 1)


def write_pyramid(
    folder: Path,
    read: Callable[[Region], np.ndarray],
    options: ConversionOptions,
    *,
    pipeline: str,
    journal: Journal,
    progress: Callable[[Progress], None] | None,
    cancel: CancelArg,
    target: WriteTarget = LOCAL_TARGET,
    checksums: bool = True,
) -> int:
    """Create the level arrays in ``folder`` and write every level from ``read`` (level 0).

    With ``checksums`` (a pinned source), each region journals the checksums of the chunk files
    it stored, and a resume trusts them; without, a resume computes its regions again.
    Returns how many journaled regions of an interrupted run were found intact and kept.
    """
    plan = options.plan
    run_id = uuid.uuid4().hex
    with use_codec_pipeline(pipeline):
        level_paths = target.create_arrays(
            folder, plan, options.codecs, options.metadata.axis_names, reuse=options.resume
        )
    scheduler = options.scheduler
    advice = local_cluster_advice(scheduler, plan.nbytes)
    if advice is not None:
        warnings.warn(advice, SchedulerWarning, stacklevel=2)
    client_context = dask_client(scheduler) if scheduler else contextlib.nullcontext()
    with use_codec_pipeline(pipeline), client_context as client:
        runner = RegionScheduler(
            pipeline=pipeline,
            run_id=run_id,
            method=options.method,
            level_chunks=plan.level_chunks,
            tiles_total=plan.tiles,
            bytes_total=plan.nbytes,
            journal=journal,
            progress=progress,
            cancel=cancel,
            workers=options.workers,
            itemsize=plan.dtype.itemsize,
            channel_axis=options.value_range_axis,
            client=client,
            target=target,
            checksums=checksums,
        )
        for pass_index, pyramid_pass in enumerate(
            passes(plan, read, level_paths, pipeline, run_id, target.level_reader)
        ):
            runner.run(pyramid_pass, pass_index)
    return runner.regions_kept


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
    #: Where chunks are written: local files, or objects (see :mod:`.write_target`).
    target: WriteTarget = LOCAL_TARGET
    #: Whether region tasks journal the checksums of the chunks they stored (pinned sources).
    checksums: bool = True
    tiles_done: int = field(default=0, init=False)
    bytes_done: int = field(default=0, init=False)
    #: Journaled regions found intact on resume, and so not written again.
    regions_kept: int = field(default=0, init=False)
    started: float = field(default_factory=time.perf_counter, init=False)

    def run(self, pyramid_pass: PyramidPass, pass_index: int) -> None:
        """Run one pass, skipping the regions the journal lists as done and that verify."""
        all_regions = list(enumerate(regions(pyramid_pass.shape, pyramid_pass.region_shape)))
        journaled = [(i, r) for i, r in all_regions if (pass_index, i) in self.journal.done]
        verified = self._verify(pyramid_pass, pass_index, journaled)
        self._execute(
            pyramid_pass, pass_index, [(i, r) for i, r in all_regions if i not in verified]
        )

    def _count(
        self,
        levels: tuple[int, ...],
        shapes: list[tuple[int, ...]],
        write_first: bool,
    ) -> None:
        """Add the tiles and bytes of blocks written (or kept), and report progress."""
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

    def _verify(
        self, pyramid_pass: PyramidPass, pass_index: int, journaled: list[tuple[int, Region]]
    ) -> set[int]:
        """Indices of journaled regions whose chunks hold what they should (on resume).

        Verified regions count as done in the progress as they are verified, and ``cancel`` is
        checked between them: on a big store this step reads everything written so far.
        """
        if not journaled:
            return set()

        task = self._task(pyramid_pass)
        verified: set[int] = set()
        with ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="zarr-tiler-verify"
        ) as pool:
            futures = {
                pool.submit(
                    self.target.verify_region, task, region, self.journal.done[(pass_index, index)]
                ): (index, region)
                for index, region in journaled
            }
            try:
                for future in as_completed(futures):
                    index, region = futures[future]
                    if future.result():
                        verified.add(index)
                        self._keep(pyramid_pass, region)
                    else:
                        del self.journal.done[(pass_index, index)]  # written again
                    stop_if_cancelled(self.cancel)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return verified

    def _keep(self, pyramid_pass: PyramidPass, region: Region) -> None:
        """Count a verified region as done without writing it again."""
        self.regions_kept += 1
        shapes = region_shapes(region, len(pyramid_pass.levels), pyramid_pass.z_axes)
        self._count(
            pyramid_pass.levels,
            shapes if pyramid_pass.write_first else shapes[1:],
            pyramid_pass.write_first,
        )

    def _task(self, pyramid_pass: PyramidPass) -> RegionTask:
        """What every region of a pass is read and written with."""
        return RegionTask(
            read=pyramid_pass.read,
            level_paths=pyramid_pass.level_paths,
            pipeline=self.pipeline,
            run_id=self.run_id,
            write_first=pyramid_pass.write_first,
            method=self.method,
            channel_axis=self.channel_axis,
            z_axes=pyramid_pass.z_axes,
            checksums=self.checksums,
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

        task = self._task(pyramid_pass)
        clear = self.journal.resumed  # chunks an earlier run left may be torn: clear them first
        with self._executor() as (submit, wait_any, limit):
            try:
                for index, region in todo:
                    stop_if_cancelled(self.cancel)
                    while len(in_flight) >= limit:
                        collect(wait_any(in_flight))
                    in_flight[submit(self.target.convert_region, task, region, clear)] = index
                while in_flight:
                    collect(wait_any(in_flight))
            except BaseException:
                self._stop(in_flight)
                raise
