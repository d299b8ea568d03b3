"""Helpers the benchmark scripts share: logging, waiting for a quiet machine, versions, sizes."""

from __future__ import annotations

import importlib.metadata
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path

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
    """Bytes of all files below ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
