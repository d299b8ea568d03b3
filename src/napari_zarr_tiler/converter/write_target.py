"""Where the pyramid's chunks go: a local staging folder, or a prefix in an object store.

The scheduler writes through a :class:`WriteTarget`: how level arrays are created, how one
region is written and verified on resume, and how a written level is read back for the next
pass. :data:`LOCAL_TARGET` writes files (:mod:`.backend`, :mod:`.regions`, :mod:`.resume`);
:data:`~.object_store_levels.REMOTE_TARGET` writes objects behind an ``s3://`` URL. Every
callable is a module-level function or class, so a target pickles to dask workers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import create_arrays
from .regions import LevelReader, Region, RegionOutcome, RegionTask, convert_region
from .resume import verify_region

__all__ = ["LOCAL_TARGET", "WriteTarget"]


@dataclass(frozen=True)
class WriteTarget:
    """The operations that write a pyramid into one kind of destination.

    Attributes
    ----------
    create_arrays : callable
        ``(root, plan, codecs, axis_names, *, reuse) -> level paths``: create the level arrays
        (or keep those of an interrupted run) and return the paths region tasks open.
    convert_region : callable
        ``(task, region, clear) -> RegionOutcome``: read, write and downsample one region.
    verify_region : callable
        ``(task, region, outcome) -> bool``: whether a journaled region's chunks are intact.
    level_reader : callable
        ``(level path, pipeline, run_id) -> reader``: reads regions of a level already written.
    """

    create_arrays: Callable[..., list[str]]
    convert_region: Callable[[RegionTask, Region, bool], RegionOutcome]
    verify_region: Callable[[RegionTask, Region, Any], bool]
    level_reader: Callable[[str, str, str], Callable[[Region], np.ndarray]]


#: Files in a local staging folder.
LOCAL_TARGET = WriteTarget(
    create_arrays=create_arrays,
    convert_region=convert_region,
    verify_region=verify_region,
    level_reader=LevelReader,
)
