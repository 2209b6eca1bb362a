"""POST /validate is answered in front of FastAPI's router (ValidateFastPath), at the ASGI level.

These drive the ASGI app with raw messages, as uvicorn does: a body in several chunks,
a declared or actual size over the limit, a caller that hangs up, other methods and
paths. Each answered call is logged once; a caller that hung up gets no answer and
no decision.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from tests.factories import admission_review, workload
from tests.unit.conftest import CapturedLog
from webhook.reviewer import Reviewer
from webhook.server import create_app


async def call(
    app: Any, chunks: list[bytes], *, method: str = "POST", path: str = "/validate", length: int | str | None = None
) -> tuple[int | None, bytes]:
    headers = [(b"content-type", b"application/json")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "https",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 443), "state": {}}  # fmt: skip
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]
    if not chunks:
        messages.append({"type": "http.disconnect"})

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), 10)
    status = next((m["status"] for m in sent if m["type"] == "http.response.start"), None)
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


@pytest.fixture
def body() -> bytes:
    return orjson.dumps(admission_review(workload("Deployment", "nginx:latest"), uid="fast-1"))


async def test_a_body_in_chunks_is_decided_like_one_piece(
    reviewer: Reviewer, decision_log: CapturedLog, body: bytes
) -> None:
    app = create_app(reviewer, None, max_body_bytes=64 * 1024)
    status, answer = await call(app, [body[:10], body[10:500], body[500:]])
    assert status == 200
    response = orjson.loads(answer)["response"]
    assert response["uid"] == "fast-1" and response["allowed"] is False
    assert "digest_pinning" in response["status"]["message"]
    assert [r["uid"] for r in decision_log.records] == ["fast-1"]


async def test_declared_and_actual_oversize_bodies_get_413_and_a_log_line(
    reviewer: Reviewer, decision_log: CapturedLog, body: bytes
) -> None:
    app = create_app(reviewer, None, max_body_bytes=100)
    status, answer = await call(app, [body], length=len(body))
    assert status == 413 and b"limit is 100" in answer
    status, answer = await call(app, [body[:60], body[60:120], body[120:]])  # no Content-Length: counted
    assert status == 413 and b"larger than the limit of 100 bytes" in answer
    records = decision_log.records
    assert len(records) == 2 and all(r["rejected"] and r["http_status"] == 413 for r in records)
    assert orjson.loads(answer)["decision_id"] == records[1]["decision_id"]


async def test_a_bad_content_length_is_a_400(reviewer: Reviewer, body: bytes) -> None:
    app = create_app(reviewer, None, max_body_bytes=64 * 1024)
    status, answer = await call(app, [body], length="12abc")
    assert status == 400 and b"Content-Length is not a number" in answer


async def test_a_caller_that_hangs_up_gets_no_answer_and_no_decision(
    reviewer: Reviewer, decision_log: CapturedLog
) -> None:
    app = create_app(reviewer, None, max_body_bytes=64 * 1024)
    status, answer = await call(app, [])
    assert status is None and answer == b""
    assert decision_log.records == []


async def test_other_methods_and_paths_still_go_through_fastapi(reviewer: Reviewer, body: bytes) -> None:
    app = create_app(reviewer, None, max_body_bytes=64 * 1024)
    status, _ = await call(app, [b""], method="GET")
    assert status == 405
    status, answer = await call(app, [b""], method="GET", path="/healthz")
    assert status == 200 and orjson.loads(answer) == {"status": "ok"}
    status, _ = await call(app, [body], path="/validate/")
    assert status in (307, 404)  # FastAPI's answer for a near miss, not a decision
