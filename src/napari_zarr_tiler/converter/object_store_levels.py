"""Writing a pyramid's levels into an object store (``s3://bucket/prefix``): the remote target.

Level arrays are created each in a store rooted at its own URL (``PREFIX/0``, ``PREFIX/1``...),
so zarr writes no parent group metadata: the root's metadata (``zarr.json`` with ``"ome"``, or
``.zattrs`` then ``.zgroup``) is written only once everything else is
(:func:`declare_remote_image`), and until then the prefix is no zarr store to any reader.
Everything a region task takes is a URL string, so dask workers on machines that share no disk
open the store from the URL and the ``AWS_*`` environment variables.

Resume: the journal is one small object per finished region under ``PREFIX/JOURNAL/`` (object
stores cannot append). Each entry lists the chunk objects the region stored with a checksum of
their ETag (a HEAD request each, no body transferred; S3 gives a new ETag to new content), so
verifying a journaled region on resume re-reads no pixels.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.group import GroupMetadata
from zarr.storage import ObjectStore

from ..errors import InvalidOptionError
from ..zarr_names import JOURNAL
from .backend import clear_chunks, use_codec_pipeline, write_all
from .regions import (
    LevelChecksums,
    LevelReader,
    Region,
    RegionOutcome,
    RegionTask,
    chunk_keys,
    level_blocks,
    value_ranges,
)
from .resume import Journal, refusal
from .write_target import WriteTarget

if TYPE_CHECKING:
    from .plan import ConversionPlan

__all__ = [
    "REMOTE_TARGET",
    "RemoteJournal",
    "RemoteLevelReader",
    "declare_remote_image",
    "raw_store",
]

#: Requests in flight at once when reading the journal or heading chunk objects.
_PARALLEL_REQUESTS = 16


#: The environment variables a store's client is configured from (part of its cache key).
_CLIENT_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "NAPARI_ZARR_TILER_TIMEOUT",
)

# zarrs rebuilds an obstore store in its own module and says so on every array it opens.
warnings.filterwarnings(
    "ignore", message="Successfully reconstructed a store", category=RuntimeWarning
)


def raw_store(url: str) -> Any:
    """The obstore store rooted at ``url`` (cached per process and configuration), with the
    reader's timeouts, retries and ``AWS_*`` configuration."""
    return _cached_store(url, tuple(os.environ.get(name) for name in _CLIENT_VARIABLES))


@functools.lru_cache(maxsize=256)
def _cached_store(url: str, _configuration: tuple[str | None, ...]) -> Any:
    from ..reader.remote import object_store

    return object_store(url)


def writable_store(url: str) -> ObjectStore:
    """A zarr store that writes the objects under ``url``.

    zarr's own ObjectStore, which the zarrs pipeline recognises and writes through in Rust (so
    the chunks are byte-identical to a local conversion's); the HEAD requests of the journal are
    blocking calls in the reader's I/O threads (:func:`_object_checksums`).
    """
    return ObjectStore(raw_store(url), read_only=False)


@functools.lru_cache(maxsize=64)
def open_remote_level(url: str, pipeline: str, run_id: str) -> Any:
    """A level array opened for writing in this process, cached for one conversion (``run_id``)."""
    with use_codec_pipeline(pipeline):
        return zarr.open_array(store=writable_store(url), mode="r+")


class RemoteLevelReader(LevelReader):
    """Read regions of a level already written (re-opened by URL in worker processes)."""

    opener = staticmethod(open_remote_level)


def _exists(url: str, key: str) -> bool:
    import obstore

    try:
        obstore.head(raw_store(url), key)
    except FileNotFoundError:
        return False
    return True


def create_remote_arrays(
    root: str,
    plan: ConversionPlan,
    codecs: list[Any] | None,
    axis_names: list[str] | None,
    *,
    reuse: bool,
) -> list[str]:
    """Create one array per level under ``root`` (an object-store URL), without the root's
    metadata (or, resuming, keep those already there); return the levels' URLs.

    Raises
    ------
    InvalidOptionError
        For the ``array`` layout, whose metadata would make the prefix look complete at once.
    """
    if plan.layout != "ome":
        msg = (
            f"{root}: a bare array (--layout array) cannot be written to an object store, where "
            "its metadata would make it look complete before its chunks are; use --layout ome"
        )
        raise InvalidOptionError(msg)
    kwargs: dict[str, Any] = {"compressors": codecs, "fill_value": 0}
    if plan.zarr_format == 3:
        if axis_names is not None:
            kwargs["dimension_names"] = axis_names
    else:
        kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    metadata = "zarr.json" if plan.zarr_format == 3 else ".zarray"
    urls = []
    for level, (shape, chunk, shard) in enumerate(
        zip(plan.level_shapes, plan.level_chunks, plan.level_shards, strict=True)
    ):
        url = f"{root}/{level}"
        if not (reuse and _exists(url, metadata)):
            zarr.create_array(
                writable_store(url),
                shape=shape,
                dtype=plan.dtype,
                chunks=chunk,
                shards=shard,
                zarr_format=plan.zarr_format,
                overwrite=True,
                **kwargs,
            )
        urls.append(url)
    return urls


def declare_remote_image(root: str, zarr_format: int, attributes: dict[str, Any]) -> None:
    """Write the root group's metadata, declaring the image: the last objects written.

    Format 2 writes ``.zattrs`` before ``.zgroup``, so no reader sees a group without its
    image.
    """
    import obstore

    documents = GroupMetadata(attributes=attributes, zarr_format=zarr_format).to_buffer_dict(  # type: ignore[arg-type]
        default_buffer_prototype()
    )
    for key in (".zattrs", ".zgroup", "zarr.json"):
        if key in documents:
            obstore.put(raw_store(root), key, documents[key].to_bytes())


def _version_checksum(meta: dict[str, Any]) -> int:
    """A checksum naming the stored version of an object: of its ETag (and size)."""
    tag = f"{meta.get('e_tag')}:{meta.get('size')}:{meta.get('version')}"
    return zlib.crc32(tag.encode())


def _object_checksums(url: str, keys: list[str]) -> dict[str, int | None]:
    """{key: checksum of the stored object's version, or None if absent} (HEAD requests)."""
    import obstore

    from ..reader.remote import io_pool

    store = raw_store(url)

    def one(key: str) -> int | None:
        try:
            return _version_checksum(obstore.head(store, key))
        except FileNotFoundError:
            return None

    # Blocking HEAD requests in the reader's I/O threads (see writable_store).
    return dict(zip(keys, io_pool().map(one, keys), strict=True))


def convert_remote_region(task: RegionTask, region: Region, clear: bool = False) -> RegionOutcome:
    """Read one region, write it and its downsampled versions as objects (see
    :func:`~.regions.convert_region`); the outcome lists the chunk objects' version checksums."""
    block = task.read(region)
    ranges = (
        value_ranges(block, region, task.channel_axis)
        if task.write_first and block.dtype.kind != "b"
        else None
    )
    urls, writes = [], []
    for url, written, level_block in level_blocks(
        block, task.level_paths, region, task.write_first, task.method, task.z_axes
    ):
        urls.append(url)
        writes.append((open_remote_level(url, task.pipeline, task.run_id), written, level_block))
    if clear:
        clear_chunks(writes)
    write_all(writes)
    sums: tuple[LevelChecksums, ...] | None = (
        tuple(
            (task.level_paths.index(url), _object_checksums(url, chunk_keys(array, written)))
            for url, (array, written, _) in zip(urls, writes, strict=True)
        )
        if task.checksums
        else None
    )
    return RegionOutcome([b.shape for _, _, b in writes], ranges, sums)


def verify_remote_region(task: RegionTask, region: Region, outcome: Any = None) -> bool:
    """Whether every chunk object a journaled region listed still holds the version it wrote
    (or is still absent); the region of an unpinned source (its entry has no checksums) is
    written again."""
    if outcome is None or outcome.checksums is None:
        return False
    for index, chunks in outcome.checksums:
        if not 0 <= index < len(task.level_paths):
            return False
        if _object_checksums(task.level_paths[index], list(chunks)) != chunks:
            return False
    return True


#: Writes levels as objects under an ``s3://`` prefix.
REMOTE_TARGET = WriteTarget(
    create_arrays=create_remote_arrays,
    convert_region=convert_remote_region,
    verify_region=verify_remote_region,
    level_reader=RemoteLevelReader,
)


def _parse_entry(raw: bytes) -> tuple[tuple[int, int], RegionOutcome] | None:
    """((pass, region), outcome) of one journal object, or None for one that cannot be used."""
    try:
        entry = json.loads(raw)
        ranges = entry["ranges"]
        sums = (
            None  # an unpinned source: the region is written again
            if entry["sums"] is None
            else tuple(
                (int(index), {str(k): None if v is None else int(v) for k, v in chunks.items()})
                for index, chunks in entry["sums"]
            )
        )
        outcome = RegionOutcome(
            shapes=[],
            value_ranges=None
            if ranges is None
            else {int(k): (float(v[0]), float(v[1])) for k, v in ranges.items()},
            checksums=sums,
        )
        return (int(entry["pass"]), int(entry["region"])), outcome
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None


class RemoteJournal(Journal):
    """The resume journal as objects: ``JOURNAL/header`` (the fingerprint), then one
    ``JOURNAL/PASS-REGION`` object per finished region.

    Raises
    ------
    InvalidOptionError
        When resuming a journal written with another fingerprint.
    """

    def __init__(self, root: str, fingerprint: dict[str, Any], *, resume: bool) -> None:
        import obstore

        self.root = root
        self.store = raw_store(root)
        self.done: dict[tuple[int, int], RegionOutcome] = {}
        header = json.dumps(fingerprint, sort_keys=True)
        try:
            stored = bytes(obstore.get(self.store, f"{JOURNAL}/header").bytes()).decode()
        except FileNotFoundError:
            stored = None
        self.resumed = resume and stored is not None
        if self.resumed:
            if stored != header:
                raise InvalidOptionError(refusal(root, stored or "", fingerprint))  # type: ignore[arg-type]
            self._load()
        else:
            obstore.put(self.store, f"{JOURNAL}/header", header.encode())

    def _load(self) -> None:
        """Read every region entry (in parallel); unusable ones are simply redone."""
        import obstore

        keys = [
            meta["path"]
            for batch in obstore.list(self.store, f"{JOURNAL}/", chunk_size=1000)
            for meta in batch
            if not meta["path"].endswith("/header")
        ]

        def fetch(key: str) -> bytes | None:
            try:
                return bytes(obstore.get(self.store, key).bytes())
            except FileNotFoundError:
                return None

        with ThreadPoolExecutor(_PARALLEL_REQUESTS) as pool:
            for raw in pool.map(fetch, keys):
                entry = None if raw is None else _parse_entry(raw)
                if entry is not None:
                    self.done[entry[0]] = entry[1]

    def record(self, pass_index: int, region_index: int, outcome: RegionOutcome) -> None:
        """Note a finished region (one small object; called from one thread only)."""
        import obstore

        entry = {
            "pass": pass_index,
            "region": region_index,
            "ranges": outcome.value_ranges,
            "sums": None if outcome.checksums is None else [list(c) for c in outcome.checksums],
        }
        obstore.put(
            self.store, f"{JOURNAL}/{pass_index}-{region_index}", json.dumps(entry).encode()
        )
        self.done[(pass_index, region_index)] = outcome

    def close(self) -> None:
        """Nothing to close: every entry is its own object."""

    def remove(self) -> None:
        """Delete the journal's objects."""
        from .object_store_staging import delete_keys, list_keys

        delete_keys(self.store, list_keys(self.store, f"{JOURNAL}/"))
