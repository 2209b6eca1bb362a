"""Writes within one event-loop turn leave as one (head + body of an answer: one TLS record, one send)."""

from __future__ import annotations

import asyncio
from typing import Any

from webhook.connection_share import ConnectionShare
from webhook.http_protocol import CoalescingTransport


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = self.aborted = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


async def test_writes_of_one_turn_are_joined_and_sent_at_its_end() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(memoryview(b"{}"))
    assert inner.writes == [] and transport.get_write_buffer_size() == 40
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert inner.writes[-1] == b"next" and len(inner.writes) == 2
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)  # everything else is the real transport's


async def test_close_sends_what_is_pending_first_and_abort_drops_it() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"last words")
    transport.close()
    assert inner.writes == [b"last words"] and inner.closed
    await asyncio.sleep(0)
    assert inner.writes == [b"last words"]  # the scheduled flush finds nothing left

    other = RecordingTransport()
    dropped = CoalescingTransport(other, asyncio.get_running_loop())
    dropped.write(b"never")
    dropped.abort()
    await asyncio.sleep(0)
    assert other.writes == [] and other.aborted


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def _answers(
    max_requests: int, requests: int, share: ConnectionShare | None = None, max_age: float = 0.0, pause: float = 0.0
) -> tuple[list[bytes], RecordingTransport]:
    """``requests`` requests, one after the other, on one keep-alive connection."""
    import uvicorn
    from uvicorn.server import ServerState

    from webhook.http_protocol import rotating_protocol

    http = rotating_protocol(max_requests=max_requests, max_age=max_age, share=share)
    config = uvicorn.Config(_ok, http=http, log_level="warning", lifespan="off")
    config.load()
    protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
    inner = RecordingTransport()
    inner.protocol = protocol  # type: ignore[attr-defined]
    protocol.connection_made(inner)
    answers = []
    for _ in range(requests):
        if inner.is_closing():
            break
        before = len(inner.writes)
        protocol.data_received(b"POST /validate HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        for _ in range(20):  # the app task, then the coalesced write at the end of a loop turn
            await asyncio.sleep(0)
        answers.append(b"".join(inner.writes[before:]))
        await asyncio.sleep(pause)
    return answers, inner


async def test_the_last_answer_a_connection_may_give_closes_it() -> None:
    """The client reconnects, and the kernel may give the new connection to another worker."""
    answers, transport = await _answers(max_requests=3, requests=5)
    assert len(answers) == 3 and all(a.startswith(b"HTTP/1.1 200") for a in answers)
    assert [b"connection: close" in a.lower() for a in answers] == [False, False, True]
    assert transport.closed


async def test_the_first_answer_after_the_age_limit_closes_the_connection() -> None:
    answers, transport = await _answers(max_requests=0, requests=5, max_age=0.2, pause=0.08)
    assert 2 <= len(answers) <= 4 and b"connection: close" in answers[-1].lower() and transport.closed
    assert not any(b"connection: close" in a.lower() for a in answers[:-1])


async def test_no_limit_keeps_the_connection_open() -> None:
    answers, transport = await _answers(max_requests=0, requests=5)
    assert len(answers) == 5 and not any(b"connection: close" in a.lower() for a in answers)
    assert not transport.closed


def test_a_worker_is_over_its_share_from_one_connection_above_the_average() -> None:
    def over(counts: list[int], index: int = 0) -> bool:
        return ConnectionShare(counts, index).over_share()

    assert not over([8, 8]) and not over([9, 8]) and not over([0, 0])
    assert over([9, 7]) and over([10, 6]) and not over([7, 9])
    assert over([4, 2, 3]) and not over([3, 3, 2]) and not over([4, 3, 3])  # 3 workers: mean 3, 3.3


def test_a_worker_closes_just_its_excess() -> None:
    """10/6: two connections leave (they still count in the total: their clients come back)."""
    counts = [10, 6]
    share = ConnectionShare(counts, 0)
    told = 0
    while share.over_share():
        share.leaving()
        told += 1
    assert told == 2
    share.closed(left=True)
    assert counts == [9, 6] and not share.over_share()


async def test_a_worker_over_its_share_closes_one_connection_after_an_answer() -> None:
    """The client reconnects; the kernel may place the connection on the other worker."""
    counts = [3, 2]  # this worker (slot 0) holds 3 other connections, the other worker 2
    share = ConnectionShare(counts, 0)
    answers, transport = await _answers(max_requests=0, requests=5, share=share)
    assert len(answers) == 1 and b"connection: close" in answers[0].lower() and transport.closed
    assert counts == [4, 2] and not share.over_share()  # open until it is gone, but leaving
    transport.protocol.connection_lost(None)  # type: ignore[attr-defined]
    assert counts == [3, 2] and not share.over_share()


async def test_with_even_shares_connections_stay_open_and_are_counted() -> None:
    counts = [3, 4]
    answers, transport = await _answers(max_requests=0, requests=5, share=ConnectionShare(counts, 0))
    assert len(answers) == 5 and not any(b"connection: close" in a.lower() for a in answers)
    assert counts == [4, 4] and not transport.closed  # this connection is one of the 4
    transport.protocol.connection_lost(None)  # type: ignore[attr-defined]
    assert counts == [3, 4]


async def test_a_rotated_connection_leaves_the_share_too() -> None:
    """Rotation and balance close for one reason at a time: a rotating connection of an
    over-share worker already counts as leaving."""
    counts = [4, 4]
    share = ConnectionShare(counts, 0)
    answers, _ = await _answers(max_requests=2, requests=5, share=share)
    assert [b"connection: close" in a.lower() for a in answers] == [False, True]
    counts[1] -= 1  # the other worker loses a connection: 5/3, but one of the 5 is leaving
    assert counts == [5, 3] and not share.over_share()
