"""Converting into an object store: ``convert(src, "s3://bucket/prefix/out.zarr")``.

The engine hands a URL destination to :func:`convert_to_object_store`, which runs the same
steps as a local conversion with the object-store pieces: the lifecycle and lock of
:class:`~.object_store_staging.ObjectStoreStaging`, the levels, regions and journal of
:mod:`.object_store_levels`, and the engine's scheduler (threads or a dask cluster, whose
workers open the destination from its URL and the ``AWS_*`` variables: no shared disk needed).
The bytes of every chunk are those a local conversion writes.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import DestinationError, InvalidOptionError, RemoteStoreError
from ..reader.locate import url_scheme
from .backend import codec_pipeline_name, settle_writes
from .ome_metadata import ome_attributes
from .progress import CancelArg, Progress, cancelled
from .resume import build_fingerprint
from .scheduler import write_pyramid

if TYPE_CHECKING:
    from .engine import ConversionResult
    from .level_zero import LevelZero
    from .options import ConversionOptions

__all__ = [
    "OBJECT_STORE_SCHEMES",
    "check_url_arguments",
    "convert_to_object_store",
    "is_object_store_url",
]

#: URL schemes a conversion can write to.
OBJECT_STORE_SCHEMES = frozenset({"s3"})
#: URL schemes a conversion can read from (zarr stores, through the reader).
READABLE_SCHEMES = frozenset({"http", "https", "s3"})


def is_object_store_url(dest: str | os.PathLike[str]) -> bool:
    """Whether ``dest`` is an object-store URL a conversion writes to (``s3://``)."""
    return url_scheme(dest) in OBJECT_STORE_SCHEMES


def check_url_arguments(source: str, dest: str) -> None:
    """Refuse URLs a conversion cannot use, before anything is opened.

    Parameters
    ----------
    source, dest : str
        The command line's SRC and DST.

    Raises
    ------
    InvalidOptionError
        For a source URL that is not http(s) or s3, or a destination URL that is not s3.
    """
    scheme = url_scheme(source)
    if scheme is not None and scheme not in READABLE_SCHEMES:
        msg = f"{source}: only http://, https:// and s3:// URLs can be read; give a local path"
        raise InvalidOptionError(msg)
    scheme = url_scheme(dest)
    if scheme is not None and scheme not in OBJECT_STORE_SCHEMES:
        msg = f"{dest}: only s3:// URLs (or local folders) can be written to"
        raise InvalidOptionError(msg)


def _source_urls(level0: LevelZero) -> list[str]:
    path = getattr(level0.spec, "path", None)
    return [str(path)] if path is not None and url_scheme(str(path)) else []


def _with_lease(cancel: CancelArg, lost: Callable[[], bool]) -> Callable[[], bool]:
    """``cancel``, also set when the run lost its marker to another run."""
    return lambda: lost() or cancelled(cancel)


def _refuse_labels_into_an_image(dest: str, options: ConversionOptions) -> None:
    """Labels are not yet added to an image held in an object store (its ``labels`` list would
    not name them): refused before anything is written, rather than left as an orphan group."""
    if options.metadata.label and dest.rstrip("/").split("/")[-2:-1] == ["labels"]:
        msg = (
            f"{dest}: labels are not added to an image in an object store yet; write them "
            "into a local copy of the image (IMAGE.zarr/labels/NAME), or as a label image of "
            "their own under a prefix outside the image's labels/"
        )
        raise InvalidOptionError(msg)


def convert_to_object_store(
    dest: str,
    level0: LevelZero,
    options: ConversionOptions,
    *,
    started: float,
    progress: Callable[[Progress], None] | None,
    cancel: CancelArg,
    labels: Mapping[str, Any] | None = None,
) -> ConversionResult:
    """Write the pyramid under an ``s3://`` prefix, its root metadata last (see the module).

    Raises
    ------
    DestinationError
        When the prefix is in use, holds something that may not be replaced, or writing fails.
    InvalidOptionError
        For options an object store cannot hold (a bare array) or a resume with other options.
    """
    from .engine import ConversionResult
    from .object_store_levels import REMOTE_TARGET, RemoteJournal, declare_remote_image
    from .object_store_staging import ObjectStoreStaging

    if options.plan.layout != "ome":
        REMOTE_TARGET.create_arrays(dest, options.plan, None, None, reuse=False)  # raises
    _refuse_labels_into_an_image(dest, options)
    if labels:
        msg = f"{dest}: label images are not written to object stores yet; they were left out"
        warnings.warn(msg, UserWarning, stacklevel=3)
    staging = ObjectStoreStaging(
        dest, overwrite=options.overwrite, resume=options.resume, source_urls=_source_urls(level0)
    )
    plan, pipeline = options.plan, codec_pipeline_name()
    try:
        with staging.session(settle=settle_writes) as url:
            pin = level0.pin()
            fingerprint = build_fingerprint(
                level0.describe(),
                plan,
                codec=options.codec,
                pipeline=pipeline,
                method=options.method,
                pin=pin,
            )
            journal = RemoteJournal(url, fingerprint, resume=options.resume)
            kept = write_pyramid(
                url,  # type: ignore[arg-type]
                level0,
                options,
                pipeline=pipeline,
                journal=journal,
                progress=progress,
                cancel=_with_lease(cancel, staging.cancelled),
                target=REMOTE_TARGET,
                checksums=pin is not None,
            )
            name = options.name or staging.name.removesuffix(".zarr")
            attributes = ome_attributes(plan, journal.value_ranges(), options.metadata, name=name)
            staging.commit(lambda: declare_remote_image(url, plan.zarr_format, attributes))
    except _obstore_errors() as error:
        from ..reader.remote import failure_cause

        msg = f"{dest}: writing failed ({failure_cause(error)})"
        raise DestinationError(msg) from error
    except RemoteStoreError as error:
        raise DestinationError(str(error)) from error
    return ConversionResult(
        staging.dest,
        plan,
        time.perf_counter() - started,
        codec_pipeline=pipeline,
        resumed_regions=kept if staging.resuming else None,
    )


def _obstore_errors() -> type[BaseException]:
    import obstore.exceptions as obx

    return obx.BaseError
