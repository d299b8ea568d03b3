"""What may be replaced or removed: the proof that a folder is only a zarr store.

An existing destination is replaced (with ``overwrite``) only if every entry in it, recursively,
is a zarr node, metadata file or chunk named as zarr names them, or one of this package's own
files: a folder holding anything else is never deleted. Folders this package made are removed
with the files that mark them deleted last, so a removal cut short is still recognised.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..zarr_names import (
    JOURNAL,
    MAX_METADATA_BYTES,
    METADATA_FILES,
    NODE_METADATA,
    STAGING_MARKER,
)

__all__ = ["is_zarr_store", "remove_marked", "store_refusal"]

#: Every metadata file a zarr node may hold.
_NODE_FILES = frozenset(METADATA_FILES)
#: Files of this package (or of the system) that a zarr store written here may hold.
_OWN_FILES = frozenset((STAGING_MARKER, JOURNAL, ".DS_Store"))

#: Chunk keys at the root of an array: v3 ``c`` / ``c.0.1`` / ``c/...``, v2 ``0.1`` / ``0/...``.
_ARRAY_FILE = re.compile(r"c|c(\.\d+)+|\d+(\.\d+)*")
_ARRAY_DIR = re.compile(r"c|\d+")
#: Below an array's first chunk folder: only chunk coordinates.
_CHUNK_FILE = re.compile(r"\d+(\.\d+)*")
_CHUNK_DIR = re.compile(r"\d+")


def _read_metadata(file: Path) -> dict | None:
    try:
        if file.is_symlink() or not file.is_file() or file.stat().st_size > MAX_METADATA_BYTES:
            return None
        document = json.loads(file.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _zarr_metadata(file: Path) -> bool:
    document = _read_metadata(file)
    if document is None:
        return False
    if file.name == "zarr.json":
        return document.get("zarr_format") == 3 and document.get("node_type") in ("array", "group")
    return document.get("zarr_format") == 2


def _node_kind(folder: Path) -> str | None:
    """``"array"`` or ``"group"`` for a folder holding valid zarr metadata, else None."""
    document = _read_metadata(folder / "zarr.json")
    if document is not None and document.get("zarr_format") == 3:
        kind = document.get("node_type")
        return kind if kind in ("array", "group") else None
    for name, kind in ((".zarray", "array"), (".zgroup", "group")):
        if _zarr_metadata(folder / name):
            return kind
    return None


def _not_a_node(folder: Path) -> str:
    """Why a folder in a group is refused, naming a file in it (what would have been lost)."""
    for root, _, files in os.walk(folder):
        if files:
            return f"{Path(root) / files[0]} is not a zarr file"
    return f"{folder} is a folder that is not a zarr node"


def _entry_refusal(entry: os.DirEntry[str], kind: str) -> tuple[str | None, str | None]:
    """(why ``entry`` of a node of ``kind`` is not part of a zarr store, or None; the kind of
    folder it is, to walk into)."""
    name = entry.name
    if entry.is_symlink():
        return f"{entry.path} is a link", None
    if entry.is_file(follow_symlinks=False):
        allowed = (
            name in _OWN_FILES
            or (kind != "chunks" and name in _NODE_FILES)
            or (kind == "array" and _ARRAY_FILE.fullmatch(name) is not None)
            or (kind == "chunks" and _CHUNK_FILE.fullmatch(name) is not None)
        )
        return (None if allowed else f"{entry.path} is not a zarr file"), None
    if not entry.is_dir(follow_symlinks=False):
        return f"{entry.path} is not a regular file or folder", None
    if kind == "group":
        sub = _node_kind(Path(entry.path))
        return (None, sub) if sub else (_not_a_node(Path(entry.path)), None)
    pattern = _ARRAY_DIR if kind == "array" else _CHUNK_DIR
    if pattern.fullmatch(name):
        return None, "chunks"
    return f"{entry.path} is not a zarr chunk folder", None


def store_refusal(path: Path) -> str | None:
    """Why ``path`` is not only a zarr store (naming the first offending entry), or None.

    Walks the whole tree, stopping at the first entry that is not a zarr node (a folder with
    valid metadata), metadata file, chunk file or chunk folder named as zarr names them, or
    one of this package's own files. Links and special files are refused.
    """
    if path.is_symlink() or not path.is_dir():
        return f"{path} is not a folder"
    if not any(_zarr_metadata(path / name) for name in NODE_METADATA):
        return f"{path} has no valid zarr metadata at its root"
    pending = [(path, _node_kind(path) or "group")]
    while pending:
        folder, kind = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as error:
            return f"{folder} cannot be read ({error.strerror or error})"
        for entry in entries:
            refusal, sub = _entry_refusal(entry, kind)
            if refusal is not None:
                return refusal
            if sub is not None:
                pending.append((Path(entry.path), sub))
    return None


def is_zarr_store(path: Path) -> bool:
    """Whether ``path`` is a folder that is only a zarr store, and so may be replaced.

    Its root must hold valid zarr metadata and every entry in it, recursively, must be a zarr
    node, metadata file or chunk (see :func:`store_refusal`): a folder of someone's files with
    a stray or broken ``zarr.json`` is not a store.
    """
    return store_refusal(path) is None


def remove_marked(folder: Path) -> OSError | None:
    """Delete a folder this package made or moved aside, bottom-up, with the files that mark
    each folder (our marker, zarr metadata) deleted after everything else in it: a removal cut
    short (by a kill or an error) still leaves a folder a later run recognises and removes.
    Returns the first error, or None."""
    try:
        entries = list(os.scandir(folder))
    except OSError as error:
        return error
    marks = [e for e in entries if e.name in _NODE_FILES or e.name == STAGING_MARKER]
    for entry in [e for e in entries if e not in marks] + marks:
        try:
            if entry.is_dir(follow_symlinks=False):
                failure = remove_marked(Path(entry.path))
                if failure is not None:
                    return failure
            else:
                os.unlink(entry.path)
        except OSError as error:
            return error
    try:
        folder.rmdir()
    except OSError as error:
        return error
    return None
