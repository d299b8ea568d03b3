"""What a zarr store holds, level by level, for people (the CLI's ``info``): metadata only.

:func:`inspect_store` gathers a :class:`StoreDescription` (what the node is, its image metadata,
and for each array its shape, dtype, chunks, shards, codecs, size and bytes on disk);
:func:`format_description` turns it into the text ``info`` prints; :func:`describe_store` does
both. No pixel is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import zarr

from ..ome_ngff import Multiscale, ome_attributes, parse_multiscale, parse_scene
from ..ome_ngff.model import Plate
from ..ome_ngff.parse import parse_plate
from ..ome_ngff.scene import Scene
from .locate import StoreLocation
from .nodes import member_array, open_zarr_node
from .zipped import stored_bytes

NodeKind = Literal["array", "image", "collection", "plate", "scene", "group"]
#: Member groups a group's description lists by name at most.
SHOWN_GROUPS = 20


@dataclass(frozen=True)
class LevelDescription:
    """One array of a store: a pyramid level, the bare array, or an array of a plain group."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None
    codecs: tuple[str, ...]
    nbytes: int
    #: Bytes of its files on disk; 0 when not measured (an array stored in the group's folder),
    #: None for a store behind a URL (not measured).
    disk_bytes: int | None


@dataclass(frozen=True)
class StoreDescription:
    """What a zarr node holds: its kind, its image metadata or members, and its arrays."""

    path: Path
    kind: NodeKind
    levels: tuple[LevelDescription, ...]
    zarr_format: int | None = None
    multiscale: Multiscale | None = None
    arrays: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    plate: Plate | None = None
    scene: Scene | None = None


def describe_store(path: str | os.PathLike[str]) -> str:
    """Describe a store for people: levels, shape, dtype, chunks, shards, codecs, axes, scale, size.

    Parameters
    ----------
    path : str or PathLike
        A store folder, a node folder inside one, or a metadata file in such a folder.

    Returns
    -------
    str
        Several lines, without a final line break (see :func:`format_description`).

    Raises
    ------
    StoreReadError
        When the store cannot be opened or its metadata names missing arrays.
    """
    return format_description(inspect_store(path))


def inspect_store(path: str | os.PathLike[str]) -> StoreDescription:
    """Gather what the zarr node ``path`` designates holds (metadata and file sizes only).

    Parameters
    ----------
    path : str or PathLike
        A store folder, a node folder inside one, or a metadata file in such a folder.

    Returns
    -------
    StoreDescription
        The node's kind, its image metadata (OME images) or member names (other groups), and
        one :class:`LevelDescription` per array.

    Raises
    ------
    StoreReadError
        When the store cannot be opened or its metadata names missing arrays.
    """
    node_dir, node = open_zarr_node(path)
    if isinstance(node, zarr.Array):
        level = _describe_level("(array)", node, node_dir, measure=True)
        return StoreDescription(node_dir, "array", (level,), zarr_format=node.metadata.zarr_format)
    ome = ome_attributes(node.attrs.asdict())
    if "multiscales" in ome:
        multiscale = parse_multiscale(ome, where=str(node_dir))
        levels = _describe_members(node, multiscale.paths, node_dir)
        return StoreDescription(node_dir, "image", levels, multiscale=multiscale)
    arrays = tuple(sorted(key for key, _ in node.arrays()))
    groups = tuple(sorted(node.group_keys(), key=lambda k: (not k.isdigit(), len(k), k)))
    plate = parse_plate(ome, where=str(node_dir)) if "plate" in ome else None
    scene = parse_scene(ome, where=str(node_dir)) if "scene" in ome else None
    kind: NodeKind = "collection" if "bioformats2raw.layout" in ome else "group"
    kind = "plate" if plate else "scene" if scene else kind
    levels = _describe_members(node, arrays, node_dir)
    return StoreDescription(
        node_dir, kind, levels, arrays=arrays, groups=groups, plate=plate, scene=scene
    )


def _describe_members(
    group: zarr.Group, paths: tuple[str, ...] | list[str], node_dir: Path
) -> tuple[LevelDescription, ...]:
    """Describe the arrays at ``paths`` in ``group`` (bytes on disk of their own folders)."""
    return tuple(
        _describe_level(
            path,
            member_array(group, path, where=node_dir),
            node_dir / path,
            measure=node_dir / path != node_dir,
        )
        for path in paths
    )


def _describe_level(
    name: str, array: zarr.Array, folder: Path, *, measure: bool
) -> LevelDescription:
    """One array's description; its bytes on disk are those of ``folder`` when ``measure``."""
    return LevelDescription(
        name=name,
        shape=tuple(array.shape),
        dtype=str(array.dtype),
        chunks=tuple(array.chunks),
        shards=getattr(array, "shards", None) or None,
        codecs=tuple(describe_codec(c) for c in getattr(array, "compressors", ())),
        nbytes=array.nbytes,
        disk_bytes=_disk_bytes(folder) if measure else 0,
    )


def _disk_bytes(path: Path) -> int | None:
    """Bytes of the regular files under ``path`` (of the members of an .ozx; None for a URL)."""
    if isinstance(path, StoreLocation):
        return stored_bytes(path)
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())


_BLOSC_SHUFFLES = {0: "noshuffle", 1: "shuffle", 2: "bitshuffle", -1: "autoshuffle"}


def _plain(value: Any) -> Any:
    """An enum's value (zarr v3 codecs), or the value itself (numcodecs)."""
    return getattr(value, "value", value)


def describe_codec(codec: Any) -> str:
    """Name a stored codec the way the CLI's options spell it, with its level.

    Parameters
    ----------
    codec : object
        A zarr v3 codec or a numcodecs compressor.

    Returns
    -------
    str
        ``zstd (level 3)``, ``blosc-lz4 (clevel 5, shuffle)``, ``gzip (level 6)``; any other
        codec by its name (or its class name).
    """
    kind = getattr(codec, "codec_id", None)  # numcodecs
    if kind is None:
        try:
            kind = codec.to_dict()["name"]  # zarr v3
        except (AttributeError, KeyError, TypeError, ValueError):
            kind = type(codec).__name__.removesuffix("Codec").lower()
    if kind in ("zstd", "gzip", "zlib") and getattr(codec, "level", None) is not None:
        return f"{kind} (level {codec.level})"
    if kind == "blosc" and getattr(codec, "cname", None) is not None:
        shuffle = _plain(codec.shuffle)
        shuffle = _BLOSC_SHUFFLES.get(shuffle, shuffle) if isinstance(shuffle, int) else shuffle
        return f"blosc-{_plain(codec.cname)} (clevel {codec.clevel}, {shuffle})"
    return str(kind)


# ---------------------------------------------------------------------------------------------
# Text for people
# ---------------------------------------------------------------------------------------------


def format_description(description: StoreDescription) -> str:
    """The text ``info`` prints for a store description.

    Parameters
    ----------
    description : StoreDescription
        From :func:`inspect_store`.

    Returns
    -------
    str
        The node's path, what it is, then one line per array and a total line when bytes on
        disk were measured; lines joined without a final line break.
    """
    lines = [f"{description.path}", *_header_lines(description)]
    lines += [f"  level {level.name}: {_level_text(level)}" for level in description.levels]
    total_raw = sum(level.nbytes for level in description.levels)
    total_disk = sum(level.disk_bytes or 0 for level in description.levels)
    if total_disk:
        lines.append(
            f"  total: {_size(total_raw)} uncompressed, {_size(total_disk)} on disk "
            f"({total_raw / total_disk:.3g}x compression)"
        )
    return "\n".join(lines)


def _header_lines(description: StoreDescription) -> list[str]:
    """What the node is: a bare array, an OME image (axes, scale, channels) or a group."""
    if description.kind == "array":
        return [f"  zarr format {description.zarr_format}, a bare array"]
    if description.multiscale is not None:
        return _image_lines(description.multiscale)
    kind = {
        "collection": "bioformats2raw collection (one image per group)",
        "plate": _plate_text(description.plate),
        "scene": _scene_text(description.scene),
    }.get(description.kind, "zarr group without OME metadata")
    lines = [f"  {kind}; arrays: {', '.join(description.arrays) or 'none'}"]
    groups = description.groups
    if groups:
        shown = ", ".join(groups[:SHOWN_GROUPS]) + (
            f" ... ({len(groups):,} in all)" if len(groups) > SHOWN_GROUPS else ""
        )
        lines.append(
            f"  groups: {shown} (describe one with `info {description.path / groups[0]}`)"
        )
    return lines


def _plate_text(plate: Plate | None) -> str:
    """An HCS plate's name, rows, columns and wells, in one phrase."""
    if plate is None:
        return "HCS plate"
    name = f" {plate.name}" if plate.name else ""
    return (
        f"HCS plate{name}: {len(plate.rows)} rows x {len(plate.columns)} columns, "
        f"{len(plate.wells):,} wells (opened as one grid)"
    )


def _scene_text(scene: Scene | None) -> str:
    """An OME-Zarr 0.6 scene's images and coordinate systems, in one phrase."""
    if scene is None:
        return "OME-Zarr 0.6 scene"
    shown = ", ".join(scene.images[:SHOWN_GROUPS]) + (
        f" ... ({len(scene.images):,} in all)" if len(scene.images) > SHOWN_GROUPS else ""
    )
    systems = ", ".join(scene.systems) or "the first output of its transformations"
    return (
        f"OME-Zarr 0.6 scene of {len(scene.images):,} image(s) ({shown}) placed in {systems} "
        "(opened as one layer per image)"
    )


def _image_lines(multiscale: Multiscale) -> list[str]:
    """An OME image's version and name, axes with units, level-0 placement and channels."""
    axes = ", ".join(f"{a.name}" + (f" ({a.unit})" if a.unit else "") for a in multiscale.axes)
    lines = [
        f"  OME-Zarr {multiscale.version} image {multiscale.name or ''}".rstrip(),
        f"  axes: {axes}",
        f"  scale (level 0): {list(multiscale.scales[0])}",
    ]
    if any(multiscale.translations[0]):
        lines.append(f"  translation (level 0): {list(multiscale.translations[0])}")
    if multiscale.channels:
        lines.append(f"  channels: {', '.join(c.label or '?' for c in multiscale.channels)}")
    lines.extend(f"  note: {notice}" for notice in multiscale.notices)
    return lines


def _level_text(level: LevelDescription) -> str:
    """Shape, dtype, chunks, shards, codecs, bytes on disk and compression of one array."""
    shards = f", shards {level.shards}" if level.shards else ""
    ratio = f"{level.nbytes / level.disk_bytes:.3g}x" if level.disk_bytes else "-"
    stored = (
        "size on disk not measured (a URL)"
        if level.disk_bytes is None
        else f"{_size(level.disk_bytes)} on disk ({ratio} compression)"
    )
    return (
        f"shape {level.shape} {level.dtype}, chunks {level.chunks}{shards}, "
        f"codecs {' + '.join(level.codecs) or 'none'}, {stored}"
    )


def _size(nbytes: float) -> str:
    """Bytes for people: ``812 B``, ``4.1 kB``, ``19.9 MB``, ``11.1 GB``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:,.1f} {unit}"
    return f"{nbytes:.0f} B"
