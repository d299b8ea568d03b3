"""OME-Zarr 0.6 scenes: several images placed in shared coordinate systems (RFC-5 ``scene``).

A scene is the group above its images; its ``ome.scene`` lists coordinate transformations
between named coordinate systems, each named by ``{"name": ..., "path": ...}`` (a ``path``: a
system of the image at that path; none: a system the scene declares itself). Together with each
image's own multiscale-level transformations they form a graph; every image is placed in the
displayed system (the scene's first declared one) by the scale and translation along a path of
that graph, inverting scales and translations where the path runs backwards.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import StoreReadError
from .coordinate_systems import (
    Placement,
    ScaleShift,
    as_scale_shift,
    image_systems,
    intrinsic_system,
    system_name,
    transform_list,
)
from .model import Axis, safe_member_path

#: Transformations of one scene read at most.
MAX_SCENE_TRANSFORMS = 10_000

#: A node of the transformation graph: (image path, or None for the scene's own, system name).
_Node = tuple[str | None, str]


@dataclass(frozen=True)
class Scene:
    """The ``scene`` of a group: its systems, transformations and the images they name."""

    #: The scene's own coordinate systems by name, in declaration order.
    systems: dict[str, list[Axis]]
    #: Its transformations, each with its (path, name) input and output.
    transforms: tuple[tuple[_Node, _Node, Mapping[str, Any]], ...]
    #: Paths of the images the transformations name, in order of first mention.
    images: tuple[str, ...]


def _reference(raw: object, *, side: str, where: str) -> _Node:
    """A scene transformation's ``input`` or ``output``: (path or None, name), path checked."""
    if isinstance(raw, str):  # drafts named the system alone
        raw = {"name": raw}
    name = raw.get("name") if isinstance(raw, Mapping) else None
    if not isinstance(name, str) or not name:
        msg = f"{where}: a scene transformation's {side} does not name a coordinate system"
        raise StoreReadError(msg)
    path = raw.get("path")  # type: ignore[union-attr]
    if path is None or path == "":
        return None, name
    return safe_member_path(path, where=where).rstrip("/"), name


def parse_scene(ome: Mapping[str, Any], *, where: str) -> Scene:
    """Parse the ``scene`` block of an OME-Zarr 0.6 group.

    Parameters
    ----------
    ome : Mapping
        The group's OME block (``ome_attributes``).
    where : str
        The group's path, for error messages.

    Returns
    -------
    Scene
        Its coordinate systems, transformations and the image paths they name.

    Raises
    ------
    StoreReadError
        When the block is malformed, lists no or more than :data:`MAX_SCENE_TRANSFORMS`
        transformations, or names a path outside the store.
    """
    block = ome.get("scene")
    if not isinstance(block, Mapping):
        msg = f"{where}: 'scene' must be an object"
        raise StoreReadError(msg)
    raw = transform_list(block.get("coordinateTransformations"), where=where)
    if not raw:
        msg = f"{where}: the scene lists no coordinateTransformations"
        raise StoreReadError(msg)
    if len(raw) > MAX_SCENE_TRANSFORMS:
        msg = f"{where}: the scene lists {len(raw):,} transformations; at most {MAX_SCENE_TRANSFORMS:,} are read"
        raise StoreReadError(msg)
    systems = image_systems(block, where=where)
    transforms = []
    images: dict[str, None] = {}
    for transform in raw:
        source = _reference(transform.get("input"), side="input", where=where)
        target = _reference(transform.get("output"), side="output", where=where)
        for path, _name in (source, target):
            if path is not None:
                images.setdefault(path)
        transforms.append((source, target, transform))
    return Scene(systems, tuple(transforms), tuple(images))


def _displayed_system(scene: Scene) -> _Node:
    """The system the scene is shown in: its first declared one, else the first output."""
    if scene.systems:
        return None, next(iter(scene.systems))
    return scene.transforms[0][1]


@dataclass
class _Graph:
    """Coordinate systems (nodes) and the scale-and-shift transformations between them."""

    axes: dict[_Node, list[Axis]]
    #: Edges from a node: (other node, transformation from this node into it).
    edges: dict[_Node, list[tuple[_Node, ScaleShift]]]

    def add(self, source: _Node, target: _Node, forward: ScaleShift) -> None:
        """An edge both ways (backwards by the inverse, when there is one)."""
        self.edges.setdefault(source, []).append((target, forward))
        inverse = forward.inverse()
        if inverse is not None:
            self.edges.setdefault(target, []).append((source, inverse))

    def into(self, target: _Node) -> dict[_Node, ScaleShift]:
        """The transformation from every node connected to ``target`` into ``target``."""
        found = {target: ScaleShift.identity(len(self.axes.get(target, [])))}
        pending = deque([target])
        incoming: dict[_Node, list[tuple[_Node, ScaleShift]]] = {}
        for source, outgoing in self.edges.items():
            for node, transform in outgoing:
                incoming.setdefault(node, []).append((source, transform))
        while pending:
            node = pending.popleft()
            for source, transform in incoming.get(node, []):
                if source in found or transform.ndim != found[node].ndim:
                    continue
                found[source] = transform.then(found[node])
                pending.append(source)
        return found


def _edge(
    graph: _Graph,
    source: _Node,
    target: _Node,
    transform: Mapping[str, Any],
    *,
    where: str,
    notices: list[str],
) -> None:
    """Add one transformation to the graph, its number of axes taken from its systems."""
    axes = graph.axes.get(source) or graph.axes.get(target)
    if axes is None:
        notices.append(
            f"{where}: a scene transformation joins {_label(source)} and {_label(target)}, "
            "neither of which is declared; it is ignored"
        )
        return
    graph.add(source, target, as_scale_shift(transform, len(axes), where=where, notices=notices))


def _label(node: _Node) -> str:
    path, name = node
    return f"{name!r}" if path is None else f"{name!r} of {path!r}"


def _image_graph(
    graph: _Graph, path: str, first: Mapping[str, Any], *, where: str, notices: list[str]
) -> _Node:
    """Add an image's systems and its multiscale-level transformations; return its intrinsic."""
    image_where = f"{where}/{path}"
    intrinsic, axes = intrinsic_system(first, where=image_where)
    for name, system_axes in image_systems(first, where=image_where).items():
        graph.axes[(path, name)] = system_axes
    node = (path, intrinsic or "")
    graph.axes[node] = axes
    for transform in transform_list(first.get("coordinateTransformations"), where=image_where):
        source = system_name(transform.get("input")) or intrinsic or ""
        target = system_name(transform.get("output"))
        linked = isinstance(transform.get("output"), Mapping) and transform["output"].get("path")
        if target is None or linked:  # a child labels group's system: not part of the scene
            continue
        _edge(graph, (path, source), (path, target), transform, where=image_where, notices=notices)
    return node


def place_scene_images(
    scene: Scene, images: Mapping[str, Mapping[str, Any]], *, where: str
) -> tuple[dict[str, Placement], list[str]]:
    """Where each image of a scene sits in the scene's displayed coordinate system.

    Parameters
    ----------
    scene : Scene
        From :func:`parse_scene`.
    images : Mapping
        The multiscale object (``multiscales[0]``) of each image, by its path in the scene.
    where : str
        The scene group's path, for messages.

    Returns
    -------
    tuple of (dict, list of str)
        A :class:`Placement` per image that the transformations connect to the displayed
        system (its first declared one, else the first transformation's output), and notices:
        images not connected (shown in their own coordinate system), transformations napari
        cannot show (taken as the identity), transformations between undeclared systems.

    Raises
    ------
    StoreReadError
        When an image's metadata or a transformation's parameters are malformed.
    """
    notices: list[str] = []
    graph = _Graph({(None, name): axes for name, axes in scene.systems.items()}, {})
    intrinsic = {
        path: _image_graph(graph, path, first, where=where, notices=notices)
        for path, first in images.items()
    }
    for source, target, transform in scene.transforms:
        _edge(graph, source, target, transform, where=where, notices=notices)
    shown = _displayed_system(scene)
    into = graph.into(shown)
    placements: dict[str, Placement] = {}
    for path, node in intrinsic.items():
        transform = into.get(node)
        if transform is None or transform.ndim != len(graph.axes[node]):
            notices.append(
                f"{where}/{path}: not placed in the scene's coordinate system {shown[1]!r} "
                "(no scale or translation leads there); shown in its own coordinate system"
            )
            continue
        axes = graph.axes.get(shown)
        placements[path] = Placement(transform, shown[1], tuple(axes) if axes else None)
    return placements, notices
