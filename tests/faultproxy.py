"""An HTTP proxy in front of the moto server that answers chosen requests with S3 errors.

::

    s3fs/botocore --HTTP--> FaultProxy (127.0.0.1:free port) --HTTP--> moto server
                               |
                               +-- a request a rule selects gets the rule's error instead

A :class:`Fault` selects requests by HTTP method and a regular expression searched in
``path?query`` (``uploadId``, ``partNumber=2``, ``\\.index``, ``/checkpoint$``...) and answers
them with an S3 XML error (``503 SlowDown``, ``500 InternalError``, ``403 ExpiredToken``...)
``times`` times, or always. Everything else is forwarded unchanged and its answer returned, so
the store under test speaks real S3 to moto except where a test says otherwise. Standard
library only: ``http.server`` in, ``http.client`` out.
"""

from __future__ import annotations

import http.client
import http.server
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: Headers that belong to one connection and are never forwarded.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "content-length",
    }
)

#: The reason phrase and message of the errors tests inject, by S3 error code.
ERRORS = {
    "SlowDown": (503, "Please reduce your request rate."),
    "ServiceUnavailable": (503, "Service is unable to handle request."),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "ExpiredToken": (403, "The provided token has expired."),
    "AccessDenied": (403, "Access Denied"),
    "InvalidAccessKeyId": (
        403,
        "The AWS Access Key Id you provided does not exist in our records.",
    ),
}


@dataclass
class Fault:
    """Answer requests matching ``method`` and ``pattern`` with S3 error ``code``.

    ``headers``, when given, must also accept the request's headers (names in lower case:
    ``range``, say).
    The first ``after`` matching requests are forwarded; of the later ones, ``times`` get
    the error (``None``: all of them). ``hits`` counts those that got it.
    """

    code: str
    pattern: str = ""
    method: str | None = None
    times: int | None = None
    after: int = 0
    headers: Callable[[Mapping[str, str]], bool] | None = None
    hits: int = 0
    passed: int = 0
    _regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.code not in ERRORS:
            raise ValueError(f"no such injected error: {self.code}")
        self._regex = re.compile(self.pattern)

    def takes(self, method: str, target: str, headers: Mapping[str, str]) -> bool:
        if self.method is not None and method != self.method:
            return False
        if self.headers is not None and not self.headers(headers):
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        if self._regex.search(target) is None:
            return False
        if self.passed < self.after:
            self.passed += 1
            return False
        return True

    def body(self, target: str) -> bytes:
        message = ERRORS[self.code][1]
        resource = urllib.parse.urlsplit(target).path
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{self.code}</Code><Message>{message}</Message>"
            f"<Resource>{resource}</Resource><RequestId>FAULT{self.hits}</RequestId></Error>"
        ).encode()


class FaultProxy:
    """A running proxy to ``upstream`` (``http://host:port``) on a free port of 127.0.0.1."""

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.faults: list[Fault] = []
        #: ``(method, path?query, status)`` of every request, in the order answered.
        self.requests: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def inject(
        self,
        code: str,
        pattern: str = "",
        *,
        method: str | None = None,
        times: int | None = None,
        after: int = 0,
        headers: Callable[[Mapping[str, str]], bool] | None = None,
    ) -> Fault:
        fault = Fault(code, pattern, method, times, after, headers)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def _fault_for(self, method: str, target: str, headers: Mapping[str, str]) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.takes(method, target, headers):
                    fault.hits += 1
                    return fault
        return None

    def _log(self, method: str, target: str, status: int) -> None:
        with self._lock:
            self.requests.append((method, target, status))

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive, and "100 Continue" for Expect headers

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        body = self._body()
        named = {k.lower(): v for k, v in self.headers.items()}
        fault = self.owner._fault_for(self.command, self.path, named)
        if fault is not None:
            status = ERRORS[fault.code][0]
            payload = fault.body(self.path)
            self.owner._log(self.command, self.path, status)
            self._answer(
                status,
                [("Content-Type", "application/xml"), ("Content-Length", str(len(payload)))],
                payload,
            )
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        connection = http.client.HTTPConnection(*self.owner.upstream, timeout=60)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            reply = connection.getresponse()
            data = reply.read()
            out = [(k, v) for k, v in reply.getheaders() if k.lower() not in _HOP_BY_HOP]
            length = reply.getheader("Content-Length") if self.command == "HEAD" else None
            out.append(("Content-Length", length if length is not None else str(len(data))))
            self.owner._log(self.command, self.path, reply.status)
            self._answer(reply.status, out, data)
        finally:
            connection.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    """A :class:`FaultProxy` to ``upstream`` while the block runs."""
    proxy = FaultProxy(upstream)
    try:
        yield proxy
    finally:
        proxy.stop()
