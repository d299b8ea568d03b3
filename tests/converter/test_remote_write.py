"""Conversions into an S3 prefix (and from remote sources), against moto's real S3 server on
127.0.0.1 reached through the ``AWS_*`` environment variables: the bytes equal a local
conversion's, an interrupted store never looks complete, resume finishes it byte for byte,
stores are replaced only with overwrite and only when provably zarr, and a second run is
refused while one holds the prefix."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from napari_zarr_tiler import convert, read_zarr
from napari_zarr_tiler.errors import (
    ConversionCancelled,
    DestinationError,
    DestinationExistsError,
    InvalidOptionError,
    RemoteStoreError,
)
from napari_zarr_tiler.sources import SourceSpec
from napari_zarr_tiler.zarr_names import JOURNAL, STAGING_MARKER

from ..reader.servers import http_file_server
from .s3_endpoint import S3Endpoint, fresh_bucket, moto_endpoint, tree_bytes

#: Eight regions in the first pass (one per channel plane), three levels.
OPTIONS = {"chunks": (1, 256, 256), "axes": ("c", "y", "x"), "compressor": "zstd"}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_endpoint() as url:
        yield url


@pytest.fixture
def s3(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Endpoint:
    return fresh_bucket(endpoint, monkeypatch)


@pytest.fixture(scope="module")
def stack() -> np.ndarray:
    rng = np.random.default_rng(7)
    base = rng.integers(0, 4000, size=(8, 520, 650), dtype=np.uint16)
    return (base + np.arange(8, dtype=np.uint16)[:, None, None] * 1000).astype(np.uint16)


@pytest.fixture(scope="module")
def local_reference(
    tmp_path_factory: pytest.TempPathFactory, stack: np.ndarray
) -> dict[str, bytes]:
    dest = tmp_path_factory.mktemp("reference") / "out.zarr"
    convert(stack, dest, **OPTIONS)
    return tree_bytes(dest)


def _cancel_after(regions: int) -> tuple[list[object], object]:
    """Cancel once ``regions`` regions finished. A run keeps at most workers + 1 regions in flight
    and checks the cancel before submitting each, so with ``workers=2`` (as the cancelled runs
    here ask, whatever the machine's cores) at most 4 of the 8 regions can be asked for and the
    run still be cancelled for sure."""
    seen: list[object] = []
    return seen, (lambda: len(seen) >= regions)


def _interrupted(stack: np.ndarray, url: str) -> None:
    """Start a resumable conversion to ``url`` and cancel it after 3 regions."""
    seen, cancel = _cancel_after(3)
    with pytest.raises(ConversionCancelled):
        convert(stack, url, resume=True, progress=seen.append, cancel=cancel, workers=2, **OPTIONS)


@pytest.mark.parametrize("ome_version", ["0.5", "0.4"])
def test_s3_store_equals_a_local_conversion(
    s3: S3Endpoint, tmp_path: Path, stack: np.ndarray, ome_version: str
) -> None:
    local = tmp_path / "out.zarr"
    convert(stack, local, ome_version=ome_version, **OPTIONS)
    result = convert(stack, s3.url("pre/out.zarr"), ome_version=ome_version, **OPTIONS)
    assert str(result.path) == s3.url("pre/out.zarr")
    assert s3.objects("pre/out.zarr") == tree_bytes(local)  # every chunk and document
    contents = read_zarr(s3.url("pre/out.zarr"))
    (layer,) = contents.layers
    assert len(layer.data) == 3
    np.testing.assert_array_equal(np.asarray(layer.data[0][3]), stack[3])


@pytest.mark.parametrize("source", ["pinned", "memory"])
def test_a_cancelled_run_never_looks_complete_and_resume_finishes_it(
    s3: S3Endpoint,
    stack: np.ndarray,
    local_reference: dict[str, bytes],
    tmp_path: Path,
    source: str,
) -> None:
    """A pinned source (a file) keeps the regions whose objects still hold the versions the
    journal lists; an array in memory cannot be proven unchanged, so its regions are written
    again."""
    if source == "pinned":
        np.save(tmp_path / "stack.npy", stack)
        stack = np.load(tmp_path / "stack.npy", mmap_mode="r")
    url = s3.url("out.zarr")
    seen, cancel = _cancel_after(3)
    with pytest.raises(ConversionCancelled):
        convert(stack, url, resume=True, progress=seen.append, cancel=cancel, workers=2, **OPTIONS)
    partial = s3.objects("out.zarr")
    assert "zarr.json" not in partial  # no root metadata: not a store
    assert partial[STAGING_MARKER].startswith(b"partial")
    assert any(key.startswith("0/c/") for key in partial)
    with pytest.raises(RemoteStoreError, match="not a zarr store"):
        read_zarr(url)
    result = convert(stack, url, resume=True, **OPTIONS)
    kept = result.resumed_regions
    assert kept is not None and (3 <= kept < 8 if source == "pinned" else kept == 0)
    assert s3.objects("out.zarr") == local_reference  # marker and journal gone, bytes equal


def test_a_cancelled_run_without_resume_leaves_nothing(s3: S3Endpoint, stack: np.ndarray) -> None:
    seen, cancel = _cancel_after(3)
    with pytest.raises(ConversionCancelled):
        convert(
            stack, s3.url("out.zarr"), progress=seen.append, cancel=cancel, workers=2, **OPTIONS
        )
    assert s3.objects("out.zarr") == {}


def test_objects_added_beside_a_partial_run_are_never_deleted(
    s3: S3Endpoint, stack: np.ndarray
) -> None:
    _interrupted(stack, s3.url("p.zarr"))
    s3.put("p.zarr/notes/thesis.docx", b"years of work")
    before = s3.objects("p.zarr")
    for options in ({}, {"overwrite": True}):
        with pytest.raises(DestinationError, match=r"notes/thesis\.docx, which no conversion"):
            convert(stack, s3.url("p.zarr"), **options, **OPTIONS)
        assert s3.objects("p.zarr") == before  # nothing deleted, the partial run kept


def test_resume_refuses_other_options(s3: S3Endpoint, stack: np.ndarray) -> None:
    _interrupted(stack, s3.url("o.zarr"))
    before = s3.objects("o.zarr")
    with pytest.raises(InvalidOptionError, match="other options"):
        convert(stack, s3.url("o.zarr"), resume=True, **{**OPTIONS, "compressor": "gzip"})
    assert s3.objects("o.zarr").keys() == before.keys()  # the partial store is kept


def test_an_existing_store_is_replaced_only_with_overwrite(
    s3: S3Endpoint, stack: np.ndarray, local_reference: dict[str, bytes]
) -> None:
    url = s3.url("out.zarr")
    convert(stack[:, :300, :300], url, **OPTIONS)
    first = s3.objects("out.zarr")
    with pytest.raises(DestinationExistsError, match="--overwrite"):
        convert(stack, url, **OPTIONS)
    with pytest.raises(DestinationExistsError, match="already complete"):
        convert(stack, url, resume=True, **OPTIONS)
    assert s3.objects("out.zarr") == first
    convert(stack, url, overwrite=True, **OPTIONS)
    assert s3.objects("out.zarr") == local_reference  # no key of the old store left


def test_a_prefix_that_is_not_only_zarr_is_never_deleted(
    s3: S3Endpoint, stack: np.ndarray, tmp_path: Path
) -> None:
    small = stack[:, :200, :200]
    convert(small, tmp_path / "s.zarr", **OPTIONS)
    s3.upload(tmp_path / "s.zarr", "mixed.zarr")
    s3.put("mixed.zarr/0/notes.txt", b"my notes")
    s3.put("plain/report.pdf", b"%PDF")
    before = s3.objects("mixed.zarr")
    with pytest.raises(DestinationError, match=r"not a zarr store.*notes\.txt"):
        convert(small, s3.url("mixed.zarr"), overwrite=True, **OPTIONS)
    with pytest.raises(DestinationError, match="not a zarr store"):
        convert(small, s3.url("plain"), overwrite=True, **OPTIONS)
    assert s3.objects("mixed.zarr") == before
    assert s3.objects("plain") == {"report.pdf": b"%PDF"}


def test_a_second_run_is_refused_while_one_holds_the_prefix(
    s3: S3Endpoint,
    stack: np.ndarray,
    local_reference: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NAPARI_ZARR_TILER_LEASE_SECONDS", "1")  # renewed by the running one
    url = s3.url("busy.zarr")
    halfway, release = threading.Event(), threading.Event()
    seen: list[object] = []

    def cancel() -> bool:
        if len(seen) >= 2 and not release.is_set():
            halfway.set()
            release.wait(60)
        return False

    errors: list[BaseException] = []

    def first_run() -> None:
        try:
            convert(
                stack, url, progress=seen.append, cancel=cancel, workers=2, name="out", **OPTIONS
            )
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=first_run)
    thread.start()
    try:
        assert halfway.wait(120)
        threading.Event().wait(3)  # three leases: the running conversion still holds it
        for kwargs in ({}, {"resume": True}, {"overwrite": True}):
            with pytest.raises(DestinationError, match="another conversion to this prefix"):
                convert(stack, url, **kwargs, **OPTIONS)
    finally:
        release.set()
        thread.join(120)
    assert errors == []
    assert s3.objects("busy.zarr") == local_reference


def test_a_killed_runs_marker_is_taken_over_after_its_lease(
    s3: S3Endpoint, stack: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    from napari_zarr_tiler.converter.object_store_staging import ObjectStoreStaging

    monkeypatch.setenv("NAPARI_ZARR_TILER_LEASE_SECONDS", "1")
    url = s3.url("k.zarr")
    crashed = ObjectStoreStaging(url, overwrite=False, resume=False)
    crashed.begin()
    crashed._stop_heartbeat()  # as if the process died: the marker is never renewed nor released
    with pytest.raises(DestinationError, match="another conversion"):
        convert(stack, url, **OPTIONS)
    deadline = threading.Event()
    deadline.wait(3.5)  # past the lease (Last-Modified has whole seconds)
    convert(stack, url, **OPTIONS)
    assert STAGING_MARKER not in s3.objects("k.zarr")


def test_a_commit_cut_short_after_its_metadata_is_tidied(
    s3: S3Endpoint, stack: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAPARI_ZARR_TILER_LEASE_SECONDS", "1")
    url = s3.url("c.zarr")
    convert(stack[:, :256, :256], url, **OPTIONS)
    complete = s3.objects("c.zarr")
    # Killed after writing the root metadata, before deleting its marker and journal.
    s3.put(f"c.zarr/{STAGING_MARKER}", b'complete conversion\n{"lease": 1}\n')
    s3.put(f"c.zarr/{JOURNAL}/header", b"{}")
    threading.Event().wait(2.5)  # the killed run's lease expires
    with pytest.raises(DestinationExistsError, match="already complete"):
        convert(stack[:, :256, :256], url, resume=True, **OPTIONS)
    assert s3.objects("c.zarr") == complete


def test_the_layout_array_is_refused_for_object_stores(s3: S3Endpoint, stack: np.ndarray) -> None:
    with pytest.raises(InvalidOptionError, match="--layout ome"):
        convert(stack[0], s3.url("a.zarr"), layout="array", chunks=256)
    assert s3.objects("a.zarr") == {}


def test_labels_into_an_image_in_s3_are_refused_and_a_label_image_of_its_own_is_written(
    s3: S3Endpoint, stack: np.ndarray
) -> None:
    cells = (stack[0] % 7).astype(np.uint8)
    convert(stack[0], s3.url("img.zarr"), chunks=256)
    before = s3.objects("img.zarr")
    with pytest.raises(InvalidOptionError, match="labels are not added to an image in an object"):
        convert(cells, s3.url("img.zarr/labels/cells"), label=True, chunks=256)
    assert s3.objects("img.zarr") == before  # nothing written, the image untouched

    convert(cells, s3.url("cells.zarr"), label=True, chunks=256)
    (layer,) = read_zarr(s3.url("cells.zarr")).layers
    assert layer.layer_type == "labels"
    np.testing.assert_array_equal(np.asarray(layer.data[0]), cells)


def test_remote_zarr_sources_over_s3_and_http(
    s3: S3Endpoint, stack: np.ndarray, tmp_path: Path, local_reference: dict[str, bytes]
) -> None:
    source = tmp_path / "served" / "src.zarr"
    convert(stack, source, chunks=(1, 128, 128), axes=("c", "y", "x"), name="out")
    s3.upload(source, "in/src.zarr")
    # s3 -> s3: read through the reader's remote store, written under another prefix
    convert(SourceSpec(s3.url("in/src.zarr")), s3.url("out.zarr"), name="out", **OPTIONS)
    assert s3.objects("out.zarr") == local_reference
    assert JOURNAL not in str(list(s3.objects("in/src.zarr")))  # the source is untouched
    # http -> local
    with http_file_server(tmp_path / "served") as server:
        dest = tmp_path / "from_http.zarr"
        convert(SourceSpec(f"{server.url}/src.zarr"), dest, name="out", **OPTIONS)
    assert tree_bytes(dest) == local_reference
    with pytest.raises(DestinationError, match="overlaps the source"):
        convert(SourceSpec(s3.url("in/src.zarr")), s3.url("in/src.zarr/inner"), **OPTIONS)


@pytest.mark.slow
def test_a_local_cluster_converts_s3_to_s3(
    s3: S3Endpoint, stack: np.ndarray, tmp_path: Path, local_reference: dict[str, bytes]
) -> None:
    pytest.importorskip("distributed")
    source = tmp_path / "src.zarr"
    convert(stack, source, chunks=(1, 128, 128), axes=("c", "y", "x"), name="out")
    s3.upload(source, "in/src.zarr")
    # Nothing local is named: the workers open both stores from their URLs and AWS_* variables.
    convert(SourceSpec(s3.url("in/src.zarr")), s3.url("out.zarr"), scheduler="local", **OPTIONS)
    assert s3.objects("out.zarr") == local_reference
