"""A real S3 endpoint for the conversion tests: moto's server on 127.0.0.1 (from
``tests/reader/servers.py``), with credentials and endpoint passed the way users pass them, in
the ``AWS_*`` environment variables; and ways to look at what a prefix holds."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import obstore
import pytest

from ..reader.servers import s3_server

#: Credentials moto accepts.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}


@dataclass
class S3Endpoint:
    """A running S3 endpoint and a fresh bucket on it."""

    endpoint: str
    bucket: str

    def url(self, key: str) -> str:
        """``s3://BUCKET/key``."""
        return f"s3://{self.bucket}/{key}"

    @property
    def environment(self) -> dict[str, str]:
        """The variables a subprocess needs to reach the endpoint."""
        return {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def store(self, key: str) -> object:
        """An obstore store rooted at ``s3://BUCKET/key`` (independent of the package's code)."""
        from obstore.store import S3Store

        return S3Store(
            self.bucket,
            prefix=key,
            config={
                "endpoint": self.endpoint,
                "access_key_id": "testing",
                "secret_access_key": "testing",
                "region": "us-east-1",
            },
            client_options={"allow_http": True},
        )

    def keys(self, key: str) -> list[str]:
        """The keys of the objects under ``key/`` (listed only, not read)."""
        return sorted(meta["path"] for batch in obstore.list(self.store(key)) for meta in batch)

    def objects(self, key: str) -> dict[str, bytes]:
        """Every object under ``key/``, by relative key, with its bytes."""
        store = self.store(key)
        keys = [meta["path"] for batch in obstore.list(store) for meta in batch]
        return {k: bytes(obstore.get(store, k).bytes()) for k in sorted(keys)}

    def put(self, key: str, data: bytes) -> None:
        """Store one object at ``key``."""
        obstore.put(self.store(""), key, data)

    def upload(self, folder: Path, key: str) -> None:
        """Put every file under ``folder`` at ``key/``."""
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                self.put(f"{key}/{path.relative_to(folder).as_posix()}", path.read_bytes())


@contextmanager
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on a free port of 127.0.0.1, until the block ends."""
    with s3_server() as endpoint:
        yield endpoint


def fresh_bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Endpoint:
    """Point the ``AWS_*`` variables at ``endpoint`` and create a new bucket there."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    bucket = f"b{uuid.uuid4().hex[:12]}"
    s3 = S3Endpoint(endpoint, bucket)
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    return s3


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root``, by relative ``/`` key, with its bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
