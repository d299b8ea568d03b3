"""Conversions on a dask.distributed cluster write what the threaded scheduler writes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ..helpers import EXE, SLOW_OPTIONS, tree_bytes

pytest.importorskip("distributed")
pytestmark = pytest.mark.slow


def test_local_dask_cluster_writes_the_same_bytes(
    tmp_path: Path, big_tiff: Path, reference_store: Path
) -> None:
    dest = tmp_path / "out.zarr"
    env_result = subprocess.run(
        [
            EXE,
            "convert",
            str(big_tiff),
            str(dest),
            *SLOW_OPTIONS,
            "--scheduler",
            "local",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )
    assert env_result.returncode == 0, env_result.stderr
    assert tree_bytes(dest) == tree_bytes(reference_store)
