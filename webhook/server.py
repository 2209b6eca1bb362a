"""The HTTP adapter: FastAPI routes around the reviewer. The only web-framework code.

Malformed calls get an HTTP 4xx with the reason; policy denials are normal 200
answers with ``allowed: false``. ``POST /validate``, the one hot endpoint, is answered
by a plain ASGI handler in front of FastAPI (``ValidateFastPath``): per request,
FastAPI's middleware, routing and dependency solving cost more than deciding a
rollout's repeat. FastAPI serves everything else and documents /validate in the
OpenAPI schema; an exception escaping the fast path becomes uvicorn's 500.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from webhook.admission import parse_review
from webhook.body_budget import BodyBudget
from webhook.errors import BadReview
from webhook.input_limits import ORJSON_MAX_DEPTH, exceeds_depth
from webhook.observe.metrics import MetricsEndpoint, observe_parse
from webhook.openapi import VALIDATE_OPENAPI
from webhook.policy_store import PolicyStore
from webhook.probes import readiness
from webhook.reviewer import Reviewer
from webhook.trust.mutation import Mutator

log = logging.getLogger("deployguard.server")


class ORJSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def decode_json(body: bytes, max_depth: int = ORJSON_MAX_DEPTH) -> Any:
    """The parsed body; empty, invalid or too deeply nested JSON is a 400 with the reason."""
    if not body:
        raise BadReview("the body is empty; expected an AdmissionReview JSON document")
    too_deep = f"the body nests objects/arrays deeper than {max_depth} levels (admission.max_json_depth)"
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            raise BadReview(f"the body is not valid JSON: {too_deep}") from None
        raise BadReview(f"the body is not valid JSON: {exc}") from None
    if exceeds_depth(doc, max_depth, body=body):
        raise BadReview(too_deep)
    return doc


async def answer_validate(
    reviewer: Reviewer, read: Callable[[], Awaitable[bytes]], max_json_depth: int
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) for one /validate call; a malformed call is logged too."""
    started = time.perf_counter()
    try:
        review = parse_review(decode_json(await read(), max_json_depth))
        observe_parse(time.perf_counter() - started)
    except BadReview as exc:
        decision_id = reviewer.record_rejection(exc.reason, exc.status)
        return exc.status, {"error": exc.reason, "decision_id": decision_id}
    outcome = await reviewer.review(review)
    return 200, outcome.response


class ClientGone(Exception):
    """The caller hung up before its body arrived: there is no one to answer."""


def _body_headers(scope: Scope) -> tuple[bytes | None, bytes | None, bytes | None]:
    """The request's Content-Length, Content-Encoding and Content-Type, each None when not sent."""
    length = encoding = media = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = bytes(value)
        elif name == b"content-encoding":
            encoding = bytes(value)
        elif name == b"content-type":
            media = bytes(value)
    return length, encoding, media


def _check_media_type(media: bytes | None) -> None:
    """Refuse (415) a body not declared as JSON: the API server always sends ``application/json``,
    so anything else is another client, and its body is not what it claims to be read as."""
    if media is None:
        raise BadReview("the request has no Content-Type; send the AdmissionReview as application/json", status=415)
    if media.split(b";", 1)[0].strip().lower() != b"application/json":
        shown = media.decode("latin-1")[:60]
        raise BadReview(f"the body is sent as {shown}; send the AdmissionReview as application/json", status=415)


async def read_asgi_body(scope: Scope, receive: Receive, limit: int, budget: BodyBudget | None = None) -> bytes:
    """The request body straight from ASGI messages, refusing more than ``limit`` bytes without
    reading it all (the declared Content-Length first, then what actually arrives), a body not
    sent as plain JSON (415), and a body that would take the process's bodies being received
    past ``budget`` (503)."""
    declared, encoding, media = _body_headers(scope)
    _check_media_type(media)
    if encoding is not None and encoding.strip().lower() not in (b"", b"identity"):
        # Read as plain JSON, a compressed body failed with a parse error that named bytes, not the
        # cause; and inflating it here would need its own size limit. The API server never compresses.
        shown = encoding.strip().decode("latin-1")[:40]
        raise BadReview(f"the body is encoded (Content-Encoding: {shown}); send plain JSON", status=415)
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadReview("Content-Length is not a number") from None
        if size > limit:
            raise BadReview(f"the body is {size} bytes; the limit is {limit} (admission.max_body_bytes)", status=413)
    chunks: list[bytes] = []
    total = taken = 0  # bytes received; bytes counted against the budget
    try:
        while True:
            message: MutableMapping[str, Any] = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                raise BadReview(
                    f"the body is larger than the limit of {limit} bytes (admission.max_body_bytes)", status=413
                )
            if budget is not None and not budget.take(len(chunk)):
                raise BadReview(
                    f"deployguard is receiving {budget.in_use:,} bytes of other requests' bodies, its limit "
                    f"(server.max_receiving_body_bytes); retry",
                    status=503,
                )
            taken += len(chunk) if budget is not None else 0
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        if budget is not None:
            budget.give_back(taken)


class ValidateFastPath:
    """``POST /validate`` without FastAPI's router; every other request goes on to ``app``."""

    def __init__(
        self, app: ASGIApp, reviewer: Reviewer, *, max_body_bytes: int, max_json_depth: int, budget: BodyBudget
    ) -> None:
        self.app, self._reviewer = app, reviewer
        self._max_body_bytes, self._max_json_depth, self._budget = max_body_bytes, max_json_depth, budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/validate" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            status, payload = await answer_validate(
                self._reviewer,
                lambda: read_asgi_body(scope, receive, self._max_body_bytes, self._budget),
                self._max_json_depth,
            )
        except ClientGone:
            log.info("a /validate caller disconnected before sending its body; nothing was decided")
            return
        body = orjson.dumps(payload)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def create_app(
    reviewer: Reviewer,
    store: PolicyStore | None,
    *,
    max_body_bytes: int,
    max_json_depth: int = 128,
    max_receiving_body_bytes: int = 0,
    lifespan_tasks: Callable[[], AsyncIterator[None]] | None = None,
    metrics: MetricsEndpoint | None = None,
    mutator: Mutator | None = None,
) -> ValidateFastPath:
    """Build the ASGI app; ``lifespan_tasks`` runs background work (reloaders) while serving."""
    budget = BodyBudget(max_receiving_body_bytes)  # one per process, shared by every route that reads a body

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if lifespan_tasks is None:
            yield
            return
        async for _ in lifespan_tasks():
            yield

    app = FastAPI(title="deployguard", docs_url=None, redoc_url=None, lifespan=lifespan)

    @app.post("/validate", openapi_extra=VALIDATE_OPENAPI)
    async def validate(request: Request) -> Response:
        """Documents /validate in the OpenAPI schema; calls are answered by ValidateFastPath."""
        status, payload = await answer_validate(
            reviewer, lambda: read_asgi_body(request.scope, request.receive, max_body_bytes, budget), max_json_depth
        )
        return ORJSONResponse(payload, status_code=status)

    if mutator is not None:

        @app.post("/mutate")
        async def mutate(request: Request) -> Response:
            """Optional (images.mutate_enabled): pins verified tags to tag@digest; never denies."""
            try:
                review = parse_review(
                    decode_json(
                        await read_asgi_body(request.scope, request.receive, max_body_bytes, budget), max_json_depth
                    )
                )
            except BadReview as exc:
                decision_id = reviewer.record_rejection(exc.reason, exc.status)
                return ORJSONResponse({"error": exc.reason, "decision_id": decision_id}, status_code=exc.status)
            return ORJSONResponse(await mutator.mutate(review))

    if metrics is not None:

        @app.get("/metrics")
        async def metrics_route() -> Response:
            body, content_type = metrics.render()
            return Response(body, media_type=content_type)

    @app.get("/healthz")
    async def healthz() -> Response:
        return ORJSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        ok, body = await readiness(reviewer, store)
        return JSONResponse(body, status_code=200 if ok else 503)

    return ValidateFastPath(app, reviewer, max_body_bytes=max_body_bytes, max_json_depth=max_json_depth, budget=budget)
