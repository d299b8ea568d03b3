"""Helpers the benchmark scripts share: logging, waiting for a quiet machine, versions, sizes."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

LOAD_LIMIT = 1.5


def log(message: str) -> None:
    """A time-stamped progress line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_for_quiet(max_wait: float, *, quiet_cpu_percent: float, poll: float = 3.0) -> float:
    """Wait while other work keeps the machine busy; return the 1-minute load average at the start.

    Goes on when the load average is at most :data:`LOAD_LIMIT`, or when the CPUs were at most
    ``quiet_cpu_percent`` busy over the last seconds (the load average lags a run just finished),
    or after ``max_wait`` seconds.
    """
    import psutil

    first = os.getloadavg()[0]
    deadline = time.monotonic() + max_wait
    announced = False
    while True:
        load = os.getloadavg()[0]
        if load <= LOAD_LIMIT:
            return first
        busy = psutil.cpu_percent(interval=1.0)
        if busy <= quiet_cpu_percent:
            return first
        if time.monotonic() > deadline:
            log(f"still busy after {max_wait:.0f} s (load {load:.2f}, cpu {busy:.0f}%); going on")
            return first
        if not announced:
            log(f"waiting for the machine to quieten (load {load:.2f}, cpu {busy:.0f}%)")
            announced = True
        time.sleep(poll)


#: Without a journal, ext4 skips inodes freed in the last minute when it allocates new ones, and
#: each skip looks up an inode-table block: writing thousands of chunk files within a minute of
#: deleting the previous output spent ~28 % of the converter's CPU samples there (perf, here).
RECENTLY_DELETED_SECONDS = 65.0
#: Read inputs back into the page cache in pieces of this size.
_READ_PIECE = 16 << 20


def settle_storage(inputs: Iterable[Path]) -> str:
    """Put the page cache and the filesystem in the same state before every timed run.

    Flushes dirty pages (``sync``). As root, also drops the clean page cache and reads the
    ``inputs`` back, so that every run (ours and the peers') starts with its input cached and
    nothing else: a page cache full of the previous run's output made the kernel side of writes
    up to 2-3x slower, whichever tool ran second. Without root, waits
    :data:`RECENTLY_DELETED_SECONDS` instead. Returns a short description of what was done.
    """
    subprocess.run(["sync"], check=False)
    if os.geteuid() != 0:
        time.sleep(RECENTLY_DELETED_SECONDS)
        return f"sync, then a {RECENTLY_DELETED_SECONDS:.0f} s wait"
    with open("/proc/sys/vm/drop_caches", "w") as control:
        control.write("3\n")
    for path in inputs:
        with open(path, "rb", buffering=0) as file:
            while file.read(_READ_PIECE):
                pass
    return "sync, drop the page cache (as root), read the input back"


def versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of the named distributions."""
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def dir_bytes(path: Path) -> int:
    """Bytes of the file ``path``, or of all files below the folder ``path``."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


#: tensorstore's spelling of the two codecs the benchmarks compare (uint16, byte shuffle for blosc).
TENSORSTORE_CODECS = {
    "zstd": {"name": "zstd", "configuration": {"level": 3, "checksum": False}},
    "blosc-lz4": {
        "name": "blosc",
        "configuration": {
            "cname": "lz4",
            "clevel": 5,
            "shuffle": "shuffle",
            "typesize": 2,
            "blocksize": 0,
        },
    },
}


def open_tensorstore_level0(path: Path, shape: tuple[int, ...], codec: str, chunk: int) -> Any:
    """A fresh uint16 zarr v3 array written by tensorstore: the ceiling the benchmarks compare to."""
    import tensorstore as ts

    return ts.open(
        {
            "driver": "zarr3",
            "kvstore": {"driver": "file", "path": str(path)},
            "metadata": {
                "shape": list(shape),
                "data_type": "uint16",
                "chunk_grid": {
                    "name": "regular",
                    "configuration": {"chunk_shape": [chunk, chunk]},
                },
                "chunk_key_encoding": {"name": "default"},
                "codecs": [
                    {"name": "bytes", "configuration": {"endian": "little"}},
                    TENSORSTORE_CODECS[codec],
                ],
                "fill_value": 0,
            },
            "create": True,
            "delete_existing": True,
        }
    ).result()
