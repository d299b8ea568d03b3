"""Command line: ``napari-zarr-tiler convert SRC DST`` and ``napari-zarr-tiler info STORE``.

A third adapter over the same engine as the napari widget and writer. Errors are one line on
stderr with a non-zero exit status (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from .converter import (
    COMPRESSORS,
    Progress,
    compressor_codecs,
    convert,
    parse_levels,
    parse_shape,
    plan_conversion,
)
from .converter.object_store_target import check_url_arguments
from .converter.ome_metadata import resolve_versions, valid_ome_axes
from .converter.option_text import parse_axes, parse_scale
from .converter.zipped import staging_folder
from .errors import ConversionCancelled, InvalidOptionError, ZarrTilerError
from .reader import describe_store
from .sources import SourceSpec, SourceWarning, is_url

PROG = "napari-zarr-tiler"


def _argument_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from a parser of option text (its ValueError becomes a usage error)."""

    def convert_text(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from error

    return convert_text


_shape = _argument_type(lambda text: parse_shape(text, name="a shape"))
_levels = _argument_type(parse_levels)
_axes = _argument_type(parse_axes)
_scale = _argument_type(parse_scale)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (options spelled as the engine's, with dashes)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Convert images into tiled, compressed OME-Zarr pyramids, and inspect zarr stores.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    _add_convert_command(commands)
    _add_info_command(commands)
    return parser


def _add_convert_command(commands: Any) -> None:
    """The ``convert`` command and its options (spelled as the engine's, with dashes)."""
    conv = commands.add_parser(
        "convert",
        help="convert a TIFF, Zeiss CZI, zarr store or .npy file into an OME-Zarr pyramid",
        description=(
            "Stream SRC into a chunked, compressed OME-Zarr pyramid at DST, region by region. "
            "SRC: a TIFF (any layout tifffile reads, OME-TIFF included), a Zeiss .czi file "
            "(needs the czi extra), a zarr store (a folder, or an http(s):// or s3:// URL), a "
            ".npy file, or a built-in sample (sample:slide_uint8, sample:slide_uint16). DST: a "
            "folder, a .ozx file, or an s3://bucket/prefix/NAME.zarr URL (AWS_* variables)."
        ),
    )
    _add_source_arguments(conv)
    _add_format_arguments(conv)
    _add_layout_arguments(conv)
    _add_run_arguments(conv)


def _add_source_arguments(conv: argparse.ArgumentParser) -> None:
    """Where to read and write: SRC, DST and which series of SRC."""
    conv.add_argument("src", metavar="SRC")
    conv.add_argument("dst", metavar="DST")
    conv.add_argument(
        "--series",
        type=int,
        default=0,
        help="which image series of a TIFF, or scene of a CZI (default 0)",
    )
    conv.add_argument(
        "--axes",
        type=_axes,
        default=None,
        help="SRC's axis names, e.g. zyx or c,z,y,x (t, c, z, y, x in that order; default: "
        "SRC's own, else guessed); naming z lets --downsample-z auto halve it",
    )
    conv.add_argument(
        "--scale",
        type=_scale,
        default=None,
        help="physical pixel size per axis, e.g. 2,0.5,0.5 (default: SRC's own, else 1)",
    )


def _add_format_arguments(conv: argparse.ArgumentParser) -> None:
    """How the arrays are stored: chunks, codec, zarr format and OME-Zarr version, shards."""
    conv.add_argument(
        "--chunks",
        type=_shape,
        default=512,
        help="chunk side, or a comma-separated shape (default 512)",
    )
    conv.add_argument(
        "--compressor", choices=COMPRESSORS, default="zstd", help="codec (default zstd)"
    )
    conv.add_argument(
        "--clevel", type=int, default=None, help="compression level (default: the codec's)"
    )
    conv.add_argument(
        "--zarr-format",
        type=int,
        choices=(2, 3),
        default=None,
        help="3: OME-Zarr 0.5 or 0.6, 2: 0.4 (default: as --ome-version needs, else 3)",
    )
    conv.add_argument(
        "--ome-version",
        choices=("0.4", "0.5", "0.6"),
        default=None,
        help="OME-Zarr version to write (default 0.5; 0.4 is zarr format 2). "
        "A DST ending in .ozx is written as one zip file (RFC-9; 0.5 or 0.6)",
    )
    conv.add_argument(
        "--shards",
        type=_shape,
        default=None,
        help="shard side or shape, a multiple of the chunks (zarr 3)",
    )


def _add_layout_arguments(conv: argparse.ArgumentParser) -> None:
    """What is written: the pyramid's levels, an image or a bare array, an image or labels."""
    conv.add_argument(
        "--levels", type=_levels, default="auto", help="'auto' (default) or the number of levels"
    )
    conv.add_argument(
        "--downsample-z",
        choices=("auto", "always", "never"),
        default=None,
        help="halve the z axis of volumes too: auto (default) once its spacing is not larger than "
        "y/x's (only a z axis SRC's metadata names: a .npy file or a plain multi-page TIFF names "
        "none), always, or never",
    )
    conv.add_argument(
        "--layout",
        choices=("ome", "array"),
        default="ome",
        help="OME-Zarr image (default) or one bare array",
    )
    conv.add_argument(
        "--label",
        action="store_true",
        help="SRC is a segmentation: write a label image (nearest-neighbour levels); with DST "
        "IMAGE.zarr/labels/NAME it is added to that OME-Zarr image, shaped as its levels",
    )


def _add_run_arguments(conv: argparse.ArgumentParser) -> None:
    """How the conversion runs: overwrite, scheduler, resume, direct I/O, output to the terminal."""
    conv.add_argument(
        "--overwrite", action="store_true", help="replace an existing zarr store at DST"
    )
    conv.add_argument(
        "--scheduler",
        default=None,
        help="'local' for a dask LocalCluster of processes, or a dask scheduler address "
        "(default: threads, the fastest on one machine: 'local' measured 4-5x slower; a "
        "cluster pays off when its workers run on other machines)",
    )
    conv.add_argument(
        "--resume", action="store_true", help="continue an interrupted conversion to DST"
    )
    conv.add_argument(
        "--direct-io",
        choices=("auto", "on", "off"),
        default="auto",
        help="write chunks past the page cache (O_DIRECT); auto: for outputs larger than a "
        "quarter of the available memory (default: auto)",
    )
    conv.add_argument("--quiet", action="store_true", help="no progress bar")
    conv.add_argument("--debug", action="store_true", help="show tracebacks")


def _add_info_command(commands: Any) -> None:
    """The ``info`` command."""
    info = commands.add_parser(
        "info",
        help="describe what a zarr store holds",
        description=(
            "Describe the zarr store STORE: its images (or bare arrays), their axes, physical "
            "scale and channels, and for each level the shape, dtype, chunks, shards, codecs, "
            "bytes on disk and compression ratio. Reads metadata only, no pixels. "
            "For a .czi file: its channels, pixel size and scenes (for convert --series)."
        ),
    )
    info.add_argument("store", metavar="STORE")
    info.add_argument("--debug", action="store_true", help="show tracebacks")


class ProgressBar:
    """A one-line progress bar on a terminal: tiles done of total, MB/s, ETA."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.last = 0.0

    def __call__(self, event: Progress) -> None:
        now = time.monotonic()
        if now - self.last < 0.2 and event.tiles_done < event.tiles_total:
            return
        self.last = now
        width = 30
        filled = round(width * event.fraction)
        remaining = event.elapsed / event.fraction - event.elapsed if event.fraction > 0 else 0
        eta = time.strftime("%H:%M:%S", time.gmtime(remaining))
        self.stream.write(
            f"\r{event.fraction:4.0%} |{'█' * filled}{' ' * (width - filled)}| "
            f"{event.tiles_done:,}/{event.tiles_total:,} tiles  {event.megabytes_per_second:,.0f} MB/s  ETA {eta} "
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def check_options(args: argparse.Namespace) -> None:
    """Check the option values that do not depend on the image, before the source is opened.

    The engine checks them again against the image (chunks per axis, levels of a pyramid);
    here a typo is reported at once, without waiting for a large source to open.

    Raises
    ------
    InvalidOptionError
        For a URL that cannot be read (SRC) or written (DST), or an option value out of range
        or inconsistent with another option.
    """
    check_url_arguments(args.src, args.dst)  # http(s)/s3 sources, s3 destinations
    if args.series < 0:
        msg = f"--series must be 0 or more, got {args.series}"
        raise InvalidOptionError(msg)
    if args.axes is not None and not valid_ome_axes(args.axes):
        msg = (
            f"--axes must be distinct names from t, c, z, y, x in that order, ending with y, x; "
            f"got {','.join(args.axes)}"
        )
        raise InvalidOptionError(msg)
    if args.axes is not None and args.scale is not None and len(args.axes) != len(args.scale):
        msg = f"--scale has {len(args.scale)} values but --axes names {len(args.axes)} axes"
        raise InvalidOptionError(msg)
    _, zarr_format = resolve_versions(args.ome_version, args.zarr_format)
    compressor_codecs(args.compressor, args.clevel, zarr_format=zarr_format, itemsize=2)
    # The options' own consistency, on an image as large as any: as many axes as they name.
    ndim = max(
        [len(value) for value in (args.chunks, args.shards) if isinstance(value, tuple)] or [2]
    )
    if 2 <= ndim <= 5:
        plan_conversion(
            (1 << 20,) * ndim,
            "uint16",
            chunks=args.chunks,
            shards=args.shards,
            levels=args.levels,
            zarr_format=zarr_format,
            layout=args.layout,
        )


def _open_source(args: argparse.Namespace) -> tuple[SourceSpec, Any]:
    """Open SRC (its warnings shown as one line each)."""
    # Absolute, so that dask workers and a later --resume from elsewhere name the same file.
    local = not (args.src.startswith("sample:") or is_url(args.src))
    src = str(Path(args.src).absolute()) if local else args.src
    spec = SourceSpec(src, series=args.series)
    with warnings.catch_warnings():
        warnings.simplefilter("always", SourceWarning)  # each axis and file named once
        source = spec.opened
    return spec, source


def _convert(args: argparse.Namespace) -> int:
    check_options(args)
    spec, source = _open_source(args)
    try:
        options: dict[str, Any] = dict(source.options)
        if args.label:
            options["label"] = True
        for name in ("downsample_z", "axes", "scale"):  # the user's choice over SRC's
            if getattr(args, name) is not None:
                options[name] = getattr(args, name)
        show = not args.quiet and sys.stderr.isatty()
        bar = ProgressBar(sys.stderr) if show else None
        if not args.quiet:
            print(f"{PROG}: {source.description}", file=sys.stderr)
        try:
            result = convert(
                spec,
                args.dst,
                chunks=args.chunks,
                compressor=args.compressor,
                clevel=args.clevel,
                zarr_format=args.zarr_format,
                ome_version=args.ome_version,
                shards=args.shards,
                levels=args.levels,
                layout=args.layout,
                overwrite=args.overwrite,
                scheduler=args.scheduler,
                resume=args.resume,
                direct_io={"auto": None, "on": True, "off": False}[args.direct_io],
                progress=bar,
                **options,
            )
        finally:
            if bar is not None:
                bar.close()
    finally:
        source.close()
    if not args.quiet:
        resumed = result.resumed_regions
        if args.resume:
            print(
                f"{PROG}: resumed: {resumed:,} regions of the interrupted run were kept"
                if resumed is not None
                else f"{PROG}: there was no interrupted conversion to resume; converted from the start",
                file=sys.stderr,
            )
        rate = result.plan.nbytes / 1e6 / result.seconds if result.seconds else 0
        direct = ", direct I/O" if result.direct_io else ""
        print(
            f"{PROG}: wrote {result.path}: {result.plan.describe()} in {result.seconds:.1f} s "
            f"({rate:,.0f} MB/s{direct})",
            file=sys.stderr,
        )
    return 0


def _info(args: argparse.Namespace) -> int:
    if Path(args.store).suffix.lower() == ".czi":
        from .sources.czi import describe_czi

        print(describe_czi(args.store))
        return 0
    print(describe_store(args.store))
    return 0


def _one_line(text: str) -> str:
    """``text`` on one line, nothing lost: line breaks (in a path, say) shown as ``\\n``."""
    return "\\n".join(text.strip().splitlines())


def _message(error: BaseException) -> str:
    text = _one_line(str(error)) if str(error).strip() else type(error).__name__
    return text if isinstance(error, ZarrTilerError) else f"{type(error).__name__}: {text}"


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Warnings as one line each on stderr, like errors (not Python's two-line format)."""
    print(f"{PROG}: warning: {_one_line(str(message))}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """Run one parsed command, turning every failure into one line and an exit status."""
    try:
        return _convert(args) if args.command == "convert" else _info(args)
    except KeyboardInterrupt:
        if args.command == "convert":
            partial = (
                args.dst
                if is_url(args.dst)
                else staging_folder(Path(args.dst).expanduser().absolute())
            )
            print(
                f"\n{PROG}: interrupted; the partial store is kept at {partial}. "
                f"Run the same command with --resume to continue.",
                file=sys.stderr,
            )
        return 130
    except ConversionCancelled as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 130
    except Exception as error:  # one line for people, the traceback with --debug
        if args.debug:
            raise
        print(f"{PROG}: error: {_message(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
