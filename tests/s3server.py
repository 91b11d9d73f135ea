"""A real S3 protocol server on 127.0.0.1 for the tests: moto in server mode.

The session fixture starts ``moto.server.ThreadedMotoServer`` on a free port
of the loopback address and points every S3 client of the process at it
through ``AWS_ENDPOINT_URL`` (botocore reads it), with dummy credentials.
Nothing is mocked in-process: s3fs speaks HTTP to the server as it would to
S3. ``s3_bucket`` gives each test an empty bucket of its own.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

_NAMES = itertools.count()


class S3Server:
    """The running server: its endpoint, and a way to stop and restart it on the same port."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.port = port
        self.endpoint = f"http://{host}:{port}"

    def stop(self) -> None:
        self._server.stop()

    def restart(self) -> None:
        """Start again on the same port; moto keeps its buckets in this process."""
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()


def s3_environment(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    saved = {k: os.environ.get(k) for k in s3_environment("")}
    os.environ.update(s3_environment(server.endpoint))
    try:
        yield server
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def s3_filesystem() -> Any:
    import fsspec

    return fsspec.filesystem("s3")


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """``s3://<a new empty bucket>``."""
    name = f"dtckpt-test-{os.getpid()}-{next(_NAMES)}"
    s3_filesystem().mkdir(name)
    return f"s3://{name}"


def object_names(url: str) -> list[str]:
    """The sorted names of the objects directly under ``url`` (any store)."""
    from dtckpt.storage.urls import resolve

    store, key = resolve(url)
    return sorted(store.list(key))


def assert_two_checkpoints(directory: str, note: str = "") -> None:
    """``directory`` holds ckpt-1, ckpt-2 and the state file, nothing a failed save left,
    and no claim."""
    from dtckpt.storage.objects import CLAIMS

    assert object_names(directory) == [
        "checkpoint",
        "ckpt-1.data-00000-of-00001",
        "ckpt-1.index",
        "ckpt-2.data-00000-of-00001",
        "ckpt-2.index",
    ], note
    assert object_names(f"{directory}/{CLAIMS}") == []
