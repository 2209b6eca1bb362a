"""What deployguard's answers look like through kubectl, shared by the e2e tests."""

from __future__ import annotations

import re
from typing import Any

TAG_ONLY = "nginx:1.27"


def reason(stderr: str) -> str:
    """The deny text without what differs per request (decision id)."""
    return re.sub(r"\(decision [0-9a-f]+", "(decision …", stderr.split("denied the request:", 1)[-1]).strip()


def assert_digest_denial(stderr: str, *, subject: str, image: str = TAG_ONLY, container: str = "web") -> None:
    """The deny reason names the rule, the object, the container, the image and the fix."""
    expected = [
        'admission webhook "validate.deployguard.io" denied the request',
        f"deployguard denied {subject} (decision ",
        "[digest_pinning]",
        f'container "{container}"',
        f'image "{image}"',
        "is not pinned by digest",
        f"Fix: pin it as docker.io/library/{image}@sha256:",
        f"crane digest docker.io/library/{image}",
    ]
    missing = [text for text in expected if text not in stderr]
    assert not missing, f"missing {missing} in kubectl's stderr:\n{stderr}"


def assert_admitted_quietly(result: Any, created: str) -> None:
    """kubectl created the object, and deployguard had nothing to warn about."""
    assert result.ok, result
    assert result.stdout.strip() == f"{created} created", result
    assert "Warning:" not in result.stderr, result
