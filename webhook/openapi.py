"""The OpenAPI description of ``POST /validate`` (FastAPI publishes it at /openapi.json).

The route reads the raw body (orjson, no pydantic on the hot path), so FastAPI cannot
infer a schema; this declares the AdmissionReview it expects and the answers it gives,
for clients and for schema-driven fuzzing (schemathesis, tests/unit/test_openapi_fuzz.py).
"""

from __future__ import annotations

from typing import Any

_OBJECT: dict[str, Any] = {"type": "object", "nullable": True, "additionalProperties": True}

ADMISSION_REVIEW: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "request"],
    "properties": {
        "apiVersion": {"type": "string", "enum": ["admission.k8s.io/v1"]},
        "kind": {"type": "string", "enum": ["AdmissionReview"]},
        "request": {
            "type": "object",
            "required": ["uid", "kind", "operation"],
            "properties": {
                "uid": {"type": "string"},
                "kind": {
                    "type": "object",
                    "properties": {"group": {"type": "string"}, "version": {"type": "string"},
                                   "kind": {"type": "string"}},
                },
                "operation": {"type": "string", "enum": ["CREATE", "UPDATE", "DELETE", "CONNECT"]},
                "namespace": {"type": "string"},
                "name": {"type": "string"},
                "subResource": {"type": "string"},
                "dryRun": {"type": "boolean"},
                "userInfo": {
                    "type": "object",
                    "properties": {"username": {"type": "string"}, "groups": {"type": "array",
                                                                              "items": {"type": "string"}}},
                },
                "object": _OBJECT,
                "oldObject": _OBJECT,
            },
        },
    },
}  # fmt: skip

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}

VALIDATE_OPENAPI: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": ADMISSION_REVIEW}}},
    "responses": {
        "200": {"description": "the AdmissionReview answer (allowed, status, warnings, auditAnnotations)"},
        "400": {"description": "not an AdmissionReview", "content": {"application/json": {"schema": _ERROR}}},
        "413": {"description": "larger than admission.max_body_bytes",
                "content": {"application/json": {"schema": _ERROR}}},
        "415": {"description": "a Content-Type other than application/json, or a Content-Encoding other than identity",
                "content": {"application/json": {"schema": _ERROR}}},
        "503": {"description": "too many bodies being received at once (server.max_receiving_body_bytes); retry",
                "content": {"application/json": {"schema": _ERROR}}},
    },
}  # fmt: skip
