"""Zarr stores behind a URL (``http://``, ``https://``, ``s3://``), read through obstore.

The client is zarr-python's :class:`zarr.storage.ObjectStore` over `obstore
<https://developmentseed.org/obstore/>`_: one Rust wheel with no Python dependencies, which
serves HTTP(S) and S3 alike (so S3 needs no extra), with timeouts and bounded retries built in,
and no botocore to conflict with other packages. Requests are obstore's blocking calls made in
a pool of Python threads (:class:`ThreadedObjectStore`), never its async functions: those hand
results back from Rust threads, which abort the process if it exits at that moment.

S3 credentials, region and endpoint come from the standard environment variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``); without credentials requests are
anonymous (public buckets).

Every request has a timeout (:data:`TIMEOUT_SECONDS` for a whole request,
:data:`CONNECT_TIMEOUT_SECONDS` to connect; ``NAPARI_ZARR_TILER_TIMEOUT`` overrides the first)
and at most :data:`MAX_RETRIES` retries. A whole-object read checks the size the server
announces before the body is transferred. Failures become one
:class:`~napari_zarr_tiler.errors.RemoteStoreError` line naming the URL and the cause (not
found, access denied, an HTML page instead of metadata, timed out, connection refused, unknown
host). The store is wrapped in :class:`~.guarded_store.GuardedStore` (keys inside the prefix,
bounded sizes, metadata documents fetched once).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import os
import re
import threading
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import ObjectStore

from ..errors import RemoteStoreError
from ..zarr_names import METADATA_FILES
from .contained_store import StoreFileRefused
from .guarded_store import GuardedStore, open_guarded_node, read_limit
from .locate import StoreLocation, url_scheme

#: Seconds a request may take in all (connecting, waiting, and transferring its body).
TIMEOUT_SECONDS = 60.0
#: Seconds to establish a connection.
CONNECT_TIMEOUT_SECONDS = 10.0
#: Retries of a failed request (5xx answers, dropped connections, timeouts).
MAX_RETRIES = 3
#: No retry starts this long after the first attempt.
RETRY_TIMEOUT_SECONDS = 30.0
#: Environment variable overriding :data:`TIMEOUT_SECONDS` (seconds).
TIMEOUT_VARIABLE = "NAPARI_ZARR_TILER_TIMEOUT"
#: Requests one process makes at once (threads of its request pool).
IO_THREADS = 32
_STATUS = re.compile(r"status code: (\d{3})")
_T = TypeVar("_T")
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _timeout() -> float:
    try:
        return max(float(os.environ.get(TIMEOUT_VARIABLE, TIMEOUT_SECONDS)), 0.1)
    except ValueError:
        return TIMEOUT_SECONDS


def failure_cause(error: BaseException, *, timeout: float | None = None) -> str:
    """Say in a few words why a request failed, from an obstore error.

    Parameters
    ----------
    error : BaseException
        What obstore raised.
    timeout : float or None
        The request timeout, named when the request timed out.

    Returns
    -------
    str
        ``"not found (HTTP 404)"``, ``"access denied (HTTP 403)"``, ``"timed out ..."``,
        ``"connection refused"``, ``"unknown host"``, or the error's first line.
    """
    import obstore.exceptions as obx

    text = str(error)
    status = _STATUS.search(text)
    seconds = timeout if timeout is not None else _timeout()
    if isinstance(error, FileNotFoundError):
        return "not found (HTTP 404)"
    if isinstance(error, obx.PermissionDeniedError):
        return "access denied (HTTP 403): check the URL, or the credentials (AWS_* variables)"
    if isinstance(error, obx.UnauthenticatedError):
        return "authentication required (HTTP 401): set the credentials (AWS_* variables)"
    if status is not None:
        return f"the server answered HTTP {status.group(1)}"
    if "TimedOut" in text or "kind: Timeout" in text:
        return (
            f"timed out (no complete answer within {seconds:g} s, {MAX_RETRIES} retries at most)"
        )
    if "ConnectionRefused" in text:
        return "connection refused (is the server running, and the port right?)"
    if "dns error" in text:
        return "unknown host (check the URL's host name)"
    if "kind: Connect" in text:
        return "cannot connect to the server"
    return text.split("\n", 1)[0].strip() or type(error).__name__


def io_pool() -> ThreadPoolExecutor:
    """The process's pool of request threads (made on first use, and again after a fork)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="napari-zarr-tiler-io")
        return _POOL


def _forget_pool_after_fork() -> None:
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()  # the parent's threads do not exist here


os.register_at_fork(after_in_child=_forget_pool_after_fork)


async def _in_io_thread(call: Callable[[], _T]) -> _T:
    """Run a blocking obstore call in a request thread of this process, and await its result."""
    return await asyncio.get_running_loop().run_in_executor(io_pool(), call)


def _read_range(store: Any, key: str, byte_range: Any) -> bytes:
    """The bytes of ``key`` in ``byte_range`` (a zarr byte request), by one blocking request."""
    import obstore

    if isinstance(byte_range, RangeByteRequest):
        return bytes(obstore.get_range(store, key, start=byte_range.start, end=byte_range.end))
    if isinstance(byte_range, OffsetByteRequest):
        option = {"offset": byte_range.offset}
    elif isinstance(byte_range, SuffixByteRequest):
        option = {"suffix": byte_range.suffix}
    else:
        msg = f"unexpected byte range {byte_range!r}"
        raise TypeError(msg)
    return bytes(obstore.get(store, key, options={"range": option}).bytes())


def _read_whole(store: Any, key: str, limit: int | None) -> bytes:
    """The bytes of ``key``, refused (before the body) when the announced size is over ``limit``."""
    import obstore

    answer = obstore.get(store, key)
    size = answer.meta["size"]
    if limit is not None and size > limit:
        msg = f"it is {size:,} bytes, more than is ever read at once"
        raise StoreFileRefused(msg)
    return bytes(answer.bytes())


class ThreadedObjectStore(ObjectStore):
    """zarr's ObjectStore making obstore's blocking calls in Python threads of its own.

    zarr's ObjectStore awaits obstore's ``*_async`` functions, whose results are handed back
    by obstore's Rust threads calling into Python. If the interpreter starts to exit while
    such a thread is inside that call (the last request has just been answered), the thread
    is stopped in a way Rust code cannot survive and the process aborts (SIGABRT, nothing on
    stderr). Here every request is a blocking obstore call (it releases the GIL while it
    waits) made in a thread of :func:`io_pool`: Rust threads never enter Python, and
    Python joins the pool's threads before it exits. Up to :data:`IO_THREADS` requests run
    at once.
    """

    def _whole_limit(self, key: str) -> int | None:
        """Largest whole object :meth:`get` reads, checked on its announced size (None: any)."""
        return None

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: Any = None
    ) -> Buffer | None:
        store = self.store
        if byte_range is None:
            limit = self._whole_limit(key)
            call = functools.partial(_read_whole, store, key, limit)
        else:
            call = functools.partial(_read_range, store, key, byte_range)
        try:
            return prototype.buffer.from_bytes(await _in_io_thread(call))
        except FileNotFoundError:
            return None

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Any
    ) -> list[Buffer | None]:
        reads = [self.get(key, prototype, byte_range) for key, byte_range in key_ranges]
        return list(await asyncio.gather(*reads))

    async def exists(self, key: str) -> bool:
        import obstore

        try:
            await _in_io_thread(functools.partial(obstore.head, self.store, key))
        except FileNotFoundError:
            return False
        return True

    async def getsize(self, key: str) -> int:
        import obstore

        answer = await _in_io_thread(functools.partial(obstore.head, self.store, key))
        return int(answer["size"])

    async def set(self, key: str, value: Buffer) -> None:
        import obstore

        self._check_writable()
        data = value.as_buffer_like()
        await _in_io_thread(functools.partial(obstore.put, self.store, key, data))

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        import obstore
        import obstore.exceptions as obx

        self._check_writable()
        put = functools.partial(
            obstore.put, self.store, key, value.as_buffer_like(), mode="create"
        )
        with contextlib.suppress(obx.AlreadyExistsError):
            await _in_io_thread(put)

    async def delete(self, key: str) -> None:
        import obstore

        self._check_writable()
        with contextlib.suppress(FileNotFoundError):
            await _in_io_thread(functools.partial(obstore.delete, self.store, key))

    async def delete_dir(self, prefix: str) -> None:
        self._check_writable()
        prefix = prefix if prefix == "" or prefix.endswith("/") else prefix + "/"
        async for key in self.list_prefix(prefix):
            await self.delete(key)

    async def _list(self, prefix: str | None = None) -> AsyncGenerator[Any, None]:
        import obstore

        batches = iter(obstore.list(self.store, prefix=prefix, chunk_size=1000))
        while (batch := await _in_io_thread(lambda: next(batches, None))) is not None:
            for item in batch:
                yield item

    def list_dir(self, prefix: str) -> AsyncGenerator[str, None]:
        return self._list_dir(prefix)

    async def _list_dir(self, prefix: str) -> AsyncGenerator[str, None]:
        import obstore

        call = functools.partial(obstore.list_with_delimiter, self.store, prefix=prefix)
        answer = await _in_io_thread(call)
        root = prefix.rstrip("/")
        for path in [*answer["common_prefixes"], *(o["path"] for o in answer["objects"])]:
            yield path[len(root) :].lstrip("/") if root and path.startswith(root) else path


class BoundedObjectStore(ThreadedObjectStore):
    """A read-only :class:`ThreadedObjectStore` checking a whole object's announced size
    before reading its body, and turning client errors into :class:`RemoteStoreError`
    naming the URL and the cause."""

    def __init__(self, store: Any, *, url: str) -> None:
        super().__init__(store, read_only=True)
        self.url = url

    def with_read_only(self, read_only: bool = True) -> BoundedObjectStore:
        return type(self)(self.store, url=self.url)

    def _whole_limit(self, key: str) -> int | None:
        return read_limit(key)

    def _failed(self, key: str, error: BaseException) -> RemoteStoreError:
        return RemoteStoreError(f"{self.url}/{key}: {failure_cause(error)}")

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: Any = None
    ) -> Buffer | None:
        import obstore.exceptions as obx

        try:
            return await super().get(key, prototype, byte_range)
        except obx.BaseError as error:
            raise self._failed(key, error) from None

    async def exists(self, key: str) -> bool:
        import obstore.exceptions as obx

        try:
            return await super().exists(key)
        except obx.BaseError as error:
            raise self._failed(key, error) from None

    async def getsize(self, key: str) -> int:
        import obstore.exceptions as obx

        try:
            return await super().getsize(key)
        except obx.BaseError as error:
            raise self._failed(key, error) from None

    def _cannot_list(self, prefix: str, error: BaseException) -> RemoteStoreError:
        where = f"{self.url}/{prefix}".rstrip("/")
        if url_scheme(self.url) in {"http", "https"}:
            msg = (
                f"{where}: cannot list a group over HTTP ({failure_cause(error)}); open the "
                "URL of an array or image inside it, or consolidate the store's metadata "
                "(zarr.consolidate_metadata) so that its members are named in it"
            )
            return RemoteStoreError(msg)
        return RemoteStoreError(f"{where}: cannot list the group ({failure_cause(error)})")

    async def _list(self, prefix: str | None = None) -> AsyncGenerator[Any, None]:
        import obstore.exceptions as obx

        try:
            async for item in super()._list(prefix):
                yield item
        except obx.BaseError as error:
            raise self._cannot_list(prefix or "", error) from None

    async def _list_dir(self, prefix: str) -> AsyncGenerator[str, None]:
        import obstore.exceptions as obx

        try:
            async for name in super()._list_dir(prefix):
                yield name
        except obx.BaseError as error:
            raise self._cannot_list(prefix, error) from None


def _client_options(url: str) -> dict[str, Any]:
    return {
        "timeout": dt.timedelta(seconds=_timeout()),
        "connect_timeout": dt.timedelta(seconds=CONNECT_TIMEOUT_SECONDS),
        "allow_http": url.lower().startswith("http://"),
    }


def _retry_config() -> dict[str, Any]:
    return {
        "max_retries": MAX_RETRIES,
        "retry_timeout": dt.timedelta(seconds=RETRY_TIMEOUT_SECONDS),
        "backoff": {
            "init_backoff": dt.timedelta(milliseconds=100),
            "max_backoff": dt.timedelta(seconds=5),
            "base": 2,
        },
    }


def _s3_store(url: str) -> Any:
    """An obstore S3Store for ``s3://bucket/prefix``, configured from the AWS_* variables."""
    from obstore.store import S3Store

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL", "")
    options = _client_options(endpoint)
    config: dict[str, Any] = {}
    if not os.environ.get("AWS_ACCESS_KEY_ID"):
        config["skip_signature"] = True  # anonymous: public buckets
    if not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
        config["region"] = "us-east-1"
    if endpoint:
        config["endpoint"] = endpoint
    normalized = "s3://" + url.split("://", 1)[1]
    return S3Store.from_url(
        normalized, config=config, client_options=options, retry_config=_retry_config()
    )


def object_store(url: str) -> Any:
    """The obstore store reading the URL ``url`` (http, https or s3), with timeouts and retries.

    Parameters
    ----------
    url : str
        An ``http://``, ``https://`` or ``s3://bucket/prefix`` URL of a store's root.

    Returns
    -------
    obstore.store.HTTPStore or obstore.store.S3Store
        Rooted at ``url``.

    Raises
    ------
    RemoteStoreError
        For a URL the client cannot use (no bucket, a malformed URL).
    """
    import obstore.exceptions as obx
    from obstore.store import HTTPStore

    try:
        if url_scheme(url) in {"s3", "s3a"}:
            return _s3_store(url)
        return HTTPStore.from_url(
            url, client_options=_client_options(url), retry_config=_retry_config()
        )
    except (obx.BaseError, ValueError) as error:
        msg = f"{url}: not a URL the reader can open ({str(error).splitlines()[0]})"
        raise RemoteStoreError(msg) from error


def store_root_url(url: str) -> str:
    """The URL of the node ``url`` designates: without a trailing ``/`` or metadata file name.

    Raises
    ------
    RemoteStoreError
        For a URL with a query (``?``) or a fragment (``#``): keys are appended to the path.
    """
    if "?" in url or "#" in url:
        msg = f"{url}: URLs with a query (?...) or fragment (#...) are not supported; give the store's plain URL"
        raise RemoteStoreError(msg)
    root = url.rstrip("/")
    name = root.rsplit("/", 1)[-1]
    parent = root.rsplit("/", 1)[0]
    if name in METADATA_FILES and not parent.endswith(":/"):
        root = parent
    return root


def guarded_url_store(url: str) -> tuple[GuardedStore, StoreLocation]:
    """The guarded, read-only zarr store for a store URL, and the root's location.

    Parameters
    ----------
    url : str
        An http(s) or s3 URL of a zarr node (or of one of its metadata files).

    Returns
    -------
    tuple of (GuardedStore, StoreLocation)
        The store and where its root is.
    """
    root = store_root_url(url)
    inner = BoundedObjectStore(object_store(root), url=root)
    return GuardedStore(inner, location=root, url=True), StoreLocation(root)


def open_url_node(url: str) -> tuple[StoreLocation, Any]:
    """Open the zarr node a URL designates, read-only, with one clear error for each problem.

    Parameters
    ----------
    url : str
        An ``http://``, ``https://`` or ``s3://`` URL of a zarr node (or of its metadata file).

    Returns
    -------
    tuple of (StoreLocation, zarr.Array or zarr.Group)
        The node's location and the node.

    Raises
    ------
    RemoteStoreError
        When the server cannot be reached, refuses, times out, or serves no zarr metadata at
        the URL (the message names the URL and the cause).
    StoreReadError
        When the metadata is corrupt.
    """
    store, where = guarded_url_store(url)
    return open_guarded_node(store, where)


__all__ = [
    "BoundedObjectStore",
    "ThreadedObjectStore",
    "failure_cause",
    "guarded_url_store",
    "object_store",
    "open_url_node",
]
