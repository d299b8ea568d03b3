"""Parse conversion options as people type them, in the widget and on the command line."""

from __future__ import annotations


def parse_shape(text: str, *, name: str) -> int | tuple[int, ...] | None:
    """Parse ``"512"``, ``"1,512,512"`` or ``"512x512"`` (``""`` or ``"none"`` give None).

    Raises
    ------
    ValueError
        When the text is not a number or a list of numbers.
    """
    text = text.strip()
    if not text or text.lower() == "none":
        return None
    try:
        values = tuple(
            int(part) for part in text.lower().replace("x", ",").split(",") if part.strip()
        )
    except ValueError as error:
        msg = f"{name} must be a number or comma-separated numbers, got {text!r}"
        raise ValueError(msg) from error
    if not values:
        msg = f"{name} must be a number or comma-separated numbers, got {text!r}"
        raise ValueError(msg)
    return values[0] if len(values) == 1 else values


def parse_levels(text: str) -> int | str:
    """Parse ``"auto"`` (or ``""``) or a number of levels.

    Raises
    ------
    ValueError
        When the text is neither.
    """
    text = text.strip().lower()
    if text in ("", "auto"):
        return "auto"
    try:
        return int(text)
    except ValueError as error:
        msg = f"levels must be 'auto' or a number, got {text!r}"
        raise ValueError(msg) from error
