"""schemathesis against the app's own OpenAPI spec (/openapi.json), in-process (ASGI).

The spec declares the AdmissionReview body of POST /validate (webhook/openapi.py), so
schemathesis generates reviews that fit it and, in negative mode, ones that do not.
Every answer is a 200 AdmissionReview or a 4xx with a reason; never a server error.
(schemathesis' own pytest plugin does not run under pytest 9, so its hypothesis
strategies are driven with ``@given`` here.)
"""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from webhook.reviewer import Reviewer
from webhook.server import create_app

SPEC = TestClient(create_app(cast(Reviewer, None), None, max_body_bytes=1)).get("/openapi.json").json()
VALIDATE = schemathesis.openapi.from_dict(SPEC)["/validate"]["POST"]


@pytest.fixture
def client(reviewer: Reviewer) -> TestClient:
    return TestClient(create_app(reviewer, None, max_body_bytes=256 * 1024), raise_server_exceptions=False)


def test_the_spec_declares_the_admission_review_body() -> None:
    body = SPEC["paths"]["/validate"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["request"]["required"] == ["uid", "kind", "operation"]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_validate_never_fails_on_what_the_spec_allows_or_forbids(client: TestClient, mode: GenerationMode) -> None:
    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=VALIDATE.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        sent = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
        response = client.post("/validate", content=sent, headers={"content-type": "application/json"})
        assert response.status_code in (200, 400, 413), (response.status_code, response.text[:300])
        body = response.json()
        if response.status_code == 200:
            assert isinstance(body["response"]["allowed"], bool)
            assert body["response"]["uid"] == case.body["request"]["uid"]
        elif mode is GenerationMode.POSITIVE:
            assert response.status_code != 413, "a body that fits the spec and the size limit was refused"
        else:
            assert isinstance(body.get("error"), str) and body["error"]

    check()
