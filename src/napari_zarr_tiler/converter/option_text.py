"""Parse conversion options as people type them, in the widget, on the command line and in Python.

Every parser raises :class:`~napari_zarr_tiler.errors.InvalidOptionError` (a ``ValueError``)
with a message naming the option and the form it expects.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from numbers import Real
from typing import Any

from ..errors import InvalidOptionError

#: Channel colour names accepted besides hex ``RRGGBB``: napari's single-colour colormaps, as
#: the brightest colour of each (so ``green`` is ``00FF00``, not CSS's ``008000``).
COLOR_NAMES = {
    "red": "FF0000",
    "green": "00FF00",
    "blue": "0000FF",
    "cyan": "00FFFF",
    "magenta": "FF00FF",
    "yellow": "FFFF00",
    "white": "FFFFFF",
    "gray": "FFFFFF",
    "grey": "FFFFFF",
}


def parse_shape(text: str, *, name: str) -> int | tuple[int, ...] | None:
    """Parse ``"512"``, ``"1,512,512"`` or ``"512x512"`` (``""`` or ``"none"`` give None).

    Raises
    ------
    InvalidOptionError
        When the text is not a number or a list of numbers.
    """
    text = text.strip()
    if not text or text.lower() == "none":
        return None
    msg = f"{name} must be a number or comma-separated numbers, got {text!r}"
    try:
        values = tuple(
            int(part) for part in text.lower().replace("x", ",").split(",") if part.strip()
        )
    except ValueError as error:
        raise InvalidOptionError(msg) from error
    if not values:
        raise InvalidOptionError(msg)
    return values[0] if len(values) == 1 else values


def parse_axes(text: str) -> tuple[str, ...]:
    """Parse axis names: ``"zyx"`` (one letter each) or ``"z,y,x"``, lower-cased.

    Raises
    ------
    InvalidOptionError
        When the text names no axis.
    """
    parts = text.split(",") if "," in text else list(text.replace(" ", ""))
    names = tuple(part.strip().lower() for part in parts if part.strip())
    if not names:
        msg = f"axes must be names such as 'zyx' or 'c,z,y,x', got {text!r}"
        raise InvalidOptionError(msg)
    return names


def parse_scale(text: str) -> tuple[float, ...]:
    """Parse a physical pixel size per axis: ``"2,0.5,0.5"`` (positive, finite numbers).

    Raises
    ------
    InvalidOptionError
        When a value is not a positive finite number.
    """
    msg = f"scale must be comma-separated positive numbers, one per axis, got {text!r}"
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise InvalidOptionError(msg) from error
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise InvalidOptionError(msg)
    return values


def parse_levels(text: str) -> int | str:
    """Parse ``"auto"`` (or ``""``) or a number of levels.

    Raises
    ------
    InvalidOptionError
        When the text is neither.
    """
    text = text.strip().lower()
    if text in ("", "auto"):
        return "auto"
    try:
        return int(text)
    except ValueError as error:
        msg = f"levels must be 'auto' or a number, got {text!r}"
        raise InvalidOptionError(msg) from error


def parse_color(value: Any, *, name: str = "colors") -> str:
    """Parse one channel colour: hex ``"FF0000"`` or ``"#ff0000"``, or a name in :data:`COLOR_NAMES`.

    Returns
    -------
    str
        The colour as upper-case ``RRGGBB``, as OME-Zarr's ``omero`` block stores it.

    Raises
    ------
    InvalidOptionError
        For anything else.
    """
    text = value.strip() if isinstance(value, str) else None
    if text is not None and re.fullmatch(r"#?[0-9A-Fa-f]{6}", text):
        return text.lstrip("#").upper()
    if text is not None and text.lower() in COLOR_NAMES:
        return COLOR_NAMES[text.lower()]
    msg = (
        f"{name}: {value!r} is not a colour; give hex RRGGBB such as 'FF0000' "
        f"or one of {', '.join(COLOR_NAMES)}"
    )
    raise InvalidOptionError(msg)


def parse_colors(colors: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """Parse per-channel colours (one string is one channel's colour); None stays None.

    Raises
    ------
    InvalidOptionError
        When a colour is neither hex ``RRGGBB`` nor a known name.
    """
    if colors is None:
        return None
    if isinstance(colors, str):
        return (parse_color(colors),)
    items = _items(colors)
    if items is None:
        msg = f"colors must be a list of colours such as ['FF0000', '00FF00'], got {colors!r}"
        raise InvalidOptionError(msg)
    return tuple(parse_color(color) for color in items)


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _items(value: Any) -> list[Any] | None:
    """The items of a list, tuple or array; None for a string or a single value."""
    if isinstance(value, str | bytes):
        return None
    try:
        return list(value)
    except TypeError:
        return None


def _window(value: Any, index: int) -> tuple[float, float]:
    """One channel's display window, checked: two finite numbers, start <= end."""
    where = f"contrast_limits[{index}]"
    form = "give (start, end) with start <= end, for example (0, 4095)"
    pair = _items(value)
    if pair is None or len(pair) != 2:
        msg = f"{where} is {value!r}; {form}"
        raise InvalidOptionError(msg)
    if not all(_is_number(v) and math.isfinite(v) for v in pair):
        msg = f"{where} is {value!r}: not two finite numbers; {form}"
        raise InvalidOptionError(msg)
    start, end = float(pair[0]), float(pair[1])
    if start > end:
        msg = f"{where} starts at {pair[0]} after it ends at {pair[1]}; {form}"
        raise InvalidOptionError(msg)
    return start, end


def parse_windows(
    contrast_limits: Sequence[Sequence[float]] | Sequence[float] | None,
) -> tuple[tuple[float, float], ...] | None:
    """Parse per-channel display windows (``(start, end)`` each; one flat pair is one channel).

    Raises
    ------
    InvalidOptionError
        When a window is not two finite numbers or starts after it ends.
    """
    if contrast_limits is None:
        return None
    windows = _items(contrast_limits)
    if windows is None:
        msg = f"contrast_limits must be a (start, end) pair per channel, got {contrast_limits!r}"
        raise InvalidOptionError(msg)
    if len(windows) == 2 and all(_is_number(v) for v in windows):
        return (_window(windows, 0),)
    return tuple(_window(value, index) for index, value in enumerate(windows))
