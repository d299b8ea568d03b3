"""Open a zarr store and the nodes inside it, read-only and safely, with a clear error each.

Every store is opened through :class:`~.contained_store.ContainedLocalStore` (only regular files
inside the store are read) with decompression bounded (:mod:`.bounded_codecs`); metadata files
are checked to be JSON objects of a bounded size before zarr parses them. Each problem becomes a
:class:`~napari_zarr_tiler.errors.StoreReadError` naming the path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import zarr
import zarr.errors

from ..errors import StoreReadError
from ..zarr_names import MAX_METADATA_BYTES, METADATA_FILES, is_partial_store
from .bounded_codecs import bounded_decoding
from .contained_store import OPEN_ERRORS, ContainedLocalStore, StoreFileRefused, read_inside
from .locate import find_zarr_node, is_remote_or_zipped


def open_zarr_node(path: str | os.PathLike[str]) -> tuple[Path, zarr.Array | zarr.Group]:
    """Open the zarr node ``path`` designates, read-only, with a clear error for each problem.

    Parameters
    ----------
    path : str or PathLike
        A store folder, a node folder inside one, or a metadata file in such a folder.

    Returns
    -------
    tuple of (Path, zarr.Array or zarr.Group)
        The node's folder and the node, opened through a :class:`ContainedLocalStore`.

    Raises
    ------
    StoreReadError
        For a missing path, a folder that is not zarr, an incomplete conversion, a folder that
        cannot be read, or corrupt metadata.
    """
    if is_remote_or_zipped(path):  # a URL or an .ozx file: a store of its own
        from .guarded_store import open_remote_or_zipped_node

        return open_remote_or_zipped_node(path)  # type: ignore[return-value]
    requested = Path(path)
    if not requested.exists():
        msg = f"{requested}: no such file or folder"
        raise StoreReadError(msg)
    node_dir = find_zarr_node(requested)
    if node_dir is None:
        msg = f"{requested}: not a zarr store (no zarr.json, .zgroup or .zarray found)"
        raise StoreReadError(msg)
    partial = next((p for p in (node_dir, *node_dir.parents) if is_partial_store(p)), None)
    if partial is not None:
        msg = (
            f"{partial}: an incomplete conversion (interrupted or still running), not a store; "
            "finish it with `napari-zarr-tiler convert ... --resume`"
        )
        raise StoreReadError(msg)
    if not os.access(node_dir, os.R_OK | os.X_OK):
        msg = f"{node_dir}: permission denied"
        raise StoreReadError(msg)
    return node_dir, _open_node(node_dir)


def _zarr_format(node_dir: Path) -> int:
    return 3 if (node_dir / "zarr.json").is_file() else 2


def _check_metadata_json(node_dir: Path) -> None:
    """Refuse metadata files that are not small regular files holding a JSON object."""
    for name in METADATA_FILES:
        file = node_dir / name
        if not os.path.lexists(file):
            continue
        try:
            raw = read_inside(node_dir, name, max_bytes=MAX_METADATA_BYTES)
            if raw is None:  # a dangling link, or a folder
                msg = "it is not a file"
                raise StoreFileRefused(msg)
            document = json.loads(raw)
        except StoreFileRefused as refusal:
            msg = f"{file}: not read, {refusal}"
            raise StoreReadError(msg) from refusal
        except PermissionError as error:
            msg = f"{file}: permission denied"
            raise StoreReadError(msg) from error
        except (OSError, UnicodeDecodeError, ValueError) as error:
            msg = f"{file}: corrupt or truncated metadata ({error})"
            raise StoreReadError(msg) from error
        if not isinstance(document, dict):
            msg = f"{file}: corrupt metadata (expected a JSON object)"
            raise StoreReadError(msg)


def _open_node(node_dir: Path) -> zarr.Array | zarr.Group:
    """Open the node in ``node_dir`` through a contained store, its metadata checked first."""
    _check_metadata_json(node_dir)
    try:
        store = ContainedLocalStore(node_dir)
        with bounded_decoding():
            return zarr.open(store=store, mode="r", zarr_format=_zarr_format(node_dir))
    except OPEN_ERRORS as error:
        msg = f"{node_dir}: cannot open as zarr ({type(error).__name__}: {error})"
        raise StoreReadError(msg) from error


def member(group: zarr.Group, path: str, *, where: Path) -> zarr.Array | zarr.Group:
    """Return the node at ``path`` in ``group``.

    Parameters
    ----------
    group : zarr.Group
        An open group.
    path : str
        The member's path inside ``group`` (already checked to stay inside it).
    where : Path
        The group's folder, named in errors.

    Returns
    -------
    zarr.Array or zarr.Group
        The member.

    Raises
    ------
    StoreReadError
        When the member is missing or cannot be opened.
    """
    try:
        with bounded_decoding():
            return group[path]
    except KeyError as error:
        msg = f"{where}: metadata names '{path}', which is missing from the store"
        raise StoreReadError(msg) from error
    except (ValueError, TypeError, OSError, zarr.errors.BaseZarrError) as error:
        msg = f"{where / path}: cannot open ({type(error).__name__}: {error})"
        raise StoreReadError(msg) from error


def member_array(group: zarr.Group, path: str, *, where: Path) -> zarr.Array:
    """Return the array at ``path`` in ``group``.

    Parameters
    ----------
    group : zarr.Group
        An open group.
    path : str
        The array's path inside ``group`` (already checked to stay inside it).
    where : Path
        The group's folder, named in errors.

    Returns
    -------
    zarr.Array
        The array.

    Raises
    ------
    StoreReadError
        When the member is missing, cannot be opened, or is a group.
    """
    node = member(group, path, where=where)
    if not isinstance(node, zarr.Array):
        msg = f"{where / path}: expected an array, found a group"
        raise StoreReadError(msg)
    return node


def member_group_unlisted(group: zarr.Group, path: str, *, where: Path) -> zarr.Group | None:
    """Return the group at ``path`` in ``group`` as stored now, or None when there is none.

    A group with a consolidated listing (ngff-zarr writes one at the root) answers from that
    listing, which misses members added after it was written (labels saved into an image
    later) and holds their old attributes: the member is then read from its own metadata.
    Without a listing this costs nothing more than ``path in group``.

    Parameters
    ----------
    group : zarr.Group
        An open group.
    path : str
        The member's path inside ``group`` (already checked to stay inside it).
    where : Path
        The group's folder, named in errors.

    Returns
    -------
    zarr.Group or None
        The member group, its attributes and members read from the store; None when the store
        holds no group there.

    Raises
    ------
    StoreReadError
        When the member exists but cannot be opened.
    """
    if group.metadata.consolidated_metadata is None:
        if path not in group:
            return None
        node = member(group, path, where=where)
        return node if isinstance(node, zarr.Group) else None
    full_path = f"{group.path}/{path}" if group.path else path
    try:
        with bounded_decoding():
            return zarr.open_group(
                store=group.store,
                path=full_path,
                mode="r",
                zarr_format=group.metadata.zarr_format,
                use_consolidated=False,
            )
    except (FileNotFoundError, KeyError, zarr.errors.NodeNotFoundError):
        return None
    except (ValueError, TypeError, OSError, zarr.errors.BaseZarrError) as error:
        msg = f"{where / path}: cannot open ({type(error).__name__}: {error})"
        raise StoreReadError(msg) from error
