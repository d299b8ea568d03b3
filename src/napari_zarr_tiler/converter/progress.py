"""What a running conversion tells its caller (:class:`Progress`) and how it is told to stop."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ConversionCancelled

#: A ``threading.Event`` set to cancel, or a callable returning True to cancel, or None.
CancelArg = threading.Event | Callable[[], bool] | None


@dataclass(frozen=True)
class Progress:
    """Progress of a running conversion, passed to the ``progress`` callback."""

    tiles_done: int
    tiles_total: int
    bytes_done: int
    bytes_total: int
    elapsed: float

    @property
    def fraction(self) -> float:
        """Share of tiles written, from 0 to 1."""
        return self.tiles_done / self.tiles_total if self.tiles_total else 1.0

    @property
    def megabytes_per_second(self) -> float:
        """Uncompressed throughput so far."""
        return self.bytes_done / 1e6 / self.elapsed if self.elapsed > 0 else 0.0

    def __str__(self) -> str:
        return (
            f"{self.tiles_done:,}/{self.tiles_total:,} tiles ({self.fraction:.0%}), "
            f"{self.megabytes_per_second:,.0f} MB/s, {self.elapsed:.1f} s"
        )


def cancelled(cancel: CancelArg) -> bool:
    """Whether ``cancel`` asks the conversion to stop."""
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def stop_if_cancelled(cancel: CancelArg) -> None:
    """Raise :class:`ConversionCancelled` if ``cancel`` asks the conversion to stop."""
    if cancelled(cancel):
        msg = "the conversion was cancelled"
        raise ConversionCancelled(msg)
