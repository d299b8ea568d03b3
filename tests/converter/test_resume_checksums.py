"""Resume checks the stored chunk files against the checksums the journal recorded, without
reading the source: changed, lost and torn pieces are found and only their regions redone, and
the resumed store is byte for byte the one an uninterrupted run writes."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest
import tifffile

from napari_zarr_tiler.converter import convert
from napari_zarr_tiler.errors import ConversionCancelled
from napari_zarr_tiler.sources import synthetic_slide
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


@pytest.mark.parametrize("damage", ["changed", "lost", "truncated"])
def test_a_damaged_chunk_of_a_journaled_region_is_found_and_rewritten(
    tmp_path: Path, image: np.ndarray, fresh: dict[str, bytes], damage: str
) -> None:
    dest = tmp_path / "image.zarr"
    entries = interrupted(image, dest)
    assert len(entries) >= 2
    chunk = staging_path(dest) / _first_chunk(entries)
    data = chunk.read_bytes()
    if damage == "changed":  # same length, one byte flipped: only a checksum can tell
        chunk.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    elif damage == "lost":
        chunk.unlink()
    else:
        chunk.write_bytes(data[:10])
    result = convert(image, dest, **OPTIONS, resume=True)
    assert result.resumed_regions == len(entries) - 1
    assert tree_bytes(dest) == fresh


def test_a_torn_journal_line_is_ignored_and_its_region_redone(
    tmp_path: Path, image: np.ndarray, fresh: dict[str, bytes]
) -> None:
    dest = tmp_path / "image.zarr"
    entries = interrupted(image, dest)
    journal = staging_path(dest) / JOURNAL
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # cut mid-line
    result = convert(image, dest, **OPTIONS, resume=True)
    assert result.resumed_regions == len(entries) - 1
    assert tree_bytes(dest) == fresh


def test_a_resume_verifies_without_reading_the_source(tmp_path: Path, image: np.ndarray) -> None:
    """Only the regions the journal does not list are read from the source again."""
    computed: list[tuple[int, ...]] = []
    lock = threading.Lock()

    def counted(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        assert block_info is not None
        with lock:
            computed.append(tuple(block_info[None]["chunk-location"]))
        return block

    def source() -> da.Array:
        # Blocks of the regions' shape: one computed block per region read.
        base = da.from_array(image, chunks=(256, 4096))
        return base.map_blocks(counted, dtype=image.dtype, meta=np.empty((0, 0), image.dtype))

    dest = tmp_path / "image.zarr"
    fresh_dest = tmp_path / "fresh" / "image.zarr"
    result = convert(source(), fresh_dest, **OPTIONS)
    regions = len(computed)
    assert result.plan.region_yx == (256, 4096)
    entries = interrupted(source(), dest)
    computed.clear()
    result = convert(source(), dest, **OPTIONS, resume=True)
    assert result.resumed_regions == len(entries)
    assert len(computed) == regions - len(entries)
    assert tree_bytes(dest) == tree_bytes(fresh_dest)


def test_a_sharded_store_checks_its_shard_files(tmp_path: Path, image: np.ndarray) -> None:
    sharded = {"shards": 256}  # regions of 512 x 4096
    fresh_dest = tmp_path / "fresh" / "image.zarr"
    convert(image, fresh_dest, **OPTIONS, **sharded)
    dest = tmp_path / "image.zarr"
    entries = interrupted(image, dest, after=2, **sharded)
    shard = staging_path(dest) / _first_chunk(entries)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    result = convert(image, dest, **OPTIONS, **sharded, resume=True)
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
