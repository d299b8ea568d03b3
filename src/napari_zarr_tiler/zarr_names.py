"""The names a zarr store is made of, and the files this package adds, each spelled once.

Two questions about a folder have answers of different cost, and live apart on purpose:

- *Does it look like a zarr node?* :func:`has_node_metadata`, here: a few ``stat`` calls, used to
  recognise something to open (the npe2 reader, a CLI source).
- *Is it only a zarr store, so that replacing it loses nothing?*
  :func:`napari_zarr_tiler.converter.store_proof.store_refusal`: walks the whole tree and names the
  first entry that is not zarr's; only the converter's overwrite asks it.

And one about our own conversions: *is it an unfinished one?* :func:`is_partial_store` reads the
marker a conversion keeps in its staging folder (``.NAME.partial``) until the store is in place.
"""

from __future__ import annotations

from pathlib import Path

#: A folder holding one of these is a zarr node (format 3 array or group; format 2 group; array).
NODE_METADATA = ("zarr.json", ".zgroup", ".zarray")
#: Every metadata file a zarr node may hold (format 2 attributes and consolidated metadata too).
METADATA_FILES = (*NODE_METADATA, ".zattrs", ".zmetadata")
#: Metadata of a node that can hold others: the parent of a node inside a store holds one.
GROUP_METADATA = ("zarr.json", ".zgroup")
#: Largest metadata document read (OME-Zarr metadata is kilobytes).
MAX_METADATA_BYTES = 64 << 20

#: Marks a folder a conversion is writing: "partial", or "complete" once it may be moved into
#: place. It also carries the lock that keeps two conversions from one destination.
STAGING_MARKER = ".napari-zarr-tiler-partial"
#: The resume journal a conversion keeps beside its marker.
JOURNAL = ".napari-zarr-tiler-journal"
#: First word of the marker once the staging folder holds a complete store.
COMPLETE = "complete"
PARTIAL = "partial"


def has_node_metadata(folder: Path) -> bool:
    """Whether ``folder`` holds a zarr metadata file (cheap: it is not parsed)."""
    return any((folder / name).is_file() for name in METADATA_FILES)


def staging_path(dest: Path) -> Path:
    """The hidden folder a conversion to ``dest`` writes into."""
    return dest.parent / f".{dest.name}.partial"


def marker_state(folder: Path) -> str | None:
    """``"partial"`` or ``"complete"`` for a folder carrying this package's marker, else None."""
    marker = folder / STAGING_MARKER
    try:
        if marker.is_symlink() or not marker.is_file():
            return None
        with marker.open("rb") as file:
            head = file.read(64)
    except OSError:
        return PARTIAL  # a marker that cannot be read still marks an unfinished folder
    return COMPLETE if head.startswith(COMPLETE.encode()) else PARTIAL


def is_partial_store(folder: Path) -> bool:
    """Whether ``folder`` is an unfinished conversion (a reader must not take it for a store).

    A store committed in place that still carries a "complete" marker (its removal failed or
    was cut short) is finished.
    """
    state = marker_state(folder)
    staged = folder.name.startswith(".") and folder.name.endswith(".partial")
    return state == PARTIAL or (state == COMPLETE and staged)
