"""OME-Zarr 0.6 (RFC-5): coordinate systems and the transformations between them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import StoreReadError
from .fields import as_float_tuple, dataset_path, parse_axes
from .model import MAX_SEQUENCE_DEPTH, Axis, Multiscale


@dataclass(frozen=True)
class ScaleShift:
    """A transformation napari can show: ``x -> scale * x + translation`` per axis."""

    scale: tuple[float, ...]
    translation: tuple[float, ...]

    @classmethod
    def identity(cls, ndim: int) -> ScaleShift:
        """The transformation that changes nothing."""
        return cls((1.0,) * ndim, (0.0,) * ndim)

    def then(self, other: ScaleShift) -> ScaleShift:
        """This transformation followed by ``other``."""
        return ScaleShift(
            tuple(a * b for a, b in zip(self.scale, other.scale, strict=True)),
            tuple(
                t * s + u
                for t, s, u in zip(self.translation, other.scale, other.translation, strict=True)
            ),
        )

    @property
    def ndim(self) -> int:
        """Number of axes it maps."""
        return len(self.scale)

    def inverse(self) -> ScaleShift | None:
        """The transformation undoing this one; None when a scale is 0 (not invertible)."""
        if any(s == 0 for s in self.scale):
            return None
        return ScaleShift(
            tuple(1.0 / s for s in self.scale),
            tuple(-t / s for t, s in zip(self.translation, self.scale, strict=True)),
        )


@dataclass(frozen=True)
class Placement:
    """Where an image's own (intrinsic) coordinate system sits in a displayed one (a scene's)."""

    #: From the image's intrinsic coordinate system into the displayed one.
    transform: ScaleShift
    #: The displayed coordinate system's name and axes (None: keep the image's own axes).
    system: str
    axes: tuple[Axis, ...] | None = None


def _system_name(reference: object) -> str | None:
    """The coordinate system an ``input`` / ``output`` names (``{"name": ...}`` or a string)."""
    if isinstance(reference, Mapping):
        reference = reference.get("name")
    return reference if isinstance(reference, str) else None


def _parse_coordinate_systems_list(raw: object, *, where: str) -> dict[str, list[Axis]]:
    """The declared coordinate systems by name, in declaration order."""
    if raw is None:
        return {}
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        msg = f"{where}: 'coordinateSystems' must be a list"
        raise StoreReadError(msg)
    systems: dict[str, list[Axis]] = {}
    for system in raw:
        if not isinstance(system, Mapping) or not isinstance(system.get("name"), str):
            msg = f"{where}: a coordinate system has no name"
            raise StoreReadError(msg)
        if system.get("axes") is None:
            msg = f"{where}: coordinate system {system['name']!r} has no axes"
            raise StoreReadError(msg)
        systems.setdefault(system["name"], parse_axes(system.get("axes"), None, where=where))
    return systems


def _transform_list(raw: object, *, where: str) -> list[Mapping[str, Any]]:
    """A ``coordinateTransformations`` list, each entry an object."""
    if raw is None:
        return []
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        msg = f"{where}: coordinateTransformations must be a list"
        raise StoreReadError(msg)
    if not all(isinstance(transform, Mapping) for transform in raw):
        msg = f"{where}: a coordinate transformation is not an object"
        raise StoreReadError(msg)
    return list(raw)


def _identity_map_axis(mapping: object, ndim: int) -> bool:
    """Whether a ``mapAxis`` leaves every axis in place (a list 0, 1, ..., n - 1)."""
    return isinstance(mapping, Sequence) and list(mapping) == list(range(ndim))


def _not_shown(kind: object, *, where: str, notices: list[str]) -> None:
    """Note a transformation napari cannot show (the image is placed without it)."""
    notice = (
        f"{where}: the metadata declares a {kind!r} coordinate transformation, which napari "
        "cannot show; the image is placed without it (as if it were the identity)"
    )
    if notice not in notices:
        notices.append(notice)


def _scale_shift(
    transform: Mapping[str, Any], ndim: int, *, where: str, notices: list[str], depth: int = 0
) -> ScaleShift:
    """One 0.6 transformation as a scale and shift; others become identity plus a notice."""
    kind = transform.get("type")
    identity = ScaleShift.identity(ndim)
    if kind in {"scale", "translation"} and kind in transform:
        values = as_float_tuple(transform[kind], ndim, what=kind, where=where)
        if kind == "scale":
            return ScaleShift(values, (0.0,) * ndim)
        return ScaleShift((1.0,) * ndim, values)
    if kind == "sequence":
        if depth >= MAX_SEQUENCE_DEPTH:
            msg = f"{where}: sequence transformations nested more than {MAX_SEQUENCE_DEPTH} deep"
            raise StoreReadError(msg)
        result = identity
        steps = _transform_list(transform.get("transformations"), where=where)
        for step in steps:
            result = result.then(
                _scale_shift(step, ndim, where=where, notices=notices, depth=depth + 1)
            )
        return result
    if kind == "identity" or (
        kind == "mapAxis" and _identity_map_axis(transform.get("mapAxis"), ndim)
    ):
        return identity
    if kind == "bijection" and isinstance(transform.get("forward"), Mapping):
        inner: list[str] = []  # a forward napari cannot show: the bijection is named instead
        forward = _scale_shift(
            transform["forward"], ndim, where=where, notices=inner, depth=depth + 1
        )
        if not inner:
            return forward
    if kind in {"scale", "translation"}:
        kind = f"{kind} given by path"
    _not_shown(kind, where=where, notices=notices)
    return identity


def _chain(
    transforms: list[Mapping[str, Any]], ndim: int, *, where: str, notices: list[str]
) -> ScaleShift:
    """Several transformations applied one after the other."""
    result = ScaleShift.identity(ndim)
    for transform in transforms:
        result = result.then(_scale_shift(transform, ndim, where=where, notices=notices))
    return result


def _intrinsic_axes(
    systems: dict[str, list[Axis]],
    datasets: Sequence[Any],
    first: Mapping[str, Any],
    *,
    where: str,
) -> tuple[str | None, list[Axis]]:
    """The system the datasets map into (named by their ``output``) and its axes."""
    transforms = _transform_list(datasets[0].get("coordinateTransformations"), where=where)
    name = _system_name(transforms[-1].get("output")) if transforms else None
    if name in systems:
        return name, systems[name]
    if systems:  # no output named: the spec lists the datasets' own system last
        name = list(systems)[-1]
        return name, systems[name]
    if first.get("axes") is not None:  # a draft writer: 0.4-style axes
        return None, parse_axes(first.get("axes"), None, where=where)
    msg = f"{where}: OME-Zarr 0.6 metadata declares no coordinateSystems (and no axes)"
    raise StoreReadError(msg)


def _world_transform(
    first: Mapping[str, Any],
    systems: dict[str, list[Axis]],
    intrinsic: str | None,
    axes: list[Axis],
    *,
    where: str,
    notices: list[str],
) -> tuple[ScaleShift, list[Axis]]:
    """The multiscale-level transformation out of the datasets' system, and the axes it maps to.

    Only the first one leaving the datasets' system is applied (the others lead to other systems).
    """
    ndim = len(axes)
    for transform in _transform_list(first.get("coordinateTransformations"), where=where):
        source = _system_name(transform.get("input"))
        if source is not None and intrinsic is not None and source != intrinsic:
            continue
        target_name = _system_name(transform.get("output"))
        target = systems.get(target_name or "", axes)
        if len(target) != ndim:
            notices.append(
                f"{where}: coordinate system {target_name!r} has {len(target)} axes and the "
                f"image {ndim}; the image is shown in its own coordinate system {intrinsic!r}"
            )
            break
        return _scale_shift(transform, ndim, where=where, notices=notices), target
    return ScaleShift.identity(ndim), axes


def intrinsic_system(first: Mapping[str, Any], *, where: str) -> tuple[str | None, list[Axis]]:
    """The name and axes of the coordinate system a 0.6 multiscale's datasets map into.

    Parameters
    ----------
    first : Mapping
        The multiscale object (``multiscales[0]``).
    where : str
        The image's path, for error messages.

    Returns
    -------
    tuple of (str or None, list of Axis)
        The system's name (None for a draft writer's 0.4-style ``axes``) and its axes.

    Raises
    ------
    StoreReadError
        When the metadata declares neither coordinate systems nor axes, or is malformed.
    """
    datasets = first.get("datasets")
    if not isinstance(datasets, Sequence) or isinstance(datasets, str) or not datasets:
        msg = f"{where}: multiscales lists no datasets"
        raise StoreReadError(msg)
    if not isinstance(datasets[0], Mapping):
        msg = f"{where}: a dataset entry is not an object"
        raise StoreReadError(msg)
    systems = _parse_coordinate_systems_list(first.get("coordinateSystems"), where=where)
    return _intrinsic_axes(systems, datasets, first, where=where)


def image_systems(first: Mapping[str, Any], *, where: str) -> dict[str, list[Axis]]:
    """The coordinate systems a 0.6 multiscale declares, by name (empty when none)."""
    return _parse_coordinate_systems_list(first.get("coordinateSystems"), where=where)


def transform_list(raw: object, *, where: str) -> list[Mapping[str, Any]]:
    """A ``coordinateTransformations`` list, each entry checked to be an object."""
    return _transform_list(raw, where=where)


def system_name(reference: object) -> str | None:
    """The coordinate system an ``input`` / ``output`` names (``{"name": ...}`` or a string)."""
    return _system_name(reference)


def as_scale_shift(
    transform: Mapping[str, Any], ndim: int, *, where: str, notices: list[str]
) -> ScaleShift:
    """One RFC-5 transformation as a scale and shift (others: identity, with a notice).

    Parameters
    ----------
    transform : Mapping
        The transformation object.
    ndim : int
        The number of axes it maps.
    where : str
        The node whose metadata declares it, for messages.
    notices : list of str
        A notice is appended for a transformation napari cannot show.

    Returns
    -------
    ScaleShift
        The transformation, or the identity when it is neither identity, scale, translation,
        an identity ``mapAxis``, nor a sequence or bijection of those.

    Raises
    ------
    StoreReadError
        When a scale or translation does not hold ``ndim`` finite numbers.
    """
    return _scale_shift(transform, ndim, where=where, notices=notices)


def parse_coordinate_systems(
    first: Mapping[str, Any],
    datasets: Sequence[Any],
    version: str,
    *,
    where: str,
    into: Placement | None = None,
) -> Multiscale:
    """OME-Zarr 0.6: axes from the coordinate system the datasets map into, RFC-5 transforms.

    With ``into`` (an image of a scene), the image is placed by ``into`` after its datasets'
    transformations, instead of by its own multiscale-level transformations.
    """
    paths = [dataset_path(dataset, where=where) for dataset in datasets]
    systems = _parse_coordinate_systems_list(first.get("coordinateSystems"), where=where)
    intrinsic, axes = _intrinsic_axes(systems, datasets, first, where=where)
    notices: list[str] = []
    if into is not None and into.transform.ndim == len(axes):
        world = into.transform
        axes = list(into.axes) if into.axes is not None and len(into.axes) == len(axes) else axes
    else:
        world, axes = _world_transform(
            first, systems, intrinsic, axes, where=where, notices=notices
        )
    scales, translations = [], []
    for dataset in datasets:
        transforms = _transform_list(dataset.get("coordinateTransformations"), where=where)
        placed = _chain(transforms, len(axes), where=where, notices=notices).then(world)
        scales.append(placed.scale)
        translations.append(placed.translation)
    return Multiscale(
        version=version,
        axes=axes,
        paths=paths,
        scales=scales,
        translations=translations,
        notices=notices,
    )
