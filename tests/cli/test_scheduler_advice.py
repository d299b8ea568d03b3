"""The scheduler advice: ``--scheduler local`` warns, in one line, that threads are faster."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from napari_zarr_tiler.converter.scheduler import local_cluster_advice

from ..helpers import run


def test_advice_only_for_a_local_cluster() -> None:
    assert local_cluster_advice(None, 10**6) is None
    assert local_cluster_advice("tcp://10.0.0.5:8786", 10**6) is None
    advice = local_cluster_advice("local", 85 * 10**6)
    assert advice is not None and "threads" in advice and "85 MB" in advice


@pytest.mark.slow
def test_local_scheduler_warns_on_one_line_and_still_converts(tmp_path: Path) -> None:
    image = np.arange(300 * 400, dtype=np.uint16).reshape(300, 400)
    np.save(tmp_path / "a.npy", image)
    threads = run("convert", str(tmp_path / "a.npy"), str(tmp_path / "t.zarr"), check=True)
    assert "warning" not in threads.stderr
    local = run(
        "convert",
        str(tmp_path / "a.npy"),
        str(tmp_path / "l.zarr"),
        "--scheduler",
        "local",
        check=True,
    )
    # only the advice is counted: dask may warn of other things (a busy port, say)
    advice = [line for line in local.stderr.splitlines() if "warning: --scheduler" in line]
    assert len(advice) == 1, local.stderr
    assert "slower than the default threads" in advice[0]
    assert "other machines" in advice[0]
    assert (tmp_path / "l.zarr" / "0" / "zarr.json").is_file()


@contextmanager
def port_in_use(port: int) -> Iterator[None]:
    """Hold ``port`` on all interfaces (as a running dask dashboard does), if it is free."""
    with socket.socket() as held:
        try:
            held.bind(("", port))
            held.listen()
        except OSError:  # already busy: the situation this reproduces
            pass
        yield


@pytest.mark.slow
def test_local_cluster_ignores_a_busy_dashboard_port(tmp_path: Path) -> None:
    """The LocalCluster starts no server on dask's dashboard port, 8787: a busy one costs nothing."""
    np.save(tmp_path / "a.npy", np.ones((64, 64), dtype=np.uint8))
    with port_in_use(8787):
        local = run(
            "convert",
            str(tmp_path / "a.npy"),
            str(tmp_path / "l.zarr"),
            "--scheduler",
            "local",
            check=True,
        )
    assert "8787" not in local.stderr, local.stderr
    assert [line for line in local.stderr.splitlines() if "warning:" in line] == [
        line for line in local.stderr.splitlines() if "warning: --scheduler" in line
    ]
    assert (tmp_path / "l.zarr" / "0" / "zarr.json").is_file()
