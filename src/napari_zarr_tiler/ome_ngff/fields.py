"""Fields of OME-Zarr metadata that every version's rules read alike: numbers, axes, dataset paths."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from ..errors import StoreReadError
from .model import DEFAULT_AXES, Axis, safe_member_path


def as_float_tuple(values: object, ndim: int, *, what: str, where: str) -> tuple[float, ...]:
    if (
        not isinstance(values, Sequence)
        or isinstance(values, str)
        or len(values) != ndim
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        or not all(math.isfinite(v) for v in values)
    ):
        msg = f"{where}: {what} {values!r} is not a list of {ndim} finite numbers"
        raise StoreReadError(msg)
    return tuple(float(v) for v in values)


def parse_axes(raw_axes: object, ndim: int | None, *, where: str) -> list[Axis]:
    if raw_axes is None:  # OME-NGFF 0.1/0.2: axes are implicitly the last of t, c, z, y, x
        if ndim is None:
            msg = f"{where}: multiscales has no axes and no level to infer them from"
            raise StoreReadError(msg)
        return [Axis(name) for name in DEFAULT_AXES[-ndim:]]
    if not isinstance(raw_axes, Sequence) or isinstance(raw_axes, str):
        msg = f"{where}: 'axes' must be a list"
        raise StoreReadError(msg)
    axes = []
    for raw in raw_axes:
        if isinstance(raw, str):  # OME-NGFF 0.3
            axes.append(Axis(raw))
        elif isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
            unit = raw.get("unit")
            kind = raw.get("type")
            axes.append(
                Axis(
                    raw["name"],
                    kind if isinstance(kind, str) else None,
                    unit if isinstance(unit, str) else None,
                )
            )
        else:
            msg = f"{where}: axis {raw!r} has no name"
            raise StoreReadError(msg)
    return axes


def dataset_path(dataset: object, *, where: str) -> str:
    if not isinstance(dataset, Mapping):
        msg = f"{where}: a dataset entry is not an object"
        raise StoreReadError(msg)
    return safe_member_path(dataset.get("path"), where=where)
