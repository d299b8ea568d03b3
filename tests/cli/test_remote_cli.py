"""The console script converting from and to S3 (moto's real server on 127.0.0.1, reached
through the ``AWS_*`` environment variables the subprocesses inherit), including a run
SIGKILLed mid-way and finished with ``--resume``."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from napari_zarr_tiler.zarr_names import JOURNAL, STAGING_MARKER

from ..converter.s3_endpoint import S3Endpoint, fresh_bucket, moto_endpoint
from ..helpers import SLOW_OPTIONS, assert_one_line_error, run, start_slow_conversion, tree_bytes


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_endpoint() as url:
        yield url


@pytest.fixture
def s3(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Endpoint:
    return fresh_bucket(endpoint, monkeypatch)


@pytest.mark.slow
def test_convert_s3_to_s3_and_describe_it(
    s3: S3Endpoint, tmp_path: Path, slide_image: np.ndarray
) -> None:
    np.save(tmp_path / "a.npy", slide_image[:1024, :1536])
    local = tmp_path / "a.zarr"
    run("convert", str(tmp_path / "a.npy"), str(local), "--chunks", "256", "--quiet", check=True)
    s3.upload(local, "in/a.zarr")
    result = run(
        "convert", s3.url("in/a.zarr"), s3.url("out/a.zarr"), "--chunks", "256", check=True
    )
    assert f"wrote {s3.url('out/a.zarr')}" in result.stderr
    assert s3.objects("out/a.zarr") == tree_bytes(local)
    info = run("info", s3.url("out/a.zarr"), check=True)
    assert "1024" in info.stdout and "1536" in info.stdout
    # Again without --overwrite: refused in one line, nothing changed.
    again = run("convert", s3.url("in/a.zarr"), s3.url("out/a.zarr"))
    assert_one_line_error(again, "already exists")
    assert s3.objects("out/a.zarr") == tree_bytes(local)


def test_urls_that_cannot_be_written_are_refused_in_one_line(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((64, 64), np.uint8))
    result = run("convert", str(tmp_path / "a.npy"), "https://example.org/out.zarr")
    assert_one_line_error(result, "only s3:// URLs (or local folders) can be written to")
    result = run("convert", "ftp://example.org/a.zarr", str(tmp_path / "o.zarr"))
    assert_one_line_error(result, "only http://, https:// and s3:// URLs can be read")


def _journal_entries(s3: S3Endpoint, key: str) -> int:
    return sum(
        1
        for name in s3.keys(key)
        if name.startswith(f"{JOURNAL}/") and not name.endswith("header")
    )


@pytest.mark.slow
def test_sigkill_mid_way_then_resume_gives_the_same_store(
    s3: S3Endpoint,
    big_tiff: Path,
    reference_store: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NAPARI_ZARR_TILER_LEASE_SECONDS", "2")
    url = s3.url("big/out.zarr")
    process = start_slow_conversion(big_tiff, url)  # type: ignore[arg-type]
    deadline = time.monotonic() + 300
    while _journal_entries(s3, "big/out.zarr") < 3:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the conversion wrote no region in time"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    partial = s3.objects("big/out.zarr")
    assert "zarr.json" not in partial and partial[STAGING_MARKER].startswith(b"partial")
    assert_one_line_error(run("info", url), "not a zarr store")
    journaled = _journal_entries(s3, "big/out.zarr")
    # Resumed as soon as the killed run's lease (2 s, never renewed) has expired.
    while True:
        result = run("convert", str(big_tiff), url, *SLOW_OPTIONS, "--resume")
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        assert_one_line_error(result, "another conversion to this prefix is running")
        time.sleep(0.5)
    assert result.returncode == 0, result.stderr
    kept = re.search(r"resumed: (\d+) regions of the interrupted run were kept", result.stderr)
    assert kept is not None, result.stderr
    assert journaled - 1 <= int(kept.group(1)) <= journaled
    assert s3.objects("big/out.zarr") == tree_bytes(reference_store)
