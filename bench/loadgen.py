#!/usr/bin/env python3
"""An HTTPS load generator for /validate that anyone can run: fixed rate or flat out.

wrk measures the maximum rate well but cannot hold a fixed rate, and "p99 at half
of the maximum rate" needs one. This client is open-loop at a fixed rate: request
i is *due* at ``start + i / rate`` and its latency is counted from when it was due,
not from when a connection got free, so a stalled server shows up in the
percentiles instead of silently slowing the client down (no coordinated omission).
With ``--rate 0`` it runs closed-loop (each connection sends as soon as it has its
answer): the maximum rate.

Raw asyncio streams + ssl + uvloop, keep-alive HTTP/1.1, no per-request objects
beyond bytes: a few thousand requests/s on one core. bench/http_throughput.py
prefers ``vegeta`` (a well-known Go client of the same open-loop kind; python3
scripts/provision_tools.py vegeta) when it is provisioned; at ~2,000 requests/s
this one takes about 0.3 of a core and vegeta about 0.4.

    .venv/bin/python bench/loadgen.py https://127.0.0.1:8443/validate --cafile ca.crt \\
        --body examples/admission-review.json --rate 500 --duration 10 [--unique] [--json]

Prints sent, answered, errors, achieved req/s and p50/p90/p99/max in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

BodyFor = Callable[[int], bytes]


@dataclass(frozen=True)
class LoadResult:
    """What one run measured; latencies in milliseconds."""

    mode: str
    duration_s: float
    sent: int
    answered: int
    errors: int  # transport errors, timeouts and non-2xx answers
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


class Connection:
    """One keep-alive HTTPS connection speaking just enough HTTP/1.1 for POST /validate."""

    def __init__(self, host: str, port: int, path: str, context: ssl.SSLContext | None, server_name: str) -> None:
        self.host, self.port, self.path, self.context, self.server_name = host, port, path, context, server_name
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.head = f"POST {path} HTTP/1.1\r\nHost: {server_name}\r\nContent-Type: application/json\r\n".encode()

    async def post(self, body: bytes, timeout: float) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.host, self.port, ssl=self.context, server_hostname=self.server_name if self.context else None
                ),
                timeout,
            )
        assert self.reader is not None
        self.writer.write(self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return await asyncio.wait_for(self._response(self.reader), timeout)

    async def _response(self, reader: asyncio.StreamReader) -> int:
        header = await reader.readuntil(b"\r\n\r\n")
        status = int(header[9:12])
        length = 0
        for line in header.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def run_load(
    url: str,
    body_for: BodyFor,
    *,
    rate: float,
    duration: float,
    connections: int,
    cafile: Path | None = None,
    timeout: float = 10.0,
) -> LoadResult:
    """Send load for ``duration`` seconds; ``rate`` requests/s (open loop) or 0 for flat out."""
    parts = urlsplit(url)
    context: ssl.SSLContext | None = None
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if context else 80)
    pool = [Connection(host, port, parts.path or "/", context, host) for _ in range(connections)]
    latencies: list[float] = []
    errors = 0
    sent = 0
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    loop_time = time.perf_counter
    started = loop_time()
    end = started + duration

    async def send(conn: Connection, index: int, due: float) -> None:
        nonlocal errors
        try:
            status = await conn.post(body_for(index), timeout)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError, ValueError):
            conn.close()
            errors += 1
            return
        if 200 <= status < 300:
            latencies.append(loop_time() - due)
        else:
            errors += 1

    async def open_worker(conn: Connection) -> None:
        while (item := await queue.get()) is not None:
            await send(conn, *item)

    async def closed_worker(conn: Connection, offset: int) -> None:
        nonlocal sent
        index = offset
        while loop_time() < end:
            sent += 1
            await send(conn, index, loop_time())
            index += connections

    if rate > 0:
        workers = [asyncio.create_task(open_worker(conn)) for conn in pool]
        interval = 1.0 / rate
        while (due := started + sent * interval) < end:
            delay = due - loop_time()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait((sent, due))
            sent += 1
        for _ in pool:
            queue.put_nowait(None)
    else:
        workers = [asyncio.create_task(closed_worker(conn, i)) for i, conn in enumerate(pool)]
    await asyncio.gather(*workers)
    elapsed = loop_time() - started
    for conn in pool:
        conn.close()
    latencies.sort()
    ms = [v * 1000 for v in latencies]
    return LoadResult(
        mode=f"fixed {rate:g}/s" if rate > 0 else "max",
        duration_s=round(elapsed, 2),
        sent=sent,
        answered=len(latencies),
        errors=errors,
        rps=round(len(latencies) / elapsed, 1),
        p50_ms=round(percentile(ms, 50), 3),
        p90_ms=round(percentile(ms, 90), 3),
        p99_ms=round(percentile(ms, 99), 3),
        max_ms=round(ms[-1] if ms else 0.0, 3),
    )


def unique_bodies(body: bytes, name: bytes = b'"name": "web"') -> BodyFor:
    """Worst case for the decision memo: every request names another workload."""
    return lambda i: body.replace(name, b'"name": "web-%d"' % i)


def cycle(bodies: Sequence[bytes]) -> BodyFor:
    return lambda i: bodies[i % len(bodies)]


def run(url: str, body_for: BodyFor, **kwargs: object) -> LoadResult:
    """Synchronous entry for other bench scripts (uvloop when installed)."""
    try:
        import uvloop

        return uvloop.run(run_load(url, body_for, **kwargs))  # type: ignore[arg-type]
    except ImportError:
        return asyncio.run(run_load(url, body_for, **kwargs))  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--body", type=Path, action="append", required=True, help="repeat to cycle several bodies")
    parser.add_argument("--cafile", type=Path)
    parser.add_argument("--rate", type=float, default=0.0, help="requests/s (open loop); 0 = as fast as possible")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--unique", action="store_true", help="a new workload name in every request")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    bodies = [p.read_bytes() for p in args.body]
    body_for = unique_bodies(bodies[0]) if args.unique else cycle(bodies)
    result = run(args.url, body_for, rate=args.rate, duration=args.duration, connections=args.connections,
                 cafile=args.cafile)  # fmt: skip
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        print(" ".join(f"{k}={v}" for k, v in asdict(result).items()))
    return 0 if result.answered else 1


if __name__ == "__main__":
    sys.exit(main())
