"""Resume: the journal of finished regions, the fingerprint that guards it, and verification.

The journal (a file in the staging folder) starts with a fingerprint of the source and of every
option that changes the bytes written; a resumed run with another fingerprint is refused before
anything changes. Each later line names a finished region and, when the source is pinned (a file
whose path, inode, size and modification time are in the fingerprint, see
:meth:`~.level_zero.LevelZero.pin`), the checksums of the chunk (or shard) files it stored. On
resume, the stored files of every journaled region are checksummed again and compared with the
journal, without reading the source: lost, truncated and corrupt chunks fail the check and only
their regions are redone. Sharded stores are checked the same way: a region writes whole shards,
so a shard file's checksum is taken once its region is written. The regions of a source that
cannot be pinned (an array in memory, a computed dask array, a zarr store, ...) are computed again
and compared with what is stored: a source changed since the interrupted run is then noticed,
where checksums would have kept regions of the old pixels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidOptionError
from ..zarr_names import JOURNAL
from .backend import open_level
from .pyramid import Downsampling
from .regions import (
    CHECKSUM_NAME,
    LevelChecksums,
    Region,
    RegionOutcome,
    RegionTask,
    chunk_checksum,
)

if TYPE_CHECKING:
    from .plan import ConversionPlan

#: 4: the source's pin in the fingerprint, and checksums only for pinned sources (3 took
#: checksums for every source; 2 recomputed regions from the source; 1 kept checksums of the
#: uncompressed blocks).
JOURNAL_VERSION = 4


def build_fingerprint(
    source: str,
    plan: ConversionPlan,
    *,
    codec: tuple[str, int | None],
    pipeline: str,
    method: Downsampling,
    pin: str | None = None,
) -> dict[str, Any]:
    """What a resumed run must share with the interrupted one: source, plan, codec, pipeline.

    ``pipeline`` names the base pipeline: direct or buffered writes store the same bytes.
    ``pin`` is the source's :meth:`~.level_zero.LevelZero.pin` (a file changed since the
    interrupted run refuses the resume).
    """
    return {
        "journal": JOURNAL_VERSION,
        "source": source,
        "pin": pin,
        "plan": [
            plan.level_shapes,
            plan.level_chunks,
            plan.level_shards,
            plan.zarr_format,
            plan.layout,
            plan.region_yx,
        ],
        "codec": list(codec),
        "pipeline": pipeline,
        "method": method,
        "checksum": CHECKSUM_NAME,
    }


def refusal(staging: Path, header: str, fingerprint: dict[str, Any]) -> str:
    """Why a journal cannot be resumed: torn, another version of this package, or other options."""
    if not header.strip():
        return (
            f"{staging} has an empty journal (the disk may have filled up as it started); run "
            "again without resume to start over"
        )
    try:
        started = json.loads(header)
        version = started.get("journal")
    except (ValueError, AttributeError):
        started, version = {}, None
    if version != fingerprint.get("journal"):
        return (
            f"{staging} was started by another version of napari-zarr-tiler; run again without "
            "resume to start over"
        )
    current = json.loads(json.dumps(fingerprint))  # tuples as the header's lists
    if {**started, "pin": None} == {**current, "pin": None}:
        return (
            f"{staging} was started from another source file, or the file has changed since (its "
            "path, inode, size or modification time differ); run again without resume to start "
            "over"
        )
    return (
        f"{staging} was started with other options or another source; run again with the same "
        "ones, or without resume to start over"
    )


def _checksums(value: Any) -> tuple[LevelChecksums, ...] | None:
    """The journaled checksums of a region's chunk files (None when absent: verified by
    recomputing the region), refusing keys that would lead outside the level's folder."""
    if value is None:
        return None
    levels = []
    for index, sums in value:
        chunks = {}
        for key, checksum in sums.items():
            if not isinstance(key, str) or key.startswith("/") or ".." in key.split("/"):
                raise ValueError(key)
            chunks[key] = None if checksum is None else int(checksum)
        levels.append((int(index), chunks))
    return tuple(levels)


def _journal_entry(line: str) -> tuple[tuple[int, int], RegionOutcome] | None:
    """((pass, region), outcome) of one journal line, or None for a line cut short by a crash."""
    try:
        entry = json.loads(line)
        ranges = entry["ranges"]
        key = (int(entry["pass"]), int(entry["region"]))
        outcome = RegionOutcome(
            shapes=[],
            value_ranges=None
            if ranges is None
            else {int(k): (float(v[0]), float(v[1])) for k, v in ranges.items()},
            checksums=_checksums(entry.get("sums")),
        )
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None
    return key, outcome


class Journal:
    """Append-only record of finished regions in the staging folder.

    Each line names a region (pass and index) and, for the source pass, the value range it
    measured, so that a resumed conversion still knows the whole image's range.

    Raises
    ------
    InvalidOptionError
        When resuming a journal written with another fingerprint (or torn at its first line).
    """

    def __init__(self, staging: Path, fingerprint: dict[str, Any], *, resume: bool) -> None:
        self.path = staging / JOURNAL
        self.done: dict[tuple[int, int], RegionOutcome] = {}
        #: Whether an earlier run's journal was taken over (its chunks may be torn).
        self.resumed = resume and self.path.is_file()
        header = json.dumps(fingerprint, sort_keys=True)
        if self.resumed:
            text = self.path.read_text()
            lines = text.splitlines()
            if not lines or lines[0] != header:
                raise InvalidOptionError(refusal(staging, lines[0] if lines else "", fingerprint))
            for line in lines[1:]:
                entry = _journal_entry(line)
                if entry is not None:  # a line cut short: that region is simply redone
                    self.done[entry[0]] = entry[1]
        else:
            text = header + "\n"
            self.path.write_text(text)
        self._file = self.path.open("a")
        if not text.endswith("\n"):  # a line torn by a crash: the next entry starts afresh
            self._file.write("\n")

    def record(self, pass_index: int, region_index: int, outcome: RegionOutcome) -> None:
        """Note a finished region (called from one thread only)."""
        entry = {
            "pass": pass_index,
            "region": region_index,
            "ranges": outcome.value_ranges,
            "sums": None if outcome.checksums is None else [list(c) for c in outcome.checksums],
        }
        # Flushed to the OS (so it survives the process being killed) but not fsynced: a line a
        # power cut loses only means the region is written again, and a line whose chunks were
        # lost is caught on resume, where the stored chunk files are checksummed again.
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
        """Close the journal file (its lines stay)."""
        self._file.close()

    def remove(self) -> None:
        """Close and delete the journal file."""
        self.close()
        self.path.unlink(missing_ok=True)


def verify_region(task: RegionTask, region: Region, outcome: RegionOutcome | None = None) -> bool:
    """Whether the chunks a journaled region wrote are intact (used on resume only).

    With the checksums the journal recorded (``outcome``), the stored chunk (or shard) files
    are checksummed again and compared, without reading the source: a fraction of the cost of
    writing them. Without (an entry that has none), the region is computed again from the
    source and compared with what is stored. Lost, truncated and corrupt chunks fail either way.
    """
    if outcome is not None and outcome.checksums is not None:
        return checksums_match(task.level_paths, outcome.checksums)
    return _recomputed_region_matches(task, region)


def checksums_match(level_paths: tuple[str, ...], checksums: tuple[LevelChecksums, ...]) -> bool:
    """Whether every chunk file listed holds the bytes it was journaled with (or is still
    absent if it was not stored)."""
    for index, chunks in checksums:
        if not 0 <= index < len(level_paths):
            return False
        folder = Path(level_paths[index])
        for key, expected in chunks.items():
            if chunk_checksum(folder / key) != expected:
                return False
    return True


def _recomputed_region_matches(task: RegionTask, region: Region) -> bool:
    """Whether the levels a region wrote hold exactly what computing it again gives."""
    blocks = task.blocks(region)  # a source that cannot be read now is an error, not a torn one
    try:
        for path, written, expected in blocks:
            stored = np.asarray(open_level(path, task.pipeline, task.run_id)[written])
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
