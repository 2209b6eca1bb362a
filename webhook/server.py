"""The HTTP adapter: FastAPI routes around the reviewer. The only web-framework code.

Malformed calls get an HTTP 4xx with the reason; policy denials are normal 200
answers with ``allowed: false``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from webhook.admission import parse_review
from webhook.errors import BadReview
from webhook.input_limits import ORJSON_MAX_DEPTH, exceeds_depth
from webhook.metrics import MetricsEndpoint, observe_parse
from webhook.mutation import Mutator
from webhook.openapi import VALIDATE_OPENAPI
from webhook.policy_store import PolicyStore
from webhook.reviewer import Reviewer

log = logging.getLogger("deployguard.server")


class ORJSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadReview("Content-Length is not a number") from None
        if size > limit:
            raise BadReview(f"the body is {size} bytes; the limit is {limit} (admission.max_body_bytes)", status=413)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise BadReview(
                f"the body is larger than the limit of {limit} bytes (admission.max_body_bytes)", status=413
            )
        chunks.append(chunk)
    return b"".join(chunks)


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


def create_app(
    reviewer: Reviewer,
    store: PolicyStore | None,
    *,
    max_body_bytes: int,
    max_json_depth: int = 128,
    lifespan_tasks: Callable[[], AsyncIterator[None]] | None = None,
    metrics: MetricsEndpoint | None = None,
    mutator: Mutator | None = None,
) -> FastAPI:
    """Build the ASGI app; ``lifespan_tasks`` runs background work (reloaders) while serving."""

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
        started = time.perf_counter()
        try:
            doc = decode_json(await read_body(request, max_body_bytes), max_json_depth)
            review = parse_review(doc)
            observe_parse(time.perf_counter() - started)
        except BadReview as exc:
            decision_id = reviewer.record_rejection(exc.reason, exc.status)
            return ORJSONResponse({"error": exc.reason, "decision_id": decision_id}, status_code=exc.status)
        outcome = await reviewer.review(review)
        return ORJSONResponse(outcome.response)

    if mutator is not None:

        @app.post("/mutate")
        async def mutate(request: Request) -> Response:
            """Optional (images.mutate_enabled): pins verified tags to tag@digest; never denies."""
            try:
                review = parse_review(decode_json(await read_body(request, max_body_bytes), max_json_depth))
            except BadReview as exc:
                return ORJSONResponse({"error": exc.reason}, status_code=exc.status)
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
        ok, reason = await reviewer.engine.ready()
        for gatherer in reviewer.gatherers:  # fact sources that must be primed before serving
            gatherer_ready = getattr(gatherer, "ready", None)
            if ok and callable(gatherer_ready):
                ok, reason = gatherer_ready()
        body: dict[str, Any] = {
            "ready": ok,
            "engine": reviewer.engine.name,
            "policy_revision": reviewer.engine.revision,
        }
        if reason:
            body["reason"] = reason
        if store is not None and store.last_error:
            body["last_policy_error"] = store.last_error
        return JSONResponse(body, status_code=200 if ok else 503)

    return app
