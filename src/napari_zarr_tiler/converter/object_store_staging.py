"""Safe object-store destinations: nothing can be renamed, so "complete" is written last.

A conversion to ``s3://bucket/prefix/NAME.zarr`` writes straight under that prefix. What makes
the local staging folder safe is kept with objects (:class:`ObjectStoreStaging`):

- *In progress*: a marker object (``PREFIX/`` + ``STAGING_MARKER``, "partial") is created first,
  with a conditional put (``If-None-Match: *``), so of two runs starting at once one gets it.
  It is also the lock: the run holding it rewrites it every third of a lease
  (:data:`LEASE_SECONDS`, ``NAPARI_ZARR_TILER_LEASE_SECONDS``) with ``If-Match`` on the version
  it wrote; another run refuses the prefix while the lease is live, and takes over a marker
  left by a killed run (older than the lease, by the server's ``Last-Modified``) or released by
  an interrupted one, again with ``If-Match``, so two takers cannot both win. A run that finds
  its marker taken over stops and never commits.
- *Complete*: the root metadata (``zarr.json`` with ``"ome"``) is written only once every chunk
  is, then the journal and the marker are deleted (the marker last). Until then no reader finds
  a zarr store at the prefix.
- *Replacing*: an existing store is replaced only with ``overwrite`` and only if every key under
  the prefix is zarr metadata, a chunk of an array, or this package's own (:func:`key_refusal`);
  object stores cannot keep the old store aside, so it is deleted (root metadata first) once
  the marker is held. A prefix holding anything else is never deleted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import DestinationError, DestinationExistsError
from ..zarr_names import (
    COMPLETE,
    JOURNAL,
    MAX_METADATA_BYTES,
    METADATA_FILES,
    NODE_METADATA,
    PARTIAL,
    STAGING_MARKER,
)
from .object_store_levels import raw_store
from .staging import StagingState

__all__ = ["LEASE_SECONDS", "ObjectStoreStaging", "delete_keys", "key_refusal", "list_keys"]

#: Seconds a run's marker stays its own without being rewritten.
LEASE_SECONDS = 60.0
#: Environment variable overriding :data:`LEASE_SECONDS`.
LEASE_VARIABLE = "NAPARI_ZARR_TILER_LEASE_SECONDS"
#: Chunk keys below an array node: v3 ``c``, ``c/0/1``, ``c.0.1``; v2 ``0.1``, ``0/1``.
_CHUNK_KEY = re.compile(r"c|c(/\d+)+|c(\.\d+)+|\d+(\.\d+)*|\d+(/\d+)*")
_NODE_DOCUMENTS = {"zarr.json": None, ".zarray": "array", ".zgroup": "group"}


def lease_seconds() -> float:
    """The lease, from :data:`LEASE_VARIABLE` or :data:`LEASE_SECONDS`."""
    try:
        return max(float(os.environ.get(LEASE_VARIABLE, LEASE_SECONDS)), 1.0)
    except ValueError:
        return LEASE_SECONDS


def list_keys(store: Any, prefix: str = "") -> list[str]:
    """Every key under ``prefix`` of an obstore store."""
    import obstore

    return [
        meta["path"]
        for batch in obstore.list(store, prefix or None, chunk_size=1000)
        for meta in batch
    ]


def delete_keys(store: Any, keys: list[str]) -> None:
    """Delete ``keys`` (in batches; keys already gone are fine)."""
    import obstore

    for start in range(0, len(keys), 1000):
        with contextlib.suppress(FileNotFoundError):
            obstore.delete(store, keys[start : start + 1000])


def _node_kind(store: Any, key: str) -> str | None:
    """``"array"`` or ``"group"`` for a valid node metadata object, else None."""
    import obstore

    try:
        answer = obstore.get(store, key)
        if answer.meta["size"] > MAX_METADATA_BYTES:
            return None
        document = json.loads(bytes(answer.bytes()))
    except (FileNotFoundError, ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    name = key.rsplit("/", 1)[-1]
    if name == "zarr.json":
        kind = document.get("node_type")
        return kind if document.get("zarr_format") == 3 and kind in ("array", "group") else None
    return _NODE_DOCUMENTS[name] if document.get("zarr_format") == 2 else None


def key_refusal(store: Any, keys: list[str], url: str) -> str | None:
    """Why the keys under a prefix are not only a zarr store (naming one), or None.

    Every key must be a metadata document of a node with valid metadata, a chunk key below an
    array node, or this package's marker or journal; the root must be a node.
    """
    nodes: dict[str, str] = {}
    for key in keys:
        name = key.rsplit("/", 1)[-1]
        if name in _NODE_DOCUMENTS:
            kind = _node_kind(store, key)
            if kind is None:
                return f"{url}/{key} is not valid zarr metadata"
            nodes[key.rpartition("/")[0]] = kind
    if "" not in nodes:
        return f"{url} has no valid zarr metadata at its root"
    for key in keys:
        parts = key.split("/")
        if _own(key):
            continue
        if parts[-1] in METADATA_FILES and "/".join(parts[:-1]) in nodes:
            continue
        owners = ("/".join(parts[:i]) for i in range(len(parts) - 1, -1, -1))
        array = next((o for o in owners if nodes.get(o) == "array"), None)
        rest = key[len(array) + 1 :] if array else key
        if array is None or not _CHUNK_KEY.fullmatch(rest):
            return f"{url}/{key} is not a zarr key"
    return None


def _own(key: str) -> bool:
    """Whether ``key`` is this package's marker or journal."""
    return key == STAGING_MARKER or key.split("/", 1)[0] == JOURNAL


def _partial_store_key(key: str) -> bool:
    """Whether ``key`` may belong to a partial store: ours, a metadata document, or a chunk
    key below some node (the nodes' own metadata may not be written yet)."""
    parts = key.split("/")
    if _own(key) or parts[-1] in METADATA_FILES:
        return True
    return any(_CHUNK_KEY.fullmatch("/".join(parts[i:])) for i in range(1, len(parts)))


def _declared(keys: list[str]) -> bool:
    """Whether the root metadata (written last) is there."""
    return any(key in NODE_METADATA for key in keys)


def _same_or_inside(one: str, other: str) -> bool:
    one, other = one.rstrip("/"), other.rstrip("/")
    return one == other or one.startswith(other + "/")


class ObjectStoreStaging:
    """The lifecycle of one conversion to an object-store prefix: check, lock, commit, abort.

    Parameters
    ----------
    url : str
        The destination, ``s3://bucket/prefix/NAME.zarr``.
    overwrite, resume : bool
        As for a local destination.
    source_urls : list of str
        URLs the source is read from; the destination may not overlap them.

    Raises
    ------
    DestinationError
        When the destination overlaps the source.
    """

    def __init__(
        self, url: str, *, overwrite: bool, resume: bool, source_urls: list[str] | None = None
    ) -> None:
        self.dest = url.rstrip("/")
        for source in source_urls or []:
            if _same_or_inside(self.dest, source) or _same_or_inside(source, self.dest):
                msg = f"{self.dest}: the destination overlaps the source {source}; choose another prefix"
                raise DestinationError(msg)
        self.overwrite, self.resume = overwrite, resume
        self.store = raw_store(self.dest)
        self.resuming = False
        self.state = StagingState.CHECKED
        self.owner = uuid.uuid4().hex
        #: Set when the marker was taken over by another run (this one must stop).
        self.lost = threading.Event()
        self._e_tag: str | None = None
        self._beating = threading.Event()
        self._beat: threading.Thread | None = None
        self._tag_lock = threading.Lock()

    @property
    def name(self) -> str:
        """The store's name (the prefix's last part)."""
        return self.dest.rsplit("/", 1)[-1]

    # -- the marker ------------------------------------------------------------------------------

    def _marker_body(self, state: str, *, released: bool = False) -> bytes:
        info = {"owner": self.owner, "lease": lease_seconds(), "released": released}
        return f"{state} conversion; safe to delete\n{json.dumps(info)}\n".encode()

    def _put_marker(self, state: str, *, released: bool = False, create: bool = False) -> None:
        """Write the marker: created only if absent, else only over the version this run wrote."""
        import obstore

        with self._tag_lock:
            mode: Any = "create" if create else {"e_tag": self._e_tag}
            result = obstore.put(
                self.store, STAGING_MARKER, self._marker_body(state, released=released), mode=mode
            )
            self._e_tag = result["e_tag"]

    def _read_marker(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(the marker's metadata, its lease info), or None when there is none."""
        import obstore

        try:
            answer = obstore.get(self.store, STAGING_MARKER)
            meta, raw = answer.meta, bytes(answer.bytes())
        except FileNotFoundError:
            return None
        try:
            info = json.loads(raw.split(b"\n", 1)[1])
            info = info if isinstance(info, dict) else {}
        except (IndexError, ValueError):
            info = {}
        info["state"] = COMPLETE if raw.startswith(COMPLETE.encode()) else PARTIAL
        return meta, info

    def _stale(self, meta: dict[str, Any], info: dict[str, Any]) -> bool:
        if info.get("released") is True:
            return True
        try:
            lease = float(info.get("lease", LEASE_SECONDS))
        except (TypeError, ValueError):
            lease = LEASE_SECONDS
        age = (dt.datetime.now(dt.timezone.utc) - meta["last_modified"]).total_seconds()
        return age > lease + 1.0  # Last-Modified has whole seconds

    def _busy(self, meta: dict[str, Any], info: dict[str, Any]) -> DestinationError:
        lease = info.get("lease", LEASE_SECONDS)
        return DestinationError(
            f"{self.dest}: another conversion to this prefix is running (its marker "
            f"{STAGING_MARKER} was renewed less than {lease:g} s ago); wait for it to finish, or "
            f"if it was killed, run again once its lease has expired"
        )

    def _take_over(self, meta: dict[str, Any], info: dict[str, Any]) -> None:
        """Take an abandoned or released marker (If-Match: only one taker wins)."""
        import obstore.exceptions as obx

        if not self._stale(meta, info):
            raise self._busy(meta, info)
        self._e_tag = meta["e_tag"]
        try:
            self._put_marker("partial")
        except obx.PreconditionError as error:
            raise self._busy(meta, info) from error

    # -- stage -----------------------------------------------------------------------------------

    def begin(self) -> str:
        """Check the prefix, take the marker (the lock), clear what must go; return the URL.

        Raises
        ------
        DestinationError
            When another run holds the prefix, it holds something that is not only a zarr
            store, or it holds a store and ``overwrite`` was not given.
        """
        self._expect(StagingState.CHECKED)
        keys = list_keys(self.store)
        marker = self._read_marker() if STAGING_MARKER in keys else None
        if marker is not None and marker[1]["state"] == COMPLETE and _declared(keys):
            self._take_over(*marker)  # a commit cut short after its root metadata: tidy it
            self._tidy()
            keys, marker = [k for k in keys if not _own(k)], None
        if marker is not None:
            self._refuse_foreign_keys(keys)  # never delete what a user added beside a partial run
            self._take_over(*marker)
            journal = any(k.startswith(f"{JOURNAL}/") for k in keys)
            self.resuming = self.resume and journal
            if not self.resuming:
                self._clear([k for k in keys if k != STAGING_MARKER])
        elif keys:
            self._check_replaceable(keys)
            self._create_marker()
            self._clear(keys)
        else:
            self._create_marker()
        self.state = StagingState.STAGED
        self._start_heartbeat()
        return self.dest

    def _create_marker(self) -> None:
        import obstore.exceptions as obx

        try:
            self._put_marker("partial", create=True)
        except obx.AlreadyExistsError as error:
            marker = self._read_marker()
            raise self._busy(*(marker or ({}, {}))) from error

    def _refuse_foreign_keys(self, keys: list[str]) -> None:
        """Refuse a partial run's prefix that also holds objects no conversion writes."""
        foreign = next((key for key in keys if not _partial_store_key(key)), None)
        if foreign is not None:
            msg = (
                f"{self.dest} holds an interrupted conversion and also {self.dest}/{foreign}, "
                "which no conversion writes; nothing was deleted: move it away or choose "
                "another prefix"
            )
            raise DestinationError(msg)

    def _check_replaceable(self, keys: list[str]) -> None:
        refusal = key_refusal(self.store, keys, self.dest)
        if not self.overwrite:
            if self.resume and refusal is None:
                msg = (
                    f"{self.dest} is already complete: there is no interrupted conversion to "
                    "resume (to convert again, allow overwriting: --overwrite, or "
                    "overwrite=True in Python)"
                )
                raise DestinationExistsError(msg, self.dest)
            msg = (
                f"{self.dest} already exists; choose another name or allow overwriting "
                "(--overwrite, or overwrite=True in Python)"
            )
            raise DestinationExistsError(msg, self.dest)
        if refusal is not None:
            msg = (
                f"{self.dest} holds objects that are not a zarr store; nothing was deleted, "
                f"choose another prefix ({refusal})"
            )
            raise DestinationError(msg)

    def _clear(self, keys: list[str]) -> None:
        """Delete the keys of an old store or partial run: root metadata first, so it stops
        looking complete at once."""
        roots = [k for k in keys if k in METADATA_FILES]
        delete_keys(self.store, roots)
        delete_keys(self.store, [k for k in keys if k not in roots])

    # -- the lease -------------------------------------------------------------------------------

    def _start_heartbeat(self) -> None:
        self._beating.set()
        self._beat = threading.Thread(target=self._heartbeat, name="zarr-tiler-lease", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        """Renew the marker every third of the lease; a lost marker stops the run."""
        import obstore.exceptions as obx

        interval = lease_seconds() / 3
        last = time.monotonic()
        while self._beating.is_set():
            time.sleep(min(interval, 0.2))
            if not self._beating.is_set() or time.monotonic() - last < interval:
                continue
            try:
                self._put_marker("partial")
                last = time.monotonic()
            except obx.PreconditionError:
                self.lost.set()
                return
            except Exception:  # a network hiccup: try again; past the lease, it is lost
                if time.monotonic() - last > lease_seconds():
                    self.lost.set()
                    return

    def _stop_heartbeat(self) -> None:
        self._beating.clear()
        if self._beat is not None:
            self._beat.join()
            self._beat = None

    def cancelled(self) -> bool:
        """Whether this run must stop because another took its marker over."""
        return self.lost.is_set()

    # -- a whole run ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self, *, settle: Callable[[], None] = lambda: None) -> Iterator[str]:
        """Stage (:meth:`begin`), yield the URL to write into, end the run whatever happens:
        the block ends with :meth:`commit`; on failure writes in flight finish (``settle``),
        then a fresh run's objects are deleted and a resumed (or interrupted) run's kept."""
        url = self.begin()
        try:
            yield url
        except KeyboardInterrupt:
            settle()
            self.release()
            raise
        except BaseException:
            settle()
            self.abort(keep=self.resume)
            raise
        finally:
            self.release()

    def commit(self, declare: Callable[[], None]) -> str:
        """Mark the run complete, write the root metadata (``declare``), then delete the
        journal and, last, the marker.

        Raises
        ------
        DestinationError
            When another run took the marker over (nothing is declared).
        """
        import obstore.exceptions as obx

        self._expect(StagingState.STAGED)
        self._stop_heartbeat()
        msg = f"{self.dest}: another run took this conversion over; nothing was declared"
        if self.lost.is_set():
            raise DestinationError(msg)
        try:
            self._put_marker("complete")
        except obx.PreconditionError as error:
            raise DestinationError(msg) from error
        self.state = StagingState.COMPLETE
        declare()
        self._tidy()
        self.state = StagingState.COMMITTED
        return self.dest

    def _tidy(self) -> None:
        """Delete the journal, then the marker: the store is complete."""
        delete_keys(self.store, list_keys(self.store, f"{JOURNAL}/"))
        delete_keys(self.store, [STAGING_MARKER])
        self._e_tag = None

    def abort(self, *, keep: bool) -> None:
        """End a failed run: delete its objects (marker last), or keep them for resume."""
        if self.state is not StagingState.STAGED:
            return
        self._stop_heartbeat()
        self.state = StagingState.ABORTED
        if keep or self.lost.is_set():
            return
        try:
            delete_keys(self.store, [k for k in list_keys(self.store) if k != STAGING_MARKER])
            delete_keys(self.store, [STAGING_MARKER])
        except Exception:  # the failure being handled is the one to report
            return  # still marked partial: the next run to this prefix replaces it
        self._e_tag = None

    def release(self) -> None:
        """Stop renewing the marker; a kept partial store's marker says "released", so the
        next run (``--resume``) may take it at once."""
        self._stop_heartbeat()
        if self._e_tag is None or self.state in (StagingState.COMMITTED, StagingState.CHECKED):
            return
        if self.lost.is_set():
            return
        with contextlib.suppress(Exception):
            self._put_marker("partial", released=True)
        self._e_tag = None

    def _expect(self, *states: StagingState) -> None:
        if self.state not in states:
            msg = f"staging of {self.dest} is {self.state.value}, not {states[0].value}"
            raise RuntimeError(msg)
