"""The ceiling: a bare FastAPI endpoint that reads an AdmissionReview and allows it.

Same server stack as deployguard (uvicorn, TLS, orjson), none of the work.
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI(docs_url=None, redoc_url=None)


@app.post("/validate")
async def validate(request: Request) -> Response:
    review = orjson.loads(await request.body())
    answer = {"apiVersion": review["apiVersion"], "kind": review["kind"],
              "response": {"uid": review["request"]["uid"], "allowed": True}}
    return Response(orjson.dumps(answer), media_type="application/json")


@app.get("/healthz")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")
