"""Real servers on 127.0.0.1 for the remote-store tests: a threaded HTTP file server with Range
requests, a latency option, a request counter and ways to misbehave; and moto's S3 server.

Both run in threads of the test process, on a free port, and are stopped by their context
managers (the fixtures in the test modules use them).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass
class ServerLog:
    """What the server answered: one (method, path, status, body bytes) per request."""

    requests: list[tuple[str, str, int, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, method: str, path: str, status: int, nbytes: int) -> None:
        with self.lock:
            self.requests.append((method, path, status, nbytes))

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()

    @property
    def count(self) -> int:
        return len(self.requests)

    @property
    def nbytes(self) -> int:
        return sum(entry[3] for entry in self.requests)

    def paths(self, status: int | None = None) -> list[str]:
        return [p for _m, p, s, _n in self.requests if status is None or s == status]


@dataclass
class HttpFileServer:
    """A real HTTP server over a folder; ``mode`` makes it misbehave for every request.

    Attributes
    ----------
    root : Path
        The folder served at ``/``.
    latency : float
        Seconds slept before each answer.
    mode : str
        ``"files"`` (serve the folder), ``"forbidden"`` (403), ``"html"`` (an HTML page for any
        path), ``"hang"`` (never answer, until the server stops) or ``"huge"`` (claim a
        10 GiB body).
    """

    root: Path
    latency: float = 0.0
    mode: str = "files"
    log: ServerLog = field(default_factory=ServerLog)
    port: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _handler(server: HttpFileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _send(self, status: int, data: bytes, body: bool, extra: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in extra.items():
                self.send_header(key, value)
            if "Content-Length" not in extra:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)
            server.log.add(self.command, self.path, status, len(data) if body else 0)

        def _answer(self, body: bool) -> None:
            if server.latency:
                time.sleep(server.latency)
            if server.mode == "hang":
                server.stopping.wait(60)
                return
            if server.mode == "forbidden":
                self._send(403, b"<Error>AccessDenied</Error>", body, {})
                return
            if server.mode == "html":
                page = b"<!DOCTYPE html><html><body>Sign in</body></html>"
                self._send(200, page, body, {"Content-Type": "text/html"})
                return
            if server.mode == "huge":
                self._send(200, b"", body, {"Content-Length": str(10 << 30)})
                return
            self._serve_file(body)

        def _serve_file(self, body: bool) -> None:
            relative = unquote(urlsplit(self.path).path).lstrip("/")
            file = (server.root / relative).resolve()
            inside = file == server.root.resolve() or server.root.resolve() in file.parents
            if not inside or not file.is_file():
                self._send(404, b"not found", body, {})
                return
            data = file.read_bytes()
            match = _RANGE.match(self.headers.get("Range", ""))
            if match is None:
                self._send(200, data, body, {"Accept-Ranges": "bytes"})
                return
            first, last = match.groups()
            size = len(data)
            if first == "":
                start, stop = max(size - int(last), 0), size
            else:
                start = int(first)
                stop = min(int(last) + 1, size) if last else size
            if start >= size:
                self._send(416, b"", body, {"Content-Range": f"bytes */{size}"})
                return
            headers = {"Content-Range": f"bytes {start}-{stop - 1}/{size}"}
            self._send(206, data[start:stop], body, headers)

    return Handler


@contextmanager
def http_file_server(
    root: Path, *, latency: float = 0.0, mode: str = "files"
) -> Iterator[HttpFileServer]:
    """Serve ``root`` over HTTP on 127.0.0.1 (a free port) in a thread, until the block ends."""
    state = HttpFileServer(Path(root), latency=latency, mode=mode)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/image.zarr"


@contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a free port); yields its endpoint URL."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def upload_folder(endpoint: str, bucket: str, folder: Path, prefix: str) -> None:
    """Put every file under ``folder`` into ``s3://bucket/prefix/`` (the bucket is created)."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=bucket)
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            key = f"{prefix}/{path.relative_to(folder).as_posix()}"
            client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())


__all__ = ["HttpFileServer", "http_file_server", "refused_url", "s3_server", "upload_folder"]
