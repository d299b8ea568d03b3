"""Remote stores: read_zarr, info and the npe2 reader over a real HTTP server and a real S3 server
(moto) on 127.0.0.1, and the one-line errors for 404, 403, HTML, timeouts and refused connections."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_zarr_tiler.errors import RemoteStoreError, StoreReadError
from napari_zarr_tiler.reader import read_zarr
from napari_zarr_tiler.reader.contained_store import StoreContentWarning
from napari_zarr_tiler.reader.locate import accepts

from ..helpers import assert_one_line_error
from .servers import http_file_server, refused_url, s3_server, upload_folder

PLUGIN = "napari-zarr-tiler"


def _assert_same_layers(remote, local) -> None:
    """Same layers, kwargs (but the name), level shapes and pixels of the smallest level."""
    assert len(remote.layers) == len(local.layers)
    for got, want in zip(remote.layers, local.layers, strict=True):
        assert got.layer_type == want.layer_type
        assert [a.shape for a in got.data] == [a.shape for a in want.data]
        assert {**got.kwargs, "name": ""} == {**want.kwargs, "name": ""}
        np.testing.assert_array_equal(np.asarray(got.data[-1]), np.asarray(want.data[-1]))


@pytest.mark.parametrize("ome_pyramid", ["0.4", "0.5"], indirect=True)
def test_http_store_reads_as_the_local_one(ome_pyramid: Path) -> None:
    local = read_zarr(ome_pyramid)
    with http_file_server(ome_pyramid.parent) as server:
        remote = read_zarr(f"{server.url}/{ome_pyramid.name}")
    _assert_same_layers(remote, local)
    assert [layer.layer_type for layer in remote.layers] == ["image", "labels"]


def test_http_open_reads_metadata_only(ome_pyramid: Path) -> None:
    """Opening fetches metadata documents once each, and no chunk of level 0."""
    with http_file_server(ome_pyramid.parent) as server:
        contents = read_zarr(f"{server.url}/{ome_pyramid.name}/")
        paths = server.log.paths()
        assert len(paths) == len(set(paths)), paths  # nothing fetched twice
        assert not [p for p in paths if "/0/c/" in p or p.endswith("/0/0.0")], paths
        assert len(paths) <= 12, paths  # 2 groups + 6 arrays, labels group, few probes
        before = server.log.count
        region = np.asarray(contents.layers[0].data[0][:64, :64])
        assert region.shape == (64, 64)
        assert server.log.count > before  # the pixels come lazily, when asked


def test_info_on_a_url(ome_pyramid: Path) -> None:
    with http_file_server(ome_pyramid.parent) as server:
        url = f"{server.url}/{ome_pyramid.name}"
        result = subprocess.run(
            [sys.executable, "-m", "napari_zarr_tiler.cli", "info", url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert url in result.stdout
    assert "level 2: shape (64, 64)" in result.stdout
    assert "size on disk not measured" in result.stdout and " on disk (" not in result.stdout


def _cli_info(url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "napari_zarr_tiler.cli", "info", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env},
    )


@pytest.mark.parametrize(
    ("mode", "fragment"),
    [
        ("forbidden", "access denied (HTTP 403)"),
        ("html", "the server sent an HTML page"),
        ("files", "not a zarr store"),
    ],
)
def test_bad_urls_fail_with_one_line(tmp_path: Path, mode: str, fragment: str) -> None:
    with http_file_server(tmp_path, mode=mode) as server:
        url = f"{server.url}/missing.zarr"
        with pytest.raises(RemoteStoreError, match=re.escape(fragment)) as raised:
            read_zarr(url)
        assert url in str(raised.value)
        assert_one_line_error(_cli_info(url), fragment)


def test_refused_connection_fails_with_one_line() -> None:
    url = refused_url()
    with pytest.raises(RemoteStoreError, match="connection refused") as raised:
        read_zarr(url)
    assert url in str(raised.value)
    assert_one_line_error(_cli_info(url), "connection refused")


def test_silent_server_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAPARI_ZARR_TILER_TIMEOUT", "1")
    with http_file_server(tmp_path, mode="hang") as server:
        url = f"{server.url}/image.zarr"
        with pytest.raises(RemoteStoreError, match="timed out") as raised:
            read_zarr(url)
        assert url in str(raised.value)


def test_announced_huge_body_is_not_transferred(tmp_path: Path) -> None:
    with http_file_server(tmp_path, mode="huge") as server:
        with (
            pytest.warns(StoreContentWarning, match="more than is ever read at once"),
            pytest.raises(StoreReadError, match="not a zarr store"),
        ):
            read_zarr(f"{server.url}/image.zarr")
        assert server.log.nbytes == 0


def test_keys_outside_the_prefix_are_never_requested(ome_pyramid: Path) -> None:
    from zarr.core.sync import sync

    from napari_zarr_tiler.reader.remote import guarded_url_store

    (ome_pyramid.parent / "secret.json").write_text("{}")
    with http_file_server(ome_pyramid.parent) as server:
        store, _where = guarded_url_store(f"{server.url}/{ome_pyramid.name}")
        for key in [
            "../secret.json",
            "0/../../secret.json",
            "./zarr.json",
            "a?b",
            "a#b",
            "%2e%2e/x",
        ]:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                assert sync(store.get(key)) is None
            assert any(issubclass(w.category, StoreContentWarning) for w in caught), key
        assert server.log.count == 0


def _plain_group(folder: Path, *, zarr_format: int, consolidated: bool) -> Path:
    """A zarr group without OME metadata holding two small arrays ``a`` and ``b``."""
    group = zarr.open_group(folder, mode="w", zarr_format=zarr_format)
    group.create_array("a", data=np.arange(64, dtype="uint8").reshape(8, 8))
    group.create_array("b", data=np.full((8, 8), 7, dtype="uint16"))
    if consolidated:
        zarr.consolidate_metadata(zarr.storage.LocalStore(folder))
    return folder


@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_plain_group_over_http_uses_consolidated_metadata(
    tmp_path: Path, zarr_format: int
) -> None:
    _plain_group(tmp_path / "plain.zarr", zarr_format=zarr_format, consolidated=True)
    with http_file_server(tmp_path) as server:
        contents = read_zarr(f"{server.url}/plain.zarr")
    assert [layer.kwargs["name"] for layer in contents.layers] == ["plain/a", "plain/b"]
    np.testing.assert_array_equal(np.asarray(contents.layers[1].data[0]), np.full((8, 8), 7))


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_plain_group_over_http_without_listing_says_what_to_do(
    tmp_path: Path, zarr_format: int
) -> None:
    _plain_group(tmp_path / "plain.zarr", zarr_format=zarr_format, consolidated=False)
    fragment = "cannot list a group over HTTP"
    with http_file_server(tmp_path) as server:
        url = f"{server.url}/plain.zarr"
        with pytest.raises(RemoteStoreError, match=fragment) as raised:
            read_zarr(url)
        assert "consolidate" in str(raised.value) and url in str(raised.value)
        assert_one_line_error(_cli_info(url), fragment)
        contents = read_zarr(f"{url}/a")  # the array's own URL opens
    np.testing.assert_array_equal(np.asarray(contents.layers[0].data[0]).ravel(), np.arange(64))


def test_npe2_reader_takes_store_urls_by_their_form() -> None:
    from napari_zarr_tiler._napari.reader import get_reader

    for url in ["https://example.org/a.zarr", "http://h/x/", "s3://bucket/image.ome.zarr"]:
        assert accepts(url) and get_reader(url) is not None, url
    for url in ["https://example.org/scan.tif", "ftp://h/a.zarr", "s3://b/slide.czi"]:
        assert get_reader(url) is None, url


def test_viewer_opens_a_url(make_napari_viewer, ome_pyramid: Path) -> None:
    viewer = make_napari_viewer()
    with http_file_server(ome_pyramid.parent) as server:
        layers = viewer.open(f"{server.url}/{ome_pyramid.name}", plugin=PLUGIN)
        assert [type(layer).__name__ for layer in layers] == ["Image", "Labels"]
        assert layers[0].multiscale and layers[0].data[0].shape == (256, 256)
        assert tuple(layers[0].scale) == (0.5, 0.25)
        viewer.close()


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch):
    """moto's S3 server, with the AWS_* variables pointing the reader at it."""
    with s3_server() as endpoint:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_REGION", "us-east-1")
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        yield endpoint


def test_s3_store_reads_as_the_local_one(s3_endpoint: str, ome_pyramid: Path) -> None:
    upload_folder(s3_endpoint, "images", ome_pyramid, "scans/image.zarr")
    local = read_zarr(ome_pyramid)
    remote = read_zarr("s3://images/scans/image.zarr")
    _assert_same_layers(remote, local)
    with pytest.raises(RemoteStoreError, match=re.escape("s3://images/scans/other.zarr")):
        read_zarr("s3://images/scans/other.zarr")
