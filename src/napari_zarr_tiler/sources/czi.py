"""Zeiss CZI files as sources: one scene of a mosaic, read rectangle by rectangle with pylibCZIrw.

pylibCZIrw (Zeiss's libCZI) composes any rectangle of a plane from the sub-blocks that cover it,
decoding only those: a region read by the converter costs its own tiles, whatever the file's
size. :class:`CziArray` exposes one scene as a lazy array ``(t?, c, z?, y, x)`` (``t`` and ``z``
only when the file has more than one; RGB files as ``(..., y, x, 3)``), where areas of the
scene's bounding box that no tile covers read as 0. Scenes are numbered 0, 1, ... in the order of
their CZI scene index; ``--series N`` picks one, scene 0 by default (see :func:`describe_czi`).

A dimension's indices need not start at 0 (a z-stack written as Z=1, Z=2): each dimension's first
index is read from the sub-block directory (pylibCZIrw's bounding box reports a start of 0), and
index ``i`` along an axis of the array reads the plane ``start + i``.

A scene keeps its place: ``translate`` (y, x, in micrometer) is its top-left pixel in the file's
pixel coordinates (those of its sub-blocks, as libCZI and :func:`describe_czi` report them) times
the pixel size, so scenes converted separately keep their relative positions. It is absolute (not
rebased on the file's bounding box), and not the stage position of the XML metadata.

pylibCZIrw is an optional dependency (the ``czi`` extra), imported only when a CZI is opened.
"""

from __future__ import annotations

import itertools
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..basic_indexing import basic_index
from ..errors import SourceError
from .czi_metadata import CziCalibration, parse_czi_metadata
from .spec import OpenSource
from .tiff_metadata import SourceWarning

#: How to get pylibCZIrw, named when it is missing.
INSTALL_HINT = 'pip install pylibCZIrw (the "czi" extra: pip install ".[czi]" in a clone)'

#: Sub-block compressions libCZI decodes (the others, JPEG and LZW included, it cannot).
DECODABLE = {0: "uncompressed", 4: "JPEG-XR", 5: "zstd", 6: "zstd (hi/lo packed)"}
COMPRESSION_NAMES = {1: "JPEG", 2: "LZW", 100: "camera-specific", 1000: "system raw"}

#: Largest sub-block decoded: libCZI decodes a sub-block whole for any pixel of it.
MAX_SUBBLOCK_BYTES = 256 << 20

#: dtype and samples per pixel of each CZI pixel type.
PIXEL_TYPES: dict[str, tuple[str, int]] = {
    "Gray8": ("uint8", 1),
    "Gray16": ("uint16", 1),
    "Gray32Float": ("float32", 1),
    "Bgr24": ("uint8", 3),
    "Bgr48": ("uint16", 3),
    "Bgr96Float": ("float32", 3),
}
_GRAY_BY_RANK = ("Gray8", "Gray16", "Gray32Float")

#: CZI dimensions other than T, C, Z (and S, the scenes): only their first index is converted.
_OTHER_DIMENSIONS = "RIHVB"


@dataclass(frozen=True)
class Scene:
    """One scene of a CZI: its position in the file's list, CZI index, name and rectangle."""

    number: int
    index: int | None  # None: a file without scenes (the whole bounding box)
    name: str
    rect: tuple[int, int, int, int]  # x, y, width, height in the file's pixel coordinates


@dataclass(frozen=True)
class CziLayout:
    """How a scene is exposed as an array: the plane sizes, pixel type and axes."""

    sizes: dict[str, int]  # "T", "C", "Z"
    pixel_type: str
    fold_rgb: bool  # RGB samples folded into the channel axis (several channels, or RGB over t)
    starts: dict[str, int] = field(default_factory=dict)  # first index per dimension (else 0)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(PIXEL_TYPES[self.pixel_type][0])

    @property
    def samples(self) -> int:
        return PIXEL_TYPES[self.pixel_type][1]

    @property
    def rgb(self) -> bool:
        """Samples kept as a last axis (shown as RGB)."""
        return self.samples == 3 and not self.fold_rgb

    def axes(self) -> tuple[str, ...]:
        """The axes of the array, in OME order (the RGB sample axis not named)."""
        names = ["t"] if self.sizes["T"] > 1 else []
        names += [] if self.rgb else ["c"]
        names += ["z"] if self.sizes["Z"] > 1 else []
        return (*names, "y", "x")


def _import_pylibczirw() -> Any:
    """pylibCZIrw's ``czi`` module, or a SourceError naming the extra that installs it."""
    try:
        from pylibCZIrw import czi as pyczi
    except ImportError as error:
        msg = f"reading CZI files needs the pylibCZIrw package: {INSTALL_HINT}"
        raise SourceError(msg) from error
    return pyczi


def _open_reader(path: Path) -> Any:
    """A pylibCZIrw reader of ``path``, or a SourceError with libCZI's reason."""
    pyczi = _import_pylibczirw()
    try:
        return pyczi.CziReader(str(path))
    except (RuntimeError, OSError, ValueError) as error:
        reason = str(error).strip() or type(error).__name__
        kind = "not a CZI file" if "magic" in reason.lower() else "truncated or corrupt"
        msg = f"{path}: not a readable CZI file ({kind}: {reason}); not converted"
        raise SourceError(msg) from error


class CziArray:
    """One scene of a CZI file as a lazy array, each read composing only the tiles it needs.

    Supports basic indexing (integers and unit-step slices). Pickles without its reader: a dask
    worker opens the file again.

    Parameters
    ----------
    path : Path
        The CZI file.
    scene : Scene
        The scene (its rectangle and CZI index).
    layout : CziLayout
        Plane sizes, pixel type and axes.
    """

    def __init__(self, path: Path, scene: Scene, layout: CziLayout) -> None:
        self.filename = str(path)
        self.scene = scene
        self.layout = layout
        self.dtype = layout.dtype
        sizes = layout.sizes
        channels = sizes["C"] * (layout.samples if layout.fold_rgb else 1)
        lead = [sizes["T"]] if sizes["T"] > 1 else []
        lead += [] if layout.rgb else [channels]
        lead += [sizes["Z"]] if sizes["Z"] > 1 else []
        self._lead_axes = len(lead)
        height, width = scene.rect[3], scene.rect[2]
        self.shape: tuple[int, ...] = (*lead, height, width, *([3] if layout.rgb else []))
        self.ndim = len(self.shape)
        self._reader: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_reader"], state["_lock"] = None, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _czi(self) -> Any:
        with self._lock:
            if self._reader is None:
                self._reader = _open_reader(Path(self.filename))
            return self._reader

    def close(self) -> None:
        """Close the file (it is opened again on the next read)."""
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def __getitem__(self, key: Any) -> np.ndarray:
        starts, stops, squeeze = basic_index(key, self.shape)
        out = np.zeros([b - a for a, b in zip(starts, stops, strict=True)], dtype=self.dtype)
        if out.size:
            lead = [range(a, b) for a, b in zip(starts, stops, strict=True)][: self._lead_axes]
            y, x = self._lead_axes, self._lead_axes + 1
            roi = (
                self.scene.rect[0] + starts[x],
                self.scene.rect[1] + starts[y],
                stops[x] - starts[x],
                stops[y] - starts[y],
            )
            samples = slice(starts[-1], stops[-1]) if self.layout.rgb else None
            for position in itertools.product(*lead):
                plane, sample = self._plane(position)
                tile = self._read(roi, plane)
                where = tuple(p - s for p, s in zip(position, starts, strict=False))
                out[where] = tile[..., samples] if samples is not None else tile[..., sample or 0]
        return out.squeeze(axis=tuple(squeeze)) if squeeze else out

    def _plane(self, position: tuple[int, ...]) -> tuple[dict[str, int], int | None]:
        """The CZI plane of an index along the leading axes, and the RGB sample if folded."""
        sizes, values = self.layout.sizes, list(position)
        index = {"T": values.pop(0) if sizes["T"] > 1 else 0}
        sample = None
        if not self.layout.rgb:
            channel = values.pop(0)
            if self.layout.fold_rgb:
                channel, sample = divmod(channel, 3)
            index["C"] = channel
        else:
            index["C"] = 0
        index["Z"] = values.pop(0) if sizes["Z"] > 1 else 0
        starts = self.layout.starts
        plane = {d: starts[d] for d in _OTHER_DIMENSIONS if d in starts}  # their first index
        plane.update({d: starts.get(d, 0) + i for d, i in index.items()})
        return plane, sample

    def _read(self, roi: tuple[int, int, int, int], plane: dict[str, int]) -> np.ndarray:
        """One rectangle of one plane (y, x, samples), RGB samples in R, G, B order."""
        try:
            tile = self._czi().read(
                roi=roi,
                plane=plane,
                scene=self.scene.index,
                pixel_type=self.layout.pixel_type,
                background_pixel=(0.0, 0.0, 0.0),
            )
        except (RuntimeError, ValueError) as error:
            msg = (
                f"{self.filename}: libCZI cannot read the rectangle {roi} of plane {plane} "
                f"({str(error).strip() or type(error).__name__})"
            )
            raise OSError(msg) from error
        return tile[..., ::-1] if self.layout.samples == 3 else tile


def open_czi(path: Path, scene_number: int = 0) -> OpenSource:
    """Open one scene of a CZI file lazily, with its channels, pixel size, z and t.

    Parameters
    ----------
    path : Path
        The CZI file.
    scene_number : int
        The scene (0-based, in the order of the file's scene indices; ``--series``).

    Returns
    -------
    OpenSource
        The scene as a :class:`CziArray` with name, axes, RGB, scale, units, channel names and
        colours; it holds the file open until closed.

    Raises
    ------
    SourceError
        When pylibCZIrw is not installed, the file is not a readable CZI (truncated, corrupt, not
        a CZI), has no such scene, mixes colour and grey channels, or holds sub-blocks libCZI
        cannot decode (JPEG, LZW) or too large to decode one at a time.
    """
    reader = _open_reader(path)
    try:
        scenes, calibration, layout = _inspect(path, reader)
        scene = _choose_scene(path, scenes, scene_number)
        array = CziArray(path, scene, layout)
        array._reader = reader
        _probe(array)
    except SourceError:
        reader.close()
        raise
    except (RuntimeError, OSError, ValueError, KeyError) as error:
        reader.close()
        msg = f"{path}: the CZI is truncated or corrupt ({error}); not converted"
        raise SourceError(msg) from error
    _warn_other_dimensions(path, reader)
    options = _options(path, scene, len(scenes), layout, calibration)
    return OpenSource(array, options, _describe(path, array, scenes), [array])


def _inspect(path: Path, reader: Any) -> tuple[list[Scene], CziCalibration, CziLayout]:
    """The file's scenes, calibration and layout, its sub-blocks checked."""
    box = reader.total_bounding_box_no_pyramid
    sizes = {axis: box[axis][1] - box[axis][0] for axis in "TCZ"}
    calibration = parse_czi_metadata(reader.raw_metadata, where=str(path), channels=sizes["C"])
    directory = _read_directory(path, reader)
    pixel_type = _common_pixel_type(path, directory.pixel_types)
    fold = PIXEL_TYPES[pixel_type][1] == 3 and (sizes["C"] > 1 or (sizes["T"] > 1 >= sizes["Z"]))
    layout = CziLayout(sizes, pixel_type, fold, directory.starts)
    return _scenes(reader, calibration), calibration, layout


def _scenes(reader: Any, calibration: CziCalibration) -> list[Scene]:
    """The scenes in the order of their CZI index (one for a file without scenes)."""
    rectangles = reader.scenes_bounding_rectangle_no_pyramid
    if not rectangles:
        rect = reader.total_bounding_rectangle_no_pyramid
        return [Scene(0, None, "", (rect.x, rect.y, rect.w, rect.h))]
    return [
        Scene(number, index, calibration.scene_names.get(index, ""), (r.x, r.y, r.w, r.h))
        for number, (index, r) in enumerate(sorted(rectangles.items()))
    ]


def _choose_scene(path: Path, scenes: list[Scene], number: int) -> Scene:
    """Scene ``number``, or a SourceError listing the scenes the file holds."""
    if not 0 <= number < len(scenes):
        msg = (
            f"{path}: no scene {number} (--series); the CZI holds "
            f"{len(scenes)} scene(s): {'; '.join(_scene_text(s) for s in scenes)}"
        )
        raise SourceError(msg)
    return scenes[number]


def _common_pixel_type(path: Path, pixel_types: frozenset[str]) -> str:
    """The pixel type all channels are read as (the widest grey one), or a SourceError."""
    found = set(pixel_types)
    unknown = found - set(PIXEL_TYPES)
    if unknown or not found:
        msg = f"{path}: the CZI has pixel type(s) {sorted(unknown) or 'none'} that cannot be read"
        raise SourceError(msg)
    if len(found) == 1:
        return found.pop()
    if found <= set(_GRAY_BY_RANK):
        return max(found, key=_GRAY_BY_RANK.index)
    msg = (
        f"{path}: the CZI's channels mix colour and grey pixel types ({sorted(found)}); "
        "converting such files is not supported"
    )
    raise SourceError(msg)


@dataclass(frozen=True)
class SubBlockDirectory:
    """What the sub-block directory says: each dimension's first index, and the pixel types."""

    starts: dict[str, int]  # smallest index of each dimension a sub-block has
    pixel_types: frozenset[str]  # of all sub-blocks


def _read_directory(path: Path, reader: Any) -> SubBlockDirectory:
    """Read the sub-block directory, refusing sub-blocks libCZI cannot decode or too large ones.

    pylibCZIrw reports each dimension as starting at 0 and the pixel types of channels 0, 1, ...
    ("Invalid" for a channel 0 the file lacks): both are taken from here instead.
    """
    problems: dict[str, int] = {}
    starts: dict[str, int] = {}
    pixel_types: set[str] = set()

    def check(_index: int, info: Any) -> bool:
        coordinate = info.coordinate.to_dict()
        for dimension, value in coordinate.items():
            starts[dimension] = min(value, starts.get(dimension, value))
        pixel_types.add(info.pixelType.name)
        mode = int(info.compressionModeRaw)
        if mode not in DECODABLE:
            name = COMPRESSION_NAMES.get(mode, f"unknown compression {mode}")
            problems.setdefault(f"compressed as {name}", mode)
        kind = PIXEL_TYPES.get(info.pixelType.name)
        if kind is not None:
            size = info.physicalSize
            nbytes = size.w * size.h * np.dtype(kind[0]).itemsize * kind[1]
            if nbytes > MAX_SUBBLOCK_BYTES:
                problems.setdefault(f"of {nbytes / 2**20:,.0f} MiB", nbytes)
        return not problems  # stop at the first problem

    reader.enumerate_subblocks(check)
    if problems:
        what = next(iter(problems))
        msg = (
            f"{path}: the CZI holds sub-blocks {what}, which this converter cannot read (libCZI "
            f"decodes {', '.join(DECODABLE.values())} sub-blocks of at most "
            f"{MAX_SUBBLOCK_BYTES >> 20} MiB); re-save it in ZEN uncompressed or with zstd"
        )
        raise SourceError(msg)
    return SubBlockDirectory(starts, frozenset(pixel_types))


def _probe(array: CziArray) -> None:
    """Read one pixel of the scene, so that undecodable data are refused before converting."""
    if all(array.shape):
        array[(0,) * array.ndim]


def _warn_other_dimensions(path: Path, reader: Any) -> None:
    """Warn when the file has dimensions beyond T, C, Z (only their first index is read)."""
    box = reader.total_bounding_box_no_pyramid
    extra = [f"{d}={box[d][1] - box[d][0]}" for d in _OTHER_DIMENSIONS if d in box]
    extra = [e for e in extra if not e.endswith("=1")]
    if extra:
        warnings.warn(
            f"{path}: the CZI has dimensions {', '.join(extra)}; only their first index is converted",
            SourceWarning,
            stacklevel=3,
        )


def _options(
    path: Path, scene: Scene, scenes: int, layout: CziLayout, calibration: CziCalibration
) -> dict[str, Any]:
    """The converter's options: name, axes, RGB, scale, translate, units, channel names, colours."""
    axes = layout.axes()
    sizes = calibration.sizes
    name = path.name.split(".")[0]
    if scenes > 1:
        name = f"{name} {scene.name or f'scene {scene.number}'}"
    scale = tuple(sizes.get(a.upper(), 1.0) for a in axes)
    options: dict[str, Any] = {
        "name": name,
        "axes": axes,
        "rgb": layout.rgb,
        "scale": scale,
        "units": tuple("micrometer" if a.upper() in sizes else None for a in axes),
    }
    origin = {"x": scene.rect[0], "y": scene.rect[1]}
    if any(origin.values()):  # the scene's top-left pixel, in the file's pixel coordinates
        options["translate"] = tuple(
            origin.get(a, 0) * s for a, s in zip(axes, scale, strict=True)
        )
    if "c" in axes:
        names, colors = calibration.channel_names, calibration.channel_colors
        if layout.fold_rgb:
            names = [f"{n} {s}" for n in names for s in ("red", "green", "blue")]
            colors = [c for _ in range(layout.sizes["C"]) for c in ("FF0000", "00FF00", "0000FF")]
        if names:
            options["channel_names"] = tuple(names)
        if colors and all(colors):
            options["colors"] = tuple(colors)
    return options


def _scene_text(scene: Scene) -> str:
    """``0 "name" 2000 x 1000 px at (x, y)`` for messages and listings."""
    x, y, width, height = scene.rect
    name = f' "{scene.name}"' if scene.name else ""
    return f"{scene.number}{name} {width} x {height} px at ({x}, {y})"


def _describe(path: Path, array: CziArray, scenes: list[Scene]) -> str:
    """One line: the file, the scene converted, the shape, type, and the other scenes."""
    layout = array.layout
    which = (
        f"scene {array.scene.number} of {len(scenes)} (--series {array.scene.number})"
        if array.scene.index is not None
        else "one scene"
    )
    line = (
        f"{path.name}: CZI {which}, axes {''.join(layout.axes()).upper()}"
        f"{' RGB' if layout.rgb else ''}, {array.shape} {array.dtype} ({layout.pixel_type}), "
        "read tile by tile with libCZI"
    )
    if len(scenes) > 1:
        others = "; ".join(_scene_text(s) for s in scenes)
        line += f"; scenes: {others} (choose with --series N)"
    return line


def describe_czi(path: str | Path) -> str:
    """Describe a CZI file for ``napari-zarr-tiler info``: pixels, channels, scale and scenes.

    Parameters
    ----------
    path : str or Path
        The CZI file.

    Returns
    -------
    str
        Several lines: the image, its channels and pixel size, and each scene (scene 0 is the
        one converted by default; ``--series N`` picks another).

    Raises
    ------
    SourceError
        When the file cannot be read as a CZI.
    """
    path = Path(path)
    reader = _open_reader(path)
    try:
        scenes, calibration, layout = _inspect(path, reader)
    except (RuntimeError, OSError, ValueError, KeyError) as error:
        if isinstance(error, SourceError):
            raise
        msg = f"{path}: the CZI is truncated or corrupt ({error})"
        raise SourceError(msg) from error
    finally:
        reader.close()
    sizes = layout.sizes
    lines = [
        f"{path.name}: Zeiss CZI, {layout.pixel_type} ({layout.dtype}), "
        f"T={sizes['T']} C={sizes['C']} Z={sizes['Z']}",
        "  pixel size: "
        + (", ".join(f"{a} {s:g} micrometer" for a, s in calibration.sizes.items()) or "unknown"),
    ]
    if calibration.channel_names:
        lines.append(f"  channels: {', '.join(calibration.channel_names)}")
    lines.append(f"  {len(scenes)} scene(s) (--series N; scene 0 is converted by default):")
    lines.extend(f"    {_scene_text(scene)}" for scene in scenes)
    return "\n".join(lines)
