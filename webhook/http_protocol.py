"""uvicorn's httptools protocol: writes of one loop turn sent as one, connections rotated.

uvicorn writes a response's head and body with two ``transport.write`` calls. Over
TLS each becomes its own TLS record and its own ``send`` system call, and on the
loopback or node-local path between API server and webhook the second send costs as
much as the first: it was a third of a warm answer's CPU. Joining the writes made
in one turn of the event loop (head and body are written back to back) halves that.
The join waits at most until the end of the current loop turn, never for more data.

A connection also rotates: its first answer after ``max_age`` seconds (or its
``max_requests``-th) says ``connection: close``, and the client's next connection may
land on another replica (kube-proxy places connections, not requests). An API server
under steady load keeps reusing a handful of connections, which would otherwise keep a
replica added later idle. With several workers, a worker holding more than its share of
the connections closes one the same way (see ``webhook.connection_share``).

A request must also arrive whole within ``read_timeout`` seconds of its first byte (or
of the connection's opening): ``close_slow_requests``, run every second while serving,
closes connections that trickle a request (slowloris) or open and send nothing. The API
server sends each request at once; uvicorn itself times out only idle keep-alives.

A request's head (URL and headers) is limited to ``MAX_HEAD_BYTES``: httptools sets no
limit and uvicorn keeps every header, so 300 MB of headers sent in under a second took
the process from 125 to 470 MB, and one endless header value or URL grows by repeated
concatenation, blocking the loop longer with every chunk. The API server's heads are
about 1 KB. Counted as bytes arrive, so the parser never holds more than the limit and
one read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from webhook.connection_share import ConnectionShare

log = logging.getLogger("deployguard.http")
MAX_HEAD_BYTES = 64 * 1024  # URL and headers of one request (Go's net/http allows 1 MB, nginx 32 KB)


class CoalescingTransport:
    """A transport whose ``write`` calls within one loop turn leave as one write.

    Everything else is the wrapped transport's: flow control, extra info, closing.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop = transport, loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """``uvicorn.Config(http=...)``: httptools parsing, coalesced writes, rotated and balanced connections."""

    max_requests = 0  # per connection; 0: no limit (see rotating_protocol)
    max_age = 0.0  # seconds a connection is kept alive; 0: no limit
    share: ConnectionShare | None = None  # with several workers: this worker's connection count

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.requests_seen = 0
        self.leaving = False
        self.opened_at = self.loop.time()
        # When the request being received began (here: the connection, until its first one);
        # None while no request is incomplete. Read by close_slow_requests.
        self.receiving_since: float | None = self.opened_at
        # Bytes received while a request's head is incomplete (see MAX_HEAD_BYTES); -1 in a
        # body, -2 once refused.
        self.head_bytes = 0
        if self.share is not None:
            self.share.opened()
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.share is not None:
            self.share.closed(left=self.leaving)
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.receiving_since is None:
            self.receiving_since = self.loop.time()

    def data_received(self, data: bytes) -> None:
        head_bytes = self.head_bytes
        if head_bytes < 0:  # in a body (the usual case), or refused: -2
            if head_bytes == -1:
                super().data_received(data)
            return
        self.head_bytes = head_bytes + len(data)
        super().data_received(data)
        # Still in a head after the parser had it all: the URL and headers alone are too long.
        # (A chunk that finished the head counts whole, body and all, but ends the head too.)
        if self.head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            self.head_bytes = -2  # what else arrives is not parsed
            log.info("refused a request whose URL and headers were over %d bytes", MAX_HEAD_BYTES)
            self.send_400_response(f"the request's URL and headers are over {MAX_HEAD_BYTES} bytes")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.receiving_since = None
        if self.head_bytes != -2:
            self.head_bytes = 0  # what comes next is the next request's head

    def on_headers_complete(self) -> None:
        if self.head_bytes != -2:
            self.head_bytes = -1  # the body follows: not counted
        super().on_headers_complete()
        self.requests_seen += 1
        cycle: Any = self.cycle  # None before the first request's headers (uvicorn types it otherwise)
        if cycle is None or self.leaving:
            return
        rotate = (self.max_requests and self.requests_seen >= self.max_requests) or (
            self.max_age and self.loop.time() - self.opened_at >= self.max_age
        )
        if rotate or (self.share is not None and self.share.over_share()):
            cycle.keep_alive = False  # uvicorn then answers "connection: close" and closes
            self.leaving = True
            if self.share is not None:
                self.share.leaving()


def rotating_protocol(
    *, max_requests: int = 0, max_age: float = 0.0, share: ConnectionShare | None = None
) -> type[CoalescingHttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)``: connections closed after
    ``max_requests`` answers or ``max_age`` seconds (0: no limit), and with ``share``
    (several workers) whenever this worker holds more than its share of connections."""
    attributes = {"max_requests": max_requests, "max_age": max_age, "share": share}
    return type("RotatingHttpToolsProtocol", (CoalescingHttpToolsProtocol,), attributes)


def close_slow_requests(connections: Iterable[Any], read_timeout: float) -> int:
    """Close those of ``connections`` (a server state's) whose request has not arrived whole
    within ``read_timeout`` seconds, or that sent nothing since they opened. Returns how many."""
    closed = 0
    for connection in list(connections):
        since = getattr(connection, "receiving_since", None)
        transport = getattr(connection, "transport", None)
        if since is None or transport is None or transport.is_closing():
            continue
        if connection.loop.time() - since > read_timeout:
            transport.abort()  # not close(): a TLS close waits for the stalled peer's close_notify
            closed += 1
    if closed:
        log.info("closed %d connection(s) whose request did not arrive whole within %g s "
                 "(server.request_read_timeout_seconds)", closed, read_timeout)  # fmt: skip
    return closed


def close_open_connections(server: uvicorn.Server) -> int:
    """Close ``server``'s open connections as uvicorn does at shutdown: idle ones now, one
    with a request in flight after its answer. Returns how many there were."""
    connections = list(server.server_state.connections)
    for connection in connections:
        connection.shutdown()
    return len(connections)
