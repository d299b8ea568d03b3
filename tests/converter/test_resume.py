"""Interrupted conversions (Ctrl-C, SIGKILL, torn chunks) and --resume, run for real: the console
script in subprocesses on a 201 MB TIFF, compared byte for byte with an uninterrupted run."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import numpy as np
import pytest

from napari_zarr_tiler import StoreReadError, read_zarr
from napari_zarr_tiler.zarr_names import JOURNAL, staging_path

from ..helpers import (
    SLOW_OPTIONS,
    assert_one_line_error,
    killed_conversion,
    run,
    start_slow_conversion,
    tree_bytes,
    wait_for_journal,
)


def test_resume_of_a_complete_store_is_refused_and_of_nothing_starts_afresh(
    tmp_path: Path, slide_image: np.ndarray
) -> None:
    np.save(tmp_path / "a.npy", slide_image)
    done = tmp_path / "done.zarr"
    run("convert", str(tmp_path / "a.npy"), str(done), "--quiet", check=True)
    before = tree_bytes(done)
    result = run("convert", str(tmp_path / "a.npy"), str(done), "--resume")
    assert_one_line_error(result, "already complete: there is no interrupted conversion")
    assert tree_bytes(done) == before
    fresh = tmp_path / "elsewhere" / "done.zarr"  # same name: same metadata
    result = run("convert", str(tmp_path / "a.npy"), str(fresh), "--resume", check=True)
    assert "no interrupted conversion to resume; converted from the start" in result.stderr
    assert tree_bytes(fresh) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    ("how", "damage"),
    [
        (signal.SIGINT, None),
        (signal.SIGKILL, None),
        (signal.SIGKILL, "truncate"),
        (signal.SIGKILL, "delete"),
    ],
    ids=["ctrl-c", "sigkill", "sigkill-truncated-chunk", "sigkill-lost-chunk"],
)
def test_interrupt_then_resume_gives_the_same_store(
    tmp_path: Path, big_tiff: Path, reference_store: Path, how: signal.Signals, damage: str | None
) -> None:
    dest = tmp_path / "out.zarr"
    process = start_slow_conversion(big_tiff, dest)
    wait_for_journal(dest, 2, process)
    process.send_signal(how)
    _, stderr = process.communicate(timeout=60)
    assert not dest.exists(), stderr  # never looks complete
    assert staging_path(dest).exists()
    if how == signal.SIGINT:
        assert process.returncode == 130
        assert "--resume" in stderr
        assert "Traceback" not in stderr
    done_before = len((staging_path(dest) / JOURNAL).read_text().splitlines()) - 1
    if damage is not None:
        # As after a power cut: a chunk of a journaled region is torn or gone. Resume must notice.
        chunk = staging_path(dest) / "0" / "c" / "0" / "0"
        assert chunk.is_file()
        if damage == "truncate":
            chunk.write_bytes(chunk.read_bytes()[:100])
        else:
            chunk.unlink()
    level0 = staging_path(dest) / "0" / "c"
    written_before = {
        path.relative_to(level0): path.stat().st_mtime_ns
        for path in level0.rglob("*")
        if path.is_file()
    }
    result = run("convert", str(big_tiff), str(dest), *SLOW_OPTIONS, "--resume", check=True)
    assert done_before >= 2
    # It says how much it kept: every journaled region but a damaged one.
    kept = re.search(r"resumed: (\d+) regions of the interrupted run were kept", result.stderr)
    assert kept is not None, result.stderr
    assert done_before - (damage is not None) - 1 <= int(kept.group(1)) <= done_before
    assert not staging_path(dest).exists()
    assert tree_bytes(dest) == tree_bytes(reference_store)
    assert result.returncode == 0
    # The journaled regions were verified and skipped, not written again: their chunk files
    # (128 per region here) are untouched; the damaged one was rewritten.
    untouched = {
        name
        for name, mtime in written_before.items()
        if (dest / "0" / "c" / name).stat().st_mtime_ns == mtime
    }
    assert len(untouched) >= 100, len(untouched)
    if damage == "truncate":
        assert Path("0", "0") not in untouched


@pytest.mark.slow
def test_a_second_conversion_to_the_same_destination_waits_its_turn(
    tmp_path: Path, big_tiff: Path, reference_store: Path
) -> None:
    """It is refused while the first runs (never takes over or deletes its partial store)."""
    dest = tmp_path / "out.zarr"
    first = start_slow_conversion(big_tiff, dest)
    wait_for_journal(dest, 1, first)
    second = run("convert", str(big_tiff), str(dest), *SLOW_OPTIONS)
    assert_one_line_error(second, "another conversion to this destination is running")
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert tree_bytes(dest) == tree_bytes(reference_store)
    assert not staging_path(dest).exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out.zarr"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "other_options",
    [("--chunks", "512"), ("--levels", "9"), ("--zarr-format", "2")],
    ids=["chunks", "more-levels", "zarr-2"],
)
def test_resume_refuses_other_options(
    tmp_path: Path, big_tiff: Path, reference_store: Path, other_options: tuple[str, str]
) -> None:
    dest = tmp_path / "out.zarr"
    killed_conversion(big_tiff, dest, after_regions=1)
    partial = tree_bytes(staging_path(dest))
    result = run("convert", str(big_tiff), str(dest), *SLOW_OPTIONS, *other_options, "--resume")
    assert_one_line_error(result, "started with other options")
    # The refusal changes nothing in the partial store (no arrays or metadata of the other
    # options), and the right command still resumes it into the store an uninterrupted run
    # writes.
    assert tree_bytes(staging_path(dest)) == partial
    run("convert", str(big_tiff), str(dest), *SLOW_OPTIONS, "--resume", "--quiet", check=True)
    assert tree_bytes(dest) == tree_bytes(reference_store)


@pytest.mark.slow
def test_an_interrupted_store_is_never_reported_or_opened_as_complete(
    tmp_path: Path, big_tiff: Path
) -> None:
    dest = tmp_path / "out.zarr"
    killed_conversion(big_tiff, dest, after_regions=1)
    partial = staging_path(dest)
    assert not dest.exists()
    for path in (partial, partial / "0"):
        with pytest.raises(StoreReadError, match="incomplete conversion"):
            read_zarr(path)
    assert_one_line_error(run("info", str(partial)), "incomplete conversion")


@pytest.mark.slow
def test_an_incomplete_conversion_is_refused_as_a_source(tmp_path: Path, big_tiff: Path) -> None:
    dest = tmp_path / "out.zarr"
    killed_conversion(big_tiff, dest, after_regions=1)
    result = run("convert", str(staging_path(dest)), str(tmp_path / "copy.zarr"))
    assert_one_line_error(result, "incomplete conversion")
