"""Resume checks the stored chunk files of a pinned source (a file) against the checksums the
journal recorded, without reading the source, and computes an unpinned source's regions again:
changed, lost and torn pieces are found and only their regions redone, a source changed since the
interruption is never mixed with the old one, and the resumed store is byte for byte the one an
uninterrupted run writes."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest
import tifffile

from napari_zarr_tiler.converter import convert
from napari_zarr_tiler.converter.level_zero import LevelZero
from napari_zarr_tiler.errors import ConversionCancelled, InvalidOptionError
from napari_zarr_tiler.sources import SourceSpec, synthetic_slide
from napari_zarr_tiler.zarr_names import JOURNAL, staging_path

from ..helpers import SLOW_OPTIONS, run, start_slow_conversion, tree_bytes, wait_for_journal

#: Two levels: regions of 256 x 4096 (one region row per 256 rows), 8 in this image.
OPTIONS: dict[str, Any] = {"chunks": 128, "levels": 2, "compressor": "zstd", "name": "image"}


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A 2048 x 4096 uint16 slide-like image."""
    return np.tile(synthetic_slide(1024, dtype="uint16", seed=5), (2, 4))


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory, image: np.ndarray) -> dict[str, bytes]:
    """Every file of the store an uninterrupted conversion writes."""
    dest = tmp_path_factory.mktemp("fresh") / "image.zarr"
    convert(image, dest, **OPTIONS)
    return tree_bytes(dest)


def interrupted(source: Any, dest: Path, *, after: int = 3, **options: Any) -> list[dict]:
    """Convert with ``resume`` and cancel after ``after`` regions; return the journal entries."""
    calls = iter(range(after + 1))
    with pytest.raises(ConversionCancelled):
        convert(
            source,
            dest,
            **{**OPTIONS, **options},
            resume=True,
            workers=1,
            cancel=lambda: next(calls, None) is None,
        )
    lines = (staging_path(dest) / JOURNAL).read_text().splitlines()[1:]
    return [json.loads(line) for line in lines]


def _first_chunk(entries: list[dict]) -> str:
    """The path (in the store) of the first chunk file a journaled region stored."""
    index, chunks = entries[0]["sums"][0]
    key = next(k for k, v in chunks.items() if v is not None)
    return f"{index}/{key}"


@pytest.fixture
def pinned(tmp_path: Path, image: np.ndarray) -> np.memmap:
    """The image as a memory-mapped ``.npy`` file: a source pinned by its file's size and time."""
    path = tmp_path / "image.npy"
    np.save(path, image)
    return np.load(path, mmap_mode="r")


@pytest.mark.parametrize("damage", ["changed", "lost", "truncated"])
def test_a_damaged_chunk_of_a_journaled_region_is_found_and_rewritten(
    tmp_path: Path, pinned: np.memmap, fresh: dict[str, bytes], damage: str
) -> None:
    dest = tmp_path / "image.zarr"
    entries = interrupted(pinned, dest)
    assert len(entries) >= 2
    chunk = staging_path(dest) / _first_chunk(entries)
    data = chunk.read_bytes()
    if damage == "changed":  # same length, one byte flipped: only a checksum can tell
        chunk.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    elif damage == "lost":
        chunk.unlink()
    else:
        chunk.write_bytes(data[:10])
    result = convert(pinned, dest, **OPTIONS, resume=True)
    assert result.resumed_regions == len(entries) - 1
    assert tree_bytes(dest) == fresh


@pytest.mark.parametrize("source", ["memory", "pinned"])
def test_a_torn_journal_line_is_ignored_and_its_region_redone(
    tmp_path: Path, image: np.ndarray, pinned: np.memmap, fresh: dict[str, bytes], source: str
) -> None:
    array = image if source == "memory" else pinned
    dest = tmp_path / "image.zarr"
    entries = interrupted(array, dest)
    journal = staging_path(dest) / JOURNAL
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # cut mid-line
    result = convert(array, dest, **OPTIONS, resume=True)
    assert result.resumed_regions == len(entries) - 1
    assert tree_bytes(dest) == fresh


def test_a_resume_of_a_pinned_source_verifies_without_reading_it(
    tmp_path: Path, image: np.ndarray, pinned: np.memmap, fresh: dict[str, bytes]
) -> None:
    """The journaled regions are kept on their checksums: pixels of the first region changed
    behind the file's back (its size and time put back) are not read again."""
    dest = tmp_path / "image.zarr"
    entries = interrupted(pinned, dest)
    assert entries[0]["region"] == 0 and entries[0]["sums"] is not None
    path = Path(pinned.filename)
    status = path.stat()
    writable = np.load(path, mmap_mode="r+")
    writable[:16] = 7  # inside region 0 (rows 0-255), which the journal lists
    writable.flush()
    del writable
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    result = convert(pinned, dest, **OPTIONS, resume=True)
    assert result.resumed_regions == len(entries)
    assert tree_bytes(dest) == fresh  # region 0 as first written, from the pixels of then


def test_a_pinned_source_changed_since_the_interruption_refuses_the_resume(
    tmp_path: Path, pinned: np.memmap
) -> None:
    dest = tmp_path / "image.zarr"
    interrupted(pinned, dest)
    path = Path(pinned.filename)
    status = path.stat()
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))
    with pytest.raises(InvalidOptionError, match="or the file has changed since"):
        convert(np.load(path, mmap_mode="r"), dest, **OPTIONS, resume=True)
    assert (staging_path(dest) / JOURNAL).is_file()  # the partial store is kept for a resume


def test_an_array_in_memory_changed_since_the_interruption_is_written_anew(
    tmp_path: Path, image: np.ndarray
) -> None:
    """Nothing pins an array in memory: its journaled regions are computed again and compared,
    so a resume with other pixels (same shape and type) writes the store of those pixels, not
    a mix of both."""
    dest = tmp_path / "image.zarr"
    entries = interrupted(image, dest)
    assert all(entry["sums"] is None for entry in entries)
    changed = image.copy()
    changed[:16] = 7  # inside region 0, which the journal lists
    result = convert(changed, dest, **OPTIONS, resume=True)
    assert result.resumed_regions == len(entries) - 1
    expected = tmp_path / "expected" / "image.zarr"
    convert(changed, expected, **OPTIONS)
    assert tree_bytes(dest) == tree_bytes(expected)


def test_a_sharded_store_checks_its_shard_files(tmp_path: Path, pinned: np.memmap) -> None:
    sharded = {"shards": 256}  # regions of 512 x 4096
    fresh_dest = tmp_path / "fresh" / "image.zarr"
    convert(pinned, fresh_dest, **OPTIONS, **sharded)
    dest = tmp_path / "image.zarr"
    entries = interrupted(pinned, dest, after=2, **sharded)
    shard = staging_path(dest) / _first_chunk(entries)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    result = convert(pinned, dest, **OPTIONS, **sharded, resume=True)
    assert result.resumed_regions == len(entries) - 1
    assert tree_bytes(dest) == tree_bytes(fresh_dest)


@pytest.fixture(scope="module")
def deflate_tiff(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4096 x 6144 uint16 BigTIFF, tiled and deflate-compressed (as slide scanners write)."""
    path = tmp_path_factory.mktemp("deflate") / "slide.tif"
    tile = synthetic_slide(2048, dtype="uint16", seed=6)
    tifffile.imwrite(
        path, np.tile(tile, (2, 3)), tile=(512, 512), compression="zlib", bigtiff=True
    )
    return path


@pytest.mark.slow
def test_sigkill_mid_way_then_resume_gives_the_bytes_of_an_uninterrupted_run(
    tmp_path: Path, deflate_tiff: Path
) -> None:
    reference = tmp_path / "reference" / "out.zarr"
    run("convert", str(deflate_tiff), str(reference), *SLOW_OPTIONS, "--quiet", check=True)
    dest = tmp_path / "out.zarr"
    process = start_slow_conversion(deflate_tiff, dest)
    wait_for_journal(dest, 2, process)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert not dest.exists()
    journal = (staging_path(dest) / JOURNAL).read_text().splitlines()
    assert all("sums" in json.loads(line) for line in journal[1:] if line.endswith("}"))
    result = run("convert", str(deflate_tiff), str(dest), *SLOW_OPTIONS, "--resume", check=True)
    assert "regions of the interrupted run were kept" in result.stderr
    assert tree_bytes(dest) == tree_bytes(reference)


def test_a_plane_of_a_memory_mapped_stack_is_not_taken_for_another(tmp_path: Path) -> None:
    """Planes of one memory-mapped stack share its file: a view cannot be pinned by the file,
    so a resume with another plane writes that plane's store, not a mix of the two."""
    planes = np.stack(
        [np.tile(synthetic_slide(1024, dtype="uint16", seed=s), (2, 4)) for s in (1, 2)]
    )
    np.save(tmp_path / "stack.npy", planes)
    stack = np.load(tmp_path / "stack.npy", mmap_mode="r")
    dest = tmp_path / "image.zarr"
    entries = interrupted(stack[0], dest)
    assert all(entry["sums"] is None for entry in entries)
    result = convert(stack[1], dest, **OPTIONS, resume=True)
    assert result.resumed_regions == 0
    expected = tmp_path / "expected" / "image.zarr"
    convert(np.array(stack[1]), expected, **OPTIONS)
    assert tree_bytes(dest) == tree_bytes(expected)


def test_which_sources_are_pinned(tmp_path: Path, image: np.ndarray) -> None:
    np.save(tmp_path / "image.npy", image)
    whole = np.load(tmp_path / "image.npy", mmap_mode="r")
    tiff = tmp_path / "image.tif"
    tifffile.imwrite(tiff, image)
    convert(image, tmp_path / "store.zarr", chunks=512, levels=1)
    pinned = {
        "memmap": LevelZero(whole),
        "npy file": LevelZero(SourceSpec(str(tmp_path / "image.npy"))),
        "tiff file": LevelZero(SourceSpec(str(tiff))),
        "sample": LevelZero(SourceSpec("sample:slide_uint8")),
    }
    unpinned = {
        "array in memory": LevelZero(image),
        "view of a memmap": LevelZero(whole[:1024]),
        "copy-on-write memmap": LevelZero(np.load(tmp_path / "image.npy", mmap_mode="c")),
        "dask array": LevelZero(da.from_array(image, chunks=512) + 1),
        "zarr store": LevelZero(SourceSpec(str(tmp_path / "store.zarr"))),
    }
    assert {name: level0.pin() is not None for name, level0 in pinned.items()} == dict.fromkeys(
        pinned, True
    )
    assert {name: level0.pin() for name, level0 in unpinned.items()} == dict.fromkeys(unpinned)
    before = LevelZero(SourceSpec(str(tiff))).pin()
    tifffile.imwrite(tiff, image + 1)  # rewritten: another size or time, maybe another inode
    os.utime(tiff, ns=(0, 1))
    assert LevelZero(SourceSpec(str(tiff))).pin() != before
